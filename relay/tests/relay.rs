//! The relay over real QUIC on 127.0.0.1 with real redb files: admission, mailboxes,
//! directory, revocation, limits and hostile frames.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use postern_identity::Role;
use postern_protocol::ErrorCode;
use postern_protocol::bytes::{BoundedVec, Bytes, FixedBytes};
use postern_protocol::frame::encode_frame;
use postern_protocol::ids::{EnvelopeId, HandleTag};
use postern_protocol::message::*;
use postern_transport::{RelayConnection, TransportError};

fn refused(r: Result<Response, TransportError>) -> ErrorCode {
    match r {
        Err(TransportError::Refused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_served_before_admission() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let c = RelayConnection::connect_addr(relay.local_addr, pin(&data))
        .await
        .unwrap();
    let mb = postern_protocol::MailboxId::random(&mut rand::rng());
    for req in [
        send_req(mb, 60, b"x"),
        Request::Subscribe,
        Request::Fetch(Fetch { limit: 1 }),
        Request::FetchPrekeys(FetchPrekeys {
            directory: HandleTag([1; 32]),
        }),
        Request::FetchEntry(FetchEntry {
            directory: HandleTag([1; 32]),
        }),
        Request::CreateMailbox(CreateMailbox {
            recipient: mb,
            sender: mb,
            owner: FixedBytes([0; 32]),
        }),
    ] {
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
    let conn = admitted(relay.local_addr, p, &good).await;
    let mb = create_mailbox(&conn).await;

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
            refused(c.request(&send_req(mb.sender, 60, b"x")).await),
            ErrorCode::Unauthorized
        );
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
    // The good client was never disturbed.
    assert!(matches!(
        conn.request(&send_req(mb.sender, 60, b"still fine"))
            .await
            .unwrap(),
        Response::Sent(_)
    ));
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
    let alice = org.member("alice");
    let mut b = admitted(relay.local_addr, p, &bob).await;
    let mb = create_mailbox(&b).await;
    assert_eq!(b.open_mailbox(mb.recipient, &mb.owner).await.unwrap(), 0);
    let mut pushes = b.subscribe().await.unwrap();

    let a = admitted(relay.local_addr, p, &alice).await;
    let Response::Sent(sent) = a
        .request(&send_req(mb.sender, 3600, b"hello bob"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(sent.expires_at > now() && sent.expires_at % 3600 == 0);
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
    let Response::Envelopes(e) = b
        .request(&Request::Fetch(Fetch { limit: 10 }))
        .await
        .unwrap()
    else {
        panic!()
    };
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
    let Response::Envelopes(e) = b
        .request(&Request::Fetch(Fetch { limit: 10 }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(e.envelopes.is_empty());
    // Unknown destination.
    assert_eq!(
        refused(
            a.request(&send_req(postern_protocol::MailboxId([3; 32]), 60, b"x"))
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
    let Response::Sent(sent) = b
        .request(&send_req(mb.sender, 600, b"for bob"))
        .await
        .unwrap()
    else {
        panic!()
    };

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
            owner: FixedBytes([2; 32]),
        }))
        .await;
    assert_eq!(refused(r), ErrorCode::AlreadyExists);
    let Response::Envelopes(env) = b
        .request(&Request::Fetch(Fetch { limit: 5 }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(env.envelopes.len(), 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_is_clamped_and_bodies_must_be_a_bucket() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.max_ttl_secs = 120);
    let relay = start(&data).await;
    let m = org.member("member-m");
    let c = admitted(relay.local_addr, pin(&data), &m).await;
    assert_eq!(c.max_ttl_secs(), Some(120));
    let mb = create_mailbox(&c).await;
    let t = now();
    let Response::Sent(s) = c
        .request(&send_req(mb.sender, u32::MAX, b"x"))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(s.expires_at <= t + 120 + 3600, "{} vs {t}", s.expires_at);
    assert_eq!(s.expires_at % 3600, 0);
    let bad = Request::Send(SendEnvelope {
        to: mb.sender,
        ttl_secs: 60,
        body: Bytes::new(vec![0x80; 1000]).unwrap(),
    });
    assert_eq!(refused(c.request(&bad).await), ErrorCode::BadPadding);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_refuses_then_signals_when_space_returns() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.limits.mailbox_max_envelopes = 3);
    let relay = start(&data).await;
    let m = org.member("member-m");
    let (c, mb) = with_mailbox(relay.local_addr, pin(&data), &m).await;
    let mut pushes = c.subscribe().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let Response::Sent(s) = c.request(&send_req(mb.sender, 600, &[i])).await.unwrap() else {
            panic!()
        };
        ids.push(s.id);
    }
    for _ in 0..2 {
        assert_eq!(
            refused(c.request(&send_req(mb.sender, 600, b"over")).await),
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
    assert!(matches!(
        c.request(&send_req(mb.sender, 600, b"fits")).await.unwrap(),
        Response::Sent(_)
    ));
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
        let Response::Prekeys(pk) = b
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
        let Response::Prekeys(pk) = b.request(&fetch).await.unwrap() else {
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
        assert_eq!(refused(b.request(&unknown).await), ErrorCode::NotFound);
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
    let c = admitted(relay.local_addr, p, &courier).await;
    let (w, wmb) = with_mailbox(relay.local_addr, p, &watcher).await;
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
    // The revoked courier's open connection is cut off at its next request.
    assert_eq!(
        refused(c.request(&send_req(wmb.sender, 60, b"x")).await),
        ErrorCode::Revoked
    );
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
        .connect_with(config, addr, "postern-relay")
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
    let _a = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
    let _b = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
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
    let (_d, data) = relay_dir(&org, |_| {});
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
