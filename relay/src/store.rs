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

use crate::metrics::Metrics;

/// Database file name in the data directory.
pub const DB_FILE: &str = "relay.redb";

const MAILBOXES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("mailboxes");
const SENDERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("senders");
const ENVELOPES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("envelopes");
const DIRECTORY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("directory");
const ONE_TIME: TableDefinition<&[u8], &[u8]> = TableDefinition::new("one_time");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const REVOCATION_KEY: &str = "revocation_list";
const REVOCATION_VERSION_KEY: &str = "revocation_version";

/// Most expired envelopes one sweep operation deletes, so it never holds the writer long.
const SWEEP_BATCH: usize = 2000;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MailboxRecord {
    /// Sender id, so the sender index can be cleaned up with the mailbox.
    sender: [u8; 32],
    /// Ed25519 key that must sign `OpenMailbox`.
    owner: [u8; 32],
    /// Envelopes waiting (for the quota).
    count: u32,
    /// Bytes of envelope bodies waiting (for the quota).
    bytes: u64,
    /// A send was refused for quota; tell the owner when space returns.
    quota_hit: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DirectoryRecord {
    /// SHA-256 over a context and the publishing device key: only that device may replace
    /// the entry. It is not a secret, only a binding.
    owner_tag: [u8; 32],
    /// Sealed entry, opaque to the relay.
    entry: Vec<u8>,
    /// Next one-time prekey sequence number (orders the one-time table).
    next_seq: u64,
    /// One-time prekeys held.
    one_time: u32,
}

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
}

enum Op {
    CreateMailbox {
        recipient: MailboxId,
        sender: MailboxId,
        owner: [u8; 32],
        reply: oneshot::Sender<OpResult<()>>,
    },
    Send {
        to: MailboxId,
        expires_at: u64,
        body: EnvelopeBody,
        reply: oneshot::Sender<OpResult<Stored>>,
    },
    Ack {
        recipient: MailboxId,
        ids: Vec<EnvelopeId>,
        reply: oneshot::Sender<OpResult<Deleted>>,
    },
    Sweep {
        now: u64,
        reply: oneshot::Sender<OpResult<Deleted>>,
    },
    Publish {
        directory: HandleTag,
        owner_tag: [u8; 32],
        entry: Vec<u8>,
        one_time: Vec<Vec<u8>>,
        reply: oneshot::Sender<OpResult<u32>>,
    },
    TakePrekeys {
        directory: HandleTag,
        reply: oneshot::Sender<OpResult<TakenPrekeys>>,
    },
    PutRevocation {
        version: u64,
        list: Vec<u8>,
        reply: oneshot::Sender<OpResult<()>>,
    },
    /// Commit what came before, then stop the writer.
    Shutdown,
}

/// Envelopes held per padding bucket, kept in memory (counted once at open, then moved
/// by each committed batch) so stats never scan the envelopes.
type Held = Arc<[std::sync::atomic::AtomicU64; PADDING_BUCKETS.len()]>;

fn bucket_index(len: usize) -> usize {
    PADDING_BUCKETS
        .iter()
        .position(|&b| b == len)
        .unwrap_or(PADDING_BUCKETS.len() - 1)
}

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
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Envelopes are keyed by mailbox and id; the value is the padded body. An envelope id
/// is its expiry (u64 BE, a minute boundary) followed by 24 random bytes, so a mailbox's
/// envelopes sort by expiry: fetch skips the expired ones and the sweeper deletes a
/// prefix, with no index to keep.
fn envelope_key(recipient: &MailboxId, id: &EnvelopeId) -> [u8; 64] {
    let mut k = [0u8; 64];
    k[..32].copy_from_slice(recipient.as_bytes());
    k[32..].copy_from_slice(id.as_bytes());
    k
}

/// A new envelope id for an envelope expiring at `expires_at`.
fn new_envelope_id(expires_at: u64) -> EnvelopeId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&expires_at.to_be_bytes());
    rand::Rng::fill(&mut rand::rng(), &mut id[8..]);
    EnvelopeId(id)
}

/// The expiry an envelope id carries.
fn expiry_of(id: &EnvelopeId) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b)
}

/// The first key of `recipient`'s envelopes expiring after `t`.
fn after(recipient: &MailboxId, t: u64) -> [u8; 64] {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&t.saturating_add(1).to_be_bytes());
    envelope_key(recipient, &EnvelopeId(id))
}

