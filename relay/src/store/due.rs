//! When each mailbox next has an envelope to expire, kept in memory by the writer so the
//! sweep visits only mailboxes with something due instead of every mailbox. Loaded from
//! the envelopes' keys at open (in the pass that counts them) and after a failed commit; a send lowers its mailbox's time, a sweep sets it from
//! what is left. An acknowledgement leaves it as it was: a time too early only costs one
//! look at that mailbox, never a missed expiry.

use std::collections::{BTreeSet, HashMap};

use postern_protocol::ids::{EnvelopeId, MailboxId};
use redb::{Database, ReadableDatabase, ReadableTable};

use super::StoreError;
use super::layout::{ENVELOPES, expiry_of};

/// Earliest expiry per mailbox that holds envelopes, and the same ordered by time.
#[derive(Debug, Default)]
pub(super) struct Due {
    by_mailbox: HashMap<MailboxId, u64>,
    queue: BTreeSet<(u64, MailboxId)>,
}

impl Due {
    /// Reads every mailbox's earliest expiry from the database: one pass over the
    /// envelopes' keys.
    pub(super) fn load(db: &Database) -> Result<Self, StoreError> {
        let mut due = Self::default();
        let txn = db.begin_read()?;
        let table = txn.open_table(ENVELOPES)?;
        for item in table.iter()? {
            due.note_key(item?.0.value());
        }
        Ok(due)
    }

    /// The envelope with table key `key` exists (a key too short is ignored).
    pub(super) fn note_key(&mut self, key: &[u8]) {
        if let Some((recipient, id)) = split_key(key) {
            self.note(recipient, expiry_of(&id));
        }
    }

    /// An envelope of `recipient` expires at `expiry`.
    pub(super) fn note(&mut self, recipient: MailboxId, expiry: u64) {
        match self.by_mailbox.get(&recipient) {
            Some(&t) if t <= expiry => {}
            _ => self.set(recipient, Some(expiry)),
        }
    }

    /// `recipient`'s earliest expiry is now `expiry` (`None`: it holds no envelope).
    pub(super) fn set(&mut self, recipient: MailboxId, expiry: Option<u64>) {
        if let Some(old) = self.by_mailbox.remove(&recipient) {
            self.queue.remove(&(old, recipient));
        }
        if let Some(t) = expiry {
            self.by_mailbox.insert(recipient, t);
            self.queue.insert((t, recipient));
        }
    }

    /// Mailboxes with an envelope expiring at or before `now`, earliest first.
    pub(super) fn due(&self, now: u64) -> Vec<MailboxId> {
        self.queue
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, mb)| *mb)
            .collect()
    }

    /// Mailboxes tracked (those holding envelopes, as far as it knows).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.by_mailbox.len()
    }
}

/// An envelope key's mailbox and id.
pub(super) fn split_key(key: &[u8]) -> Option<(MailboxId, EnvelopeId)> {
    let recipient: [u8; 32] = key.get(..32)?.try_into().ok()?;
    let id: [u8; 32] = key.get(32..64)?.try_into().ok()?;
    Some((MailboxId(recipient), EnvelopeId(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_time_per_mailbox_orders_what_is_due() {
        let (a, b, c) = (MailboxId([1; 32]), MailboxId([2; 32]), MailboxId([3; 32]));
        let mut due = Due::default();
        due.note(a, 300);
        due.note(a, 100);
        due.note(a, 200);
        due.note(b, 150);
        due.note(c, 1_000);
        assert_eq!(due.len(), 3);
        assert_eq!(due.due(99), vec![]);
        assert_eq!(due.due(150), vec![a, b]);
        due.set(a, Some(300));
        due.set(b, None);
        assert_eq!(due.due(299), vec![]);
        assert_eq!(due.due(1_000), vec![a, c]);
        assert_eq!(due.len(), 2);
    }

    #[test]
    fn a_key_that_is_too_short_is_skipped() {
        assert!(split_key(&[0; 63]).is_none());
        assert!(split_key(&[0; 64]).is_some());
    }
}
