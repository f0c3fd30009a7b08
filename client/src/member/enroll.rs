//! Enrollment: import the sealed bundle, create the mailbox, publish the directory entry.

use super::*;

impl Member {
    /// Imports a sealed enrollment bundle (checked against this device's request and, if
    /// given, the expected org key), then creates the mailbox on the org's relay and
    /// publishes the directory entry and one-time prekeys. If an earlier attempt stopped
    /// after the import (relay unreachable), this resumes it; `sealed_bundle` is then
    /// not needed again and is ignored. `progress` is told each slow step.
    pub async fn enroll(
        &mut self,
        sealed_bundle: &[u8],
        expected_org: Option<OrgKey>,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<EnrollReport, MemberError> {
        let mut account = load_account(&self.vault, &self.home)?;
        let stage = account.enrolled.as_ref().map(|e| e.published);
        match stage {
            Some(true) => return Err(MemberError::AlreadyEnrolled(self.enrolled()?.org)),
            Some(false) => {}
            None => self.import_bundle(&mut account, sealed_bundle, expected_org)?,
        }
        if let (Some(expected), Some(org)) = (expected_org, &self.org)
            && org.org != expected
        {
            return Err(MemberError::WrongOrg {
                expected,
                found: org.org,
            });
        }
        let org = self.enrolled()?.clone();
        let address = relay_address(&org)?;
        progress(&format!("Connecting to the relay {}…", address));
        let relay = self.admit(&org, &address).await?;
        if !account.enrolled.as_ref().is_some_and(|e| e.mailbox_created) {
            let created = relay
                .request(&Request::CreateMailbox(CreateMailbox {
                    recipient: org.recipient,
                    sender: org.sender,
                    owner: FixedBytes(org.owner.public_key().to_bytes()),
                    sender_key: FixedBytes(org.sender_key.key_pair().public_key().to_bytes()),
                }))
                .await;
            match created {
                Ok(Response::MailboxCreated) => {}
                // Made by an earlier attempt whose answer was lost: opening it below with
                // our owner key proves it is ours.
                Err(TransportError::Refused(ErrorCode::AlreadyExists)) => {}
                Ok(_) => return Err(unexpected("creating the mailbox")),
                Err(e) => return Err(relay_err("creating the mailbox", e)),
            }
        }
        let mut relay = relay;
        let pending = relay
            .open_mailbox(org.recipient, &org.owner)
            .await
            .map_err(|e| relay_err("opening the mailbox", e))?;
        if let Some(e) = &mut account.enrolled {
            e.mailbox_created = true;
        }
        save_account(&self.vault, &account)?;
        // Set (again) whatever the create said: a mailbox made by an attempt whose
        // answer was lost has the same key, and setting it twice changes nothing.
        self.set_sender_key_on(&relay, &mut account).await?;
        let conn = Connection::new(relay, address.clone(), pending, 0);
        progress(&format!(
            "Publishing your directory entry and {} one-time prekeys…",
            PREKEY_POLICY.target
        ));
        let prekeys = self.maintain_prekeys(&conn).await?;
        if let Some(e) = &mut account.enrolled {
            e.published = true;
        }
        save_account(&self.vault, &account)?;
        conn.close().await;
        let body = org.certificate.body();
        Ok(EnrollReport {
            handle: self.handle.clone(),
            role: body.role.to_string(),
            org: org.org.to_string(),
            not_after: body.not_after,
            relay: address.to_string(),
            one_time_prekeys: prekeys.available,
        })
    }

    pub(super) fn import_bundle(
        &mut self,
        account: &mut Account,
        sealed: &[u8],
        expected_org: Option<OrgKey>,
    ) -> Result<(), MemberError> {
        let secret = account
            .bundle_secret
            .as_ref()
            .map(BundleSecret::from_bytes)
            .ok_or(MemberError::Corrupt("bundle secret"))?;
        let bundle = EnrollmentBundle::open(sealed, &secret)
            .map_err(|e| MemberError::BadBundle(e.to_string()))?;
        let request = EnrollmentRequest::decode(&account.request)
            .map_err(|_| MemberError::Corrupt("request"))?;
        let body = bundle.body();
        if let Some(expected) = expected_org
            && body.org != expected
        {
            return Err(MemberError::WrongOrg {
                expected,
                found: body.org,
            });
        }
        let now = unix_now();
        bundle
            .verify_for(&body.org, &request, now)
            .map_err(|e| MemberError::BadBundle(e.to_string()))?;
        let trust_root = body.descriptor.body().sealed_sender_trust_root.to_bytes();
        let sender_name =
            validate_sender_certificate(body.sender_certificate.as_slice(), &trust_root, now)
                .map_err(|e| MemberError::BadBundle(format!("sender certificate: {e}")))?;
        if sender_name != account.handle {
            return Err(MemberError::BadBundle(
                "the sender certificate names another member".into(),
            ));
        }
        if body.descriptor.body().relays.as_slice().is_empty() {
            return Err(MemberError::NoRelay);
        }
        self.vault
            .set_sender_certificate(body.sender_certificate.as_slice())?;
        self.vault
            .put_record(REVOCATIONS_RECORD, &body.revocations.encode())?;
        let mut rng = rand::rng();
        account.enrolled = Some(EnrolledRecord {
            certificate: body.member_certificate.encode(),
            descriptor: body.descriptor.encode(),
            directory_key: *body.directory_key.as_bytes(),
            mailbox_recipient: *MailboxId::random(&mut rng).as_bytes(),
            mailbox_sender: *MailboxId::random(&mut rng).as_bytes(),
            mailbox_owner_seed: rand::random(),
            mailbox_created: false,
            published: false,
            mailbox_sender_key_seed: rand::random(),
            sender_key_set: false,
        });
        account.bundle_secret = None;
        save_account(&self.vault, account)?;
        self.org = org_state(account)?.map(Arc::new);
        Ok(())
    }
}
