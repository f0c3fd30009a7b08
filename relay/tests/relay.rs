//! The relay over real QUIC on 127.0.0.1 with real redb files: admission, owner and
//! anonymous connections, signed sends, mailboxes, directory, revocation, limits and
//! hostile frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use postern_identity::Role;
use postern_protocol::ErrorCode;
use postern_protocol::auth::SEND_CONTEXT;
use postern_protocol::bytes::{BoundedVec, Bytes, FixedBytes};
use postern_protocol::frame::encode_frame;
use postern_protocol::ids::{EnvelopeId, HandleTag};
use postern_protocol::message::*;
use postern_protocol::padding::pad;
use postern_transport::{RelayConnection, TransportError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_pin_differs_refuses_the_relay() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let mut wrong = pin(&data);
    wrong[0] ^= 1;
    let err = RelayConnection::connect_addr(relay.local_addr, wrong)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Connect(_)), "{err:?}");
    // The right pin connects.
    RelayConnection::connect_addr(relay.local_addr, pin(&data))
        .await
        .unwrap();
    relay.shutdown().await;
}

/// Every owner-only request, for a mailbox `mb` (none of them may be served to a
/// connection that was not admitted).
fn owner_only_requests(mb: postern_protocol::MailboxId) -> Vec<Request> {
    vec![
        Request::Subscribe,
        Request::Fetch(Fetch { limit: 1 }),
        Request::Ack(Ack {
            ids: BoundedVec::new(vec![EnvelopeId([1; 32])]).unwrap(),
        }),
        Request::CreateMailbox(CreateMailbox {
            recipient: mb,
            sender: mb,
            owner: FixedBytes([0; 32]),
            sender_key: FixedBytes([0; 32]),
        }),
        Request::OpenMailbox(OpenMailbox {
            recipient: mb,
            signature: FixedBytes([0; 64]),
        }),
        Request::PublishPrekeys(PublishPrekeys {
            directory: HandleTag([1; 32]),
            entry: Bytes::try_from(&b"entry"[..]).unwrap(),
            one_time: BoundedVec::empty(),
        }),
        Request::SetSenderKey(SetSenderKey {
            sender_key: FixedBytes([0; 32]),
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_served_before_admission() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    // An owner makes a mailbox and a directory entry with one one-time prekey.
    let owner = admitted(relay.local_addr, p, &org.member("owner")).await;
    let mb = create_mailbox(&owner).await;
    let dir = HandleTag([0x33; 32]);
    owner
        .request(&Request::PublishPrekeys(PublishPrekeys {
            directory: dir,
            entry: Bytes::try_from(&b"the-entry"[..]).unwrap(),
            one_time: BoundedVec::new(vec![Bytes::try_from(&b"otk"[..]).unwrap()]).unwrap(),
        }))
        .await
        .unwrap();

    let c = anonymous(relay.local_addr, p).await;
    for req in owner_only_requests(mb.recipient) {
        assert_eq!(
            refused(c.request(&req).await),
            ErrorCode::Unauthorized,
            "{req:?}"
        );
    }
    // Allowed before admission: ping and the revocation list.
    assert!(matches!(
        c.request(&Request::Ping(Ping { nonce: 7 })).await.unwrap(),
        Response::Pong(Ping { nonce: 7 })
    ));
    assert!(matches!(
        c.request(&Request::GetRevocationList).await.unwrap(),
        Response::RevocationList(_)
    ));

    // Sends and look-ups need no admission, only their own authorisation: a signature
    // by the mailbox's sender key, and an entry that exists.
    let stranger = postern_identity::DeviceKeyPair::generate();
    assert_eq!(
        refused(send(&c, mb.sender, &stranger, 60, b"x").await),
        ErrorCode::BadSignature
    );
    assert_eq!(
        refused(
            send(
                &c,
                postern_protocol::MailboxId([3; 32]),
                &mb.sender_key,
                60,
                b"x"
            )
            .await
        ),
        ErrorCode::NotFound
    );
    assert_eq!(stored(&relay), 0);
    for unknown in [
        Request::FetchPrekeys(FetchPrekeys {
            directory: HandleTag([1; 32]),
        }),
        Request::FetchEntry(FetchEntry {
            directory: HandleTag([1; 32]),
        }),
    ] {
        assert_eq!(refused(c.request(&unknown).await), ErrorCode::NotFound);
    }
    sent(mb.send(&c, 60, b"signed").await);
    assert_eq!(stored(&relay), 1);
    let Response::Prekeys(pk) = c
        .request(&Request::FetchEntry(FetchEntry { directory: dir }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (pk.entry.as_slice(), pk.one_time),
        (&b"the-entry"[..], None)
    );
    let Response::Prekeys(pk) = c
        .request(&Request::FetchPrekeys(FetchPrekeys { directory: dir }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(pk.entry.as_slice(), b"the-entry");
    assert_eq!(pk.one_time.unwrap().as_slice(), b"otk");
    // Having sent, the connection is anonymous: still nothing of an owner's.
    for req in owner_only_requests(mb.recipient) {
        assert_eq!(
            refused(c.request(&req).await),
            ErrorCode::Unauthorized,
            "{req:?}"
        );
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificates_are_refused_with_typed_errors_while_others_carry_on() {
    let org = Org::new();
    let other_org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let good = org.member("good-courier");
    let mut conn = admitted(relay.local_addr, p, &good).await;
    let mb = create_mailbox(&conn).await;
    let sender = anonymous(relay.local_addr, p).await;

    let t = now();
    let revoked = org.member("revoked-one");
    let list = org.revocations(1, vec![revoked.serial]);
    conn.request(&Request::PutRevocationList(PutRevocationList {
        list: Bytes::new(list.encode()).unwrap(),
    }))
    .await
    .unwrap();

    let cases = [
        (other_org.member("stranger"), ErrorCode::WrongOrg),
        (
            org.member_valid("old", Role::Courier, t - 1000, t - 1),
            ErrorCode::Expired,
        ),
        (
            org.member_valid("future", Role::Courier, t + 1000, t + 2000),
            ErrorCode::NotYetValid,
        ),
        (revoked, ErrorCode::Revoked),
    ];
    for (m, code) in &cases {
        let mut c = RelayConnection::connect_addr(relay.local_addr, p)
            .await
            .unwrap();
        match c.authenticate(m).await {
            Err(TransportError::Refused(got)) => assert_eq!(got, *code, "{}", m.handle),
            other => panic!("{}: {other:?}", m.handle),
        }
        // Still not admitted after the failure.
        assert_eq!(
            refused(c.request(&Request::Fetch(Fetch { limit: 1 })).await),
            ErrorCode::Unauthorized
        );
        match c.open_mailbox(mb.recipient, &mb.owner).await {
            Err(TransportError::Refused(ErrorCode::Unauthorized)) => {}
            other => panic!("{}: {other:?}", m.handle),
        }
    }
    // A tampered certificate byte is refused.
    let mut tampered = org.member("tamper");
    let n = tampered.cert.len();
    tampered.cert[n / 2] ^= 0x01;
    let mut c = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
    assert!(matches!(
        c.authenticate(&tampered).await,
        Err(TransportError::Refused(
            ErrorCode::BadSignature | ErrorCode::Malformed
        ))
    ));
    // The good clients were never disturbed.
    let s = sent(mb.send(&sender, 60, b"still fine").await);
    conn.open_mailbox(mb.recipient, &mb.owner).await.unwrap();
    let e = fetched(&conn, 10).await;
    assert_eq!(e.envelopes.len(), 1);
    assert_eq!(e.envelopes.as_slice()[0].id, s.id);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentication_signature_replayed_from_another_connection_is_refused() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let m = org.member("alice");
    let first = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
    // The signature a member made for the first connection ...
    let sig = m.device.sign(
        postern_protocol::auth::AUTHENTICATE_CONTEXT,
        &first.binding(),
    );
    let auth = Request::Authenticate(Authenticate {
        certificate: Bytes::new(m.cert.clone()).unwrap(),
        signature: FixedBytes(sig),
    });
    // ... is worthless on a second one (different exporter and challenge).
    let second = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
    assert_eq!(
        refused(second.request(&auth).await),
        ErrorCode::BadSignature
    );
    // On its own connection it works.
    assert!(matches!(
        first.request(&auth).await.unwrap(),
        Response::Authenticated(_)
    ));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admissions_are_rate_limited_per_address() {
    let org = Org::new();
    let other = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.limits.auth_failures_per_minute = 3);
    let relay = start(&data).await;
    let p = pin(&data);
    let stranger = other.member("stranger");
    let mut codes = Vec::new();
    for _ in 0..5 {
        let mut c = RelayConnection::connect_addr(relay.local_addr, p)
            .await
            .unwrap();
        codes.push(match c.authenticate(&stranger).await {
            Err(TransportError::Refused(code)) => code,
            other => panic!("{other:?}"),
        });
    }
    assert_eq!(&codes[..3], &[ErrorCode::WrongOrg; 3]);
    assert_eq!(&codes[3..], &[ErrorCode::RateLimited; 2]);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_push_fetch_ack_and_nothing_after_ack() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let bob = org.member("bob");
    let mut b = admitted(relay.local_addr, p, &bob).await;
    let mb = create_mailbox(&b).await;
    assert_eq!(b.open_mailbox(mb.recipient, &mb.owner).await.unwrap(), 0);
    let mut pushes = b.subscribe().await.unwrap();

    let a = anonymous(relay.local_addr, p).await;
    let sent = sent(mb.send(&a, 3600, b"hello bob").await);
    assert!(sent.expires_at > now() && sent.expires_at.is_multiple_of(3600));
    // Pushed at once.
    let push = tokio::time::timeout(Duration::from_secs(5), pushes.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let Push::Envelope(env) = push else {
        panic!("{push:?}")
    };
    assert_eq!(env.id, sent.id);
    assert_eq!(
        postern_protocol::padding::unpad(env.body.as_slice()).unwrap(),
        b"hello bob"
    );
    // And fetchable until acknowledged.
    let e = fetched(&b, 10).await;
    assert_eq!(e.envelopes.len(), 1);
    assert!(!e.more);
    let Response::Acked(acked) = b
        .request(&Request::Ack(Ack {
            ids: BoundedVec::new(vec![sent.id, EnvelopeId([9; 32])]).unwrap(),
        }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(acked.deleted, 1);
    let e = fetched(&b, 10).await;
    assert!(e.envelopes.is_empty());
    // Unknown destination.
    assert_eq!(
        refused(
            send(
                &a,
                postern_protocol::MailboxId([3; 32]),
                &mb.sender_key,
                60,
                b"x"
            )
            .await
        ),
        ErrorCode::NotFound
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailbox_opens_only_with_its_owner_key_and_acks_only_touch_it() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let bob = org.member("bob");
    let eve = org.member("eve");
    let (b, mb) = with_mailbox(relay.local_addr, p, &bob).await;
    let sent = sent(
        mb.send(&anonymous(relay.local_addr, p).await, 600, b"for bob")
            .await,
    );

    let mut e = admitted(relay.local_addr, p, &eve).await;
    let wrong_key = postern_identity::DeviceKeyPair::from_seed(&[7; 32]);
    match e.open_mailbox(mb.recipient, &wrong_key).await {
        Err(TransportError::Refused(ErrorCode::BadSignature)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refused(e.request(&Request::Fetch(Fetch { limit: 5 })).await),
        ErrorCode::Unauthorized
    );
    // Eve's own mailbox cannot ack Bob's envelope.
    let emb = create_mailbox(&e).await;
    e.open_mailbox(emb.recipient, &emb.owner).await.unwrap();
    let Response::Acked(a) = e
        .request(&Request::Ack(Ack {
            ids: BoundedVec::new(vec![sent.id]).unwrap(),
        }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(a.deleted, 0);
    // Taken ids are refused.
    let r = e
        .request(&Request::CreateMailbox(CreateMailbox {
            recipient: mb.recipient,
            sender: postern_protocol::MailboxId([1; 32]),
            owner: FixedBytes(emb.owner.public_key().to_bytes()),
            sender_key: FixedBytes(emb.sender_key.public_key().to_bytes()),
        }))
        .await;
    assert_eq!(refused(r), ErrorCode::AlreadyExists);
    let env = fetched(&b, 5).await;
    assert_eq!(env.envelopes.len(), 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_is_clamped_and_bodies_must_be_a_bucket() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.max_ttl_secs = 120);
    let relay = start(&data).await;
    let p = pin(&data);
    let m = org.member("member-m");
    let c = admitted(relay.local_addr, p, &m).await;
    assert_eq!(c.max_ttl_secs(), Some(120));
    let mb = create_mailbox(&c).await;
    let a = anonymous(relay.local_addr, p).await;
    let t = now();
    let s = sent(mb.send(&a, u32::MAX, b"x").await);
    assert!(s.expires_at <= t + 120 + 3600, "{} vs {t}", s.expires_at);
    assert_eq!(s.expires_at % 3600, 0);
    // Refused even when properly signed.
    let bad = signed_send(&a, mb.sender, &mb.sender_key, 60, vec![0x80; 1000]);
    assert_eq!(refused(a.request(&bad).await), ErrorCode::BadPadding);
    assert_eq!(stored(&relay), 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_refuses_then_signals_when_space_returns() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.limits.mailbox_max_envelopes = 3);
    let relay = start(&data).await;
    let m = org.member("member-m");
    let (c, mb) = with_mailbox(relay.local_addr, pin(&data), &m).await;
    let a = anonymous(relay.local_addr, pin(&data)).await;
    let mut pushes = c.subscribe().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(sent(mb.send(&a, 600, &[i]).await).id);
    }
    for _ in 0..2 {
        assert_eq!(
            refused(mb.send(&a, 600, b"over").await),
            ErrorCode::QuotaExceeded
        );
    }
    assert_eq!(relay.store().counts().unwrap().envelopes, 3);
    c.request(&Request::Ack(Ack {
        ids: BoundedVec::new(vec![ids[0]]).unwrap(),
    }))
    .await
    .unwrap();
    // Three envelope pushes, then SpaceAvailable.
    let mut saw_space = false;
    for _ in 0..4 {
        let p = tokio::time::timeout(Duration::from_secs(5), pushes.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        saw_space |= p == Push::SpaceAvailable;
    }
    assert!(saw_space);
    sent(mb.send(&a, 600, b"fits").await);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_hands_out_each_one_time_prekey_once_and_only_the_publisher_replaces() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let alice = org.member("alice");
    let bob = org.member("bob");
    let a = admitted(relay.local_addr, p, &alice).await;
    let b = admitted(relay.local_addr, p, &bob).await;
    // Look-ups go on a connection of their own, with no identity.
    let look = anonymous(relay.local_addr, p).await;
    let dir = HandleTag([0x44; 32]);
    let publish = |entry: &[u8], otks: Vec<&[u8]>| {
        Request::PublishPrekeys(PublishPrekeys {
            directory: dir,
            entry: Bytes::try_from(entry).unwrap(),
            one_time: BoundedVec::new(
                otks.into_iter()
                    .map(|o| Bytes::try_from(o).unwrap())
                    .collect(),
            )
            .unwrap(),
        })
    };
    let Response::PrekeysPublished(n) = a
        .request(&publish(b"entry-v1", vec![b"k1", b"k2"]))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(n.one_time_available, 2);
    assert_eq!(
        refused(b.request(&publish(b"hijack", vec![])).await),
        ErrorCode::Unauthorized
    );
    // The entry alone, as often as asked: no one-time prekey goes with it.
    for _ in 0..3 {
        let Response::Prekeys(pk) = look
            .request(&Request::FetchEntry(FetchEntry { directory: dir }))
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(pk.entry.as_slice(), b"entry-v1");
        assert_eq!(pk.one_time, None);
    }
    let fetch = Request::FetchPrekeys(FetchPrekeys { directory: dir });
    let mut got = Vec::new();
    for _ in 0..3 {
        let Response::Prekeys(pk) = look.request(&fetch).await.unwrap() else {
            panic!()
        };
        assert_eq!(pk.entry.as_slice(), b"entry-v1");
        got.push(pk.one_time.map(|o| o.into_vec()));
    }
    // Each once, in no particular order (they sit in random slots), then none.
    assert_eq!(got[2], None);
    let mut handed: Vec<_> = got[..2].iter().flatten().cloned().collect();
    handed.sort();
    assert_eq!(handed, vec![b"k1".to_vec(), b"k2".to_vec()]);
    for unknown in [
        Request::FetchPrekeys(FetchPrekeys {
            directory: HandleTag([0; 32]),
        }),
        Request::FetchEntry(FetchEntry {
            directory: HandleTag([0; 32]),
        }),
    ] {
        assert_eq!(refused(look.request(&unknown).await), ErrorCode::NotFound);
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_lists_only_move_forward_and_cut_off_the_revoked() {
    let org = Org::new();
    let other = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let courier = org.member("courier-7");
    let watcher = org.member("watcher");
    // The courier waits for pushes and sends no request.
    let (c, _cmb) = with_mailbox(relay.local_addr, p, &courier).await;
    let _courier_pushes = c.subscribe().await.unwrap();
    let (w, _wmb) = with_mailbox(relay.local_addr, p, &watcher).await;
    let mut pushes = w.subscribe().await.unwrap();

    let put = |l: Vec<u8>| {
        Request::PutRevocationList(PutRevocationList {
            list: Bytes::new(l).unwrap(),
        })
    };
    // Anyone may put a valid newer list, even unauthenticated.
    let anon = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
    let v2 = org.revocations(2, vec![courier.serial]);
    assert!(matches!(
        anon.request(&put(v2.encode())).await.unwrap(),
        Response::RevocationListAccepted(RevocationListAccepted { version: 2 })
    ));
    let push = tokio::time::timeout(Duration::from_secs(5), pushes.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(push, Push::RevocationListUpdated { version: 2 });
    // Older: stale. Other org: wrong org. Tampered: bad signature.
    assert_eq!(
        refused(
            anon.request(&put(org.revocations(1, vec![]).encode()))
                .await
        ),
        ErrorCode::StaleRevocationList
    );
    assert_eq!(
        refused(
            anon.request(&put(other.revocations(9, vec![]).encode()))
                .await
        ),
        ErrorCode::WrongOrg
    );
    let mut bad = org.revocations(3, vec![]).encode();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        refused(anon.request(&put(bad)).await),
        ErrorCode::BadSignature
    );
    // The revoked courier's subscribed connection is closed as the list arrives, though
    // it made no request, and says why.
    let closed = tokio::time::timeout(Duration::from_secs(5), c.quic().closed())
        .await
        .expect("the revoked connection stayed open");
    match closed {
        quinn::ConnectionError::ApplicationClosed(a) => {
            assert_eq!(
                a.reason.as_ref(),
                ErrorCode::Revoked.description().as_bytes()
            );
        }
        other => panic!("{other:?}"),
    }
    // The watcher's (not revoked) is not.
    assert!(matches!(
        w.request(&Request::Ping(Ping { nonce: 2 })).await.unwrap(),
        Response::Pong(_)
    ));
    // The list is served.
    let Response::RevocationList(l) = anon.request(&Request::GetRevocationList).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(l.list.unwrap().as_slice(), v2.encode().as_slice());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_that_connection_and_the_relay_keeps_serving() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let m = org.member("member-m");
    let good = admitted(relay.local_addr, p, &m).await;

    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        // Length prefix over the limit.
        (
            (300_000u32).to_be_bytes().to_vec(),
            ErrorCode::FrameTooLarge,
        ),
        // Unknown request variant.
        (
            [&2u32.to_be_bytes()[..], &[0x7f, 0x00]].concat(),
            ErrorCode::Malformed,
        ),
        // Truncated body: header promises 100 bytes, 3 arrive, stream finished.
        (
            [&100u32.to_be_bytes()[..], &[6, 1, 2]].concat(),
            ErrorCode::Malformed,
        ),
        // Trailing bytes.
        (
            [&3u32.to_be_bytes()[..], &[7, 0, 0]].concat(),
            ErrorCode::Malformed,
        ),
    ];
    for (bytes, code) in cases {
        let c = RelayConnection::connect_addr(relay.local_addr, p)
            .await
            .unwrap();
        match c.raw_request(&bytes).await {
            Ok(Response::Error(got)) => assert_eq!(got, code),
            other => panic!("{other:?}"),
        }
        // That connection is closed.
        let closed = tokio::time::timeout(Duration::from_secs(5), c.quic().closed()).await;
        assert!(closed.is_ok(), "connection not closed after {code:?}");
    }
    // Unknown version only.
    let endpoint = postern_transport::client_endpoint(false).unwrap();
    let hello99 = encode_frame(&Request::Hello(Hello {
        versions: BoundedVec::new(vec![99]).unwrap(),
    }))
    .unwrap();
    let conn = raw_connection(&endpoint, relay.local_addr, p).await;
    let (mut s, mut r) = conn.open_bi().await.unwrap();
    s.write_all(&hello99).await.unwrap();
    s.finish().unwrap();
    let resp = r.read_to_end(1024).await.unwrap();
    assert_eq!(
        postern_protocol::frame::decode_response(&resp[4..]).unwrap(),
        Response::Error(ErrorCode::UnknownVersion)
    );
    // The good connection is unaffected.
    assert!(matches!(
        good.request(&Request::Ping(Ping { nonce: 1 }))
            .await
            .unwrap(),
        Response::Pong(_)
    ));
    relay.shutdown().await;
}

/// A bare QUIC connection with no `Hello` sent.
async fn raw_connection(
    endpoint: &quinn::Endpoint,
    addr: std::net::SocketAddr,
    pin: [u8; 32],
) -> quinn::Connection {
    let tls = postern_transport::tls::client_config(pin).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let config = quinn::ClientConfig::new(std::sync::Arc::new(crypto));
    endpoint
        .connect_with(config, addr, "127.0.0.1")
        .unwrap()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_requests_is_rate_limited_without_hurting_others() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| {
        c.limits.requests_per_sec = 50;
        c.limits.request_burst = 50;
    });
    let relay = start(&data).await;
    let p = pin(&data);
    let flooder = std::sync::Arc::new(admitted(relay.local_addr, p, &org.member("flood")).await);
    let calm = admitted(relay.local_addr, p, &org.member("calm")).await;
    let mut tasks = Vec::new();
    for i in 0..400u64 {
        let f = flooder.clone();
        tasks.push(tokio::spawn(async move {
            f.request(&Request::Ping(Ping { nonce: i })).await
        }));
    }
    let mut limited = 0;
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Response::Pong(_)) => ok += 1,
            Err(TransportError::Refused(ErrorCode::RateLimited)) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    // The burst (less the Hello and Authenticate it paid for) passes; the rest is refused.
    assert!(limited > 0 && ok >= 40, "ok {ok}, limited {limited}");
    assert!(matches!(
        calm.request(&Request::Ping(Ping { nonce: 1 }))
            .await
            .unwrap(),
        Response::Pong(_)
    ));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_refuses_extra_connections() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.limits.max_connections = 2);
    let relay = start(&data).await;
    let p = pin(&data);
    // Admitted connections fill it (idle unadmitted ones would be evicted instead:
    // tests/exhaustion.rs).
    let _a = admitted(relay.local_addr, p, &org.member("member-a")).await;
    let _b = admitted(relay.local_addr, p, &org.member("member-b")).await;
    assert!(
        RelayConnection::connect_addr(relay.local_addr, p)
            .await
            .is_err()
    );
    assert_eq!(
        relay
            .metrics()
            .connections_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_a_thousand_authenticated_idle_connections() {
    let org = Org::new();
    // One member holds them all here.
    let (_d, data) = relay_dir(&org, |c| c.limits.max_connections_per_member = 1000);
    let relay = start(&data).await;
    let p = pin(&data);
    let member = std::sync::Arc::new(org.member("many-conns"));
    let endpoint = postern_transport::client_endpoint(false).unwrap();
    let mut conns = Vec::new();
    for _ in 0..20 {
        let mut batch = Vec::new();
        for _ in 0..50 {
            let (e, m, addr) = (endpoint.clone(), member.clone(), relay.local_addr);
            batch.push(tokio::spawn(async move {
                let mut c = RelayConnection::connect_on(&e, addr, p).await.unwrap();
                c.authenticate(&*m).await.unwrap();
                c
            }));
        }
        for t in batch {
            conns.push(t.await.unwrap());
        }
    }
    let open = relay
        .metrics()
        .connections_open
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(open, 1000);
    // Every one of them still answers, and a new member gets in.
    for c in conns.iter().step_by(97) {
        assert!(matches!(
            c.request(&Request::Ping(Ping { nonce: 3 })).await.unwrap(),
            Response::Pong(_)
        ));
    }
    let fresh = admitted(relay.local_addr, p, &org.member("late-comer")).await;
    assert!(matches!(
        fresh
            .request(&Request::Ping(Ping { nonce: 4 }))
            .await
            .unwrap(),
        Response::Pong(_)
    ));
    drop(conns);
    relay.shutdown().await;
}

/// A directory entry `entry` at `dir` with one-time prekeys `otks`, published on `c`.
async fn publish(c: &RelayConnection, dir: HandleTag, entry: &[u8], otks: &[&[u8]]) {
    let r = c
        .request(&Request::PublishPrekeys(PublishPrekeys {
            directory: dir,
            entry: Bytes::try_from(entry).unwrap(),
            one_time: BoundedVec::new(otks.iter().map(|o| Bytes::try_from(*o).unwrap()).collect())
                .unwrap(),
        }))
        .await
        .unwrap();
    assert!(matches!(r, Response::PrekeysPublished(_)), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_connection_never_sends_or_looks_up() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let (c, mb) = with_mailbox(relay.local_addr, p, &org.member("owner")).await;
    let dir = HandleTag([0x21; 32]);
    publish(&c, dir, b"entry", &[b"only-otk"]).await;
    // A send signed properly for this connection is refused, and nothing is stored.
    assert_eq!(
        refused(mb.send(&c, 600, b"from an owner").await),
        ErrorCode::UnexpectedRequest
    );
    assert_eq!(stored(&relay), 0);
    for req in [
        Request::FetchEntry(FetchEntry { directory: dir }),
        Request::FetchPrekeys(FetchPrekeys { directory: dir }),
    ] {
        assert_eq!(
            refused(c.request(&req).await),
            ErrorCode::UnexpectedRequest,
            "{req:?}"
        );
    }
    // It is still an owner connection: its mailbox is served (and empty).
    let e = fetched(&c, 10).await;
    assert!(e.envelopes.is_empty());
    // The same on an anonymous connection works; the refused FetchPrekeys took nothing,
    // so the only one-time prekey is still there.
    let a = anonymous(relay.local_addr, p).await;
    sent(mb.send(&a, 600, b"from anyone").await);
    assert_eq!(stored(&relay), 1);
    let Response::Prekeys(pk) = a
        .request(&Request::FetchPrekeys(FetchPrekeys { directory: dir }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(pk.one_time.unwrap().as_slice(), b"only-otk");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sent_or_looked_up_cannot_authenticate() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let m = org.member("member-m");
    let owner = admitted(relay.local_addr, p, &m).await;
    let mb = create_mailbox(&owner).await;
    let dir = HandleTag([0x22; 32]);
    publish(&owner, dir, b"entry", &[]).await;
    let lookups = [
        Request::FetchEntry(FetchEntry { directory: dir }),
        Request::FetchPrekeys(FetchPrekeys { directory: dir }),
    ];
    // First a send, then each kind of look-up, makes a connection anonymous for good.
    let mut firsts = vec![None];
    firsts.extend(lookups.into_iter().map(Some));
    for first in firsts {
        let mut c = anonymous(relay.local_addr, p).await;
        match &first {
            None => {
                sent(mb.send(&c, 600, b"x").await);
            }
            Some(req) => {
                assert!(matches!(
                    c.request(req).await.unwrap(),
                    Response::Prekeys(_)
                ));
            }
        }
        match c.authenticate(&m).await {
            Err(TransportError::Refused(ErrorCode::UnexpectedRequest)) => {}
            other => panic!("after {first:?}: {other:?}"),
        }
        // Not admitted, and still anonymous.
        assert_eq!(
            refused(c.request(&Request::Fetch(Fetch { limit: 1 })).await),
            ErrorCode::Unauthorized
        );
        sent(mb.send(&c, 600, b"y").await);
    }
    let metrics = relay.metrics().snapshot();
    assert_eq!(metrics.owner_admissions, 1);
    assert_eq!(metrics.auth_failed, 0);
    // The certificate itself is fine: on a connection of its own it is admitted.
    admitted(relay.local_addr, p, &m).await;
    assert_eq!(relay.metrics().snapshot().owner_admissions, 2);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_signature_binds_the_key_the_connection_and_the_destination() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let owner = admitted(relay.local_addr, p, &org.member("owner")).await;
    let mb = create_mailbox(&owner).await;
    let other = create_mailbox(&owner).await;
    let a = anonymous(relay.local_addr, p).await;
    let b = anonymous(relay.local_addr, p).await;
    let body = pad(b"the body").unwrap();
    let sign = |c: &RelayConnection, key: &postern_identity::DeviceKeyPair, to| {
        FixedBytes(key.sign(SEND_CONTEXT, &c.send_message(&to)))
    };
    let request = |signature: FixedBytes<64>| {
        Request::Send(SendEnvelope {
            to: mb.sender,
            ttl_secs: 600,
            body: Bytes::try_from(body.as_slice()).unwrap(),
            signature,
        })
    };
    let wrong_key = postern_identity::DeviceKeyPair::generate();
    let replayed = sign(&a, &mb.sender_key, mb.sender);
    let cases = [
        (
            "a key that is not the mailbox's",
            request(sign(&b, &wrong_key, mb.sender)),
        ),
        (
            "another mailbox's sender key",
            request(sign(&b, &other.sender_key, mb.sender)),
        ),
        ("a signature made for connection A", request(replayed)),
        (
            "a signature for another destination",
            request(sign(&b, &mb.sender_key, other.sender)),
        ),
        ("no signature", request(FixedBytes([0; 64]))),
    ];
    for (what, req) in &cases {
        assert_eq!(
            refused(b.request(req).await),
            ErrorCode::BadSignature,
            "{what}"
        );
    }
    assert_eq!(stored(&relay), 0);
    // On the same connection, the right signature is accepted, every time ...
    for _ in 0..3 {
        sent(
            b.request(&request(sign(&b, &mb.sender_key, mb.sender)))
                .await,
        );
    }
    assert_eq!(stored(&relay), 3);
    // ... and once it has been, a wrong one on that connection still is not.
    for (what, req) in &cases {
        assert_eq!(
            refused(b.request(req).await),
            ErrorCode::BadSignature,
            "after a good one: {what}"
        );
    }
    // The replayed one is good on the connection it was made for.
    sent(a.request(&request(replayed)).await);
    assert_eq!(stored(&relay), 4);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_sender_key_rotates_who_may_send() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let (c, mb) = with_mailbox(relay.local_addr, p, &org.member("owner")).await;
    let a = anonymous(relay.local_addr, p).await;
    sent(mb.send(&a, 600, b"before").await);
    let new_key = postern_identity::DeviceKeyPair::generate();
    let set = Request::SetSenderKey(SetSenderKey {
        sender_key: FixedBytes(new_key.public_key().to_bytes()),
    });
    // Only the owner connection with the mailbox open may set it.
    let no_mailbox = admitted(relay.local_addr, p, &org.member("other")).await;
    assert_eq!(
        refused(no_mailbox.request(&set).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(refused(a.request(&set).await), ErrorCode::Unauthorized);
    sent(mb.send(&a, 600, b"still the old key").await);
    assert_eq!(c.request(&set).await.unwrap(), Response::SenderKeySet);
    // The old key no longer verifies: sends under it are refused and store nothing.
    for conn in [&a, &anonymous(relay.local_addr, p).await] {
        assert_eq!(
            refused(mb.send(conn, 600, b"old key").await),
            ErrorCode::BadSignature
        );
    }
    assert_eq!(stored(&relay), 2);
    let s = sent(send(&a, mb.sender, &new_key, 600, b"new key").await);
    assert_eq!(stored(&relay), 3);
    let e = fetched(&c, 10).await;
    let mut bodies: Vec<_> = e
        .envelopes
        .as_slice()
        .iter()
        .map(|e| {
            postern_protocol::padding::unpad(e.body.as_slice())
                .unwrap()
                .to_vec()
        })
        .collect();
    bodies.sort();
    assert_eq!(
        bodies,
        [&b"before"[..], b"new key", b"still the old key"].map(<[u8]>::to_vec)
    );
    assert!(e.envelopes.as_slice().iter().any(|e| e.id == s.id));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_queue_has_its_own_send_budget() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| {
        unlimited_anonymous(c);
        c.limits.queue_sends_per_minute = 1;
        c.limits.queue_send_burst = 2;
    });
    let relay = start(&data).await;
    let p = pin(&data);
    let owner = admitted(relay.local_addr, p, &org.member("owner")).await;
    let (one, two) = (create_mailbox(&owner).await, create_mailbox(&owner).await);
    let a = anonymous(relay.local_addr, p).await;
    // Sends without the sender key do not spend a queue's budget.
    for _ in 0..3 {
        assert_eq!(
            refused(send(&a, two.sender, &one.sender_key, 600, b"forged").await),
            ErrorCode::BadSignature
        );
    }
    sent(one.send(&a, 600, b"1").await);
    sent(one.send(&a, 600, b"2").await);
    assert_eq!(
        refused(one.send(&a, 600, b"3").await),
        ErrorCode::RateLimited
    );
    // The budget is the queue's, whoever sends: a new connection is refused too.
    assert_eq!(
        refused(
            one.send(&anonymous(relay.local_addr, p).await, 600, b"3")
                .await
        ),
        ErrorCode::RateLimited
    );
    // Another queue still has all of its own.
    sent(two.send(&a, 600, b"1").await);
    sent(two.send(&a, 600, b"2").await);
    assert_eq!(
        refused(two.send(&a, 600, b"3").await),
        ErrorCode::RateLimited
    );
    assert_eq!(stored(&relay), 4);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_address_has_one_budget_for_anonymous_requests() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| {
        c.limits.anonymous_requests_per_minute = 1;
        c.limits.anonymous_request_burst = 3;
    });
    let relay = start(&data).await;
    let p = pin(&data);
    let (owner, mb) = with_mailbox(relay.local_addr, p, &org.member("owner")).await;
    let dir = HandleTag([0x23; 32]);
    publish(&owner, dir, b"entry", &[b"otk"]).await;
    // Three anonymous requests of all three kinds, on two connections, use it up ...
    let first = anonymous(relay.local_addr, p).await;
    sent(mb.send(&first, 600, b"1").await);
    assert!(matches!(
        first
            .request(&Request::FetchEntry(FetchEntry { directory: dir }))
            .await
            .unwrap(),
        Response::Prekeys(_)
    ));
    let second = anonymous(relay.local_addr, p).await;
    assert!(matches!(
        second
            .request(&Request::FetchPrekeys(FetchPrekeys { directory: dir }))
            .await
            .unwrap(),
        Response::Prekeys(_)
    ));
    // ... so the fourth is refused, on a new connection too, whatever it is.
    let third = anonymous(relay.local_addr, p).await;
    assert_eq!(
        refused(mb.send(&third, 600, b"4").await),
        ErrorCode::RateLimited
    );
    for req in [
        Request::FetchEntry(FetchEntry { directory: dir }),
        Request::FetchPrekeys(FetchPrekeys { directory: dir }),
    ] {
        assert_eq!(
            refused(first.request(&req).await),
            ErrorCode::RateLimited,
            "{req:?}"
        );
    }
    assert_eq!(stored(&relay), 1);
    // Owner connections and public requests are not charged to it.
    assert!(matches!(
        third
            .request(&Request::Ping(Ping { nonce: 1 }))
            .await
            .unwrap(),
        Response::Pong(_)
    ));
    let e = fetched(&owner, 10).await;
    assert_eq!(e.envelopes.len(), 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_owner_and_anonymous_connections_apart() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let p = pin(&data);
    let owner = admitted(relay.local_addr, p, &org.member("owner")).await;
    let mb = create_mailbox(&owner).await;
    // Two anonymous connections, one of which sends twice.
    let a = anonymous(relay.local_addr, p).await;
    sent(mb.send(&a, 600, b"1").await);
    sent(mb.send(&a, 600, b"2").await);
    let b = anonymous(relay.local_addr, p).await;
    sent(mb.send(&b, 600, b"3").await);
    // Neither kind: a connection that only pings, and one whose admission failed.
    let idle = anonymous(relay.local_addr, p).await;
    idle.request(&Request::Ping(Ping { nonce: 1 }))
        .await
        .unwrap();
    let mut failed = anonymous(relay.local_addr, p).await;
    assert!(
        failed
            .authenticate(&Org::new().member("stranger"))
            .await
            .is_err()
    );
    let m = relay.metrics().snapshot();
    assert_eq!(m.owner_admissions, 1);
    assert_eq!(m.anonymous_connections, 2);
    assert_eq!(m.auth_failed, 1);
    assert_eq!(m.envelopes_stored, 3);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_hourly_budget_an_entry_is_served_without_one_time_prekeys() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.limits.one_time_prekeys_per_entry_per_hour = 2);
    let relay = start(&data).await;
    let p = pin(&data);
    let owner = admitted(relay.local_addr, p, &org.member("owner")).await;
    let (dir, other) = (HandleTag([0x24; 32]), HandleTag([0x25; 32]));
    publish(&owner, dir, b"entry", &[b"k1", b"k2", b"k3"]).await;
    publish(&owner, other, b"other entry", &[b"o1"]).await;
    let fetch = |directory| Request::FetchPrekeys(FetchPrekeys { directory });
    let mut got = Vec::new();
    for _ in 0..4 {
        // A new connection each time: the budget is the entry's.
        let c = anonymous(relay.local_addr, p).await;
        let Response::Prekeys(pk) = c.request(&fetch(dir)).await.unwrap() else {
            panic!()
        };
        assert_eq!(pk.entry.as_slice(), b"entry");
        got.push(pk.one_time.is_some());
    }
    assert_eq!(got, [true, true, false, false]);
    // The third one-time prekey is kept, not handed out; another entry has its own budget.
    assert_eq!(relay.store().counts().unwrap().one_time_prekeys, 2);
    let c = anonymous(relay.local_addr, p).await;
    let Response::Prekeys(pk) = c.request(&fetch(other)).await.unwrap() else {
        panic!()
    };
    assert_eq!(pk.one_time.unwrap().as_slice(), b"o1");
    relay.shutdown().await;
}
