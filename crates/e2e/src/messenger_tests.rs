//! Bad input against real vaults and real libsignal: each case is a typed error, the
//! vault is unchanged, and the session keeps working afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tempfile::TempDir;

use super::*;
use crate::plaintext::{MAX_PADDED_LEN, PAD_BLOCK, PlaintextError};
use crate::testkit::{Org, snapshot};
use crate::trust::{OrgRoster, TrustFailure};
use postern_identity::TrustError;

const DAY: Duration = Duration::from_secs(24 * 3600);

struct World {
    _tmp: TempDir,
    org: Org,
    alice: Vault,
    bob: Vault,
    carol: Vault,
    bob_dir: PathBuf,
    roster: OrgRoster,
    root: [u8; 33],
}

fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (alice, a) = org.enrol(&tmp.path().join("alice"), "alice", 1);
    let (bob, b) = org.enrol(&tmp.path().join("bob"), "bob", 2);
    let (carol, c) = org.enrol(&tmp.path().join("carol"), "carol", 3);
    let mut roster = org.roster(vec![]);
    roster.insert(a);
    roster.insert(b);
    roster.insert(c);
    let root = org.trust_root();
    let w = World {
        bob_dir: tmp.path().join("bob"),
        _tmp: tmp,
        org,
        alice,
        bob,
        carol,
        roster,
        root,
    };
    let bundle = w.bob.prekey_bundle().unwrap();
    w.m(&w.alice)
        .start_session("bob", &bundle, SystemTime::now())
        .unwrap();
    let bundle = w.carol.prekey_bundle().unwrap();
    w.m(&w.alice)
        .start_session("carol", &bundle, SystemTime::now())
        .unwrap();
    // One round trip so both sides have a working session.
    w.exchange();
    w
}

impl World {
    fn m<'a>(&'a self, v: &'a Vault) -> Messenger<'a> {
        Messenger::new(v, &self.roster, &self.root).unwrap()
    }

    fn send(&self, from: &Vault, to: &str, text: &str) -> Outgoing {
        self.m(from)
            .send(
                to,
                ContentType::Text,
                text.as_bytes(),
                DAY,
                SystemTime::now(),
            )
            .unwrap()
    }

    /// Alice -> Bob and Bob -> Alice both still work.
    fn exchange(&self) {
        let out = self.send(&self.alice, "bob", "ping");
        match self
            .m(&self.bob)
            .receive(&out.sealed, SystemTime::now())
            .unwrap()
        {
            Received::New(m) => assert_eq!(m.body, b"ping"),
            other => panic!("{other:?}"),
        }
        let out = self.send(&self.bob, "alice", "pong");
        match self
            .m(&self.alice)
            .receive(&out.sealed, SystemTime::now())
            .unwrap()
        {
            Received::New(m) => assert_eq!(m.body, b"pong"),
            other => panic!("{other:?}"),
        }
    }

    /// Runs a failing receive at Bob and checks Bob's files did not change.
    fn bob_refuses(&self, sealed: &[u8], now: SystemTime) -> E2eError {
        self.bob_refuses_with(&self.roster, sealed, now)
    }

    fn bob_refuses_with(&self, roster: &OrgRoster, sealed: &[u8], now: SystemTime) -> E2eError {
        let before = snapshot(&self.bob_dir);
        let err = Messenger::new(&self.bob, roster, &self.root)
            .unwrap()
            .receive(sealed, now)
            .unwrap_err();
        assert!(
            before == snapshot(&self.bob_dir),
            "vault changed on {err:?}"
        );
        err
    }
}

#[test]
fn tampered_envelope_is_refused_and_the_session_survives() {
    let w = world();
    let out = w.send(&w.alice, "bob", "tamper me");
    for pos in [0, 1, 20, 40, out.sealed.len() / 2, out.sealed.len() - 1] {
        let mut bad = out.sealed.clone();
        bad[pos] ^= 0x01;
        let err = w.bob_refuses(&bad, SystemTime::now());
        assert!(
            matches!(err, E2eError::Unseal | E2eError::Decrypt { .. }),
            "byte {pos}: {err:?}"
        );
    }
    // The untouched envelope still decrypts, and the session carries on.
    assert!(matches!(
        w.m(&w.bob).receive(&out.sealed, SystemTime::now()).unwrap(),
        Received::New(_)
    ));
    w.exchange();
}

