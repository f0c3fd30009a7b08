//! The member's encrypted vault: a directory holding `header` (KDF parameters, salt,
//! check tag) and `vault.redb` (one redb table of blinded keys to sealed values).
//!
//! * Every value is sealed with XChaCha20-Poly1305 under a key derived from the
//!   passphrase (Argon2id, then HKDF). The associated data is the blinded key, which is
//!   an HMAC of (table, key), so a value cannot be moved to another table or key.
//! * Keys are blinded with HMAC-SHA-256 under a separate subkey; all live in one redb
//!   table, so the file shows neither table names nor record kinds. Sealed values are
//!   padded to multiples of 256 bytes.
//! * A wrong passphrase is detected from the header alone, before the database file is
//!   opened: the vault is not touched.
//! * Atomicity: every operation that changes state (receiving a message: ratchet, prekey
//!   use, peer identity, the stored message and its de-duplication marker) runs in **one**
//!   redb write transaction. libsignal's store-trait writes during a decrypt go into that
//!   pending transaction and become durable only together with the message, at commit.
//!   An error, a panic or a crash before the commit leaves the vault as it was.
//! * Concurrency: one process opens a vault at a time (redb holds an exclusive file
//!   lock; a second [`Vault::open`] gets [`VaultError::AlreadyOpen`]). Inside the
//!   process, share one `Vault` (it is `Send + Sync`, e.g. in an `Arc`) between tasks:
//!   write transactions are serialised by redb, so two tasks receiving at once queue
//!   rather than interleave their ratchet updates. The API is synchronous and blocking
//!   (Argon2, fsync); call it from `spawn_blocking` in async code.
//!
//! Format and key derivation: `protocol-spec/E2E.md` ("Vault").

mod header;
pub(crate) mod keystate;
pub(crate) mod store;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

pub(crate) use header::VaultKeys;
pub use header::{HEADER_LEN, KdfParams};

use crate::plaintext::{ContentType, MessageId};
use crate::unix_ms;

/// The single redb table. Its name says nothing.
const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("v");
/// Header file name inside the vault directory.
pub const HEADER_FILE: &str = "header";
/// Database file name inside the vault directory.
pub const DB_FILE: &str = "vault.redb";
/// Sealed values are padded to a multiple of this many bytes.
pub const VALUE_PAD: usize = 256;
/// Associated-data prefix of every sealed value.
const VALUE_AD: &[u8] = b"postern vault v1 value";

/// A vault could not be created, opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The passphrase does not open this vault. Nothing was changed.
    #[error("wrong passphrase for this vault")]
    WrongPassphrase,
    /// The directory holds no vault header.
    #[error("no Postern vault here (header missing or not a vault header)")]
    NotAVault,
    /// The header is malformed or asks for parameters out of range.
    #[error("vault header is malformed: {0}")]
    BadHeader(&'static str),
    /// The header has a version this build does not know.
    #[error("unsupported vault version {0}")]
    UnsupportedVersion(u8),
    /// [`Vault::create`] found an existing vault.
    #[error("a vault already exists here")]
    AlreadyExists,
    /// Another process (or another handle in this one) has the vault open.
    #[error("the vault is open elsewhere; close the other postern process first")]
    AlreadyOpen,
    /// A stored value failed authentication or does not parse: the file was altered or
    /// damaged.
    #[error("vault record is corrupt: {0}")]
    Corrupt(&'static str),
    /// The vault has no member key material yet.
    #[error("the vault holds no member keys yet")]
    NotInitialised,
    /// A value is larger than a record may be.
    #[error("vault value too large")]
    ValueTooLarge,
    /// File system error.
    #[error("vault I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The storage engine failed.
    #[error("vault storage: {0}")]
    Storage(#[from] redb::Error),
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for VaultError {
            fn from(e: $t) -> Self { VaultError::Storage(e.into()) }
        }
    )*};
}
redb_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<redb::DatabaseError> for VaultError {
    fn from(e: redb::DatabaseError) -> Self {
        match e {
            redb::DatabaseError::DatabaseAlreadyOpen => VaultError::AlreadyOpen,
            other => VaultError::Storage(other.into()),
        }
    }
}

