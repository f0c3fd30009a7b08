//! The org directory as members see it: how a handle becomes a relay directory key, how
//! entries and one-time prekeys are sealed under the org directory key, and how a fetched
//! entry is verified before anything in it is trusted. Specified, with test vectors, in
//! `protocol-spec/CLIENT.md`.
//!
//! The relay stores only opaque blobs under keyed hashes: without the org directory key
//! it learns no handle, role or certificate.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use postern_e2e::{OneTimePreKey, PublicPreKeys, decode_one_time_prekey, decode_public_prekeys};
use postern_identity::{
    DirectoryKey, MemberCertificate, OrgKey, RevocationList, TrustError, verify_member,
};
use postern_protocol::ids::{HandleTag, MailboxId};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Prefix of the HMAC input that turns a handle into a directory key.
pub const LOOKUP_LABEL: &[u8] = b"postern/1 directory\0";
/// HKDF-SHA-256 `info` of the key that seals directory blobs.
pub const SEAL_INFO: &[u8] = b"postern/1 directory seal\0";
/// Associated-data label of a sealed directory entry.
pub const ENTRY_LABEL: &[u8] = b"postern/1 directory entry\0";
/// Associated-data label of a sealed one-time prekey.
pub const ONE_TIME_LABEL: &[u8] = b"postern/1 directory one-time\0";
/// First byte of every sealed blob.
pub const SEALED_VERSION: u8 = 1;
/// First byte of an entry's plaintext.
pub const ENTRY_VERSION: u8 = 3;
/// Every entry plaintext is padded (ISO/IEC 7816-4: `0x80` then zeros) to exactly this
/// many bytes, so no entry's size tells one member from another (a handle's length, a
/// certificate's).
pub const ENTRY_PLAINTEXT_LEN: usize = 4096;
/// Nonce length (XChaCha20-Poly1305).
pub const NONCE_LEN: usize = 24;
/// Bytes a sealed blob adds to its plaintext: version, nonce, tag.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + 16;

/// A directory entry or one-time prekey failed verification.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The AEAD tag does not verify: altered, moved from another handle, or another
    /// org's.
    #[error(
        "it does not authenticate under the org directory key (altered, or moved from another handle)"
    )]
    Tampered,
    /// The decrypted structure is malformed.
    #[error("it is malformed: {0}")]
    Malformed(&'static str),
    /// The member certificate inside does not verify, is another org's, expired or revoked.
    #[error("its member certificate is refused: {0}")]
    Certificate(TrustError),
    /// The certificate names another handle than the one looked up.
    #[error("its certificate is for {found}, not {expected}")]
    HandleMismatch {
        /// Handle looked up.
        expected: String,
        /// Handle in the certificate.
        found: String,
    },
    /// The prekeys' identity key is not the certified one.
    #[error("its prekeys are signed by an identity key other than the certified one")]
    IdentityMismatch,
    /// The prekeys do not decode or their signatures do not verify.
    #[error("its prekeys are invalid: {0}")]
    Prekeys(postern_e2e::bundle::BundleError),
}

/// Which kind of blob is sealed (it goes into the associated data, so one kind cannot be
/// passed off as the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// The directory entry.
    Entry,
    /// A one-time prekey.
    OneTime,
}

impl BlobKind {
    fn label(self) -> &'static [u8] {
        match self {
            BlobKind::Entry => ENTRY_LABEL,
            BlobKind::OneTime => ONE_TIME_LABEL,
        }
    }
}

/// `HMAC-SHA-256(org directory key, LOOKUP_LABEL || handle)`.
pub fn lookup_key(org: &DirectoryKey, handle: &str) -> HandleTag {
    // HMAC accepts keys of any length.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(org.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    mac.update(LOOKUP_LABEL);
    mac.update(handle.as_bytes());
    HandleTag(mac.finalize().into_bytes().into())
}

#[allow(clippy::panic)]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA-256 accepts every key length")
}

fn seal_key(org: &DirectoryKey) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    // 32 bytes is always a valid HKDF-SHA-256 output length.
    let _ = Hkdf::<Sha256>::new(None, org.as_bytes()).expand(SEAL_INFO, key.as_mut());
    key
}

fn aad(kind: BlobKind, lookup: &HandleTag) -> Vec<u8> {
    [kind.label(), lookup.as_bytes().as_slice()].concat()
}