#[test]
fn replayed_envelope_is_refused_and_a_resend_is_deduplicated() {
    let w = world();
    let out = w.send(&w.alice, "bob", "once");
    assert!(matches!(
        w.m(&w.bob).receive(&out.sealed, SystemTime::now()).unwrap(),
        Received::New(_)
    ));
    let err = w.bob_refuses(&out.sealed, SystemTime::now());
    assert!(
        matches!(err, E2eError::Replay { ref peer } if peer == "alice"),
        "{err:?}"
    );
    // The same message id in a new ciphertext (a resend) is recognised, not stored twice.
    let now = SystemTime::now();
    let sent = crate::unix_ms(now);
    let again = Plaintext {
        id: out.id,
        content_type: ContentType::Text,
        sent_at_ms: sent,
        expires_at_ms: sent + 60_000,
        body: b"once".to_vec(),
    };
    let resend = w.m(&w.alice).send_plaintext("bob", &again, now).unwrap();
    assert!(matches!(
        w.m(&w.bob).receive(&resend.sealed, now).unwrap(),
        Received::Duplicate { ref sender, id } if sender == "alice" && id == out.id
    ));
    let held: Vec<_> = w
        .bob
        .messages(now)
        .unwrap()
        .into_iter()
        .filter(|m| m.id == out.id)
        .collect();
    assert_eq!(held.len(), 1);
    w.exchange();
}

#[test]
fn envelope_for_another_member_is_refused() {
    let w = world();
    let for_carol = w.send(&w.alice, "carol", "for carol only");
    let err = w.bob_refuses(&for_carol.sealed, SystemTime::now());
    assert!(matches!(err, E2eError::Unseal), "{err:?}");
    assert!(matches!(
        w.m(&w.carol)
            .receive(&for_carol.sealed, SystemTime::now())
            .unwrap(),
        Received::New(_)
    ));
    w.exchange();
}

#[test]
fn identity_key_not_matching_the_member_certificate_is_refused() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    // Mallory holds a valid sender certificate for her own key, but the org certified a
    // different Signal identity key for "mallory".
    let (mallory, _real_cert) = w.org.enrol(tmp.path(), "mallory", 9);
    let other = libsignal_protocol::IdentityKeyPair::generate(&mut rand::rng());
    let mut roster = w.org.roster(vec![]);
    for (name, serial, vault) in [("alice", 1, &w.alice), ("bob", 2, &w.bob)] {
        let ik = vault.identity_key().unwrap().serialize();
        roster.insert(w.org.certificate(name, &ik, serial));
    }
    roster.insert(
        w.org
            .certificate("mallory", &other.identity_key().serialize(), 9),
    );
    let bundle = w.bob.prekey_bundle().unwrap();
    let mm = Messenger::new(&mallory, &roster, &w.root).unwrap();
    mm.start_session("bob", &bundle, SystemTime::now()).unwrap();
    let out = mm
        .send(
            "bob",
            ContentType::Text,
            b"trust me",
            DAY,
            SystemTime::now(),
        )
        .unwrap();
    let err = w.bob_refuses_with(&roster, &out.sealed, SystemTime::now());
    assert!(
        matches!(err, E2eError::IdentityMismatch { ref peer } if peer == "mallory"),
        "{err:?}"
    );
    // Starting a session from Mallory's bundle is refused the same way.
    let mallory_bundle = mallory.prekey_bundle().unwrap();
    let err = Messenger::new(&w.alice, &roster, &w.root)
        .unwrap()
        .start_session("mallory", &mallory_bundle, SystemTime::now())
        .unwrap_err();
    assert!(matches!(err, E2eError::IdentityMismatch { .. }), "{err:?}");
    w.exchange();
}

