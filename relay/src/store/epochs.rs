//! Relay epoch keys: every envelope body is sealed at rest (XChaCha20-Poly1305) under the
//! key of its *epoch*, which is its expiry hour (`expires_at`, an hour boundary). A key
//! lives in memory and in one slot of `epoch-keys.bin` from the first envelope of its
//! epoch until the epoch has passed; then its slot is overwritten with zeros in place and
//! flushed. Once every envelope of an epoch is expired the key is gone, so whatever the
//! database file still holds of those bodies (copy-on-write free pages, a backup, an
//! image) is ciphertext under a destroyed key.
//!
//! File layout: 64-byte slots, each `epoch: u64 BE` ‖ `key: 32 bytes` ‖ `check: 24 bytes`
//! (the first 24 bytes of SHA-256(`"postern relay epoch key\0"` ‖ epoch ‖ key)); an all-zero
//! slot is free. Slots are written in place (never by rename, which would leave the old
//! file's blocks behind), one slot per write, and the file is flushed before any envelope
//! under a new key is committed. A slot that does not check (a torn write) is treated as
//! free: it can only be the one being written, under which nothing was committed yet.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Mutex, RwLock};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::StoreError;

/// The key file in the data directory.
pub const EPOCH_KEY_FILE: &str = "epoch-keys.bin";
/// Bytes a sealed body has beyond the plaintext: the nonce and the tag.
pub(super) const SEAL_OVERHEAD: usize = 24 + 16;
const SLOT_LEN: u64 = 64;
const CHECK_CONTEXT: &[u8] = b"postern relay epoch key\0";

type Key = Zeroizing<[u8; 32]>;

/// The epoch keys: in memory, and their slots in the key file.
pub(super) struct EpochKeys {
    /// Live keys by epoch, with their slot.
    keys: RwLock<std::collections::BTreeMap<u64, (u64, Key)>>,
    /// The key file and its free slots.
    file: Mutex<(File, Vec<u64>, u64)>,
}

impl std::fmt::Debug for EpochKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EpochKeys")
    }
}

fn check(epoch: u64, key: &[u8; 32]) -> [u8; 24] {
    let digest = Sha256::new()
        .chain_update(CHECK_CONTEXT)
        .chain_update(epoch.to_be_bytes())
        .chain_update(key)
        .finalize();
    let mut c = [0u8; 24];
    c.copy_from_slice(&digest[..24]);
    c
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Db(format!("{EPOCH_KEY_FILE}: {e}"))
}

impl EpochKeys {
    /// Opens (or creates, mode 0600) the key file in `data_dir` and loads its keys.
    pub(super) fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(EPOCH_KEY_FILE);
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut keys = std::collections::BTreeMap::new();
        let mut free = Vec::new();
        let slots = bytes.len() as u64 / SLOT_LEN;
        for slot in 0..slots {
            let at = (slot * SLOT_LEN) as usize;
            let s = &bytes[at..at + SLOT_LEN as usize];
            let mut epoch = [0u8; 8];
            epoch.copy_from_slice(&s[..8]);
            let epoch = u64::from_be_bytes(epoch);
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&s[8..40]);
            if epoch != 0 && s[40..64] == check(epoch, &key) && !keys.contains_key(&epoch) {
                keys.insert(epoch, (slot, key));
            } else {
                free.push(slot);
            }
        }
        Ok(Self {
            keys: RwLock::new(keys),
            file: Mutex::new((file, free, slots)),
        })
    }

    /// The key of `epoch`, if it is live.
    fn get(&self, epoch: u64) -> Option<Key> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.get(&epoch).map(|(_, k)| k.clone())
    }

    /// The key of `epoch`, made, written and flushed first if there is none yet (the
    /// writer calls this before it commits an envelope under it).
    fn get_or_create(&self, epoch: u64) -> Result<Key, StoreError> {
        if let Some(k) = self.get(epoch) {
            return Ok(k);
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = self.get(epoch) {
            return Ok(k);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        rand::Rng::fill(&mut rand::rng(), &mut key[..]);
        let (f, free, slots) = &mut *file;
        let slot = match free.pop() {
            Some(s) => s,
            None => {
                *slots += 1;
                *slots - 1
            }
        };
        let mut record = Zeroizing::new([0u8; SLOT_LEN as usize]);
        record[..8].copy_from_slice(&epoch.to_be_bytes());
        record[8..40].copy_from_slice(key.as_ref());
        record[40..].copy_from_slice(&check(epoch, &key));
        write_slot(f, slot, record.as_ref())?;
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(epoch, (slot, key.clone()));
        Ok(key)
    }

    /// Destroys the keys of every epoch at or before `now` (their envelopes have all
    /// expired): zeros over their slots, flushed. Returns how many were destroyed.
    pub(super) fn destroy_through(&self, now: u64) -> Result<usize, StoreError> {
        let due: Vec<(u64, u64)> = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            keys.range(..=now).map(|(e, (s, _))| (*e, *s)).collect()
        };
        if due.is_empty() {
            return Ok(0);
        }
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let (f, free, _) = &mut *file;
        for (epoch, slot) in &due {
            write_slot(f, *slot, &[0u8; SLOT_LEN as usize])?;
            self.keys
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(epoch);
            free.push(*slot);
        }
        Ok(due.len())
    }

    /// Seals `body` for the envelope stored under `aad` (its table key) expiring at
    /// `epoch`: `nonce (24) ‖ ciphertext and tag`.
    pub(super) fn seal(&self, epoch: u64, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, StoreError> {
        let key = self.get_or_create(epoch)?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let mut nonce = [0u8; 24];
        rand::Rng::fill(&mut rand::rng(), &mut nonce[..]);
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: body, aad })
            .map_err(|_| StoreError::Db("cannot seal an envelope".into()))?;
        let mut out = Vec::with_capacity(SEAL_OVERHEAD + body.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a sealed body, or `None` if its epoch key is gone or it does not verify.
    pub(super) fn open_body(&self, epoch: u64, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let key = self.get(epoch)?;
        let (nonce, ciphertext) = sealed.split_at_checked(24)?;
        XChaCha20Poly1305::new(key.as_ref().into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .ok()
    }

    /// The live epochs (for tests and stats).
    #[cfg(test)]
    pub(super) fn live(&self) -> Vec<(u64, [u8; 32])> {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        keys.iter().map(|(e, (_, k))| (*e, **k)).collect()
    }
}

fn write_slot(f: &mut File, slot: u64, bytes: &[u8]) -> Result<(), StoreError> {
    f.seek(SeekFrom::Start(slot * SLOT_LEN)).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_data().map_err(io)
}
