//! Prekeys and the directory: rotation and top-up of our own, lookup of others' sealed
//! entries, and the contacts they become.

use super::*;

impl Member {
    /// Rotates the signed prekeys if due, republishes the directory entry, and tops up
    /// the one-time prekeys on the relay when they run low.
    pub async fn maintain_prekeys(&self, conn: &Connection) -> Result<PrekeyStatus, MemberError> {
        let org = self.enrolled()?.clone();
        let vault = self.vault.clone();
        let (entry, rotated) = {
            let org = org.clone();
            blocking(move || {
                let rotated = vault
                    .rotate_prekeys_if_due(SystemTime::now(), &PREKEY_POLICY)?
                    .is_some();
                let prekeys =
                    encode_public_prekeys(&vault.public_prekeys()?).map_err(E2eError::from)?;
                let content = EntryContent {
                    certificate: org.certificate.encode(),
                    sender: org.sender,
                    sender_key: org.sender_key.clone(),
                    prekeys,
                };
                Ok((
                    content
                        .encode()
                        .map_err(|_| MemberError::Corrupt("entry"))?,
                    rotated,
                ))
            })
            .await?
        };
        let lookup = directory::lookup_key(&org.directory_key, &self.handle);
        let sealed = directory::seal(&org.directory_key, &lookup, BlobKind::Entry, &entry)
            .map_err(|_| MemberError::Corrupt("entry"))?;
        let mut available = self.publish(conn, &sealed, Vec::new()).await?;
        let mut published = 0;
        let vault = self.vault.clone();
        let remaining = available as usize;
        let batch =
            blocking(move || Ok(vault.replenish_one_time_prekeys(remaining, &PREKEY_POLICY)?))
                .await?;
        if let Some(batch) = batch {
            let mut sealed_keys = Vec::with_capacity(batch.keys.len());
            for k in &batch.keys {
                let plain = Zeroizing::new(encode_one_time_prekey(k).map_err(E2eError::from)?);
                sealed_keys.push(
                    directory::seal(&org.directory_key, &lookup, BlobKind::OneTime, &plain)
                        .map_err(|_| MemberError::Corrupt("prekey"))?,
                );
            }
            for chunk in sealed_keys.chunks(PUBLISH_BATCH) {
                available = self.publish(conn, &sealed, chunk.to_vec()).await?;
                published += chunk.len();
            }
        }
        Ok(PrekeyStatus {
            available,
            published,
            rotated,
        })
    }

    pub(super) async fn publish(
        &self,
        conn: &Connection,
        entry: &[u8],
        one_time: Vec<Vec<u8>>,
    ) -> Result<u32, MemberError> {
        let org = self.enrolled()?;
        let entry = Bytes::new(entry.to_vec()).map_err(|_| MemberError::Corrupt("entry"))?;
        let one_time = one_time
            .into_iter()
            .map(Bytes::new)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| MemberError::Corrupt("prekey"))?;
        let one_time = BoundedVec::new(one_time).map_err(|_| MemberError::Corrupt("prekeys"))?;
        let req = Request::PublishPrekeys(PublishPrekeys {
            directory: directory::lookup_key(&org.directory_key, &self.handle),
            entry,
            one_time,
        });
        match conn.request("publishing prekeys", &req).await? {
            Response::PrekeysPublished(p) => Ok(p.one_time_available),
            _ => Err(unexpected("publishing prekeys")),
        }
    }

    /// Fetches, verifies and stores `handle`'s directory entry (certificate, mailbox);
    /// returns it with the one-time prekey the relay handed out, if any. Only a lookup
    /// that starts a session should `take_one_time`: each is handed out once, and a
    /// member's supply is finite.
    pub async fn lookup(
        &self,
        relay: &RelayConnection,
        handle: &str,
        take_one_time: bool,
    ) -> Result<(VerifiedEntry, Option<postern_e2e::OneTimePreKey>), MemberError> {
        let org = self.enrolled()?;
        handle_of(handle)?;
        let directory = directory::lookup_key(&org.directory_key, handle);
        let request = if take_one_time {
            Request::FetchPrekeys(FetchPrekeys { directory })
        } else {
            Request::FetchEntry(FetchEntry { directory })
        };
        let prekeys = match relay.request(&request).await {
            Ok(Response::Prekeys(p)) => p,
            Ok(_) => return Err(unexpected("fetching a directory entry")),
            Err(TransportError::Refused(ErrorCode::NotFound)) => {
                return Err(MemberError::UnknownHandle(handle.to_owned()));
            }
            Err(e) => return Err(relay_err("fetching a directory entry", e)),
        };
        let revocations = load_revocations(&self.vault)?;
        let bad = |source| MemberError::BadDirectoryEntry {
            handle: handle.to_owned(),
            source,
        };
        let entry = directory::verify_entry(
            &org.directory_key,
            &org.org,
            &revocations,
            handle,
            prekeys.entry.as_slice(),
            unix_now(),
        )
        .map_err(|e| match e {
            DirectoryError::Certificate(TrustError::Revoked { .. }) => {
                MemberError::PeerRevoked(handle.to_owned())
            }
            other => bad(other),
        })?;
        let one_time = prekeys
            .one_time
            .map(|b| directory::open_one_time(&org.directory_key, handle, b.as_slice()))
            .transpose()
            .map_err(bad)?;
        let mut contacts = load_contacts(&self.vault)?;
        contacts.retain(|c| c.handle != handle);
        contacts.push(ContactRecord {
            handle: handle.to_owned(),
            certificate: entry.certificate.encode(),
            sender: *entry.sender.as_bytes(),
            updated_at: unix_now(),
            sender_key: Some(entry.sender_key.clone()),
        });
        self.save_contacts(&contacts)?;
        Ok((entry, one_time))
    }

    pub(super) fn save_contacts(&self, contacts: &[ContactRecord]) -> Result<(), MemberError> {
        let bytes =
            postcard::to_allocvec(contacts).map_err(|_| MemberError::Corrupt("contacts"))?;
        self.vault.put_record(CONTACTS_RECORD, &bytes)?;
        self.vault.delete_record(CONTACTS_RECORD_V1)?;
        Ok(())
    }
}