/// Seals `plaintext` with a given nonce (fresh random ones in [`seal`]; fixed ones only
/// for test vectors): `SEALED_VERSION || nonce || ciphertext-with-tag`.
pub fn seal_with_nonce(
    org: &DirectoryKey,
    lookup: &HandleTag,
    kind: BlobKind,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Vec<u8>, DirectoryError> {
    let key = seal_key(org);
    let ct = XChaCha20Poly1305::new(key.as_ref().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &aad(kind, lookup),
            },
        )
        .map_err(|_| DirectoryError::Malformed("cannot encrypt"))?;
    Ok([&[SEALED_VERSION][..], &nonce, &ct].concat())
}

/// Seals `plaintext` under a fresh random nonce.
pub fn seal(
    org: &DirectoryKey,
    lookup: &HandleTag,
    kind: BlobKind,
    plaintext: &[u8],
) -> Result<Vec<u8>, DirectoryError> {
    let nonce: [u8; NONCE_LEN] = rand::random();
    seal_with_nonce(org, lookup, kind, plaintext, nonce)
}

/// Opens a sealed blob found under `lookup`.
pub fn open(
    org: &DirectoryKey,
    lookup: &HandleTag,
    kind: BlobKind,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DirectoryError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(DirectoryError::Malformed("truncated"));
    }
    if sealed[0] != SEALED_VERSION {
        return Err(DirectoryError::Malformed("unknown version"));
    }
    let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
    let key = seal_key(org);
    XChaCha20Poly1305::new(key.as_ref().into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: &aad(kind, lookup),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| DirectoryError::Tampered)
}

/// The Ed25519 seed of a mailbox's sender key: whoever holds it may deliver into the
/// mailbox (the relay checks each `Send` against the public half). Shared with every
/// member through the directory entry, so it proves membership of the org, not who sends.
/// Zeroized on drop; `Debug` does not show it.
#[derive(
    Clone,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    zeroize::Zeroize,
    zeroize::ZeroizeOnDrop,
)]
pub struct SenderKeySeed(pub [u8; 32]);

impl std::fmt::Debug for SenderKeySeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SenderKeySeed(..)")
    }
}

impl SenderKeySeed {
    /// The signing key.
    pub fn key_pair(&self) -> postern_identity::DeviceKeyPair {
        postern_identity::DeviceKeyPair::from_seed(&self.0)
    }
}

/// What a directory entry holds, before verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryContent {
    /// The encoded member certificate.
    pub certificate: Vec<u8>,
    /// The sender id of the member's mailbox.
    pub sender: MailboxId,
    /// The seed of that mailbox's sender key.
    pub sender_key: SenderKeySeed,
    /// `postern_e2e::encode_public_prekeys` bytes.
    pub prekeys: Vec<u8>,
}

impl EntryContent {
    /// `ENTRY_VERSION || u16 BE certificate length || certificate || sender id (32) ||
    /// sender key seed (32) || public prekeys || 0x80 || zeros`, [`ENTRY_PLAINTEXT_LEN`]
    /// bytes in all.
    pub fn encode(&self) -> Result<Vec<u8>, DirectoryError> {
        let len = u16::try_from(self.certificate.len())
            .map_err(|_| DirectoryError::Malformed("certificate too long"))?;
        let mut out = Vec::with_capacity(ENTRY_PLAINTEXT_LEN);
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.certificate);
        out.extend_from_slice(self.sender.as_bytes());
        out.extend_from_slice(&self.sender_key.0);
        out.extend_from_slice(&self.prekeys);
        if out.len() >= ENTRY_PLAINTEXT_LEN {
            return Err(DirectoryError::Malformed(
                "entry too long for its padded size",
            ));
        }
        out.push(0x80);
        out.resize(ENTRY_PLAINTEXT_LEN, 0);
        Ok(out)
    }

    /// Parses [`Self::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DirectoryError> {
        let bad = DirectoryError::Malformed;
        if bytes.len() != ENTRY_PLAINTEXT_LEN {
            return Err(bad("not the padded entry size"));
        }
        let end = bytes
            .iter()
            .rposition(|b| *b != 0)
            .filter(|&i| bytes[i] == 0x80)
            .ok_or(bad("bad padding"))?;
        let bytes = &bytes[..end];
        let (&version, rest) = bytes.split_first().ok_or(bad("empty"))?;
        if version != ENTRY_VERSION {
            return Err(bad("unknown entry version"));
        }
        if rest.len() < 2 {
            return Err(bad("truncated"));
        }
        let (len, rest) = rest.split_at(2);
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if rest.len() < len + 64 {
            return Err(bad("truncated"));
        }
        let (certificate, rest) = rest.split_at(len);
        let (sender, rest) = rest.split_at(32);
        let (sender_key, prekeys) = rest.split_at(32);
        let mut id = [0u8; 32];
        id.copy_from_slice(sender);
        let mut seed = SenderKeySeed([0u8; 32]);
        seed.0.copy_from_slice(sender_key);
        Ok(Self {
            certificate: certificate.to_vec(),
            sender: MailboxId(id),
            sender_key: seed,
            prekeys: prekeys.to_vec(),
        })
    }
}

