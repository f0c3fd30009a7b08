//! Per-table operations inside one write transaction: mailboxes, senders, envelopes,
//! directory entries and one-time prekeys, the revocation list; quotas enforced here.

use super::*;

pub(super) struct Writer<'t> {
    /// Seals envelope bodies at rest.
    pub(super) epochs: &'t EpochKeys,
    pub(super) mailboxes: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) senders: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) envelopes: redb::Table<'t, &'static [u8], &'static [u8]>,
    /// Change in envelopes held per bucket, applied to the gauges if the batch commits.
    pub(super) held_delta: [i64; PADDING_BUCKETS.len()],
    /// Mailbox records read or changed in this batch, written once at its end.
    pub(super) mailbox_cache: HashMap<MailboxId, (MailboxRecord, bool)>,
    pub(super) directory: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) one_time: redb::Table<'t, &'static [u8], &'static [u8]>,
    pub(super) meta: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) quotas: Quotas,
    /// When each mailbox next has something to expire.
    pub(super) due: &'t mut Due,
}

impl Writer<'_> {
    pub(super) fn mailbox(
        &mut self,
        recipient: &MailboxId,
    ) -> Result<Option<MailboxRecord>, StoreError> {
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

    pub(super) fn put_mailbox(
        &mut self,
        recipient: &MailboxId,
        r: &MailboxRecord,
    ) -> Result<(), StoreError> {
        self.mailbox_cache.insert(*recipient, (r.clone(), true));
        Ok(())
    }

    /// Writes the mailbox records this batch changed.
    pub(super) fn flush_mailboxes(&mut self) -> Result<(), StoreError> {
        for (id, (r, dirty)) in std::mem::take(&mut self.mailbox_cache) {
            if dirty {
                self.mailboxes
                    .insert(id.as_bytes().as_slice(), encode(&r)?.as_slice())?;
            }
        }
        Ok(())
    }

    pub(super) fn create_mailbox(
        &mut self,
        recipient: MailboxId,
        sender: MailboxId,
        owner: [u8; 32],
        sender_key: [u8; 32],
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
            sender_value(&recipient, &sender_key).as_slice(),
        )?;
        Ok(Ok(()))
    }

    /// Replaces the sender key of `recipient`'s mailbox; returns its sender id.
    pub(super) fn set_sender_key(
        &mut self,
        recipient: MailboxId,
        sender_key: [u8; 32],
    ) -> Result<OpResult<MailboxId>, StoreError> {
        let Some(mb) = self.mailbox(&recipient)? else {
            return Ok(Err(ErrorCode::NotFound));
        };
        self.senders.insert(
            mb.sender.as_slice(),
            sender_value(&recipient, &sender_key).as_slice(),
        )?;
        Ok(Ok(MailboxId(mb.sender)))
    }

    /// Stores an envelope for the mailbox whose sender id is `to`, if `signed_by` is still
    /// its sender key (the caller verified the signature under it).
    pub(super) fn send(
        &mut self,
        to: MailboxId,
        signed_by: &[u8; 32],
        expires_at: u64,
        body: &[u8],
    ) -> Result<OpResult<Stored>, StoreError> {
        let (recipient, key) = match self.senders.get(to.as_bytes().as_slice())? {
            Some(v) => parse_sender_value(v.value())?,
            None => return Ok(Err(ErrorCode::NotFound)),
        };
        if key.as_ref() != Some(signed_by) {
            return Ok(Err(ErrorCode::Unauthorized));
        }
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
        let key = envelope_key(&recipient, &id);
        let sealed = self.epochs.seal(expires_at, &key, body)?;
        self.envelopes.insert(key.as_slice(), sealed.as_slice())?;
        self.due.note(recipient, expires_at);
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
    pub(super) fn delete_envelope(
        &mut self,
        recipient: &MailboxId,
        id: &EnvelopeId,
        deleted: &mut Deleted,
    ) -> Result<(), StoreError> {
        let removed = self
            .envelopes
            .remove(envelope_key(recipient, id).as_slice())?
            .map(|v| v.value().len().saturating_sub(SEAL_OVERHEAD) as u64);
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

    pub(super) fn ack(
        &mut self,
        recipient: MailboxId,
        ids: &[EnvelopeId],
    ) -> Result<Deleted, StoreError> {
        // Keys include the mailbox, so another mailbox's ids simply are not found.
        let mut deleted = Deleted::default();
        for id in ids {
            self.delete_envelope(&recipient, id, &mut deleted)?;
        }
        Ok(deleted)
    }

    pub(super) fn sweep(&mut self, now: u64) -> Result<Deleted, StoreError> {
        // Only mailboxes with something due; per mailbox, the expired envelopes are a
        // prefix of its key range.
        let mut visited = Vec::new();
        let mut due = Vec::new();
        'mailboxes: for recipient in self.due.due(now) {
            visited.push(recipient);
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
        deleted.mailboxes_visited = u32::try_from(visited.len()).unwrap_or(u32::MAX);
        // What each visited mailbox holds first now (still due if the batch was cut).
        for recipient in visited {
            let start = envelope_key(&recipient, &EnvelopeId([0; 32]));
            let end = envelope_key(&recipient, &EnvelopeId([0xff; 32]));
            let first = match self
                .envelopes
                .range(start.as_slice()..=end.as_slice())?
                .next()
            {
                Some(item) => split_key(item?.0.value()).map(|(_, id)| expiry_of(&id)),
                None => None,
            };
            self.due.set(recipient, first);
        }
        Ok(deleted)
    }

    pub(super) fn publish(
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
            // A new entry: its device may hold only so many. Entries are few (one per
            // member device) and new ones rare, so they are counted here, not indexed.
            None if self.entries_owned(&owner_tag)? >= self.quotas.max_entries_per_owner => {
                return Ok(Err(ErrorCode::QuotaExceeded));
            }
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
        // Random slots, not a sequence: nothing at rest counts how many prekeys (so how
        // many sessions) a member has had. Older records' counter is cleared here.
        rec.next_seq = 0;
        for blob in one_time {
            let slot = loop {
                let k = one_time_key(&directory, rand::random());
                if self.one_time.get(k.as_slice())?.is_none() {
                    break k;
                }
            };
            self.one_time.insert(slot.as_slice(), blob.as_slice())?;
            rec.one_time += 1;
        }
        let held = rec.one_time;
        self.directory.insert(key, encode(&rec)?.as_slice())?;
        Ok(Ok(held))
    }

    /// Directory entries published by the device with `owner_tag`.
    fn entries_owned(&self, owner_tag: &[u8; 32]) -> Result<u32, StoreError> {
        let mut n = 0u32;
        for item in self.directory.iter()? {
            let (_, v) = item?;
            let rec: DirectoryRecord = decode(v.value(), "directory")?;
            n += u32::from(rec.owner_tag == *owner_tag);
        }
        Ok(n)
    }

    pub(super) fn take_prekeys(
        &mut self,
        directory: HandleTag,
    ) -> Result<OpResult<TakenPrekeys>, StoreError> {
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
