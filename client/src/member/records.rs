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
    /// Ed25519 seed of the mailbox's sender key (published in the directory entry: it
    /// lets members deliver into the mailbox without saying who they are).
    pub(super) mailbox_sender_key_seed: [u8; 32],
    /// The relay holds the public half (a mailbox made by a format-1 account has none
    /// until the next connection sets it).
    pub(super) sender_key_set: bool,
}

/// Format 1 of the account record (before sender keys), read only to migrate it.
#[derive(Deserialize)]
struct AccountV1 {
    format: u8,
    handle: String,
    device_seed: [u8; 32],
    bundle_secret: Option<[u8; 32]>,
    request: Vec<u8>,
    enrolled: Option<EnrolledRecordV1>,
}

#[derive(Deserialize)]
struct EnrolledRecordV1 {
    certificate: Vec<u8>,
    descriptor: Vec<u8>,
    directory_key: [u8; 32],
    mailbox_recipient: [u8; 32],
    mailbox_sender: [u8; 32],
    mailbox_owner_seed: [u8; 32],
    mailbox_created: bool,
    published: bool,
}

impl Drop for AccountV1 {
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

impl AccountV1 {
    /// The same account in the current format, with a new sender key for its mailbox
    /// (set on the relay and published at the next connection).
    fn migrate(&self) -> Account {
        Account {
            format: ACCOUNT_FORMAT,
            handle: self.handle.clone(),
            device_seed: self.device_seed,
            bundle_secret: self.bundle_secret,
            request: self.request.clone(),
            enrolled: self.enrolled.as_ref().map(|e| EnrolledRecord {
                certificate: e.certificate.clone(),
                descriptor: e.descriptor.clone(),
                directory_key: e.directory_key,
                mailbox_recipient: e.mailbox_recipient,
                mailbox_sender: e.mailbox_sender,
                mailbox_owner_seed: e.mailbox_owner_seed,
                mailbox_created: e.mailbox_created,
                published: e.published,
                mailbox_sender_key_seed: *DeviceKeyPair::generate().seed(),
                sender_key_set: false,
            }),
        }
    }
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
            e.mailbox_sender_key_seed.zeroize();
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
    /// The sender key of their mailbox, from their directory entry (`None` for a contact
    /// stored by an older client: it is looked up again before the next send).
    pub(super) sender_key: Option<SenderKeySeed>,
}

/// A contact as format 1 of the contacts record stored it (no sender key).
#[derive(Deserialize)]
struct ContactRecordV1 {
    handle: String,
    certificate: Vec<u8>,
    sender: [u8; 32],
    updated_at: u64,
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
    /// Mailbox sender key (its seed is published in the directory entry).
    pub(super) sender_key: SenderKeySeed,
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

/// The account record's format, the first byte of its encoding. Format 1 (no sender
/// key) is migrated when read.
pub(super) const ACCOUNT_FORMAT: u8 = 2;

pub(super) fn load_account(vault: &Vault, home: &Path) -> Result<Account, MemberError> {
    let bytes = vault
        .get_record(ACCOUNT_RECORD)?
        .ok_or_else(|| MemberError::IncompleteInit(home.to_owned()))?;
    decode_account(&bytes)
}

/// Decodes an account record; format 1 is migrated (the caller saves the result), any
/// other (a newer client's) is refused, not guessed.
pub(super) fn decode_account(bytes: &[u8]) -> Result<Account, MemberError> {
    match bytes.first() {
        Some(&ACCOUNT_FORMAT) => {
            postcard::from_bytes(bytes).map_err(|_| MemberError::Corrupt("account"))
        }
        Some(1) => {
            let old: AccountV1 =
                postcard::from_bytes(bytes).map_err(|_| MemberError::Corrupt("account"))?;
            debug_assert_eq!(old.format, 1);
            Ok(old.migrate())
        }
        _ => Err(MemberError::Corrupt("account (unknown record format)")),
    }
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
        sender_key: SenderKeySeed(e.mailbox_sender_key_seed),
        signer: Signer {
            certificate: e.certificate.clone(),
            device: DeviceKeyPair::from_seed(&account.device_seed),
        },
        certificate,
        descriptor,
    }))
}

