//! The member library against a real relay on loopback, real vault files and a real org
//! (built with the postern-identity APIs): enrollment, messages both ways, and the
//! refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use postern::directory::{self, BlobKind, EntryContent};
use postern::member::{Member, MemberError, SendPath};
use postern::org::Issuer;
use postern_e2e::KdfParams;
use postern_e2e::sender_certificate::{SealedSenderKeys, generate_sealed_sender_keys};
use postern_identity::descriptor::OrgDescriptorBody;
use postern_identity::encoding::BoundedVec;
use postern_identity::*;
use postern_protocol::bytes::Bytes;
use postern_protocol::message::{PublishPrekeys, PutRevocationList, Request, Response};
use postern_relay::relay;
use postern_relay::testing::TestRelay;
use postern_transport::{DeviceSigner, RelayConnection};

const PASS: &[u8] = b"correct horse battery staple";

fn now() -> u64 {
    postern::member::unix_now()
}

/// An org made directly with the trust APIs, as `postern org` would.
struct TestOrg {
    root: OrgRoot,
    sealed_sender: SealedSenderKeys,
    directory_key: DirectoryKey,
    descriptor: OrgDescriptor,
    revocations: RevocationList,
}

impl TestOrg {
    fn new(relay: RelayAddress) -> Self {
        let root = OrgRoot::generate();
        let sealed_sender = generate_sealed_sender_keys().unwrap();
        let org = root.org_key();
        let descriptor = root
            .sign_descriptor(OrgDescriptorBody {
                org,
                version: 1,
                relays: BoundedVec::new(vec![relay]).unwrap(),
                sealed_sender_trust_root: SignalPublicKey::from_bytes(
                    &sealed_sender.trust_root_public,
                )
                .unwrap(),
                policy: Policy::default(),
            })
            .unwrap();
        let revocations = root
            .sign_revocations(RevocationListBody::new(org, 1, vec![]).unwrap())
            .unwrap();
        Self {
            root,
            sealed_sender,
            directory_key: DirectoryKey::generate(),
            descriptor,
            revocations,
        }
    }

    /// Answers a request with a sealed bundle (a courier for a day, as `org enroll`
    /// issues it); returns it and the certificate's serial.
    fn enroll(&self, request: &EnrollmentRequest) -> (Vec<u8>, u64) {
        let serial = rand::random::<u64>() | 1;
        let issuer = Issuer {
            root: &self.root,
            sealed_sender: &self.sealed_sender,
            directory_key: &self.directory_key,
            descriptor: &self.descriptor,
            revocations: &self.revocations,
        };
        let issued = issuer
            .issue_bundle(request, Role::Courier, 1, serial, now())
            .unwrap();
        (issued.sealed_bundle, serial)
    }

    fn revoke(&mut self, serials: Vec<u64>) -> RevocationList {
        let next = self.revocations.version() + 1;
        let mut all = self.revocations.body().revoked.as_slice().to_vec();
        all.extend(serials);
        self.revocations = self
            .root
            .sign_revocations(RevocationListBody::new(self.root.org_key(), next, all).unwrap())
            .unwrap();
        self.revocations.clone()
    }
}

struct World {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    org: TestOrg,
    relay: relay::Running,
    relay_address: RelayAddress,
    _relay_dir: TestRelay,
}

async fn world() -> World {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // The org key must exist before the relay, and the descriptor needs the relay's
    // address: make the root first, then re-sign the descriptor.
    let placeholder = RelayAddress::new([0; 32], "127.0.0.1", 1).unwrap();
    let mut org = TestOrg::new(placeholder);
    let relay_dir = TestRelay::new(&org.root.org_key().to_string(), |_| {});
    let running = relay_dir.start().await;
    let address = running.address.clone();
    org = TestOrg::new_with_root(org, address.clone());
    World {
        _tmp: tmp,
        dir,
        org,
        relay_address: address,
        relay: running,
        _relay_dir: relay_dir,
    }
}

impl TestOrg {
    fn new_with_root(old: TestOrg, relay: RelayAddress) -> Self {
        let org = old.root.org_key();
        let descriptor = old
            .root
            .sign_descriptor(OrgDescriptorBody {
                org,
                version: 2,
                relays: BoundedVec::new(vec![relay]).unwrap(),
                sealed_sender_trust_root: old.descriptor.body().sealed_sender_trust_root,
                policy: Policy::default(),
            })
            .unwrap();
        Self { descriptor, ..old }
    }
}