/// A directory entry that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedEntry {
    /// The member's certificate: this org's, valid now, not revoked, for the handle
    /// looked up.
    pub certificate: MemberCertificate,
    /// Where to deliver to the member.
    pub sender: MailboxId,
    /// The key a send to `sender` is signed with.
    pub sender_key: SenderKeySeed,
    /// The member's long-lived public prekeys, signed by the certified identity key.
    pub prekeys: PublicPreKeys,
}

/// Opens and verifies the entry found for `handle`: it authenticates under the org
/// directory key and `handle`'s lookup key; its certificate decodes, is `org`'s, valid at
/// `now` and not on `revocations`; it names `handle`; and the prekeys are signed by the
/// Signal identity key the certificate names.
pub fn verify_entry(
    directory_key: &DirectoryKey,
    org: &OrgKey,
    revocations: &RevocationList,
    handle: &str,
    sealed: &[u8],
    now: u64,
) -> Result<VerifiedEntry, DirectoryError> {
    let lookup = lookup_key(directory_key, handle);
    let plain = open(directory_key, &lookup, BlobKind::Entry, sealed)?;
    let content = EntryContent::decode(&plain)?;
    let certificate =
        MemberCertificate::decode(&content.certificate).map_err(DirectoryError::Certificate)?;
    verify_member(&certificate, org, revocations, now).map_err(DirectoryError::Certificate)?;
    let named = certificate.body().handle.as_str();
    if named != handle {
        return Err(DirectoryError::HandleMismatch {
            expected: handle.to_owned(),
            found: named.to_owned(),
        });
    }
    let prekeys = decode_public_prekeys(&content.prekeys).map_err(DirectoryError::Prekeys)?;
    if prekeys.identity.serialize().as_ref()
        != certificate.body().signal_identity_key.to_bytes().as_slice()
    {
        return Err(DirectoryError::IdentityMismatch);
    }
    Ok(VerifiedEntry {
        certificate,
        sender: content.sender,
        sender_key: content.sender_key.clone(),
        prekeys,
    })
}

