//! Durable relay state in one redb file, `relay.redb`.
//!
//! All writes go through one writer thread that applies every operation waiting in its
//! queue in a single write transaction and commits it with one `fdatasync` (group commit),
//! then answers each operation. An operation is answered only after its commit returned,
//! so an acknowledged `Send` is on disk. New envelopes go to subscribers as soon as their
//! batch is applied, while the commit flushes (delivery is at least once; see
//! [`Store::open`]). Reads use redb's MVCC read transactions and never
//! wait for the writer.
//!
//! What is stored (and nothing else): mailbox ids, owner keys and counters; envelope ids,
//! coarse expiry and padded ciphertext; opaque directory blobs under keyed hashes and a
//! hash of the publishing device key; the revocation list. No handle, sender, address or
//! time of arrival.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use postern_protocol::ErrorCode;
use postern_protocol::bytes::{BoundedVec, Bytes};
use postern_protocol::ids::{EnvelopeId, HandleTag, MailboxId};
use postern_protocol::limits::{MAX_FETCH_ENVELOPES, MAX_FRAME_LEN, PADDING_BUCKETS};
use postern_protocol::message::{Envelope, EnvelopeBody};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

use crate::metrics::Metrics;

mod due;
mod epochs;
mod layout;
mod tables;
#[cfg(test)]
mod tests;
mod writer;

use due::{Due, split_key};
pub use epochs::EPOCH_KEY_FILE;
use epochs::{EpochKeys, SEAL_OVERHEAD};
use layout::*;
use writer::{Op, writer_loop};

/// Database file name in the data directory.
pub const DB_FILE: &str = "relay.redb";

/// Storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb reported an error.
    #[error("database error: {0}")]
    Db(String),
    /// A stored record did not decode (the file was damaged or tampered with).
    #[error("corrupt record in table {0}")]
    Corrupt(&'static str),
    /// The writer thread is gone (the relay is shutting down).
    #[error("storage writer stopped")]
    WriterGone,
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A request's outcome: its value, or the error code the client gets.
pub type OpResult<T> = Result<T, ErrorCode>;

/// A directory entry and, if any were left, one one-time prekey.
pub type TakenPrekeys = (Vec<u8>, Option<Vec<u8>>);

/// Envelopes a batch stored, each with its mailbox, handed out once the batch is applied
/// and while its commit flushes, so that subscribers get them without waiting for the
/// disk (see [`Store::open`]).
pub type Staged = Vec<(MailboxId, Envelope)>;

/// Outcome of a stored `Send`.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Id of the new envelope.
    pub id: EnvelopeId,
    /// Its expiry (Unix seconds, on a minute boundary).
    pub expires_at: u64,
    /// The mailbox it went to (to push it to a subscriber).
    pub recipient: MailboxId,
}

/// Outcome of an `Ack` or a sweep: what was deleted and which mailboxes have room again.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    /// Envelopes deleted.
    pub count: u32,
    /// Mailboxes that had hit their quota and are below it again.
    pub space_returned: Vec<MailboxId>,
    /// Mailboxes a sweep looked into (only those with something due).
    pub mailboxes_visited: u32,
}

/// Quotas the writer enforces.
#[derive(Debug, Clone, Copy)]
pub struct Quotas {
    /// Most envelopes per mailbox.
    pub max_envelopes: u32,
    /// Most body bytes per mailbox.
    pub max_bytes: u64,
    /// Most one-time prekeys per directory entry.
    pub max_one_time: u32,
    /// Most directory entries published by one device.
    pub max_entries_per_owner: u32,
}

/// The sender key of every mailbox, by sender id (`None`: a mailbox made before sender
/// keys), kept in memory so that a send is checked without a read transaction. Loaded at
/// open; changed only by the writer, after the commit that changed the table.
pub(super) type SenderKeys = Arc<std::sync::RwLock<HashMap<MailboxId, Option<[u8; 32]>>>>;