async fn enrolled(w: &World, handle: &str) -> (Member, u64) {
    let home = w.dir.join(handle);
    let (mut m, request) =
        Member::init(&home, handle, PASS, KdfParams::insecure_for_tests()).unwrap();
    let (bundle, serial) = w.org.enroll(&request);
    let report = m.enroll(&bundle, None, &|_| {}).await.unwrap();
    assert_eq!(report.handle, handle);
    assert_eq!(report.one_time_prekeys, 100);
    (m, serial)
}

fn texts(m: &Member) -> Vec<(String, String)> {
    m.messages()
        .unwrap()
        .iter()
        .map(|m| (m.sender.clone(), String::from_utf8(m.body.clone()).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_enroll_and_exchange_messages_both_ways() {
    let w = world().await;
    let (alice, _) = enrolled(&w, "alice").await;
    let (bob, _) = enrolled(&w, "bob").await;

    let one_time_held = || w.relay.store().counts().unwrap().one_time_prekeys;

    let a = alice.connect().await.unwrap();
    let before = one_time_held();
    let r = alice
        .send_text(&a, "bob", "parcel at dawn", None)
        .await
        .unwrap();
    assert!(r.new_session);
    // Starting the session took one of bob's one-time prekeys.
    assert_eq!(one_time_held(), before - 1);
    let r2 = alice
        .send_text(&a, "bob", "second", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(!r2.new_session);

    // Bob has never heard of alice: he learns her from the directory and verifies her.
    let b = bob.connect().await.unwrap();
    assert_eq!(b.pending, 2);
    let report = bob.fetch(&b).await.unwrap();
    assert_eq!(report.new.len(), 2);
    assert_eq!(report.undecryptable, 0);
    assert_eq!(
        texts(&bob),
        vec![
            ("alice".into(), "parcel at dawn".into()),
            ("alice".into(), "second".into())
        ]
    );
    // Acknowledged: nothing is fetched twice.
    assert!(bob.fetch(&b).await.unwrap().new.is_empty());

    bob.send_text(&b, "alice", "received, thanks", None)
        .await
        .unwrap();
    // Learning who alice is, and answering in the session she started, took none of
    // her one-time prekeys (they are only for starting sessions).
    assert_eq!(one_time_held(), before - 1);
    let report = alice.fetch(&a).await.unwrap();
    assert_eq!(report.new.len(), 1);
    assert_eq!(
        texts(&alice),
        vec![("bob".into(), "received, thanks".into())]
    );

    // Both see the same safety number; both know each other.
    let sa = alice.safety_number("bob").await.unwrap();
    let sb = bob.safety_number("alice").await.unwrap();
    assert_eq!(sa.digits, sb.digits);
    assert_eq!(sa.digits.len(), 60);
    let contacts = alice.contacts().await.unwrap();
    assert_eq!(contacts.len(), 1);
    assert_eq!(contacts[0].handle, "bob");
    assert!(contacts[0].session);
    assert_eq!(contacts[0].status, "active");

    // Messages survive closing and reopening the vault.
    let bob_home = bob.home().to_owned();
    b.close().await;
    drop(bob);
    let bob = Member::open(&bob_home, PASS).unwrap();
    assert_eq!(texts(&bob).len(), 2);

    a.close().await;
    w.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_disappear_from_the_vault() {
    let w = world().await;
    let (alice, _) = enrolled(&w, "alice").await;
    let (bob, _) = enrolled(&w, "bob").await;
    let a = alice.connect().await.unwrap();
    let short = alice
        .send_text(&a, "bob", "short-lived", Some(Duration::from_secs(2)))
        .await
        .unwrap();
    let long = alice
        .send_text(&a, "bob", "long-lived", None)
        .await
        .unwrap();
    // At the relay both look alike: one TTL (the org's maximum) for every envelope,
    // the message's own expiry only inside the encryption.
    assert_eq!(short.relay_expires_at, long.relay_expires_at);
    let max = Policy::default().max_ttl_secs;
    assert!(short.relay_expires_at >= now() + max - 60, "{short:?}");
    assert!(short.expires_at_ms / 1000 <= now() + 2);
    let b = bob.connect().await.unwrap();
    assert_eq!(bob.fetch(&b).await.unwrap().new.len(), 2);
    assert_eq!(texts(&bob).len(), 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        texts(&bob),
        vec![("alice".to_owned(), "long-lived".to_owned())],
        "an expired message is never listed"
    );
    let home = bob.home().to_owned();
    b.close().await;
    drop(bob);
    // Reopening purges it from the file too (purge_expired on open).
    let bob = Member::open(&home, PASS).unwrap();
    assert_eq!(bob.messages().unwrap().len(), 1);
    a.close().await;
    w.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_refused_with_their_cause() {
    let mut w = world().await;
    let (alice, _) = enrolled(&w, "alice").await;
    let (bob, bob_serial) = enrolled(&w, "bob").await;
    let a = alice.connect().await.unwrap();

    // Unknown handle.
    let e = alice.send_text(&a, "nobody", "hi", None).await.unwrap_err();
    assert!(
        matches!(e, MemberError::UnknownHandle(ref h) if h == "nobody"),
        "{e}"
    );
    assert_eq!(postern::cli::exit::Classify::exit_class(&e).code(), 4);

    // TTL above the org's maximum (7 days by default).
    let e = alice
        .send_text(&a, "bob", "hi", Some(Duration::from_secs(8 * 86_400)))
        .await
        .unwrap_err();
    assert!(matches!(e, MemberError::TtlTooLong { .. }), "{e}");
    assert!(e.to_string().contains("7days"), "{e}");

    // Sending to oneself.
    assert!(matches!(
        alice.send_text(&a, "alice", "hi", None).await,
        Err(MemberError::SelfSend)
    ));

    // Wrong passphrase: refused, and the vault still opens with the right one.
    let home = w.dir.join("carol");
    let (carol, _) = Member::init(&home, "carol", PASS, KdfParams::insecure_for_tests()).unwrap();
    drop(carol);
    let e = Member::open(&home, b"wrong passphrase!").unwrap_err();
    assert!(matches!(e, MemberError::WrongPassphrase(_)), "{e}");
    assert_eq!(postern::cli::exit::Classify::exit_class(&e).code(), 3);
    let mut carol = Member::open(&home, PASS).unwrap();

    // A tampered bundle, and a bundle made for another device's request.
    let request = carol.enrollment_request().unwrap();
    let (mut bundle, _) = w.org.enroll(&request);
    let n = bundle.len() - 5;
    bundle[n] ^= 0x01;
    let e = carol.enroll(&bundle, None, &|_| {}).await.unwrap_err();
    assert!(matches!(e, MemberError::BadBundle(_)), "{e}");
    let (_, other_request) = {
        let tmp = w.dir.join("dave");
        Member::init(&tmp, "dave", PASS, KdfParams::insecure_for_tests()).unwrap()
    };
    let (not_ours, _) = w.org.enroll(&other_request);
    let e = carol.enroll(&not_ours, None, &|_| {}).await.unwrap_err();
    assert!(matches!(e, MemberError::BadBundle(_)), "{e}");
    // The genuine bundle, but from an org other than the one expected.
    let (good, _) = w.org.enroll(&request);
    let e = carol
        .enroll(&good, Some(OrgRoot::generate().org_key()), &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, MemberError::WrongOrg { .. }), "{e}");
    assert!(!carol.is_enrolled());
    carol.enroll(&good, None, &|_| {}).await.unwrap();
    assert!(carol.is_enrolled());

    // Tampered directory entries, published by a member with a valid certificate (the
    // relay only binds an entry to the device that first published it): one claims a
    // handle its certificate does not name, one is bit-flipped garbage.
    let mallory_device = DeviceKeyPair::generate();
    let mallory_cert = w
        .org
        .root
        .issue_member_certificate(
            Handle::new("mallory").unwrap(),
            Role::Courier,
            carol.certificate().unwrap().body().signal_identity_key,
            mallory_device.public_key(),
            now() - 60,
            now() + 3600,
            77,
        )
        .unwrap();
    struct Raw(Vec<u8>, DeviceKeyPair);
    impl DeviceSigner for Raw {
        fn certificate(&self) -> Vec<u8> {
            self.0.clone()
        }
        fn sign(&self, c: &[u8], m: &[u8]) -> [u8; 64] {
            self.1.sign(c, m)
        }
    }
    let mallory = Raw(mallory_cert.encode(), mallory_device);
    let mut raw = RelayConnection::connect(&w.relay_address).await.unwrap();
    raw.authenticate(&mallory).await.unwrap();
    let bob_prekeys = {
        // A genuine entry's prekeys, lifted from the directory.
        let (entry, _) = alice
            .lookup(a.anonymous().await.unwrap(), "bob", false)
            .await
            .unwrap();
        postern_e2e::encode_public_prekeys(&entry.prekeys).unwrap()
    };
    let forged = EntryContent {
        certificate: mallory_cert.encode(),
        sender: postern_protocol::ids::MailboxId([9; 32]),
        sender_key: directory::SenderKeySeed([9; 32]),
        prekeys: bob_prekeys,
    }
    .encode()
    .unwrap();
    let publish = |handle: &str, entry: Vec<u8>| {
        Request::PublishPrekeys(PublishPrekeys {
            directory: directory::lookup_key(&w.org.directory_key, handle),
            entry: Bytes::new(entry).unwrap(),
            one_time: Default::default(),
        })
    };
    let lookup = directory::lookup_key(&w.org.directory_key, "erin");
    let sealed = directory::seal(&w.org.directory_key, &lookup, BlobKind::Entry, &forged).unwrap();
    assert!(matches!(
        raw.request(&publish("erin", sealed.clone())).await.unwrap(),
        Response::PrekeysPublished(_)
    ));
    let e = alice.send_text(&a, "erin", "hi", None).await.unwrap_err();
    assert!(
        matches!(e, MemberError::BadDirectoryEntry { ref handle, .. } if handle == "erin"),
        "{e}"
    );
    assert!(e.to_string().contains("mallory"), "{e}");
    let mut flipped = sealed;
    flipped[40] ^= 0x80;
    raw.request(&publish("frank", flipped)).await.unwrap();
    let e = alice.send_text(&a, "frank", "hi", None).await.unwrap_err();
    assert!(
        matches!(
            e,
            MemberError::BadDirectoryEntry {
                source: directory::DirectoryError::Tampered,
                ..
            }
        ),
        "{e}"
    );
    raw.close().await;

    // Revocation: bob is revoked; the new list reaches the relay and, on their next
    // connect, alice. Alice refuses to send to bob, and bob is no longer admitted.
    alice.send_text(&a, "bob", "before", None).await.unwrap();
    let list = w.org.revoke(vec![bob_serial]);
    let admin = RelayConnection::connect(&w.relay_address).await.unwrap();
    admin
        .request(&Request::PutRevocationList(PutRevocationList {
            list: Bytes::new(list.encode()).unwrap(),
        }))
        .await
        .unwrap();
    admin.close().await;
    a.close().await;
    let a = alice.connect().await.unwrap();
    assert_eq!(a.revocation_version, 2);
    let e = alice.send_text(&a, "bob", "after", None).await.unwrap_err();
    assert!(
        matches!(e, MemberError::PeerRevoked(ref h) if h == "bob"),
        "{e}"
    );
    let e = bob.connect().await.unwrap_err();
    assert!(matches!(e, MemberError::SelfRevoked), "{e}");
    let contacts = alice.contacts().await.unwrap();
    let bob_row = contacts.iter().find(|c| c.handle == "bob").unwrap();
    assert_eq!(bob_row.status, "revoked");
    a.close().await;
    w.relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_a_revoked_member_are_dropped_and_garbage_is_counted() {
    let mut w = world().await;
    let (alice, _) = enrolled(&w, "alice").await;
    let (bob, bob_serial) = enrolled(&w, "bob").await;
    let b = bob.connect().await.unwrap();
    bob.send_text(&b, "alice", "sent before revocation", None)
        .await
        .unwrap();
    // Garbage in alice's mailbox: a padded random body sent to her sender id.
    let anonymous = b.anonymous().await.unwrap();
    let (entry, _) = bob.lookup(anonymous, "alice", false).await.unwrap();
    let junk = postern_protocol::padding::pad(&[0x11; 300]).unwrap();
    anonymous
        .send(
            entry.sender,
            600,
            Bytes::new(junk).unwrap(),
            &entry.sender_key.key_pair(),
        )
        .await
        .unwrap();
    b.close().await;

    let list = w.org.revoke(vec![bob_serial]);
    let admin = RelayConnection::connect(&w.relay_address).await.unwrap();
    admin
        .request(&Request::PutRevocationList(PutRevocationList {
            list: Bytes::new(list.encode()).unwrap(),
        }))
        .await
        .unwrap();
    let a = alice.connect().await.unwrap();
    let report = alice.fetch(&a).await.unwrap();
    assert!(report.new.is_empty());
    assert_eq!(report.refused, vec!["bob".to_owned()]);
    assert_eq!(report.undecryptable, 1);
    assert!(alice.messages().unwrap().is_empty());
    // Everything was acknowledged: the mailbox is empty.
    a.close().await;
    let a = alice.connect().await.unwrap();
    assert_eq!(a.pending, 0);
    a.close().await;
    w.relay.shutdown().await;
}

#[test]
fn wipe_destroys_the_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("m");
    let (m, _) = Member::init(&home, "alice", PASS, KdfParams::insecure_for_tests()).unwrap();
    drop(m);
    let report = postern::member::wipe(&home).unwrap();
    assert!(report.files >= 2 && report.bytes > 0);
    assert!(!home.exists());
    assert!(matches!(
        Member::open(&home, PASS),
        Err(MemberError::NoAccount(_))
    ));
    assert!(matches!(
        postern::member::wipe(Path::new(&home)),
        Err(MemberError::NoAccount(_))
    ));
}