/// Opens a one-time prekey handed out with `handle`'s entry.
pub fn open_one_time(
    directory_key: &DirectoryKey,
    handle: &str,
    sealed: &[u8],
) -> Result<OneTimePreKey, DirectoryError> {
    let lookup = lookup_key(directory_key, handle);
    let plain = open(directory_key, &lookup, BlobKind::OneTime, sealed)?;
    decode_one_time_prekey(&plain).map_err(DirectoryError::Prekeys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SPEC: &str = include_str!("../../protocol-spec/CLIENT.md");

    fn vector_key() -> DirectoryKey {
        DirectoryKey::from_bytes(&[0x44; 32])
    }

    /// The test vectors of `protocol-spec/CLIENT.md`, recomputed.
    fn vectors() -> Vec<(&'static str, String)> {
        let org = vector_key();
        let lookup = lookup_key(&org, "alice");
        let content = EntryContent {
            certificate: vec![0xc0; 4],
            sender: MailboxId([0x22; 32]),
            sender_key: SenderKeySeed([0x99; 32]),
            prekeys: vec![0x9e; 3],
        };
        let plain = content.encode().unwrap();
        let unpadded = 1 + 2 + 4 + 32 + 32 + 3;
        let entry = seal_with_nonce(&org, &lookup, BlobKind::Entry, &plain, [0x55; 24]).unwrap();
        let zeros = ENTRY_PLAINTEXT_LEN - unpadded - 1;
        let one =
            seal_with_nonce(&org, &lookup, BlobKind::OneTime, b"one-time", [0x66; 24]).unwrap();
        vec![
            ("lookup key", hex::encode(lookup.as_bytes())),
            ("seal key", hex::encode(*seal_key(&org))),
            (
                "entry plaintext",
                format!("{}80 (zeros: {zeros})", hex::encode(&plain[..unpadded])),
            ),
            ("sealed entry length", format!("{} bytes", entry.len())),
            (
                "sealed entry SHA-256",
                hex::encode(<Sha256 as sha2::Digest>::digest(&entry)),
            ),
            ("sealed one-time", hex::encode(&one)),
        ]
    }

    #[test]
    fn spec_vectors_match_the_code() {
        for (name, hex) in vectors() {
            assert!(
                SPEC.contains(&hex),
                "CLIENT.md lacks the {name} vector {hex}"
            );
        }
    }

    #[test]
    fn blobs_are_bound_to_their_handle_and_kind() {
        let org = vector_key();
        let alice = lookup_key(&org, "alice");
        let bob = lookup_key(&org, "bob");
        assert_ne!(alice, bob);
        let sealed = seal(&org, &alice, BlobKind::Entry, b"entry").unwrap();
        assert_eq!(
            open(&org, &alice, BlobKind::Entry, &sealed)
                .unwrap()
                .as_slice(),
            b"entry"
        );
        assert!(matches!(
            open(&org, &bob, BlobKind::Entry, &sealed),
            Err(DirectoryError::Tampered)
        ));
        assert!(matches!(
            open(&org, &alice, BlobKind::OneTime, &sealed),
            Err(DirectoryError::Tampered)
        ));
        let other = DirectoryKey::from_bytes(&[0x45; 32]);
        assert!(open(&other, &alice, BlobKind::Entry, &sealed).is_err());
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(
            open(&org, &alice, BlobKind::Entry, &flipped),
            Err(DirectoryError::Tampered)
        ));
        assert!(open(&org, &alice, BlobKind::Entry, &sealed[..10]).is_err());
    }

    #[test]
    fn entry_content_round_trips_and_rejects_truncation() {
        let c = EntryContent {
            certificate: vec![1; 300],
            sender: MailboxId([7; 32]),
            sender_key: SenderKeySeed([8; 32]),
            prekeys: vec![9; 1000],
        };
        let bytes = c.encode().unwrap();
        assert_eq!(EntryContent::decode(&bytes).unwrap(), c);
        assert!(
            !format!("{c:?}").contains("8, 8"),
            "the sender key is not shown"
        );
        for cut in [0, 1, 2, 3, 302, 333, 365] {
            assert!(EntryContent::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn every_entry_is_one_size_and_bad_padding_is_refused() {
        let org = vector_key();
        let entry = |cert_len: usize, prekeys_len: usize| EntryContent {
            certificate: vec![0xc0; cert_len],
            sender: MailboxId([0x22; 32]),
            sender_key: SenderKeySeed([0x99; 32]),
            prekeys: vec![0x9e; prekeys_len],
        };
        let (small, large) = (entry(4, 3), entry(512, 2400));
        let (a, b) = (small.encode().unwrap(), large.encode().unwrap());
        assert_eq!(
            (a.len(), b.len()),
            (ENTRY_PLAINTEXT_LEN, ENTRY_PLAINTEXT_LEN)
        );
        let lookup = lookup_key(&org, "alice");
        let (sa, sb) = (
            seal(&org, &lookup, BlobKind::Entry, &a).unwrap(),
            seal(&org, &lookup, BlobKind::Entry, &b).unwrap(),
        );
        assert_eq!(sa.len(), sb.len());
        assert_eq!(EntryContent::decode(&b).unwrap(), large);
        // Prekeys that end in what looks like padding survive the round trip.
        let tricky = EntryContent {
            prekeys: vec![0x9e, 0x80, 0x00],
            ..entry(4, 0)
        };
        assert_eq!(
            EntryContent::decode(&tricky.encode().unwrap()).unwrap(),
            tricky
        );
        // Too long to pad, another size, no marker, the old unpadded version.
        assert!(entry(512, 4000).encode().is_err());
        assert!(EntryContent::decode(&a[..ENTRY_PLAINTEXT_LEN - 1]).is_err());
        let mut no_marker = a.clone();
        let marker = no_marker.iter().rposition(|b| *b == 0x80).unwrap();
        no_marker[marker] = 0;
        assert!(EntryContent::decode(&no_marker).is_err());
        for old in [1, 2] {
            let mut v = a.clone();
            v[0] = old;
            assert!(EntryContent::decode(&v).is_err());
        }
        assert!(EntryContent::decode(&[0; ENTRY_PLAINTEXT_LEN]).is_err());
    }

    #[test]
    #[ignore = "prints the vectors for protocol-spec/CLIENT.md"]
    fn print_vectors() {
        for (name, hex) in vectors() {
            println!("{name}: {hex}");
        }
    }
}