fn one_time_key(directory: &HandleTag, seq: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(directory.as_bytes());
    k[32..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn arr32(b: &[u8], table: &'static str) -> Result<[u8; 32], StoreError> {
    b.try_into().map_err(|_| StoreError::Corrupt(table))
}

fn decode<T: for<'a> Deserialize<'a>>(b: &[u8], table: &'static str) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|_| StoreError::Corrupt(table))
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Db(e.to_string()))
}

impl Store {
    /// Opens (or creates) the database in `data_dir` and starts the writer thread.
    ///
    /// With `staged`, the writer sends each batch's new envelopes there after applying
    /// the batch and before its commit flushes: a subscriber can have an envelope before
    /// its `Send` is answered, and, if the commit then fails, even though the `Send` is
    /// refused (the sender retries and the recipient drops the duplicate). Nothing is
    /// sent for a refused operation (quota, unknown mailbox). The channel is unbounded so
    /// that the writer never waits for it; its reader only hands envelopes to push queues.
    pub fn open(
        data_dir: &Path,
        quotas: Quotas,
        max_batch: usize,
        metrics: Arc<Metrics>,
        staged: Option<tokio::sync::mpsc::UnboundedSender<Staged>>,
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
        let held: Held = Arc::new(Default::default());
        {
            let txn = db.begin_read()?;
            for item in txn.open_table(ENVELOPES)?.iter()? {
                let (_, v) = item?;
                held[bucket_index(v.value().len())]
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let db = Arc::new(db);
        let (tx, rx) = std_mpsc::sync_channel(max_batch.max(1) * 4);
        let writer_db = db.clone();
        let writer_held = held.clone();
        let writer = std::thread::Builder::new()
            .name("postern-relay-writer".into())
            .spawn(move || {
                writer_loop(
                    &writer_db,
                    &rx,
                    quotas,
                    max_batch.max(1),
                    &metrics,
                    &writer_held,
                    staged.as_ref(),
                )
            })
            .map_err(|e| StoreError::Db(e.to_string()))?;
        Ok(Self {
            db,
            ops: tx,
            writer: Arc::new(std::sync::Mutex::new(Some(writer))),
            held,
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
    ) -> OpResult<()> {
        self.submit(|reply| Op::CreateMailbox {
            recipient,
            sender,
            owner,
            reply,
        })
        .await
    }

    /// Stores an envelope durably; answers after the commit.
    pub async fn send(
        &self,
        to: MailboxId,
        expires_at: u64,
        body: EnvelopeBody,
    ) -> OpResult<Stored> {
        self.submit(|reply| Op::Send {
            to,
            expires_at,
            body,
            reply,
        })
        .await
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
        let limit = limit.clamp(1, MAX_FETCH_ENVELOPES);
        let txn = self.db.begin_read()?;
        let t = txn.open_table(ENVELOPES)?;
        // Envelopes expired at or before `now` sort first: start after them.
        let start = after(recipient, now);
        let end = envelope_key(recipient, &EnvelopeId([0xff; 32]));
        let mut out = Vec::new();
        let mut budget = MAX_FRAME_LEN - 64;
        for item in t.range(start.as_slice()..=end.as_slice())? {
            let (k, v) = item?;
            let (k, body) = (k.value(), v.value());
            let cost = 32 + 10 + 5 + body.len();
            if out.len() == limit || cost > budget {
                return Ok((out, true));
            }
            budget -= cost;
            let id = EnvelopeId(arr32(k.get(32..).unwrap_or_default(), "envelopes")?);
            let body = Bytes::try_from(body).map_err(|_| StoreError::Corrupt("envelopes"))?;
            out.push(Envelope {
                id,
                expires_at: expiry_of(&id),
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

/// A reply held until the batch commits.
enum Pending {
    Unit(oneshot::Sender<OpResult<()>>, OpResult<()>),
    Stored(oneshot::Sender<OpResult<Stored>>, OpResult<Stored>),
    Deleted(oneshot::Sender<OpResult<Deleted>>, OpResult<Deleted>),
    Count(oneshot::Sender<OpResult<u32>>, OpResult<u32>),
    Prekeys(
        oneshot::Sender<OpResult<TakenPrekeys>>,
        OpResult<TakenPrekeys>,
    ),
}

impl Pending {
    fn answer(self, commit_ok: bool) {
        // A reply whose requester went away is simply dropped.
        macro_rules! send {
            ($tx:expr, $r:expr) => {{
                let _ = $tx.send(if commit_ok {
                    $r
                } else {
                    Err(ErrorCode::Internal)
                });
            }};
        }
        match self {
            Pending::Unit(tx, r) => send!(tx, r),
            Pending::Stored(tx, r) => send!(tx, r),
            Pending::Deleted(tx, r) => send!(tx, r),
            Pending::Count(tx, r) => send!(tx, r),
            Pending::Prekeys(tx, r) => send!(tx, r),
        }
    }
}

fn writer_loop(
    db: &Database,
    rx: &std_mpsc::Receiver<Op>,
    quotas: Quotas,
    max_batch: usize,
    metrics: &Metrics,
    held: &Held,
    staged: Option<&tokio::sync::mpsc::UnboundedSender<Staged>>,
) {
    // Blocks for the first operation, then takes whatever else is already waiting.
    let mut stopping = false;
    while !stopping {
        let Ok(first) = rx.recv() else { break };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(op) = next.take() {
            if matches!(op, Op::Shutdown) {
                stopping = true;
                break;
            }
            batch.push(op);
            if batch.len() < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let n = batch.len();
        let mut pending = Vec::with_capacity(n);
        let mut delta = [0i64; PADDING_BUCKETS.len()];
        let ok = match apply_batch(db, batch, quotas, &mut pending, &mut delta, staged) {
            Ok(()) => {
                for (gauge, d) in held.iter().zip(delta) {
                    if d >= 0 {
                        gauge.fetch_add(d as u64, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        gauge.fetch_sub(d.unsigned_abs(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "storage commit failed; batch refused");
                false
            }
        };
        metrics.commit(n as u64);
        for p in pending {
            p.answer(ok);
        }
    }
}

fn apply_batch(
    db: &Database,
    batch: Vec<Op>,
    quotas: Quotas,
    pending: &mut Vec<Pending>,
    delta: &mut [i64; PADDING_BUCKETS.len()],
    staged: Option<&tokio::sync::mpsc::UnboundedSender<Staged>>,
) -> Result<(), StoreError> {
    let mut new_envelopes = Staged::new();
    let txn = db.begin_write()?;
    {
        let mut w = Writer {
            mailboxes: txn.open_table(MAILBOXES)?,
            senders: txn.open_table(SENDERS)?,
            envelopes: txn.open_table(ENVELOPES)?,
            mailbox_cache: HashMap::new(),
            held_delta: [0; PADDING_BUCKETS.len()],
            directory: txn.open_table(DIRECTORY)?,
            one_time: txn.open_table(ONE_TIME)?,
            meta: txn.open_table(META)?,
            quotas,
        };
        for op in batch {
            // An operation that fails its own checks is answered with its error and
            // changes nothing; a storage error aborts the whole batch (nothing commits).
            match op {
                Op::CreateMailbox {
                    recipient,
                    sender,
                    owner,
                    reply,
                } => {
                    let r = w.create_mailbox(recipient, sender, owner)?;
                    pending.push(Pending::Unit(reply, r));
                }
                Op::Send {
                    to,
                    expires_at,
                    body,
                    reply,
                } => {
                    let r = w.send(to, expires_at, body.as_slice())?;
                    if let (Some(_), Ok(stored)) = (staged, &r) {
                        new_envelopes.push((
                            stored.recipient,
                            Envelope {
                                id: stored.id,
                                expires_at,
                                body,
                            },
                        ));
                    }
                    pending.push(Pending::Stored(reply, r));
                }
                Op::Ack {
                    recipient,
                    ids,
                    reply,
                } => {
                    let r = w.ack(recipient, &ids)?;
                    pending.push(Pending::Deleted(reply, Ok(r)));
                }
                Op::Sweep { now, reply } => {
                    let r = w.sweep(now)?;
                    pending.push(Pending::Deleted(reply, Ok(r)));
                }
                Op::Publish {
                    directory,
                    owner_tag,
                    entry,
                    one_time,
                    reply,
                } => {
                    let r = w.publish(directory, owner_tag, entry, one_time)?;
                    pending.push(Pending::Count(reply, r));
                }
                Op::TakePrekeys { directory, reply } => {
                    let r = w.take_prekeys(directory)?;
                    pending.push(Pending::Prekeys(reply, r));
                }
                Op::Shutdown => {}
                Op::PutRevocation {
                    version,
                    list,
                    reply,
                } => {
                    // Only ever move forward, whatever order concurrent puts arrive in.
                    let held = match w.meta.get(REVOCATION_VERSION_KEY)? {
                        Some(v) => Some(u64::from_be_bytes(
                            v.value()
                                .try_into()
                                .map_err(|_| StoreError::Corrupt("meta"))?,
                        )),
                        None => None,
                    };
                    if held.is_none_or(|h| h < version) {
                        w.meta.insert(REVOCATION_KEY, list.as_slice())?;
                        w.meta
                            .insert(REVOCATION_VERSION_KEY, version.to_be_bytes().as_slice())?;
                    }
                    pending.push(Pending::Unit(reply, Ok(())));
                }
            }
        }
        w.flush_mailboxes()?;
        *delta = w.held_delta;
    }
    if let Some(tx) = staged
        && !new_envelopes.is_empty()
    {
        // Nobody listening (shutting down) is no error: the envelopes are stored.
        let _ = tx.send(new_envelopes);
    }
    txn.commit()?;
    Ok(())
}

struct Writer<'t> {
    mailboxes: redb::Table<'t, &'static [u8], &'static [u8]>,
    senders: redb::Table<'t, &'static [u8], &'static [u8]>,
    envelopes: redb::Table<'t, &'static [u8], &'static [u8]>,
    /// Change in envelopes held per bucket, applied to the gauges if the batch commits.
    held_delta: [i64; PADDING_BUCKETS.len()],
    /// Mailbox records read or changed in this batch, written once at its end.
    mailbox_cache: HashMap<MailboxId, (MailboxRecord, bool)>,
    directory: redb::Table<'t, &'static [u8], &'static [u8]>,
    one_time: redb::Table<'t, &'static [u8], &'static [u8]>,
    meta: redb::Table<'t, &'static str, &'static [u8]>,
    quotas: Quotas,
}

impl Writer<'_> {
    fn mailbox(&mut self, recipient: &MailboxId) -> Result<Option<MailboxRecord>, StoreError> {
        if let Some((r, _)) = self.mailbox_cache.get(recipient) {
            return Ok(Some(r.clone()));
        }
        let r: Option<MailboxRecord> = match self.mailboxes.get(recipient.as_bytes().as_slice())? {
            Some(v) => Some(decode(v.value(), "mailboxes")?),
            None => None,
        };
        if let Some(r) = &r {
            self.mailbox_cache.insert(*recipient, (r.clone(), false));
        }
        Ok(r)
    }

    fn put_mailbox(&mut self, recipient: &MailboxId, r: &MailboxRecord) -> Result<(), StoreError> {
        self.mailbox_cache.insert(*recipient, (r.clone(), true));
        Ok(())
    }

    /// Writes the mailbox records this batch changed.
    fn flush_mailboxes(&mut self) -> Result<(), StoreError> {
        for (id, (r, dirty)) in std::mem::take(&mut self.mailbox_cache) {
            if dirty {
                self.mailboxes
                    .insert(id.as_bytes().as_slice(), encode(&r)?.as_slice())?;
            }
        }
        Ok(())
    }

    fn create_mailbox(
        &mut self,
        recipient: MailboxId,
        sender: MailboxId,
        owner: [u8; 32],
    ) -> Result<OpResult<()>, StoreError> {
        if self
            .mailboxes
            .get(recipient.as_bytes().as_slice())?
            .is_some()
            || self.senders.get(sender.as_bytes().as_slice())?.is_some()
            || self.mailboxes.get(sender.as_bytes().as_slice())?.is_some()
            || self.senders.get(recipient.as_bytes().as_slice())?.is_some()
            || recipient == sender
        {
            return Ok(Err(ErrorCode::AlreadyExists));
        }
        let r = MailboxRecord {
            sender: sender.0,
            owner,
            count: 0,
            bytes: 0,
            quota_hit: false,
        };
        self.put_mailbox(&recipient, &r)?;
        self.senders.insert(
            sender.as_bytes().as_slice(),
            recipient.as_bytes().as_slice(),
        )?;
        Ok(Ok(()))
    }

    fn send(
        &mut self,
        to: MailboxId,
        expires_at: u64,
        body: &[u8],
    ) -> Result<OpResult<Stored>, StoreError> {
        let recipient = match self.senders.get(to.as_bytes().as_slice())? {
            Some(v) => MailboxId(arr32(v.value(), "senders")?),
            None => return Ok(Err(ErrorCode::NotFound)),
        };
        let Some(mut mb) = self.mailbox(&recipient)? else {
            return Err(StoreError::Corrupt("mailboxes"));
        };
        let len = body.len() as u64;
        if mb.count >= self.quotas.max_envelopes
            || mb.bytes.saturating_add(len) > self.quotas.max_bytes
        {
            if !mb.quota_hit {
                mb.quota_hit = true;
                self.put_mailbox(&recipient, &mb)?;
            }
            return Ok(Err(ErrorCode::QuotaExceeded));
        }
        let id = new_envelope_id(expires_at);
        self.envelopes
            .insert(envelope_key(&recipient, &id).as_slice(), body)?;
        self.held_delta[bucket_index(body.len())] += 1;
        mb.count += 1;
        mb.bytes += len;
        self.put_mailbox(&recipient, &mb)?;
        Ok(Ok(Stored {
            id,
            expires_at,
            recipient,
        }))
    }

    /// Removes one envelope and its share of the mailbox counters.
    fn delete_envelope(
        &mut self,
        recipient: &MailboxId,
        id: &EnvelopeId,
        deleted: &mut Deleted,
    ) -> Result<(), StoreError> {
        let removed = self
            .envelopes
            .remove(envelope_key(recipient, id).as_slice())?
            .map(|v| v.value().len() as u64);
        let Some(len) = removed else {
            return Ok(());
        };
        self.held_delta[bucket_index(len as usize)] -= 1;
        deleted.count += 1;
        if let Some(mut mb) = self.mailbox(recipient)? {
            mb.count = mb.count.saturating_sub(1);
            mb.bytes = mb.bytes.saturating_sub(len);
            if mb.quota_hit
                && mb.count < self.quotas.max_envelopes
                && mb.bytes < self.quotas.max_bytes
            {
                mb.quota_hit = false;
                if !deleted.space_returned.contains(recipient) {
                    deleted.space_returned.push(*recipient);
                }
            }
            self.put_mailbox(recipient, &mb)?;
        }
        Ok(())
    }

    fn ack(&mut self, recipient: MailboxId, ids: &[EnvelopeId]) -> Result<Deleted, StoreError> {
        // Keys include the mailbox, so another mailbox's ids simply are not found.
        let mut deleted = Deleted::default();
        for id in ids {
            self.delete_envelope(&recipient, id, &mut deleted)?;
        }
        Ok(deleted)
    }

    fn sweep(&mut self, now: u64) -> Result<Deleted, StoreError> {
        // Per mailbox, the expired envelopes are a prefix of its key range.
        let mut recipients = Vec::new();
        for item in self.mailboxes.iter()? {
            let (k, _) = item?;
            recipients.push(MailboxId(arr32(k.value(), "mailboxes")?));
        }
        let mut due = Vec::new();
        'mailboxes: for recipient in recipients {
            let start = envelope_key(&recipient, &EnvelopeId([0; 32]));
            let end = after(&recipient, now);
            for item in self.envelopes.range(start.as_slice()..end.as_slice())? {
                let (k, _) = item?;
                let id = EnvelopeId(arr32(k.value().get(32..).unwrap_or_default(), "envelopes")?);
                due.push((recipient, id));
                if due.len() == SWEEP_BATCH {
                    break 'mailboxes;
                }
            }
        }
        let mut deleted = Deleted::default();
        for (recipient, id) in due {
            self.delete_envelope(&recipient, &id, &mut deleted)?;
        }
        Ok(deleted)
    }

    fn publish(
        &mut self,
        directory: HandleTag,
        owner_tag: [u8; 32],
        entry: Vec<u8>,
        one_time: Vec<Vec<u8>>,
    ) -> Result<OpResult<u32>, StoreError> {
        let key = directory.as_bytes().as_slice();
        let existing: Option<DirectoryRecord> = match self.directory.get(key)? {
            Some(v) => Some(decode(v.value(), "directory")?),
            None => None,
        };
        let mut rec = match existing {
            Some(r) if r.owner_tag != owner_tag => return Ok(Err(ErrorCode::Unauthorized)),
            Some(r) => r,
            None => DirectoryRecord {
                owner_tag,
                entry: Vec::new(),
                next_seq: 0,
                one_time: 0,
            },
        };
        if rec.one_time as usize + one_time.len() > self.quotas.max_one_time as usize {
            return Ok(Err(ErrorCode::QuotaExceeded));
        }
        rec.entry = entry;
        for blob in one_time {
            self.one_time.insert(
                one_time_key(&directory, rec.next_seq).as_slice(),
                blob.as_slice(),
            )?;
            rec.next_seq += 1;
            rec.one_time += 1;
        }
        let held = rec.one_time;
        self.directory.insert(key, encode(&rec)?.as_slice())?;
        Ok(Ok(held))
    }

    fn take_prekeys(&mut self, directory: HandleTag) -> Result<OpResult<TakenPrekeys>, StoreError> {
        let key = directory.as_bytes().as_slice();
        let mut rec: DirectoryRecord = match self.directory.get(key)? {
            Some(v) => decode(v.value(), "directory")?,
            None => return Ok(Err(ErrorCode::NotFound)),
        };
        let start = one_time_key(&directory, 0);
        let end = one_time_key(&directory, u64::MAX);
        let first = match self
            .one_time
            .range(start.as_slice()..=end.as_slice())?
            .next()
        {
            Some(item) => {
                let (k, v) = item?;
                Some((k.value().to_vec(), v.value().to_vec()))
            }
            None => None,
        };
        let one_time = match first {
            Some((k, v)) => {
                self.one_time.remove(k.as_slice())?;
                rec.one_time = rec.one_time.saturating_sub(1);
                self.directory.insert(key, encode(&rec)?.as_slice())?;
                Some(v)
            }
            None => None,
        };
        Ok(Ok((rec.entry, one_time)))
    }
}

/// Builds an `Envelopes` list from fetched envelopes (kept here so the bound is checked
/// where the frame budget is).
pub fn bounded(envelopes: Vec<Envelope>) -> BoundedVec<Envelope, MAX_FETCH_ENVELOPES> {
    BoundedVec::new(envelopes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_protocol::padding::pad;

    fn body(s: &[u8]) -> EnvelopeBody {
        Bytes::new(pad(s).unwrap()).unwrap()
    }

    fn open(dir: &Path) -> Store {
        Store::open(
            dir,
            Quotas {
                max_envelopes: 100,
                max_bytes: 1 << 30,
                max_one_time: 10,
            },
            64,
            Arc::new(Metrics::default()),
            None,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn an_expired_envelope_is_never_returned_and_the_sweeper_deletes_it_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
        let t = 1_800_000_000u64;
        {
            let store = open(dir.path());
            store.create_mailbox(r, s, [3; 32]).await.unwrap();
            store.send(s, t, body(b"short")).await.unwrap();
            store.send(s, t + 3600, body(b"long")).await.unwrap();
            store.close();
        }
        // Reopen (a restart): expiry is judged against the time of each request.
        let store = open(dir.path());
        let (before, _) = store.fetch(&r, 10, t - 1).unwrap();
        assert_eq!(before.len(), 2);
        let (at, _) = store.fetch(&r, 10, t).unwrap();
        assert_eq!(at.len(), 1, "an envelope is expired at its expires_at");
        assert_eq!(at[0].expires_at, t + 3600);
        let swept = store.sweep(t).await.unwrap();
        assert_eq!(swept.count, 1);
        assert_eq!(store.counts().unwrap().envelopes, 1);
        assert_eq!(store.mailbox(&r).unwrap().unwrap().1, 1);
        // Acking an expired-and-swept id is harmless.
        let acked = store
            .ack(r, vec![at[0].id, EnvelopeId([9; 32])])
            .await
            .unwrap();
        assert_eq!(acked.count, 1);
        assert_eq!(store.counts().unwrap().envelopes, 0);
        assert_eq!(store.sweep(u64::MAX - 1).await.unwrap().count, 0);
    }

    #[tokio::test]
    async fn held_bucket_counts_follow_commits_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
        let ids = {
            let store = open(dir.path());
            store.create_mailbox(r, s, [3; 32]).await.unwrap();
            let a = store.send(s, u64::MAX, body(b"a")).await.unwrap();
            store.send(s, u64::MAX, body(&[7; 2000])).await.unwrap();
            // A refused send changes nothing.
            assert!(
                store
                    .send(MailboxId([9; 32]), u64::MAX, body(b"x"))
                    .await
                    .is_err()
            );
            assert_eq!(
                store.bucket_histogram().unwrap(),
                vec![(1024, 1), (4096, 1)]
            );
            store.close();
            vec![a.id]
        };
        let store = open(dir.path());
        assert_eq!(
            store.bucket_histogram().unwrap(),
            vec![(1024, 1), (4096, 1)]
        );
        store.ack(r, ids).await.unwrap();
        assert_eq!(store.bucket_histogram().unwrap(), vec![(4096, 1)]);
    }

    #[tokio::test]
    async fn one_time_prekeys_beyond_the_directory_quota_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()); // max_one_time: 10
        let d = HandleTag([4; 32]);
        let eleven = (0..11u8).map(|i| vec![i; 8]).collect();
        assert_eq!(
            store.publish(d, [1; 32], b"entry".to_vec(), eleven).await,
            Err(ErrorCode::QuotaExceeded)
        );
        assert_eq!(store.counts().unwrap().one_time_prekeys, 0);
        assert_eq!(store.counts().unwrap().directory_entries, 0);
        let ten = (0..10u8).map(|i| vec![i; 8]).collect();
        assert_eq!(
            store.publish(d, [1; 32], b"entry".to_vec(), ten).await,
            Ok(10)
        );
        assert_eq!(
            store
                .publish(d, [1; 32], b"entry".to_vec(), vec![vec![0; 8]])
                .await,
            Err(ErrorCode::QuotaExceeded)
        );
        assert_eq!(store.counts().unwrap().one_time_prekeys, 10);
    }

    #[tokio::test]
    async fn the_byte_quota_counts_padded_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            Quotas {
                max_envelopes: 100,
                max_bytes: 2048,
                max_one_time: 10,
            },
            64,
            Arc::new(Metrics::default()),
            None,
        )
        .unwrap();
        let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
        store.create_mailbox(r, s, [3; 32]).await.unwrap();
        store.send(s, u64::MAX, body(b"a")).await.unwrap();
        store.send(s, u64::MAX, body(b"b")).await.unwrap();
        assert_eq!(
            store.send(s, u64::MAX, body(b"c")).await.unwrap_err(),
            ErrorCode::QuotaExceeded
        );
        assert_eq!(store.counts().unwrap().envelopes, 2);
        // Stats show padded body sizes, never more.
        assert_eq!(store.bucket_histogram().unwrap(), vec![(1024, 2)]);
    }

    #[tokio::test]
    async fn stored_envelopes_are_staged_for_subscribers_and_refused_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let store = Store::open(
            dir.path(),
            Quotas {
                max_envelopes: 1,
                max_bytes: 1 << 20,
                max_one_time: 10,
            },
            64,
            Arc::new(Metrics::default()),
            Some(tx),
        )
        .unwrap();
        let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
        store.create_mailbox(r, s, [3; 32]).await.unwrap();
        let stored = store.send(s, u64::MAX, body(b"first")).await.unwrap();
        // Over quota, and to a mailbox that does not exist: refused, nothing staged.
        assert_eq!(
            store.send(s, u64::MAX, body(b"second")).await.unwrap_err(),
            ErrorCode::QuotaExceeded
        );
        assert_eq!(
            store
                .send(MailboxId([9; 32]), u64::MAX, body(b"third"))
                .await
                .unwrap_err(),
            ErrorCode::NotFound
        );
        store.close();
        let mut staged = Vec::new();
        while let Some(batch) = rx.recv().await {
            staged.extend(batch);
        }
        assert_eq!(staged.len(), 1);
        let (to, envelope) = &staged[0];
        assert_eq!(*to, r);
        assert_eq!(envelope.id, stored.id);
        assert_eq!(envelope.expires_at, stored.expires_at);
        assert_eq!(envelope.body, body(b"first"));
    }

    #[tokio::test]
    async fn concurrent_sends_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let store = Store::open(
            dir.path(),
            Quotas {
                max_envelopes: 10_000,
                max_bytes: 1 << 30,
                max_one_time: 10,
            },
            256,
            metrics.clone(),
            None,
        )
        .unwrap();
        let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
        store.create_mailbox(r, s, [3; 32]).await.unwrap();
        let before = metrics.snapshot().commits;
        let mut tasks = Vec::new();
        for i in 0..500u32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                store.send(s, u64::MAX, body(&i.to_be_bytes())).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let commits = metrics.snapshot().commits - before;
        assert_eq!(store.counts().unwrap().envelopes, 500);
        // Group commit: far fewer flushes than sends (the exact number depends on timing).
        assert!(commits < 500, "{commits} commits for 500 sends");
    }
}