#[test]
fn expired_or_foreign_sender_certificate_is_refused() {
    let w = world();
    let ik = w.alice.identity_key().unwrap().serialize();
    let now = SystemTime::now();
    let short = w
        .org
        .sender_certificate("alice", &ik, now + Duration::from_secs(3600));
    w.alice.set_sender_certificate(&short).unwrap();
    let out = w.send(&w.alice, "bob", "soon stale");
    let err = w.bob_refuses(&out.sealed, now + Duration::from_secs(2 * 3600));
    assert!(
        matches!(err, E2eError::SenderCertificateExpired { ref peer, .. } if peer == "alice"),
        "{err:?}"
    );
    // The same envelope is fine while the certificate is valid: nothing was consumed.
    assert!(matches!(
        w.m(&w.bob).receive(&out.sealed, now).unwrap(),
        Received::New(_)
    ));
    // A certificate from another org's sealed-sender root.
    let other = Org::new();
    let foreign = other.sender_certificate("alice", &ik, now + DAY);
    w.alice.set_sender_certificate(&foreign).unwrap();
    let out = w.send(&w.alice, "bob", "wrong root");
    let err = w.bob_refuses(&out.sealed, now);
    assert!(matches!(err, E2eError::SenderCertificateInvalid), "{err:?}");
    // Our own certificate: an expired one is refused before sending.
    w.alice.set_sender_certificate(&short).unwrap();
    let err = w
        .m(&w.alice)
        .send(
            "bob",
            ContentType::Text,
            b"x",
            DAY,
            now + Duration::from_secs(2 * 3600),
        )
        .unwrap_err();
    assert!(matches!(err, E2eError::OwnSenderCertificate(_)), "{err:?}");
    let good = w.org.sender_certificate("alice", &ik, now + DAY);
    w.alice.set_sender_certificate(&good).unwrap();
    w.exchange();
}

#[test]
fn revoked_sender_and_recipient_are_refused() {
    let w = world();
    let mut revoked = w.org.roster(vec![1]); // alice's serial
    for (name, serial, vault) in [("alice", 1, &w.alice), ("bob", 2, &w.bob)] {
        let ik = vault.identity_key().unwrap().serialize();
        revoked.insert(w.org.certificate(name, &ik, serial));
    }
    let out = w.send(&w.alice, "bob", "from a revoked member");
    let err = w.bob_refuses_with(&revoked, &out.sealed, SystemTime::now());
    assert!(
        matches!(
            err,
            E2eError::Untrusted {
                ref peer,
                reason: TrustFailure::Certificate(TrustError::Revoked { serial: 1 })
            } if peer == "alice"
        ),
        "{err:?}"
    );
    // Bob, holding the new list, will not send to Alice either.
    let err = Messenger::new(&w.bob, &revoked, &w.root)
        .unwrap()
        .send("alice", ContentType::Text, b"x", DAY, SystemTime::now())
        .unwrap_err();
    assert!(matches!(err, E2eError::Untrusted { .. }), "{err:?}");
    // Under the old list the envelope is accepted: nothing was consumed by the refusal.
    assert!(matches!(
        w.m(&w.bob).receive(&out.sealed, SystemTime::now()).unwrap(),
        Received::New(_)
    ));
    w.exchange();
}

#[test]
fn truncated_or_oversized_plaintext_structure_is_refused() {
    let w = world();
    let now = SystemTime::now();
    let sent = crate::unix_ms(now);
    let good = Plaintext {
        id: MessageId::random(),
        content_type: ContentType::Text,
        sent_at_ms: sent,
        expires_at_ms: sent + 60_000,
        body: b"well formed".to_vec(),
    }
    .encode()
    .unwrap();
    let alice = w.m(&w.alice);
    let truncated = alice.seal_encoded("bob", &good[..100], now).unwrap();
    let err = w.bob_refuses(&truncated, now);
    assert!(
        matches!(
            err,
            E2eError::Plaintext(PlaintextError::Truncated { len: 100 })
        ),
        "{err:?}"
    );
    let oversized = alice
        .seal_encoded("bob", &vec![0u8; MAX_PADDED_LEN + PAD_BLOCK], now)
        .unwrap();
    let err = w.bob_refuses(&oversized, now);
    assert!(
        matches!(err, E2eError::Plaintext(PlaintextError::Oversized { .. })),
        "{err:?}"
    );
    let mut bad_padding = good.clone();
    let last = bad_padding.len() - 1;
    bad_padding[last] = 7;
    let sealed = alice.seal_encoded("bob", &bad_padding, now).unwrap();
    assert!(matches!(
        w.bob_refuses(&sealed, now),
        E2eError::Plaintext(PlaintextError::BadPadding)
    ));
    w.exchange();
}