/// The relay's storage: a redb database and its writer thread.
#[derive(Clone)]
pub struct Store {
    /// The database (reads happen on callers' threads).
    db: Arc<Database>,
    /// Queue to the writer thread.
    ops: std_mpsc::SyncSender<Op>,
    /// The writer thread, joined by [`Store::close`].
    writer: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
    /// Envelopes held per bucket.
    held: Held,
    /// The keys envelope bodies are sealed under at rest.
    epochs: Arc<EpochKeys>,
    /// Sender keys, by sender id.
    sender_keys: SenderKeys,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (or creates) the database in `data_dir` and starts the writer thread.
    ///
    /// With `staged`, the writer sends each batch's new envelopes there after applying
    /// the batch and before its commit flushes: a subscriber can have an envelope before
    /// its `Send` is answered, and, if the commit then fails, even though the `Send` is
    /// refused (the sender retries and the recipient drops the duplicate). Nothing is
    /// sent for a refused operation (quota, unknown mailbox). The channel is bounded: if its
    /// reader (which only hands envelopes to push queues) falls that far behind, the
    /// writer waits for it rather than let envelopes pile up in memory.
    pub fn open(
        data_dir: &Path,
        quotas: Quotas,
        max_batch: usize,
        metrics: Arc<Metrics>,
        staged: Option<tokio::sync::mpsc::Sender<Staged>>,
    ) -> Result<Self, StoreError> {
        // A bounded page cache: a relay runs on a small VPS.
        let db = Database::builder()
            .set_cache_size(64 * 1024 * 1024)
            .create(data_dir.join(DB_FILE))?;
        {
            let txn = db.begin_write()?;
            txn.open_table(MAILBOXES)?;
            txn.open_table(SENDERS)?;
            txn.open_table(ENVELOPES)?;
            txn.open_table(DIRECTORY)?;
            txn.open_table(ONE_TIME)?;
            txn.open_table(META)?;
            txn.commit()?;
        }
        let epochs = Arc::new(EpochKeys::open(data_dir)?);
        seal_unsealed_bodies(&db, &epochs)?;
        // One pass over the envelopes: counts per bucket, and each mailbox's earliest
        // expiry (from the keys).
        let held: Held = Arc::new(Default::default());
        let mut due = Due::default();
        {
            let txn = db.begin_read()?;
            for item in txn.open_table(ENVELOPES)?.iter()? {
                let (k, v) = item?;
                due.note_key(k.value());
                held[bucket_index(v.value().len().saturating_sub(SEAL_OVERHEAD))]
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let mut keys = HashMap::new();
        {
            let txn = db.begin_read()?;
            for item in txn.open_table(SENDERS)?.iter()? {
                let (k, v) = item?;
                let sender = MailboxId(arr32(k.value(), "senders")?);
                keys.insert(sender, parse_sender_value(v.value())?.1);
            }
        }
        let sender_keys: SenderKeys = Arc::new(std::sync::RwLock::new(keys));
        let db = Arc::new(db);
        let (tx, rx) = std_mpsc::sync_channel(max_batch.max(1) * 4);
        let writer_keys = sender_keys.clone();
        let writer_db = db.clone();
        let writer_held = held.clone();
        let writer_epochs = epochs.clone();
        let writer = std::thread::Builder::new()
            .name("postern-relay-writer".into())
            .spawn(move || {
                writer_loop(
                    &writer_db,
                    &rx,
                    (quotas, max_batch.max(1)),
                    &metrics,
                    &writer_held,
                    staged.as_ref(),
                    (&writer_epochs, &writer_keys, due),
                )
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(Self {
            db,
            ops: tx,
            writer: Arc::new(std::sync::Mutex::new(Some(writer))),
            held,
            epochs,
            sender_keys,
        })
    }

    /// Commits everything queued, stops the writer and waits for it. Operations submitted
    /// afterwards through any clone are answered `Unavailable`.
    pub fn close(&self) {
        let _ = self.ops.send(Op::Shutdown);
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<OpResult<T>>) -> Op,
    ) -> OpResult<T> {
        let (tx, rx) = oneshot::channel();
        let ops = self.ops.clone();
        let op = make(tx);
        // The queue is bounded; a full queue blocks this request (backpressure) without
        // blocking the runtime thread.
        let sent = match ops.try_send(op) {
            Ok(()) => Ok(()),
            Err(std_mpsc::TrySendError::Full(op)) => {
                tokio::task::spawn_blocking(move || ops.send(op).map_err(|_| ()))
                    .await
                    .unwrap_or(Err(()))
            }
            Err(std_mpsc::TrySendError::Disconnected(_)) => Err(()),
        };
        if sent.is_err() {
            return Err(ErrorCode::Unavailable);
        }
        rx.await.unwrap_or(Err(ErrorCode::Unavailable))
    }

    /// Creates a mailbox; `AlreadyExists` if either id is taken.
    pub async fn create_mailbox(
        &self,
        recipient: MailboxId,
        sender: MailboxId,
        owner: [u8; 32],
        sender_key: [u8; 32],
    ) -> OpResult<()> {
        self.submit(|reply| Op::CreateMailbox {
            recipient,
            sender,
            owner,
            sender_key,
            reply,
        })
        .await
    }

    /// Replaces the sender key of a mailbox; `NotFound` if there is none.
    pub async fn set_sender_key(&self, recipient: MailboxId, sender_key: [u8; 32]) -> OpResult<()> {
        self.submit(|reply| Op::SetSenderKey {
            recipient,
            sender_key,
            reply,
        })
        .await
    }

    /// Stores an envelope durably; answers after the commit. `signed_by` is the sender
    /// key the caller verified the send under: `Unauthorized` if it is no longer the
    /// mailbox's.
    pub async fn send(
        &self,
        to: MailboxId,
        signed_by: [u8; 32],
        expires_at: u64,
        body: EnvelopeBody,
    ) -> OpResult<Stored> {
        self.submit(|reply| Op::Send {
            to,
            signed_by,
            expires_at,
            body,
            reply,
        })
        .await
    }

    /// The sender key of the mailbox whose sender id is `to`: `Ok(None)` if there is no
    /// such mailbox, `Ok(Some(None))` if it has no sender key.
    pub fn sender_key(&self, to: &MailboxId) -> Result<Option<Option<[u8; 32]>>, StoreError> {
        Ok(self
            .sender_keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(to)
            .copied())
    }

    /// Deletes envelopes of `recipient`; ids of other mailboxes or already gone are skipped.
    pub async fn ack(&self, recipient: MailboxId, ids: Vec<EnvelopeId>) -> OpResult<Deleted> {
        self.submit(|reply| Op::Ack {
            recipient,
            ids,
            reply,
        })
        .await
    }

    /// Deletes up to one batch of envelopes expired at `now`.
    /// Also destroys the epoch keys of every epoch that has passed, so the bodies of
    /// expired envelopes not yet deleted (and any copies of them) cannot be opened.
    pub async fn sweep(&self, now: u64) -> OpResult<Deleted> {
        self.submit(|reply| Op::Sweep { now, reply }).await
    }

    /// Replaces a directory entry and adds one-time prekeys; returns how many are held.
    pub async fn publish(
        &self,
        directory: HandleTag,
        owner_tag: [u8; 32],
        entry: Vec<u8>,
        one_time: Vec<Vec<u8>>,
    ) -> OpResult<u32> {
        self.submit(|reply| Op::Publish {
            directory,
            owner_tag,
            entry,
            one_time,
            reply,
        })
        .await
    }

    /// The entry and one one-time prekey, which is deleted as it is handed out.
    pub async fn take_prekeys(&self, directory: HandleTag) -> OpResult<TakenPrekeys> {
        self.submit(|reply| Op::TakePrekeys { directory, reply })
            .await
    }

    /// Stores a revocation list (the caller has verified it is newer and valid).
    pub async fn put_revocation(&self, version: u64, list: Vec<u8>) -> OpResult<()> {
        self.submit(|reply| Op::PutRevocation {
            version,
            list,
            reply,
        })
        .await
    }

    /// The mailbox's owner key and pending count, if it exists.
    pub fn mailbox(&self, recipient: &MailboxId) -> Result<Option<([u8; 32], u32)>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(MAILBOXES)?;
        match t.get(recipient.as_bytes().as_slice())? {
            Some(v) => {
                let r: MailboxRecord = decode(v.value(), "mailboxes")?;
                Ok(Some((r.owner, r.count)))
            }
            None => Ok(None),
        }
    }

    /// Up to `limit` unexpired envelopes of `recipient`, in order of expiry, fitting one
    /// frame; and whether more are waiting.
    pub fn fetch(
        &self,
        recipient: &MailboxId,
        limit: usize,
        now: u64,
    ) -> Result<(Vec<Envelope>, bool), StoreError> {
        // 0 asks only whether anything waits (`more`).
        let limit = limit.min(MAX_FETCH_ENVELOPES);
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ENVELOPES)?;
        // Envelopes expired at or before `now` sort first: start after them.
        let start = after(recipient, now);
        let end = envelope_key(recipient, &EnvelopeId([0xff; 32]));
        let mut out = Vec::new();
        let mut budget = MAX_FRAME_LEN - 64;
        for item in t.range(start.as_slice()..=end.as_slice())? {
            let (k, v) = item?;
            let (k, sealed) = (k.value(), v.value());
            let cost = 32 + 10 + 5 + sealed.len().saturating_sub(SEAL_OVERHEAD);
            if out.len() == limit || cost > budget {
                return Ok((out, true));
            }
            let id = EnvelopeId(arr32(k.get(32..).unwrap_or_default(), "envelopes")?);
            let expires_at = expiry_of(&id);
            // A body whose epoch key is gone (a damaged key file) cannot be opened by
            // anyone: it is skipped, and the sweeper deletes it at its expiry.
            let Some(body) = self.epochs.open_body(expires_at, k, sealed) else {
                tracing::warn!("an envelope body does not open under its epoch key; skipped");
                continue;
            };
            budget -= cost;
            let body = Bytes::new(body).map_err(|_| StoreError::Corrupt("envelopes"))?;
            out.push(Envelope {
                id,
                expires_at,
                body,
            });
        }
        Ok((out, false))
    }

    /// A directory entry, read without taking a one-time prekey (`FetchEntry`).
    pub fn directory_entry(&self, directory: &HandleTag) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(DIRECTORY)?;
        match t.get(directory.as_bytes().as_slice())? {
            Some(v) => {
                let rec: DirectoryRecord = decode(v.value(), "directory")?;
                Ok(Some(rec.entry))
            }
            None => Ok(None),
        }
    }