/// Record kinds. The byte goes into the blinded key and the sealed value, never in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Table {
    Meta = 1,
    Session = 2,
    PeerIdentity = 3,
    PreKey = 4,
    SignedPreKey = 5,
    KyberPreKey = 6,
    KyberUsed = 7,
    Message = 8,
    Seen = 9,
    App = 10,
}

/// The encrypted member store. See the module docs for the security and concurrency
/// model.
pub struct Vault {
    /// The open database (holds redb's exclusive file lock).
    db: Database,
    /// Keys derived from the passphrase; wiped on drop.
    keys: VaultKeys,
    /// The vault directory.
    dir: PathBuf,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use rand::{RngCore, TryRngCore};
    let mut b = [0u8; N];
    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut b);
    b
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

impl Vault {
    /// Creates a new, empty vault in `dir` (created if missing) with the passphrase.
    /// Use [`KdfParams::default`] for real vaults.
    pub fn create(dir: &Path, passphrase: &[u8], params: KdfParams) -> Result<Self, VaultError> {
        fs::create_dir_all(dir)?;
        restrict_dir(dir)?;
        let header_path = dir.join(HEADER_FILE);
        if header_path.exists() {
            return Err(VaultError::AlreadyExists);
        }
        let (header, keys) = header::create(passphrase, params, random_bytes())?;
        // The database first, the header last: a header marks a complete vault. A
        // database left by a create that crashed before its header is replaced.
        let db_path = dir.join(DB_FILE);
        if db_path.exists() {
            fs::remove_file(&db_path)?;
        }
        let db = Database::create(&db_path)?;
        let txn = db.begin_write()?;
        txn.open_table(TABLE)?;
        txn.commit()?;
        let tmp = dir.join("header.tmp");
        {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&header)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &header_path)?;
        fs::File::open(dir)?.sync_all()?;
        Ok(Self {
            db,
            keys,
            dir: dir.to_owned(),
        })
    }

    /// Opens the vault in `dir`. A wrong passphrase is [`VaultError::WrongPassphrase`]
    /// and leaves both files untouched (the database is not opened before the check).
    pub fn open(dir: &Path, passphrase: &[u8]) -> Result<Self, VaultError> {
        let mut bytes = Vec::new();
        match fs::File::open(dir.join(HEADER_FILE)) {
            Ok(f) => {
                f.take(HEADER_LEN as u64 + 1).read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VaultError::NotAVault);
            }
            Err(e) => return Err(e.into()),
        }
        let (_params, keys) = header::open(&bytes, passphrase)?;
        let db_path = dir.join(DB_FILE);
        if !db_path.exists() {
            return Err(VaultError::Corrupt("database file missing"));
        }
        let db = Database::open(&db_path)?;
        Ok(Self {
            db,
            keys,
            dir: dir.to_owned(),
        })
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts the single write transaction of an operation.
    pub(crate) fn begin(&self) -> Result<Tx<'_>, VaultError> {
        Ok(Tx {
            txn: self.db.begin_write()?,
            keys: &self.keys,
        })
    }

    /// Reads one record outside any write.
    pub(crate) fn get(
        &self,
        t: Table,
        key: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        get_in(&table, &self.keys, t, key)
    }

    /// All records of a kind, decrypted.
    pub(crate) fn scan(&self, t: Table) -> Result<Vec<Record>, VaultError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        scan_in(&table, &self.keys, t)
    }

    /// The messages held, oldest first, never one whose `expires_at` has passed at `now`.
    pub fn messages(&self, now: SystemTime) -> Result<Vec<StoredMessage>, VaultError> {
        let now_ms = unix_ms(now);
        let mut out = Vec::new();
        for rec in self.scan(Table::Message)? {
            let m = StoredMessage::decode(&rec.value)?;
            if m.expires_at_ms > now_ms {
                out.push(m);
            }
        }
        out.sort_by_key(|m| (m.sent_at_ms, m.received_at_ms));
        Ok(out)
    }

    /// Deletes one stored message (its de-duplication marker stays until it expires).
    pub fn delete_message(&self, sender: &str, id: &MessageId) -> Result<bool, VaultError> {
        let tx = self.begin()?;
        let existed = tx.delete(Table::Message, &message_key(sender, id))?;
        tx.commit()?;
        Ok(existed)
    }

    /// Deletes every message and de-duplication marker whose `expires_at` has passed,
    /// read or not. The client calls this on open and periodically. Returns the number of
    /// messages deleted.
    pub fn purge_expired(&self, now: SystemTime) -> Result<usize, VaultError> {
        let now_ms = unix_ms(now);
        let tx = self.begin()?;
        let mut purged = 0;
        for rec in tx.scan(Table::Message)? {
            if StoredMessage::decode(&rec.value)?.expires_at_ms <= now_ms {
                tx.delete(Table::Message, &rec.key)?;
                purged += 1;
            }
        }
        for rec in tx.scan(Table::Seen)? {
            if decode_u64(&rec.value)? <= now_ms {
                tx.delete(Table::Seen, &rec.key)?;
            }
        }
        tx.commit()?;
        Ok(purged)
    }

    /// Stores an application record (contacts, deliveries, settings) under `key`,
    /// sealed like everything else.
    pub fn put_record(&self, key: &[u8], value: &[u8]) -> Result<(), VaultError> {
        let tx = self.begin()?;
        tx.put(Table::App, key, value)?;
        tx.commit()
    }

    /// Reads an application record.
    pub fn get_record(&self, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        self.get(Table::App, key)
    }

    /// Deletes an application record; returns whether it existed.
    pub fn delete_record(&self, key: &[u8]) -> Result<bool, VaultError> {
        let tx = self.begin()?;
        let existed = tx.delete(Table::App, key)?;
        tx.commit()?;
        Ok(existed)
    }
}