pub(super) fn load_contacts(vault: &Vault) -> Result<Vec<ContactRecord>, MemberError> {
    if let Some(b) = vault.get_record(CONTACTS_RECORD)? {
        return decode_contacts(&b);
    }
    match vault.get_record(CONTACTS_RECORD_V1)? {
        None => Ok(Vec::new()),
        Some(b) => decode_contacts_v1(&b),
    }
}

pub(super) fn decode_contacts(bytes: &[u8]) -> Result<Vec<ContactRecord>, MemberError> {
    postcard::from_bytes(bytes).map_err(|_| MemberError::Corrupt("contacts"))
}

/// Format 1 contacts, without sender keys (looked up again before the next send).
fn decode_contacts_v1(bytes: &[u8]) -> Result<Vec<ContactRecord>, MemberError> {
    let old: Vec<ContactRecordV1> =
        postcard::from_bytes(bytes).map_err(|_| MemberError::Corrupt("contacts"))?;
    Ok(old
        .into_iter()
        .map(|c| ContactRecord {
            handle: c.handle,
            certificate: c.certificate,
            sender: c.sender,
            updated_at: c.updated_at,
            sender_key: None,
        })
        .collect())
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
                mailbox_sender_key_seed: [10; 32],
                sender_key_set: true,
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
            sender_key: Some(SenderKeySeed([3; 32])),
        }];
        let bytes = postcard::to_allocvec(&contacts).unwrap();
        let back = decode_contacts(&bytes).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].handle, "coord-1");
        assert_eq!(back[0].updated_at, 1_900_000_000);
        assert_eq!(back[0].sender_key, Some(SenderKeySeed([3; 32])));
        assert!(matches!(
            decode_contacts(&bytes[..bytes.len() - 3]),
            Err(MemberError::Corrupt(_))
        ));
    }

    /// Format-1 records, as a client before sender keys wrote them.
    #[derive(Serialize)]
    struct OldAccount {
        format: u8,
        handle: String,
        device_seed: [u8; 32],
        bundle_secret: Option<[u8; 32]>,
        request: Vec<u8>,
        enrolled: Option<OldEnrolled>,
    }
    #[derive(Serialize)]
    struct OldEnrolled {
        certificate: Vec<u8>,
        descriptor: Vec<u8>,
        directory_key: [u8; 32],
        mailbox_recipient: [u8; 32],
        mailbox_sender: [u8; 32],
        mailbox_owner_seed: [u8; 32],
        mailbox_created: bool,
        published: bool,
    }
    #[derive(Serialize)]
    struct OldContact {
        handle: String,
        certificate: Vec<u8>,
        sender: [u8; 32],
        updated_at: u64,
    }

    #[test]
    fn format_1_records_are_migrated_with_a_new_sender_key_to_set() {
        let old = OldAccount {
            format: 1,
            handle: "courier-7".into(),
            device_seed: [1; 32],
            bundle_secret: None,
            request: vec![3; 40],
            enrolled: Some(OldEnrolled {
                certificate: vec![4; 100],
                descriptor: vec![5; 100],
                directory_key: [6; 32],
                mailbox_recipient: [7; 32],
                mailbox_sender: [8; 32],
                mailbox_owner_seed: [9; 32],
                mailbox_created: true,
                published: true,
            }),
        };
        let bytes = postcard::to_allocvec(&old).unwrap();
        let a = decode_account(&bytes).unwrap();
        assert_eq!(a.format, ACCOUNT_FORMAT);
        let e = a.enrolled.as_ref().unwrap();
        assert_eq!((e.mailbox_recipient, e.mailbox_sender), ([7; 32], [8; 32]));
        assert!(e.published && !e.sender_key_set);
        assert_ne!(e.mailbox_sender_key_seed, [0; 32]);
        // Saved again, it reads back as format 2 with the same key.
        let again = decode_account(&postcard::to_allocvec(&a).unwrap()).unwrap();
        let e2 = again.enrolled.as_ref().unwrap();
        assert_eq!(e2.mailbox_sender_key_seed, e.mailbox_sender_key_seed);

        let contacts = vec![OldContact {
            handle: "coord-1".into(),
            certificate: vec![1; 90],
            sender: [2; 32],
            updated_at: 5,
        }];
        let back = decode_contacts_v1(&postcard::to_allocvec(&contacts).unwrap()).unwrap();
        assert_eq!(back[0].handle, "coord-1");
        assert_eq!(back[0].sender, [2; 32]);
        assert!(back[0].sender_key.is_none());
    }
}
