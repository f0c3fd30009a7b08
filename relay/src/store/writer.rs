//! The writer thread: takes every operation waiting in its queue, applies them in one
//! write transaction (group commit), commits with one flush, then answers each one.

use super::tables::Writer;
use super::*;

pub(super) enum Op {
    CreateMailbox {
        recipient: MailboxId,
        sender: MailboxId,
        owner: [u8; 32],
        sender_key: [u8; 32],
        reply: oneshot::Sender<OpResult<()>>,
    },
    SetSenderKey {
        recipient: MailboxId,
        sender_key: [u8; 32],
        reply: oneshot::Sender<OpResult<()>>,
    },
    Send {
        to: MailboxId,
        signed_by: [u8; 32],
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

/// A reply held until the batch commits.
pub(super) enum Pending {
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

pub(super) fn writer_loop(
    db: &Database,
    rx: &std_mpsc::Receiver<Op>,
    (quotas, max_batch): (Quotas, usize),
    metrics: &Metrics,
    held: &Held,
    staged: Option<&tokio::sync::mpsc::Sender<Staged>>,
    (epochs, sender_keys, mut due): (&EpochKeys, &SenderKeys, Due),
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
        let mut keys = Vec::new();
        let applied = apply_batch(
            db,
            batch,
            quotas,
            (&mut pending, &mut delta, &mut keys),
            staged,
            (epochs, &mut due),
        );
        let ok = match applied {
            Ok(()) => {
                // Committed: sends see the new sender keys from now on (in commit order,
                // before anyone is told).
                let mut cache = sender_keys.write().unwrap_or_else(|p| p.into_inner());
                for (sender, key) in keys {
                    cache.insert(sender, key);
                }
                drop(cache);
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
                // What the batch noted or swept did not happen: read it back.
                match Due::load(db) {
                    Ok(d) => due = d,
                    Err(e) => tracing::error!(error = %e, "cannot reread expiry times"),
                }
                false
            }
        };
        metrics.commit(n as u64);
        for p in pending {
            p.answer(ok);
        }
    }
}

/// What a batch produces besides its commit: the replies held until it, the change in
/// envelopes held per bucket, and the sender keys it set.
type BatchOut<'a> = (
    &'a mut Vec<Pending>,
    &'a mut [i64; PADDING_BUCKETS.len()],
    &'a mut Vec<(MailboxId, Option<[u8; 32]>)>,
);

pub(super) fn apply_batch(
    db: &Database,
    batch: Vec<Op>,
    quotas: Quotas,
    (pending, delta, keys): BatchOut<'_>,
    staged: Option<&tokio::sync::mpsc::Sender<Staged>>,
    (epochs, due): (&EpochKeys, &mut Due),
) -> Result<(), StoreError> {
    let mut new_envelopes = Staged::new();
    let txn = db.begin_write()?;
    {
        let mut w = Writer {
            epochs,
            mailboxes: txn.open_table(MAILBOXES)?,
            senders: txn.open_table(SENDERS)?,
            envelopes: txn.open_table(ENVELOPES)?,
            mailbox_cache: HashMap::new(),
            held_delta: [0; PADDING_BUCKETS.len()],
            directory: txn.open_table(DIRECTORY)?,
            one_time: txn.open_table(ONE_TIME)?,
            meta: txn.open_table(META)?,
            quotas,
            due,
        };
        for op in batch {
            // An operation that fails its own checks is answered with its error and
            // changes nothing; a storage error aborts the whole batch (nothing commits).
            match op {
                Op::CreateMailbox {
                    recipient,
                    sender,
                    owner,
                    sender_key,
                    reply,
                } => {
                    let r = w.create_mailbox(recipient, sender, owner, sender_key)?;
                    if r.is_ok() {
                        keys.push((sender, Some(sender_key)));
                    }
                    pending.push(Pending::Unit(reply, r));
                }
                Op::SetSenderKey {
                    recipient,
                    sender_key,
                    reply,
                } => {
                    let r = w.set_sender_key(recipient, sender_key)?;
                    if let Ok(sender) = r {
                        keys.push((sender, Some(sender_key)));
                    }
                    pending.push(Pending::Unit(reply, r.map(|_| ())));
                }
                Op::Send {
                    to,
                    signed_by,
                    expires_at,
                    body,
                    reply,
                } => {
                    let r = w.send(to, &signed_by, expires_at, body.as_slice())?;
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
                    // Keys of passed epochs go first (here, off the async threads: it
                    // flushes the key file), so their bodies cannot be opened even
                    // before they are deleted.
                    if let Err(e) = w.epochs.destroy_through(now) {
                        tracing::error!(error = %e, "cannot destroy expired epoch keys");
                        pending.push(Pending::Deleted(reply, Err(ErrorCode::Internal)));
                        continue;
                    }
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
        let _ = tx.blocking_send(new_envelopes);
    }
    txn.commit()?;
    Ok(())
}