/// A decrypted record: its logical key and value.
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Zeroizing<Vec<u8>>,
}

/// One write transaction: reads see its own pending writes; nothing is durable before
/// [`Tx::commit`]; dropping it discards everything.
pub(crate) struct Tx<'v> {
    txn: redb::WriteTransaction,
    keys: &'v VaultKeys,
}

impl Tx<'_> {
    pub(crate) fn get(
        &self,
        t: Table,
        key: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        let table = self.txn.open_table(TABLE)?;
        get_in(&table, self.keys, t, key)
    }

    pub(crate) fn put(&self, t: Table, key: &[u8], value: &[u8]) -> Result<(), VaultError> {
        let blinded = blind(self.keys, t, key);
        let sealed = seal(self.keys, t, key, value, &blinded)?;
        let mut table = self.txn.open_table(TABLE)?;
        table.insert(blinded.as_slice(), sealed.as_slice())?;
        Ok(())
    }

    pub(crate) fn delete(&self, t: Table, key: &[u8]) -> Result<bool, VaultError> {
        let blinded = blind(self.keys, t, key);
        let mut table = self.txn.open_table(TABLE)?;
        let existed = table.remove(blinded.as_slice())?.is_some();
        Ok(existed)
    }

    pub(crate) fn scan(&self, t: Table) -> Result<Vec<Record>, VaultError> {
        let table = self.txn.open_table(TABLE)?;
        scan_in(&table, self.keys, t)
    }

    pub(crate) fn commit(self) -> Result<(), VaultError> {
        self.txn.commit()?;
        Ok(())
    }
}

fn blind(keys: &VaultKeys, t: Table, key: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for 32 bytes.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&keys.blind) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    mac.update(&[t as u8]);
    mac.update(key);
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    // HMAC-SHA-256 takes keys of any length.
    panic!("HMAC rejected a 32-byte key")
}

fn ad(blinded: &[u8; 32]) -> Vec<u8> {
    [VALUE_AD, blinded.as_slice()].concat()
}

