//! The records a member keeps in the vault (account, enrolled state, contacts, revocation
//! list), their formats, and loading them.

use super::*;

/// The account record, sealed in the vault.
#[derive(Serialize, Deserialize)]
pub(super) struct Account {
    /// Record format.
    pub(super) format: u8,
    /// The member's handle.
    pub(super) handle: String,
    /// Ed25519 device key seed (relay admission).
    pub(super) device_seed: [u8; 32],
    /// Opens the enrollment bundle; dropped once the bundle is imported.
    pub(super) bundle_secret: Option<[u8; 32]>,
    /// The encoded enrollment request.
    pub(super) request: Vec<u8>,
    /// Set by `enroll`.
    pub(super) enrolled: Option<EnrolledRecord>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct EnrolledRecord {
    /// Encoded member certificate.
    pub(super) certificate: Vec<u8>,
    /// Encoded org descriptor.
    pub(super) descriptor: Vec<u8>,
    /// The org directory key.
    pub(super) directory_key: [u8; 32],
    /// Mailbox recipient id (secret: opens the mailbox).
    pub(super) mailbox_recipient: [u8; 32],
    /// Mailbox sender id (published in the directory).
    pub(super) mailbox_sender: [u8; 32],
    /// Ed25519 seed of the mailbox owner key.
    pub(super) mailbox_owner_seed: [u8; 32],
    /// The mailbox exists on the relay.
    pub(super) mailbox_created: bool,
    /// The directory entry and first prekeys are published.
    pub(super) published: bool,
}

impl Drop for Account {
    fn drop(&mut self) {
        self.device_seed.zeroize();
        if let Some(s) = &mut self.bundle_secret {
            s.zeroize();
        }
        if let Some(e) = &mut self.enrolled {
            e.directory_key.zeroize();
            e.mailbox_recipient.zeroize();
            e.mailbox_owner_seed.zeroize();
        }
    }
}

/// A known member, as stored in the vault.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ContactRecord {
    pub(super) handle: String,
    pub(super) certificate: Vec<u8>,
    pub(super) sender: [u8; 32],
    pub(super) updated_at: u64,
}

/// The enrolled state, decoded once.
pub(super) struct OrgState {
    /// The org.
    pub(super) org: OrgKey,
    /// Our certificate.
    pub(super) certificate: MemberCertificate,
    /// The org descriptor from our bundle.
    pub(super) descriptor: OrgDescriptor,
    /// The org directory key.
    pub(super) directory_key: DirectoryKey,
    /// Mailbox recipient id.
    pub(super) recipient: MailboxId,
    /// Mailbox sender id.
    pub(super) sender: MailboxId,
    /// Mailbox owner key.
    pub(super) owner: DeviceKeyPair,
    /// Device key and certificate, for admission.
    pub(super) signer: Signer,
}

pub(super) struct Signer {
    pub(super) certificate: Vec<u8>,
    pub(super) device: DeviceKeyPair,
}

impl DeviceSigner for Signer {
    fn certificate(&self) -> Vec<u8> {
        self.certificate.clone()
    }
    fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.device.sign(context, message)
    }
}

/// The account record's format, the first byte of its encoding.
pub(super) const ACCOUNT_FORMAT: u8 = 1;

pub(super) fn load_account(vault: &Vault, home: &Path) -> Result<Account, MemberError> {
    let bytes = vault
        .get_record(ACCOUNT_RECORD)?
        .ok_or_else(|| MemberError::IncompleteInit(home.to_owned()))?;
    decode_account(&bytes)
}

/// Decodes an account record; another format (a newer client's) is refused, not guessed.
pub(super) fn decode_account(bytes: &[u8]) -> Result<Account, MemberError> {
    let account: Account =
        postcard::from_bytes(bytes).map_err(|_| MemberError::Corrupt("account"))?;
    if account.format != ACCOUNT_FORMAT {
        return Err(MemberError::Corrupt("account (unknown record format)"));
    }
    Ok(account)
}

pub(super) fn save_account(vault: &Vault, account: &Account) -> Result<(), MemberError> {
    let bytes = Zeroizing::new(
        postcard::to_allocvec(account).map_err(|_| MemberError::Corrupt("account"))?,
    );
    vault.put_record(ACCOUNT_RECORD, &bytes)?;
    Ok(())
}