#[test]
fn expired_messages_are_never_returned_and_are_purged() {
    let w = world();
    let now = SystemTime::now();
    let short = w
        .m(&w.alice)
        .send(
            "bob",
            ContentType::Text,
            b"short lived",
            Duration::from_secs(60),
            now,
        )
        .unwrap();
    let long = w.send(&w.alice, "bob", "long lived");
    let bob = w.m(&w.bob);
    assert!(matches!(
        bob.receive(&short.sealed, now).unwrap(),
        Received::New(_)
    ));
    assert!(matches!(
        bob.receive(&long.sealed, now).unwrap(),
        Received::New(_)
    ));
    let later = now + Duration::from_secs(120);
    let ids: Vec<_> = w
        .bob
        .messages(later)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert!(!ids.contains(&short.id) && ids.contains(&long.id));
    assert_eq!(w.bob.purge_expired(later).unwrap(), 1);
    assert_eq!(w.bob.purge_expired(later).unwrap(), 0);
    // A message already expired on arrival is not stored.
    let stale = w
        .m(&w.alice)
        .send(
            "bob",
            ContentType::Text,
            b"stale",
            Duration::from_secs(1),
            now,
        )
        .unwrap();
    assert!(matches!(
        bob.receive(&stale.sealed, now + Duration::from_secs(5))
            .unwrap(),
        Received::Expired { .. }
    ));
    assert!(
        w.bob
            .messages(now)
            .unwrap()
            .iter()
            .all(|m| m.id != stale.id)
    );
}

#[test]
fn safety_numbers_agree_on_both_sides() {
    let w = world();
    let a = w.m(&w.alice).safety_number("bob").unwrap();
    let b = w.m(&w.bob).safety_number("alice").unwrap();
    assert_eq!(a.digits, b.digits);
    assert_eq!(a.digits.len(), 60);
    assert!(a.matches_scanned(&b.scannable).unwrap());
    let c = w.m(&w.alice).safety_number("carol").unwrap();
    assert_ne!(a.digits, c.digits);
    assert!(!a.matches_scanned(&c.scannable).unwrap_or(false));
}

#[test]
fn prekeys_rotate_with_a_grace_period_and_one_time_keys_are_used_once() {
    let w = world();
    let policy = crate::keys::PreKeyPolicy::default();
    let now = SystemTime::now();
    assert!(w.bob.rotate_prekeys_if_due(now, &policy).unwrap().is_none());
    let stale_bundle = w.bob.prekey_bundle().unwrap();
    let (ec, ky) = w.bob.one_time_prekey_counts().unwrap();
    let rotated_at = now + Duration::from_secs(8 * 24 * 3600);
    let fresh = w
        .bob
        .rotate_prekeys_if_due(rotated_at, &policy)
        .unwrap()
        .unwrap();
    let old = crate::decode_bundle(&stale_bundle).unwrap();
    assert_ne!(fresh.signed.id, old.signed_pre_key_id().unwrap());
    // Within the grace period a PreKey message made from the old bundle still decrypts
    // and uses up its one-time keys.
    w.m(&w.carol)
        .start_session("bob", &stale_bundle, now)
        .unwrap();
    let out = w.send(&w.carol, "bob", "made from the old bundle");
    assert!(matches!(
        w.m(&w.bob).receive(&out.sealed, SystemTime::now()).unwrap(),
        Received::New(_)
    ));
    assert_eq!(w.bob.one_time_prekey_counts().unwrap(), (ec - 1, ky - 1));
    // After the grace period the old keys are gone.
    let after = rotated_at + policy.grace + Duration::from_secs(1);
    assert!(
        w.bob
            .rotate_prekeys_if_due(after, &policy)
            .unwrap()
            .is_some()
    );
    let tmp = tempfile::tempdir().unwrap();
    let (dave, d) = w.org.enrol(tmp.path(), "dave", 4);
    let mut roster = w.org.roster(vec![]);
    let ik = w.bob.identity_key().unwrap().serialize();
    roster.insert(w.org.certificate("bob", &ik, 2));
    roster.insert(d);
    let dm = Messenger::new(&dave, &roster, &w.root).unwrap();
    dm.start_session("bob", &stale_bundle, now).unwrap();
    let out = dm
        .send("bob", ContentType::Text, b"too late", DAY, now)
        .unwrap();
    let err = w.bob_refuses_with(&roster, &out.sealed, SystemTime::now());
    assert!(matches!(err, E2eError::Decrypt { .. }), "{err:?}");
    // Replenishment tops up to the target when the relay runs low.
    let batch = w
        .bob
        .replenish_one_time_prekeys(5, &policy)
        .unwrap()
        .unwrap();
    assert_eq!(batch.keys.len(), policy.target - 5);
    assert!(
        w.bob
            .replenish_one_time_prekeys(50, &policy)
            .unwrap()
            .is_none()
    );
}