fn seal(
    keys: &VaultKeys,
    t: Table,
    key: &[u8],
    value: &[u8],
    blinded: &[u8; 32],
) -> Result<Vec<u8>, VaultError> {
    let pt = value_layout(t, key, value)?;
    seal_with_nonce(keys, &pt, blinded, random_bytes())
}

/// The padded plaintext of a sealed value:
/// `u8 table || u16 key len || key || u32 value len || value || 0x80 || 0x00*` to a
/// multiple of [`VALUE_PAD`].
pub(crate) fn value_layout(
    t: Table,
    key: &[u8],
    value: &[u8],
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let key_len = u16::try_from(key.len()).map_err(|_| VaultError::ValueTooLarge)?;
    let value_len = u32::try_from(value.len()).map_err(|_| VaultError::ValueTooLarge)?;
    let unpadded = 1 + 2 + key.len() + 4 + value.len() + 1;
    let mut pt = Zeroizing::new(Vec::with_capacity(unpadded.div_ceil(VALUE_PAD) * VALUE_PAD));
    pt.push(t as u8);
    pt.extend_from_slice(&key_len.to_be_bytes());
    pt.extend_from_slice(key);
    pt.extend_from_slice(&value_len.to_be_bytes());
    pt.extend_from_slice(value);
    pt.push(0x80);
    let padded = pt.len().div_ceil(VALUE_PAD) * VALUE_PAD;
    pt.resize(padded, 0);
    Ok(pt)
}

/// Seals an already laid-out, padded value plaintext under `nonce`.
pub(crate) fn seal_with_nonce(
    keys: &VaultKeys,
    pt: &[u8],
    blinded: &[u8; 32],
    nonce: [u8; 24],
) -> Result<Vec<u8>, VaultError> {
    let cipher = XChaCha20Poly1305::new((&keys.value).into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: pt,
                aad: &ad(blinded),
            },
        )
        .map_err(|_| VaultError::ValueTooLarge)?;
    Ok([nonce.as_slice(), &ct].concat())
}

/// An opened value: table byte, logical key, value.
type Opened = (u8, Vec<u8>, Zeroizing<Vec<u8>>);

/// Opens a sealed value stored under `blinded`; returns (table byte, key, value).
fn open_value(keys: &VaultKeys, blinded: &[u8], sealed: &[u8]) -> Result<Opened, VaultError> {
    let blinded: &[u8; 32] = blinded
        .try_into()
        .map_err(|_| VaultError::Corrupt("table key length"))?;
    if sealed.len() < 24 + 16 {
        return Err(VaultError::Corrupt("sealed value truncated"));
    }
    let (nonce, ct) = sealed.split_at(24);
    let cipher = XChaCha20Poly1305::new((&keys.value).into());
    let pt = Zeroizing::new(
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &ad(blinded),
                },
            )
            .map_err(|_| VaultError::Corrupt("value does not authenticate"))?,
    );
    let bad = || VaultError::Corrupt("sealed value layout");
    let t = *pt.first().ok_or_else(bad)?;
    let key_len = usize::from(u16::from_be_bytes([
        *pt.get(1).ok_or_else(bad)?,
        *pt.get(2).ok_or_else(bad)?,
    ]));
    let key = pt.get(3..3 + key_len).ok_or_else(bad)?.to_vec();
    let vl = pt.get(3 + key_len..7 + key_len).ok_or_else(bad)?;
    let value_len = u32::from_be_bytes([vl[0], vl[1], vl[2], vl[3]]) as usize;
    let start = 7 + key_len;
    let value = Zeroizing::new(pt.get(start..start + value_len).ok_or_else(bad)?.to_vec());
    Ok((t, key, value))
}

fn get_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    keys: &VaultKeys,
    t: Table,
    key: &[u8],
) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
    let blinded = blind(keys, t, key);
    let Some(guard) = table.get(blinded.as_slice())? else {
        return Ok(None);
    };
    let (tt, k, v) = open_value(keys, &blinded, guard.value())?;
    if tt != t as u8 || k != key {
        return Err(VaultError::Corrupt("record under the wrong key"));
    }
    Ok(Some(v))
}