    /// The stored revocation list, if any.
    pub fn revocation_list(&self) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(META)?;
        Ok(t.get(REVOCATION_KEY)?.map(|v| v.value().to_vec()))
    }

    /// Aggregate counts for `stats`: mailboxes, envelopes, directory entries, one-time
    /// prekeys.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(StoreCounts {
            mailboxes: txn.open_table(MAILBOXES)?.len()?,
            envelopes: txn.open_table(ENVELOPES)?.len()?,
            directory_entries: txn.open_table(DIRECTORY)?.len()?,
            one_time_prekeys: txn.open_table(ONE_TIME)?.len()?,
        })
    }

    /// The earliest expiry of any stored envelope (Unix seconds), if any is stored.
    pub fn earliest_expiry(&self) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let mailboxes = txn.open_table(MAILBOXES)?;
        let envelopes = txn.open_table(ENVELOPES)?;
        let mut earliest: Option<u64> = None;
        for item in mailboxes.iter()? {
            let (k, _) = item?;
            let recipient = MailboxId(arr32(k.value(), "mailboxes")?);
            let start = envelope_key(&recipient, &EnvelopeId([0; 32]));
            let end = envelope_key(&recipient, &EnvelopeId([0xff; 32]));
            if let Some(first) = envelopes.range(start.as_slice()..=end.as_slice())?.next() {
                let (k, _) = first?;
                let id = EnvelopeId(arr32(k.value().get(32..).unwrap_or_default(), "envelopes")?);
                let e = expiry_of(&id);
                earliest = Some(earliest.map_or(e, |x| x.min(e)));
            }
        }
        Ok(earliest)
    }

    /// Envelope bodies currently stored, by size (bucket), for `stats` and the demo.
    pub fn bucket_histogram(&self) -> Result<Vec<(usize, u64)>, StoreError> {
        Ok(PADDING_BUCKETS
            .iter()
            .zip(self.held.iter())
            .map(|(b, n)| (*b, n.load(std::sync::atomic::Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect())
    }
}

/// Aggregate counts of what the relay holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreCounts {
    /// Mailboxes.
    pub mailboxes: u64,
    /// Envelopes waiting.
    pub envelopes: u64,
    /// Directory entries.
    pub directory_entries: u64,
    /// One-time prekeys held.
    pub one_time_prekeys: u64,
}

/// Seals the bodies of a database written before bodies were sealed at rest (no
/// `envelope_format` in the meta table), in one transaction, then records the format.
fn seal_unsealed_bodies(db: &Database, epochs: &EpochKeys) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        if meta.get(ENVELOPE_FORMAT_KEY)?.is_some() {
            return Ok(());
        }
        let mut envelopes = txn.open_table(ENVELOPES)?;
        let mut plain = Vec::new();
        for item in envelopes.iter()? {
            let (k, v) = item?;
            plain.push((k.value().to_vec(), Zeroizing::new(v.value().to_vec())));
        }
        for (k, body) in plain {
            let id = EnvelopeId(arr32(k.get(32..).unwrap_or_default(), "envelopes")?);
            let sealed = epochs.seal(expiry_of(&id), &k, &body)?;
            envelopes.insert(k.as_slice(), sealed.as_slice())?;
        }
        meta.insert(ENVELOPE_FORMAT_KEY, [ENVELOPE_FORMAT].as_slice())?;
    }
    txn.commit()?;
    Ok(())
}

/// Builds an `Envelopes` list from fetched envelopes (kept here so the bound is checked
/// where the frame budget is).
pub fn bounded(envelopes: Vec<Envelope>) -> BoundedVec<Envelope, MAX_FETCH_ENVELOPES> {
    BoundedVec::new(envelopes).unwrap_or_default()
}