pub(super) fn org_state(account: &Account) -> Result<Option<OrgState>, MemberError> {
    let Some(e) = &account.enrolled else {
        return Ok(None);
    };
    let certificate = MemberCertificate::decode(&e.certificate)
        .map_err(|_| MemberError::Corrupt("certificate"))?;
    let descriptor =
        OrgDescriptor::decode(&e.descriptor).map_err(|_| MemberError::Corrupt("descriptor"))?;
    Ok(Some(OrgState {
        org: descriptor.body().org,
        directory_key: DirectoryKey::from_bytes(&e.directory_key),
        recipient: MailboxId(e.mailbox_recipient),
        sender: MailboxId(e.mailbox_sender),
        owner: DeviceKeyPair::from_seed(&e.mailbox_owner_seed),
        signer: Signer {
            certificate: e.certificate.clone(),
            device: DeviceKeyPair::from_seed(&account.device_seed),
        },
        certificate,
        descriptor,
    }))
}

pub(super) fn load_contacts(vault: &Vault) -> Result<Vec<ContactRecord>, MemberError> {
    match vault.get_record(CONTACTS_RECORD)? {
        None => Ok(Vec::new()),
        Some(b) => decode_contacts(&b),
    }
}

pub(super) fn decode_contacts(bytes: &[u8]) -> Result<Vec<ContactRecord>, MemberError> {
    postcard::from_bytes(bytes).map_err(|_| MemberError::Corrupt("contacts"))
}

pub(super) fn load_revocations(vault: &Vault) -> Result<RevocationList, MemberError> {
    let b = vault
        .get_record(REVOCATIONS_RECORD)?
        .ok_or(MemberError::Corrupt("revocation list"))?;
    RevocationList::decode(&b).map_err(|_| MemberError::Corrupt("revocation list"))
}

pub(super) fn load_roster(vault: &Vault, org: &OrgState) -> Result<OrgRoster, MemberError> {
    let mut roster = OrgRoster::new(org.org, load_revocations(vault)?);
    for c in load_contacts(vault)? {
        if let Ok(cert) = MemberCertificate::decode(&c.certificate) {
            roster.insert(cert);
        }
    }
    Ok(roster)
}

pub(super) fn relay_address(org: &OrgState) -> Result<RelayAddress, MemberError> {
    org.descriptor
        .body()
        .relays
        .as_slice()
        .first()
        .cloned()
        .ok_or(MemberError::NoRelay)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(enrolled: bool) -> Account {
        Account {
            format: ACCOUNT_FORMAT,
            handle: "courier-7".into(),
            device_seed: [1; 32],
            bundle_secret: Some([2; 32]),
            request: vec![3; 40],
            enrolled: enrolled.then(|| EnrolledRecord {
                certificate: vec![4; 100],
                descriptor: vec![5; 100],
                directory_key: [6; 32],
                mailbox_recipient: [7; 32],
                mailbox_sender: [8; 32],
                mailbox_owner_seed: [9; 32],
                mailbox_created: true,
                published: false,
            }),
        }
    }

    #[test]
    fn the_account_record_round_trips_and_starts_with_its_format() {
        for enrolled in [false, true] {
            let bytes = postcard::to_allocvec(&account(enrolled)).unwrap();
            assert_eq!(bytes[0], ACCOUNT_FORMAT);
            let back = decode_account(&bytes).unwrap();
            assert_eq!(back.handle, "courier-7");
            assert_eq!(back.device_seed, [1; 32]);
            assert_eq!(back.enrolled.is_some(), enrolled);
            if let Some(e) = &back.enrolled {
                assert_eq!(e.mailbox_sender, [8; 32]);
                assert!(e.mailbox_created && !e.published);
            }
        }
    }

    #[test]
    fn damaged_or_unknown_account_records_are_refused() {
        let bytes = postcard::to_allocvec(&account(true)).unwrap();
        let mut newer = bytes.clone();
        newer[0] = ACCOUNT_FORMAT + 1;
        assert!(matches!(
            decode_account(&newer),
            Err(MemberError::Corrupt(_))
        ));
        for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                matches!(decode_account(&bytes[..cut]), Err(MemberError::Corrupt(_))),
                "truncated at {cut}"
            );
        }
    }

    #[test]
    fn contacts_round_trip_and_damage_is_refused() {
        let contacts = vec![ContactRecord {
            handle: "coord-1".into(),
            certificate: vec![1; 90],
            sender: [2; 32],
            updated_at: 1_900_000_000,
        }];
        let bytes = postcard::to_allocvec(&contacts).unwrap();
        let back = decode_contacts(&bytes).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].handle, "coord-1");
        assert_eq!(back[0].updated_at, 1_900_000_000);
        assert!(matches!(
            decode_contacts(&bytes[..bytes.len() - 3]),
            Err(MemberError::Corrupt(_))
        ));
    }
}