fn scan_in(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    keys: &VaultKeys,
    t: Table,
) -> Result<Vec<Record>, VaultError> {
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        let (tt, key, value) = open_value(keys, k.value(), v.value())?;
        if tt == t as u8 {
            if blind(keys, t, &key).as_slice() != k.value() {
                return Err(VaultError::Corrupt("record under the wrong key"));
            }
            out.push(Record { key, value });
        }
    }
    Ok(out)
}

pub(crate) fn decode_u64(b: &[u8]) -> Result<u64, VaultError> {
    let a: [u8; 8] = b
        .try_into()
        .map_err(|_| VaultError::Corrupt("u64 record"))?;
    Ok(u64::from_be_bytes(a))
}

/// The header and keys for fixed inputs (spec vectors).
#[cfg(test)]
pub(crate) fn header_for_vectors(
    passphrase: &[u8],
    params: KdfParams,
    salt: [u8; 32],
) -> Result<([u8; HEADER_LEN], VaultKeys), VaultError> {
    header::create(passphrase, params, salt)
}

/// A blinded key (spec vectors).
#[cfg(test)]
pub(crate) fn blind_for_vectors(keys: &VaultKeys, t: Table, key: &[u8]) -> [u8; 32] {
    blind(keys, t, key)
}

/// Logical key of a message and of its de-duplication marker: `u16 len || sender || id`.
pub(crate) fn message_key(sender: &str, id: &MessageId) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + sender.len() + 16);
    k.extend_from_slice(&(sender.len().min(u16::MAX as usize) as u16).to_be_bytes());
    k.extend_from_slice(sender.as_bytes());
    k.extend_from_slice(&id.0);
    k
}

/// A received message as the vault holds it. The body is wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The sender's member name (handle), from its verified sender certificate.
    pub sender: String,
    /// The sender-chosen id.
    pub id: MessageId,
    /// What the body is.
    pub content_type: ContentType,
    /// Sender's clock, unix ms.
    pub sent_at_ms: u64,
    /// Deleted after this (unix ms).
    pub expires_at_ms: u64,
    /// Our clock at receipt, unix ms.
    pub received_at_ms: u64,
    /// The content.
    pub body: Vec<u8>,
}

impl Drop for StoredMessage {
    fn drop(&mut self) {
        self.body.zeroize();
    }
}

impl std::fmt::Debug for StoredMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredMessage")
            .field("id", &self.id)
            .field("content_type", &self.content_type)
            .field("sent_at_ms", &self.sent_at_ms)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl StoredMessage {
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(64 + self.body.len()));
        let sender = self.sender.as_bytes();
        out.extend_from_slice(&(sender.len().min(u16::MAX as usize) as u16).to_be_bytes());
        out.extend_from_slice(sender);
        out.extend_from_slice(&self.id.0);
        out.push(self.content_type.to_byte());
        out.extend_from_slice(&self.sent_at_ms.to_be_bytes());
        out.extend_from_slice(&self.expires_at_ms.to_be_bytes());
        out.extend_from_slice(&self.received_at_ms.to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, VaultError> {
        let bad = || VaultError::Corrupt("stored message");
        let n = usize::from(u16::from_be_bytes([
            *b.first().ok_or_else(bad)?,
            *b.get(1).ok_or_else(bad)?,
        ]));
        let sender = std::str::from_utf8(b.get(2..2 + n).ok_or_else(bad)?)
            .map_err(|_| bad())?
            .to_owned();
        let rest = b.get(2 + n..).ok_or_else(bad)?;
        if rest.len() < 16 + 1 + 24 {
            return Err(bad());
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&rest[..16]);
        let content_type = ContentType::from_byte(rest[16]).ok_or_else(bad)?;
        let sent_at_ms = decode_u64(&rest[17..25])?;
        let expires_at_ms = decode_u64(&rest[25..33])?;
        let received_at_ms = decode_u64(&rest[33..41])?;
        Ok(Self {
            sender,
            id: MessageId(id),
            content_type,
            sent_at_ms,
            expires_at_ms,
            received_at_ms,
            body: rest[41..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests;