#[test]
fn largest_plaintext_as_a_prekey_message_fits_the_largest_envelope_bucket() {
    let w = world();
    // A fresh session Carol -> Bob: her first messages are PreKey messages (the largest).
    w.m(&w.carol)
        .start_session("bob", &w.bob.prekey_bundle().unwrap(), SystemTime::now())
        .unwrap();
    let body = vec![0x5a; crate::plaintext::MAX_BODY_LEN];
    let out = w
        .m(&w.carol)
        .send("bob", ContentType::Text, &body, DAY, SystemTime::now())
        .unwrap();
    // SPEC.md: the body is padded with at least one byte into a bucket of 64 KiB at most.
    assert!(out.sealed.len() < 64 * 1024, "{}", out.sealed.len());
    match w.m(&w.bob).receive(&out.sealed, SystemTime::now()).unwrap() {
        Received::New(m) => assert_eq!(m.body, body),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sessions_start_from_directory_parts_with_or_without_a_one_time_prekey() {
    let w = world();
    let published = crate::encode_public_prekeys(&w.bob.public_prekeys().unwrap()).unwrap();
    let batch = w.bob.generate_one_time_prekeys(1).unwrap();
    let one = crate::encode_one_time_prekey(&batch.keys[0]).unwrap();
    let public = crate::decode_public_prekeys(&published).unwrap();
    // Carol gets the one-time unit; Alice (re-keying) finds the directory empty.
    let with = crate::assemble_bundle(&public, Some(&crate::decode_one_time_prekey(&one).unwrap()))
        .unwrap();
    let without = crate::assemble_bundle(&public, None).unwrap();
    for (from, bundle) in [(&w.carol, with), (&w.alice, without)] {
        let bytes = crate::encode_bundle(&bundle).unwrap();
        w.m(from)
            .start_session("bob", &bytes, SystemTime::now())
            .unwrap();
        let out = w.send(from, "bob", "via the directory");
        assert!(matches!(
            w.m(&w.bob).receive(&out.sealed, SystemTime::now()).unwrap(),
            Received::New(_)
        ));
    }
    // Every one-time unit handed out has been used up and deleted.
    assert_eq!(w.bob.one_time_prekey_counts().unwrap(), (0, 0));
}

#[test]
fn the_trust_root_can_come_from_the_signed_org_descriptor() {
    let w = world();
    let body = postern_identity::OrgDescriptorBody {
        org: w.org.root.org_key(),
        version: 1,
        relays: postern_identity::BoundedVec::new(vec![]).unwrap(),
        sealed_sender_trust_root: postern_identity::SignalPublicKey::from_bytes(&w.root).unwrap(),
        policy: postern_identity::Policy::default(),
    };
    let descriptor = w.org.root.sign_descriptor(body).unwrap();
    let bob = Messenger::for_org(&w.bob, &w.roster, &descriptor).unwrap();
    let out = w.send(&w.alice, "bob", "rooted in the descriptor");
    assert!(matches!(
        bob.receive(&out.sealed, SystemTime::now()).unwrap(),
        Received::New(_)
    ));
}

#[test]
fn a_sender_cannot_make_a_message_outlive_the_receivers_limit() {
    let w = world();
    let now = SystemTime::now();
    let now_ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // A hostile (or mistaken) sender asks for forever.
    let forever = w
        .m(&w.alice)
        .send(
            "bob",
            ContentType::Text,
            b"keep me",
            Duration::from_secs(u64::MAX / 2000),
            now,
        )
        .unwrap();
    let bob = w.m(&w.bob).with_max_ttl(Duration::from_secs(3600));
    let Received::New(m) = bob.receive(&forever.sealed, now).unwrap() else {
        panic!("not received");
    };
    assert_eq!(
        m.expires_at_ms,
        now_ms + 3_600_000,
        "clamped to receipt + the limit"
    );
    // What is stored is the clamped expiry: gone after the limit.
    let after = now + Duration::from_secs(3601);
    assert!(w.bob.messages(after).unwrap().iter().all(|s| s.id != m.id));
    assert_eq!(w.bob.purge_expired(after).unwrap(), 1);
    // A shorter expiry than the limit is kept as the sender wrote it.
    let short = w
        .m(&w.alice)
        .send(
            "bob",
            ContentType::Text,
            b"brief",
            Duration::from_secs(60),
            now,
        )
        .unwrap();
    let Received::New(m) = bob.receive(&short.sealed, now).unwrap() else {
        panic!("not received");
    };
    assert_eq!(m.expires_at_ms, now_ms + 60_000);
}
