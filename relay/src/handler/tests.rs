//! `handle()` driven directly: a real store in a temporary directory, real certificates
//! and signatures, a clock the test sets. No sockets.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use postern_identity::DeviceKeyPair;
use postern_identity::Role;
use postern_protocol::ErrorCode;
use postern_protocol::auth::{
    AUTHENTICATE_CONTEXT, OPEN_MAILBOX_CONTEXT, SEND_CONTEXT, authenticate_message, send_message,
};
use postern_protocol::bytes::{BoundedVec, Bytes, FixedBytes};
use postern_protocol::ids::{EnvelopeId, HandleTag, MailboxId};
use postern_protocol::message::*;
use postern_protocol::padding::pad;
use postern_protocol::version::PROTOCOL_VERSION;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Effect, expiry_for, handle};
use crate::config::RelayConfig;
use crate::metrics::Metrics;
use crate::state::{Kind, Now, Session, Shared};
use crate::store::Store;
use crate::testing::{TestMember, TestOrg};

/// The tests' epoch: Unix seconds at `t0`, an hour boundary.
const T0: u64 = 1_900_000_800;

/// A mailbox as its senders know it: where sends go and the key that signs them.
struct Queue {
    sender: MailboxId,
    key: DeviceKeyPair,
}

struct Fixture {
    _dir: tempfile::TempDir,
    shared: Shared,
    org: TestOrg,
    t0: Instant,
    next_conn: u64,
}

impl Fixture {
    fn new(tweak: impl FnOnce(&mut RelayConfig)) -> Self {
        let org = TestOrg::new();
        let dir = tempfile::tempdir().unwrap();
        let mut config = RelayConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1".into(),
            org.key(),
        );
        tweak(&mut config);
        let l = &config.limits;
        let metrics = Arc::new(Metrics::default());
        let store = Store::open(
            dir.path(),
            l.quotas(),
            l.group_commit_max_batch as usize,
            metrics.clone(),
            None,
        )
        .unwrap();
        let shared = Shared::new(
            store,
            org.root.org_key(),
            config,
            None,
            metrics,
            StdRng::seed_from_u64(7),
        );
        Self {
            _dir: dir,
            shared,
            org,
            t0: Instant::now(),
            next_conn: 0,
        }
    }

    /// The clock `secs` after the epoch.
    fn at(&self, secs: u64) -> Now {
        Now {
            instant: self.t0 + Duration::from_secs(secs),
            unix: T0 + secs,
        }
    }

    /// A new connection from `ip`, opened at the epoch.
    fn session_from(&mut self, ip: &str) -> Session {
        self.next_conn += 1;
        let exporter = [self.next_conn as u8; 32];
        let burst = self.shared.config.limits.request_burst;
        Session::new(
            self.next_conn,
            ip.parse().unwrap(),
            exporter,
            burst,
            self.t0,
        )
    }

    fn session(&mut self) -> Session {
        self.session_from("192.0.2.1")
    }

    /// A courier valid for a day around the epoch.
    fn member(&self, handle: &str) -> TestMember {
        self.org
            .member_valid(handle, Role::Courier, T0 - 60, T0 + 86_400)
    }

    async fn call(&self, s: &Session, req: Request, secs: u64) -> (Response, Effect) {
        handle(&self.shared, s, req, self.at(secs)).await
    }

    async fn hello(&self, s: &Session, secs: u64) -> [u8; 32] {
        let req = Request::Hello(Hello {
            versions: BoundedVec::new(vec![PROTOCOL_VERSION]).unwrap(),
        });
        match self.call(s, req, secs).await {
            (Response::Welcome(w), Effect::None) => w.challenge.0,
            other => panic!("no welcome: {other:?}"),
        }
    }

    /// `Authenticate` for `m` on a connection with `exporter` that got `challenge`.
    fn authenticate_req(m: &TestMember, exporter: &[u8; 32], challenge: &[u8; 32]) -> Request {
        let binding = authenticate_message(exporter, challenge);
        Request::Authenticate(Authenticate {
            certificate: Bytes::new(m.cert.clone()).unwrap(),
            signature: FixedBytes(m.device.sign(AUTHENTICATE_CONTEXT, &binding)),
        })
    }

    /// Hello and Authenticate at `secs`; the response to Authenticate.
    async fn admit(&self, s: &Session, m: &TestMember, secs: u64) -> Response {
        let challenge = self.hello(s, secs).await;
        let req = Self::authenticate_req(m, &s.exporter, &challenge);
        self.call(s, req, secs).await.0
    }

    async fn admitted(&mut self, m: &TestMember) -> Session {
        let s = self.session();
        let r = self.admit(&s, m, 0).await;
        assert!(matches!(r, Response::Authenticated(_)), "{r:?}");
        s
    }

    fn counter(&self, f: impl Fn(&Metrics) -> &std::sync::atomic::AtomicU64) -> u64 {
        f(&self.shared.metrics).load(Ordering::Relaxed)
    }

    /// A connection without identity from `ip` that has said `Hello`.
    async fn anonymous_from(&mut self, ip: &str) -> Session {
        let s = self.session_from(ip);
        self.hello(&s, 0).await;
        s
    }

    async fn anonymous(&mut self) -> Session {
        self.anonymous_from("192.0.2.50").await
    }

    /// Creates a mailbox and opens it on `s`; returns how senders reach it.
    async fn mailbox(&self, s: &Session, secs: u64) -> Queue {
        let owner = DeviceKeyPair::generate();
        let key = DeviceKeyPair::generate();
        let recipient = MailboxId::random(&mut rand::rng());
        let sender = MailboxId::random(&mut rand::rng());
        let create = Request::CreateMailbox(CreateMailbox {
            recipient,
            sender,
            owner: FixedBytes(owner.public_key().to_bytes()),
            sender_key: FixedBytes(key.public_key().to_bytes()),
        });
        assert_eq!(self.call(s, create, secs).await.0, Response::MailboxCreated);
        let challenge = s.lock().challenge.unwrap();
        let message =
            postern_protocol::auth::open_mailbox_message(&s.exporter, &challenge, &recipient);
        let open = Request::OpenMailbox(OpenMailbox {
            recipient,
            signature: FixedBytes(owner.sign(OPEN_MAILBOX_CONTEXT, &message)),
        });
        assert!(matches!(
            self.call(s, open, secs).await.0,
            Response::MailboxOpened(_)
        ));
        Queue { sender, key }
    }
}

/// A `Send` to `q` signed for connection `s`.
fn send(s: &Session, q: &Queue, ttl: u32, content: &[u8]) -> Request {
    signed_send(s, q.sender, &q.key, ttl, content)
}

fn signed_send(
    s: &Session,
    to: MailboxId,
    key: &DeviceKeyPair,
    ttl: u32,
    content: &[u8],
) -> Request {
    let body: EnvelopeBody = Bytes::new(pad(content).unwrap()).unwrap();
    let challenge = s.lock().challenge.unwrap();
    let message = send_message(&s.exporter, &challenge, &to);
    Request::Send(SendEnvelope {
        to,
        ttl_secs: ttl,
        body,
        signature: FixedBytes(key.sign(SEND_CONTEXT, &message)),
    })
}

fn ping(n: u64) -> Request {
    Request::Ping(Ping { nonce: n })
}

fn fetch() -> Request {
    Request::Fetch(Fetch { limit: 100 })
}

#[test]
fn expiry_is_clamped_and_rounded_up_to_the_hour() {
    assert_eq!(expiry_for(1000, 10, 3600), 3600);
    assert_eq!(expiry_for(3600, 0, 3600), 7200);
    assert_eq!(expiry_for(3599, 1, 3600), 3600);
    assert_eq!(expiry_for(0, u32::MAX, 7200), 7200);
    assert_eq!(expiry_for(T0, 86_400, 7 * 86_400), T0 + 86_400);
    assert_eq!(expiry_for(T0 + 1, 86_400, 7 * 86_400), T0 + 86_400 + 3600);
    // Nothing finer than the hour, whatever the TTL.
    for ttl in [1, 59, 61, 3599, 3601, 86_399] {
        assert_eq!(expiry_for(T0 + 17, ttl, 7 * 86_400) % 3600, 0, "{ttl}");
    }
}

#[tokio::test]
async fn a_valid_member_is_admitted_and_gets_the_relay_ttl() {
    let mut f = Fixture::new(|c| c.max_ttl_secs = 7200);
    let s = f.session();
    let r = f.admit(&s, &f.member("alice"), 0).await;
    assert_eq!(
        r,
        Response::Authenticated(Authenticated { max_ttl_secs: 7200 })
    );
    assert_eq!(f.counter(|m| &m.owner_admissions), 1);
    assert_eq!(f.counter(|m| &m.anonymous_connections), 0);
}

#[tokio::test]
async fn certificates_outside_their_validity_or_org_are_refused() {
    let mut f = Fixture::new(|_| {});
    let other_org = TestOrg::new();
    let cases = [
        (
            other_org.member_valid("eve", Role::Courier, T0 - 60, T0 + 60),
            ErrorCode::WrongOrg,
        ),
        (
            f.org.member_valid("old", Role::Courier, T0 - 120, T0),
            ErrorCode::Expired,
        ),
        (
            f.org.member_valid("soon", Role::Courier, T0 + 1, T0 + 60),
            ErrorCode::NotYetValid,
        ),
    ];
    for (m, code) in cases {
        let s = f.session_from("198.51.100.7");
        assert_eq!(
            f.admit(&s, &m, 0).await,
            Response::Error(code),
            "{}",
            m.handle
        );
        assert!(matches!(s.lock().kind, Kind::Unbound));
    }
    assert_eq!(f.counter(|m| &m.auth_failed), 3);
    // A certificate that is not one at all.
    let s = f.session_from("198.51.100.8");
    let challenge = f.hello(&s, 0).await;
    let mut m = f.member("junk");
    m.cert.truncate(10);
    let req = Fixture::authenticate_req(&m, &s.exporter, &challenge);
    assert_eq!(
        f.call(&s, req, 0).await.0,
        Response::Error(ErrorCode::Malformed)
    );
}

#[tokio::test]
async fn a_revoked_member_is_refused() {
    let mut f = Fixture::new(|_| {});
    let m = f.member("gone");
    let list = f.org.revocations(1, vec![m.serial]);
    let courier = f.anonymous().await;
    let s = f.session();
    let put = Request::PutRevocationList(PutRevocationList {
        list: Bytes::new(list.encode()).unwrap(),
    });
    assert!(matches!(
        f.call(&courier, put, 0).await.0,
        Response::RevocationListAccepted(_)
    ));
    assert_eq!(
        f.admit(&s, &m, 0).await,
        Response::Error(ErrorCode::Revoked)
    );
}

#[tokio::test]
async fn an_authentication_replayed_on_another_connection_is_refused() {
    let mut f = Fixture::new(|_| {});
    let m = f.member("alice");
    let first = f.session();
    let challenge = f.hello(&first, 0).await;
    let signed = Fixture::authenticate_req(&m, &first.exporter, &challenge);
    // An observer (or the relay's host) replays the same bytes on its own connection:
    // a different exporter and a different challenge.
    let second = f.session();
    let _ = f.hello(&second, 0).await;
    assert_eq!(
        f.call(&second, signed.clone(), 0).await.0,
        Response::Error(ErrorCode::BadSignature)
    );
    // The signature over the right exporter but a stale challenge is refused too.
    let third = f.session();
    let _ = f.hello(&third, 0).await;
    let stale = Fixture::authenticate_req(&m, &third.exporter, &challenge);
    assert_eq!(
        f.call(&third, stale, 0).await.0,
        Response::Error(ErrorCode::BadSignature)
    );
    // The original still works where it belongs, once.
    assert!(matches!(
        f.call(&first, signed.clone(), 0).await.0,
        Response::Authenticated(_)
    ));
    assert_eq!(
        f.call(&first, signed, 0).await.0,
        Response::Error(ErrorCode::UnexpectedRequest)
    );
}

#[tokio::test]
async fn requests_out_of_order_are_refused() {
    let mut f = Fixture::new(|_| {});
    let s = f.session();
    let m = f.member("alice");
    // Authenticate before Hello: no challenge yet. Nor anything else, public or not.
    let req = Fixture::authenticate_req(&m, &s.exporter, &[0; 32]);
    assert_eq!(
        f.call(&s, req, 0).await.0,
        Response::Error(ErrorCode::UnexpectedRequest)
    );
    for req in [ping(1), Request::GetRevocationList, fetch()] {
        assert_eq!(
            f.call(&s, req, 0).await.0,
            Response::Error(ErrorCode::UnexpectedRequest)
        );
    }
    let _ = f.hello(&s, 0).await;
    // A second Hello.
    let hello = Request::Hello(Hello {
        versions: BoundedVec::new(vec![PROTOCOL_VERSION]).unwrap(),
    });
    assert_eq!(
        f.call(&s, hello, 0).await.0,
        Response::Error(ErrorCode::UnexpectedRequest)
    );
    // Owner requests before admission.
    let create = Request::CreateMailbox(CreateMailbox {
        recipient: MailboxId([1; 32]),
        sender: MailboxId([2; 32]),
        owner: FixedBytes([3; 32]),
        sender_key: FixedBytes([4; 32]),
    });
    for req in [create, fetch(), Request::Subscribe] {
        assert_eq!(
            f.call(&s, req, 0).await.0,
            Response::Error(ErrorCode::Unauthorized)
        );
    }
    // Fetch before a mailbox is opened.
    let s = f.admitted(&m).await;
    assert_eq!(
        f.call(&s, fetch(), 0).await.0,
        Response::Error(ErrorCode::Unauthorized)
    );
    assert_eq!(
        f.call(&s, Request::Subscribe, 0).await.0,
        Response::Error(ErrorCode::Unauthorized)
    );
}

#[tokio::test]
async fn an_unknown_version_closes_the_connection() {
    let mut f = Fixture::new(|_| {});
    let s = f.session();
    let hello = Request::Hello(Hello {
        versions: BoundedVec::new(vec![PROTOCOL_VERSION + 100]).unwrap(),
    });
    assert_eq!(
        f.call(&s, hello, 0).await,
        (
            Response::Error(ErrorCode::UnknownVersion),
            Effect::Close(ErrorCode::UnknownVersion)
        )
    );
}

#[tokio::test]
async fn challenges_come_from_the_relay_rng() {
    let mut f = Fixture::new(|_| {});
    let (a, b) = (f.session(), f.session());
    let (ca, cb) = (f.hello(&a, 0).await, f.hello(&b, 0).await);
    assert_ne!(ca, cb);
    // The same seed gives the same challenges: the handler has no randomness of its own.
    let mut g = Fixture::new(|_| {});
    let (c, d) = (g.session(), g.session());
    assert_eq!((g.hello(&c, 0).await, g.hello(&d, 0).await), (ca, cb));
}

#[tokio::test]
async fn failed_admissions_are_limited_per_address_and_refill_continuously() {
    let mut f = Fixture::new(|c| c.limits.auth_failures_per_minute = 3);
    let stranger = TestOrg::new().member("eve");
    for _ in 0..3 {
        let s = f.session_from("203.0.113.9");
        assert_eq!(
            f.admit(&s, &stranger, 0).await,
            Response::Error(ErrorCode::WrongOrg)
        );
    }
    // Now even a valid member from that address waits...
    let good = f.member("alice");
    let s = f.session_from("203.0.113.9");
    assert_eq!(
        f.admit(&s, &good, 10).await,
        Response::Error(ErrorCode::RateLimited)
    );
    // ...but not one from another address,
    let s = f.session_from("203.0.113.10");
    assert!(matches!(
        f.admit(&s, &good, 10).await,
        Response::Authenticated(_)
    ));
    // and the address gets in again as soon as one failure's token is back (20 s at
    // three a minute), not a whole minute later.
    let s = f.session_from("203.0.113.9");
    assert!(matches!(
        f.admit(&s, &good, 21).await,
        Response::Authenticated(_)
    ));
    // An IPv6 host is limited by its /64, whatever address inside it it takes.
    for n in 0..3 {
        let s = f.session_from(&format!("2001:db8:7:7::{n}"));
        f.admit(&s, &stranger, 0).await;
    }
    let s = f.session_from("2001:db8:7:7:ffff::1");
    assert_eq!(
        f.admit(&s, &good, 1).await,
        Response::Error(ErrorCode::RateLimited)
    );
}

#[tokio::test]
async fn a_member_holds_at_most_its_share_of_owner_connections() {
    let mut f = Fixture::new(|c| c.limits.max_connections_per_member = 2);
    let alice = f.member("alice");
    let a1 = f.admitted(&alice).await;
    let a2 = f.admitted(&alice).await;
    let s = f.session();
    assert_eq!(
        f.admit(&s, &alice, 0).await,
        Response::Error(ErrorCode::Unavailable)
    );
    // Another member is not affected, and a closed connection gives its place back.
    f.admitted(&f.member("bob")).await;
    drop(a1);
    f.admitted(&alice).await;
    drop(a2);
}

#[tokio::test]
async fn a_member_creates_mailboxes_and_publishes_within_its_budgets() {
    let mut f = Fixture::new(|c| {
        c.limits.mailboxes_per_member_per_day = 2;
        c.limits.publishes_per_member_per_hour = 2;
        c.limits.directory_entries_per_member = 1;
    });
    let alice = f.member("alice");
    let s = f.admitted(&alice).await;
    f.mailbox(&s, 0).await;
    f.mailbox(&s, 0).await;
    let create = Request::CreateMailbox(CreateMailbox {
        recipient: MailboxId([9; 32]),
        sender: MailboxId([10; 32]),
        owner: FixedBytes(DeviceKeyPair::generate().public_key().to_bytes()),
        sender_key: FixedBytes(DeviceKeyPair::generate().public_key().to_bytes()),
    });
    assert_eq!(
        f.call(&s, create.clone(), 0).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
    // The same member on another connection shares the budget; another member does not.
    let s2 = f.admitted(&alice).await;
    assert_eq!(
        f.call(&s2, create.clone(), 0).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
    let bob = f.admitted(&f.member("bob")).await;
    assert_eq!(f.call(&bob, create, 0).await.0, Response::MailboxCreated);
    // Half a day later, one more.
    f.mailbox(&s, 43_200).await;

    let publish = |tag: u8| {
        Request::PublishPrekeys(PublishPrekeys {
            directory: HandleTag([tag; 32]),
            entry: Bytes::new(vec![1; 40]).unwrap(),
            one_time: BoundedVec::new(vec![]).unwrap(),
        })
    };
    assert!(matches!(
        f.call(&s, publish(1), 0).await.0,
        Response::PrekeysPublished(_)
    ));
    // A second entry is past this member's one.
    assert_eq!(
        f.call(&s, publish(2), 0).await.0,
        Response::Error(ErrorCode::QuotaExceeded)
    );
    // And the publish budget is spent (two an hour).
    assert_eq!(
        f.call(&s, publish(1), 0).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
    assert!(matches!(
        f.call(&s, publish(1), 1800).await.0,
        Response::PrekeysPublished(_)
    ));
    assert_eq!(f.counter(|m| &m.member_budget_refusals), 3);
}

#[tokio::test]
async fn requests_are_rate_limited_per_connection_and_refill_with_time() {
    let mut f = Fixture::new(|c| {
        c.limits.request_burst = 6;
        c.limits.requests_per_sec = 2;
    });
    // `Hello` takes the first token.
    let s = f.anonymous().await;
    for n in 0..5 {
        assert_eq!(
            f.call(&s, ping(n), 0).await.0,
            Response::Pong(Ping { nonce: n })
        );
    }
    assert_eq!(
        f.call(&s, ping(9), 0).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
    assert_eq!(f.counter(|m| &m.rate_limited), 1);
    // Another connection has its own bucket.
    let other = f.anonymous().await;
    assert!(matches!(
        f.call(&other, ping(1), 0).await.0,
        Response::Pong(_)
    ));
    // One second refills two tokens, no more.
    assert!(matches!(f.call(&s, ping(1), 1).await.0, Response::Pong(_)));
    assert!(matches!(f.call(&s, ping(2), 1).await.0, Response::Pong(_)));
    assert_eq!(
        f.call(&s, ping(3), 1).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
    // A long pause refills only up to the burst.
    for n in 0..6 {
        assert!(matches!(
            f.call(&s, ping(n), 1000).await.0,
            Response::Pong(_)
        ));
    }
    assert_eq!(
        f.call(&s, ping(6), 1000).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
}

#[tokio::test]
async fn a_full_mailbox_refuses_sends_until_acknowledged() {
    let mut f = Fixture::new(|c| c.limits.mailbox_max_envelopes = 2);
    let m = f.member("alice");
    let s = f.admitted(&m).await;
    let mb = f.mailbox(&s, 0).await;
    let a = f.anonymous().await;
    for _ in 0..2 {
        assert!(matches!(
            f.call(&a, send(&a, &mb, 600, b"hi"), 0).await.0,
            Response::Sent(_)
        ));
    }
    assert_eq!(
        f.call(&a, send(&a, &mb, 600, b"hi"), 0).await.0,
        Response::Error(ErrorCode::QuotaExceeded)
    );
    assert_eq!(f.counter(|m| &m.quota_refusals), 1);
    let Response::Envelopes(e) = f.call(&s, fetch(), 0).await.0 else {
        panic!("no envelopes");
    };
    let ids: Vec<EnvelopeId> = e.envelopes.as_slice().iter().map(|e| e.id).collect();
    let ack = Request::Ack(Ack {
        ids: BoundedVec::new(ids).unwrap(),
    });
    assert_eq!(
        f.call(&s, ack, 0).await.0,
        Response::Acked(Acked { deleted: 2 })
    );
    assert!(matches!(
        f.call(&a, send(&a, &mb, 600, b"hi"), 0).await.0,
        Response::Sent(_)
    ));
}

#[tokio::test]
async fn a_send_must_be_padded_to_a_bucket() {
    let mut f = Fixture::new(|_| {});
    let s = f.admitted(&f.member("alice")).await;
    let mb = f.mailbox(&s, 0).await;
    let a = f.anonymous().await;
    let Request::Send(mut odd) = send(&a, &mb, 60, b"x") else {
        unreachable!()
    };
    odd.body = Bytes::new(vec![0; 1000]).unwrap();
    assert_eq!(
        f.call(&a, Request::Send(odd), 0).await.0,
        Response::Error(ErrorCode::BadPadding)
    );
}

#[tokio::test]
async fn envelopes_expire_on_the_clock_given() {
    let mut f = Fixture::new(|c| c.max_ttl_secs = 7200);
    let s = f.admitted(&f.member("alice")).await;
    let mb = f.mailbox(&s, 0).await;
    let a = f.anonymous().await;
    // A TTL above the relay's maximum is cut to it, rounded up to the hour.
    let Response::Sent(sent) = f.call(&a, send(&a, &mb, 90_000, b"x"), 0).await.0 else {
        panic!("not sent");
    };
    assert_eq!(sent.expires_at, T0 + 7200);
    let Response::Sent(short) = f.call(&a, send(&a, &mb, 60, b"y"), 0).await.0 else {
        panic!("not sent");
    };
    let count = |r: Response| match r {
        Response::Envelopes(e) => e.envelopes.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(count(f.call(&s, fetch(), 10).await.0), 2);
    // Once the short one's expiry passes it is no longer handed out, sweep or not.
    let after_short = short.expires_at - T0;
    assert_eq!(count(f.call(&s, fetch(), after_short).await.0), 1);
    assert_eq!(count(f.call(&s, fetch(), sent.expires_at - T0).await.0), 0);
}

#[tokio::test]
async fn a_session_ends_when_its_certificate_expires() {
    let mut f = Fixture::new(|_| {});
    let m = f
        .org
        .member_valid("brief", Role::Courier, T0 - 60, T0 + 100);
    let s = f.admitted(&m).await;
    assert!(matches!(f.call(&s, ping(1), 99).await.0, Response::Pong(_)));
    // Even a ping: an expired member's connection is not kept alive.
    assert_eq!(
        f.call(&s, ping(2), 100).await,
        (
            Response::Error(ErrorCode::Expired),
            Effect::Close(ErrorCode::Expired)
        )
    );
}

#[tokio::test]
async fn a_revocation_ends_live_sessions_of_that_member_only() {
    let mut f = Fixture::new(|_| {});
    let (bad, good) = (f.member("mallory"), f.member("alice"));
    let sb = f.admitted(&bad).await;
    let sg = f.admitted(&good).await;
    let mb = f.mailbox(&sg, 0).await;
    // Anyone may deliver a newer list, here from an unadmitted connection.
    let courier = f.anonymous().await;
    let put = Request::PutRevocationList(PutRevocationList {
        list: Bytes::new(f.org.revocations(1, vec![bad.serial]).encode()).unwrap(),
    });
    assert_eq!(
        f.call(&courier, put, 5).await.0,
        Response::RevocationListAccepted(RevocationListAccepted { version: 1 })
    );
    for req in [fetch(), ping(1)] {
        assert_eq!(
            f.call(&sb, req, 6).await,
            (
                Response::Error(ErrorCode::Revoked),
                Effect::Close(ErrorCode::Revoked)
            )
        );
    }
    assert!(matches!(
        f.call(&sg, fetch(), 6).await.0,
        Response::Envelopes(_)
    ));
    let a = f.anonymous().await;
    assert!(matches!(
        f.call(&a, send(&a, &mb, 60, b"x"), 6).await.0,
        Response::Sent(_)
    ));
}

#[tokio::test]
async fn revocation_lists_only_move_forward_and_must_be_the_orgs() {
    let f = Fixture::new(|_| {});
    let s = Session::new(1, IpAddr::from([192, 0, 2, 1]), [1; 32], 100, f.t0);
    f.hello(&s, 0).await;
    let put = |list: postern_identity::RevocationList| {
        Request::PutRevocationList(PutRevocationList {
            list: Bytes::new(list.encode()).unwrap(),
        })
    };
    assert!(matches!(
        f.call(&s, put(f.org.revocations(2, vec![1])), 0).await.0,
        Response::RevocationListAccepted(RevocationListAccepted { version: 2 })
    ));
    // An older version is refused as stale; the same one is accepted again (idempotent,
    // nothing changes); a different list with the same version is refused as stale too.
    assert_eq!(
        f.call(&s, put(f.org.revocations(1, vec![])), 0).await.0,
        Response::Error(ErrorCode::StaleRevocationList)
    );
    assert!(matches!(
        f.call(&s, put(f.org.revocations(2, vec![1])), 0).await.0,
        Response::RevocationListAccepted(RevocationListAccepted { version: 2 })
    ));
    assert_eq!(
        f.call(&s, put(f.org.revocations(2, vec![1, 5])), 0).await.0,
        Response::Error(ErrorCode::StaleRevocationList)
    );
    // Another org's list, and bytes that are no list.
    let r = f
        .call(&s, put(TestOrg::new().revocations(9, vec![])), 0)
        .await
        .0;
    assert!(
        matches!(
            r,
            Response::Error(ErrorCode::WrongOrg | ErrorCode::BadSignature)
        ),
        "{r:?}"
    );
    let junk = Request::PutRevocationList(PutRevocationList {
        list: Bytes::new(vec![1, 2, 3]).unwrap(),
    });
    assert_eq!(
        f.call(&s, junk, 0).await.0,
        Response::Error(ErrorCode::Malformed)
    );
    // What is held is still version 2.
    let got = f.call(&s, Request::GetRevocationList, 0).await.0;
    let Response::RevocationList(held) = got else {
        panic!("{got:?}");
    };
    let held = postern_identity::RevocationList::decode(held.list.unwrap().as_slice()).unwrap();
    assert_eq!(held.version(), 2);
}

#[tokio::test]
async fn a_mailbox_opens_only_with_its_owner_key() {
    let mut f = Fixture::new(|_| {});
    let s = f.admitted(&f.member("alice")).await;
    let recipient = MailboxId::random(&mut rand::rng());
    let owner = postern_identity::DeviceKeyPair::generate();
    let create = Request::CreateMailbox(CreateMailbox {
        recipient,
        sender: MailboxId::random(&mut rand::rng()),
        owner: FixedBytes(owner.public_key().to_bytes()),
        sender_key: FixedBytes(DeviceKeyPair::generate().public_key().to_bytes()),
    });
    assert_eq!(f.call(&s, create, 0).await.0, Response::MailboxCreated);
    let intruder = postern_identity::DeviceKeyPair::generate();
    let challenge = s.lock().challenge.unwrap();
    let message = postern_protocol::auth::open_mailbox_message(&s.exporter, &challenge, &recipient);
    let open = Request::OpenMailbox(OpenMailbox {
        recipient,
        signature: FixedBytes(intruder.sign(OPEN_MAILBOX_CONTEXT, &message)),
    });
    assert_eq!(
        f.call(&s, open, 0).await.0,
        Response::Error(ErrorCode::BadSignature)
    );
    let unknown = Request::OpenMailbox(OpenMailbox {
        recipient: MailboxId::random(&mut rand::rng()),
        signature: FixedBytes([0; 64]),
    });
    assert_eq!(
        f.call(&s, unknown, 0).await.0,
        Response::Error(ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn directory_entries_are_published_and_one_time_keys_taken_once() {
    let mut f = Fixture::new(|_| {});
    let s = f.admitted(&f.member("alice")).await;
    let tag = HandleTag([3u8; 32]);
    let publish = Request::PublishPrekeys(PublishPrekeys {
        directory: tag,
        entry: Bytes::new(vec![1; 40]).unwrap(),
        one_time: BoundedVec::new(vec![Bytes::new(vec![2; 8]).unwrap()]).unwrap(),
    });
    assert_eq!(
        f.call(&s, publish, 0).await.0,
        Response::PrekeysPublished(PrekeysPublished {
            one_time_available: 1
        })
    );
    let take = || Request::FetchPrekeys(FetchPrekeys { directory: tag });
    let a = f.anonymous().await;
    let Response::Prekeys(first) = f.call(&a, take(), 0).await.0 else {
        panic!("no prekeys");
    };
    assert_eq!(first.one_time.unwrap().as_slice(), &[2; 8]);
    let Response::Prekeys(second) = f.call(&a, take(), 0).await.0 else {
        panic!("no prekeys");
    };
    assert!(second.one_time.is_none());
    let missing = Request::FetchEntry(FetchEntry {
        directory: HandleTag([4u8; 32]),
    });
    assert_eq!(
        f.call(&a, missing, 0).await.0,
        Response::Error(ErrorCode::NotFound)
    );
}

#[tokio::test]
async fn another_member_cannot_replace_a_directory_entry() {
    let mut f = Fixture::new(|c| c.limits.directory_max_one_time = 2);
    let alice = f.admitted(&f.member("alice")).await;
    let mallory = f.admitted(&f.member("mallory")).await;
    let tag = HandleTag([5u8; 32]);
    let publish = |keys: usize| {
        Request::PublishPrekeys(PublishPrekeys {
            directory: tag,
            entry: Bytes::new(vec![1; 40]).unwrap(),
            one_time: BoundedVec::new(vec![Bytes::new(vec![2; 8]).unwrap(); keys]).unwrap(),
        })
    };
    assert!(matches!(
        f.call(&alice, publish(1), 0).await.0,
        Response::PrekeysPublished(_)
    ));
    assert_eq!(
        f.call(&mallory, publish(0), 0).await.0,
        Response::Error(ErrorCode::Unauthorized)
    );
    // The owner's own quota of one-time keys holds too.
    assert_eq!(
        f.call(&alice, publish(2), 0).await.0,
        Response::Error(ErrorCode::QuotaExceeded)
    );
}

#[tokio::test]
async fn the_largest_valid_revocation_list_travels_to_the_relay() {
    use postern_identity::revocation::MAX_REVOKED;
    use postern_protocol::limits::MAX_REVOCATION_LIST_LEN;
    let f = Fixture::new(|_| {});
    // Serials at their longest encoding (ten-byte varints).
    let serials: Vec<u64> = (0..MAX_REVOKED as u64).map(|i| u64::MAX - i).collect();
    let list = f.org.revocations(1, serials).encode();
    assert!(
        list.len() <= MAX_REVOCATION_LIST_LEN,
        "{} bytes do not fit a {MAX_REVOCATION_LIST_LEN}-byte field",
        list.len()
    );
    let s = Session::new(1, IpAddr::from([192, 0, 2, 1]), [1; 32], 100, f.t0);
    f.hello(&s, 0).await;
    let put = Request::PutRevocationList(PutRevocationList {
        list: Bytes::new(list).unwrap(),
    });
    assert_eq!(
        f.call(&s, put, 0).await.0,
        Response::RevocationListAccepted(RevocationListAccepted { version: 1 })
    );
}

#[tokio::test]
async fn no_connection_is_both_admitted_and_used_to_send_or_look_up() {
    let mut f = Fixture::new(|_| {});
    let m = f.member("alice");
    let owner = f.admitted(&m).await;
    let q = f.mailbox(&owner, 0).await;
    // The owner connection may not send or look anyone up.
    let lookup = || {
        Request::FetchEntry(FetchEntry {
            directory: HandleTag([4; 32]),
        })
    };
    let take = Request::FetchPrekeys(FetchPrekeys {
        directory: HandleTag([4; 32]),
    });
    for req in [send(&owner, &q, 60, b"x"), lookup(), take] {
        assert_eq!(
            f.call(&owner, req, 0).await.0,
            Response::Error(ErrorCode::UnexpectedRequest)
        );
    }
    assert!(matches!(owner.lock().kind, Kind::Owner(_)));
    // A connection that has sent may not be admitted afterwards, nor do owner work.
    let a = f.anonymous().await;
    assert!(matches!(
        f.call(&a, send(&a, &q, 60, b"x"), 0).await.0,
        Response::Sent(_)
    ));
    let challenge = a.lock().challenge.unwrap();
    let auth = Fixture::authenticate_req(&m, &a.exporter, &challenge);
    assert_eq!(
        f.call(&a, auth, 0).await.0,
        Response::Error(ErrorCode::UnexpectedRequest)
    );
    for req in [fetch(), Request::Subscribe] {
        assert_eq!(
            f.call(&a, req, 0).await.0,
            Response::Error(ErrorCode::Unauthorized)
        );
    }
    assert!(matches!(a.lock().kind, Kind::Anonymous));
    // A lookup alone also makes a connection anonymous.
    let b = f.anonymous().await;
    assert_eq!(
        f.call(&b, lookup(), 0).await.0,
        Response::Error(ErrorCode::NotFound)
    );
    let challenge = b.lock().challenge.unwrap();
    let auth = Fixture::authenticate_req(&m, &b.exporter, &challenge);
    assert_eq!(
        f.call(&b, auth, 0).await.0,
        Response::Error(ErrorCode::UnexpectedRequest)
    );
    // Public requests work on both kinds.
    for s in [&owner, &a] {
        assert!(matches!(f.call(s, ping(3), 0).await.0, Response::Pong(_)));
    }
    assert_eq!(f.counter(|m| &m.owner_admissions), 1);
    assert_eq!(f.counter(|m| &m.anonymous_connections), 2);
}

#[tokio::test]
async fn a_send_needs_the_queues_sender_key_over_this_very_connection() {
    let mut f = Fixture::new(|_| {});
    let owner = f.admitted(&f.member("alice")).await;
    let q = f.mailbox(&owner, 0).await;
    let a = f.anonymous().await;
    let elsewhere = f.anonymous_from("192.0.2.51").await;
    let bad = |r: Request| async { f.call(&a, r, 0).await.0 };
    // Another key; a signature made for another connection; one over other fields.
    let stranger = DeviceKeyPair::generate();
    assert_eq!(
        bad(signed_send(&a, q.sender, &stranger, 60, b"x")).await,
        Response::Error(ErrorCode::BadSignature)
    );
    assert_eq!(
        bad(send(&elsewhere, &q, 60, b"x")).await,
        Response::Error(ErrorCode::BadSignature)
    );
    let unknown = MailboxId([7; 32]);
    assert_eq!(
        bad(signed_send(&a, unknown, &q.key, 60, b"x")).await,
        Response::Error(ErrorCode::NotFound)
    );
    // Nothing of that was stored; the right signature is.
    let pending = |r: Response| match r {
        Response::Envelopes(e) => e.envelopes.len(),
        other => panic!("{other:?}"),
    };
    assert_eq!(pending(f.call(&owner, fetch(), 0).await.0), 0);
    assert!(matches!(
        bad(send(&a, &q, 60, b"x")).await,
        Response::Sent(_)
    ));
    assert_eq!(pending(f.call(&owner, fetch(), 0).await.0), 1);

    // The owner rotates the sender key: the old one no longer writes.
    let new_key = DeviceKeyPair::generate();
    let set = Request::SetSenderKey(SetSenderKey {
        sender_key: FixedBytes(new_key.public_key().to_bytes()),
    });
    assert_eq!(
        f.call(&a, set.clone(), 0).await.0,
        Response::Error(ErrorCode::Unauthorized)
    );
    assert_eq!(f.call(&owner, set, 0).await.0, Response::SenderKeySet);
    assert_eq!(
        bad(send(&a, &q, 60, b"old key")).await,
        Response::Error(ErrorCode::BadSignature)
    );
    let rotated = Queue {
        sender: q.sender,
        key: new_key,
    };
    assert!(matches!(
        bad(send(&a, &rotated, 60, b"new key")).await,
        Response::Sent(_)
    ));
    assert_eq!(pending(f.call(&owner, fetch(), 0).await.0), 2);
    // A signature for another destination, though that mailbox has the same sender key.
    let q2 = f.mailbox(&owner, 0).await;
    let same_key = Request::SetSenderKey(SetSenderKey {
        sender_key: FixedBytes(rotated.key.public_key().to_bytes()),
    });
    assert_eq!(f.call(&owner, same_key, 0).await.0, Response::SenderKeySet);
    let Request::Send(mut moved) = send(&a, &rotated, 60, b"x") else {
        unreachable!()
    };
    moved.to = q2.sender;
    assert_eq!(
        bad(Request::Send(moved)).await,
        Response::Error(ErrorCode::BadSignature)
    );
}

#[tokio::test]
async fn anonymous_requests_are_budgeted_per_address_and_sends_per_queue() {
    let mut f = Fixture::new(|c| {
        c.limits.anonymous_requests_per_minute = 1;
        c.limits.anonymous_request_burst = 3;
        c.limits.queue_sends_per_minute = 1;
        c.limits.queue_send_burst = 2;
    });
    let owner = f.admitted(&f.member("alice")).await;
    let (q1, q2) = (f.mailbox(&owner, 0).await, f.mailbox(&owner, 0).await);
    // Per address, over all its connections (and an IPv6 /64 as one address).
    let one = f.anonymous_from("2001:db8:0:1::1").await;
    let two = f.anonymous_from("2001:db8:0:1::2").await;
    for s in [&one, &two] {
        assert!(matches!(
            f.call(s, send(s, &q1, 60, b"x"), 0).await.0,
            Response::Sent(_)
        ));
    }
    let lookup = Request::FetchEntry(FetchEntry {
        directory: HandleTag([4; 32]),
    });
    assert_eq!(
        f.call(&one, lookup, 0).await.0,
        Response::Error(ErrorCode::NotFound)
    );
    assert_eq!(
        f.call(&two, send(&two, &q2, 60, b"x"), 0).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
    // Another address has its own budget; q1 has spent its burst of two.
    let other = f.anonymous_from("198.51.100.1").await;
    assert!(matches!(
        f.call(&other, send(&other, &q2, 60, b"x"), 0).await.0,
        Response::Sent(_)
    ));
    let third = f.anonymous_from("198.51.100.2").await;
    assert_eq!(
        f.call(&third, send(&third, &q1, 60, b"x"), 0).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
    // A send that does not verify spends no queue budget: no one without the key can
    // block a queue.
    let fourth = f.anonymous_from("198.51.100.3").await;
    let forged = signed_send(&fourth, q2.sender, &DeviceKeyPair::generate(), 60, b"x");
    assert_eq!(
        f.call(&fourth, forged, 0).await.0,
        Response::Error(ErrorCode::BadSignature)
    );
    assert!(matches!(
        f.call(&fourth, send(&fourth, &q2, 60, b"x"), 0).await.0,
        Response::Sent(_)
    ));
    // Both refill with time.
    assert!(matches!(
        f.call(&two, send(&two, &q1, 60, b"x"), 61).await.0,
        Response::Sent(_)
    ));
}

#[tokio::test]
async fn a_refused_request_binds_nothing_and_revocation_puts_are_charged_to_the_address() {
    let mut f = Fixture::new(|c| {
        c.limits.anonymous_requests_per_minute = 1;
        c.limits.anonymous_request_burst = 2;
    });
    let lookup = || {
        Request::FetchEntry(FetchEntry {
            directory: HandleTag([4; 32]),
        })
    };
    let a = f.anonymous_from("203.0.113.7").await;
    for _ in 0..2 {
        assert_eq!(
            f.call(&a, lookup(), 0).await.0,
            Response::Error(ErrorCode::NotFound)
        );
    }
    assert_eq!(f.counter(|m| &m.anonymous_connections), 1);
    // Refused by the budget: the new connection is not made a send connection, so it
    // may still authenticate, and is not counted as one.
    let b = f.anonymous_from("203.0.113.7").await;
    assert_eq!(
        f.call(&b, lookup(), 0).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
    assert!(b.is_unbound());
    assert_eq!(f.counter(|m| &m.anonymous_connections), 1);
    let challenge = b.lock().challenge.unwrap();
    let auth = Fixture::authenticate_req(&f.member("alice"), &b.exporter, &challenge);
    assert!(matches!(
        f.call(&b, auth, 0).await.0,
        Response::Authenticated(_)
    ));
    // Revocation lists from that address spend the same budget (60 s later: one token).
    let list = Request::PutRevocationList(PutRevocationList {
        list: Bytes::new(f.org.revocations(1, vec![]).encode()).unwrap(),
    });
    assert!(matches!(
        f.call(&b, list.clone(), 60).await.0,
        Response::RevocationListAccepted(_)
    ));
    assert_eq!(
        f.call(&b, list, 60).await.0,
        Response::Error(ErrorCode::RateLimited)
    );
}

#[tokio::test]
async fn one_time_prekeys_are_handed_out_at_most_at_the_hourly_budget() {
    let mut f = Fixture::new(|c| c.limits.one_time_prekeys_per_entry_per_hour = 1);
    let s = f.admitted(&f.member("alice")).await;
    let tag = HandleTag([3u8; 32]);
    let publish = Request::PublishPrekeys(PublishPrekeys {
        directory: tag,
        entry: Bytes::new(vec![1; 40]).unwrap(),
        one_time: BoundedVec::new(vec![Bytes::new(vec![2; 8]).unwrap(); 3]).unwrap(),
    });
    assert!(matches!(
        f.call(&s, publish, 0).await.0,
        Response::PrekeysPublished(_)
    ));
    let take = || Request::FetchPrekeys(FetchPrekeys { directory: tag });
    let one_time = |r: Response| match r {
        Response::Prekeys(p) => {
            assert_eq!(p.entry.as_slice(), &[1; 40]);
            p.one_time.is_some()
        }
        other => panic!("{other:?}"),
    };
    // A hostile member draining prekeys gets one, then the entry alone.
    let a = f.anonymous().await;
    assert!(one_time(f.call(&a, take(), 0).await.0));
    assert!(!one_time(f.call(&a, take(), 0).await.0));
    assert!(!one_time(f.call(&a, take(), 1800).await.0));
    assert!(one_time(f.call(&a, take(), 3600).await.0));
}

#[tokio::test]
async fn a_mailbox_key_that_is_no_ed25519_key_is_refused_as_malformed() {
    let mut f = Fixture::new(|_| {});
    let s = f.admitted(&f.member("alice")).await;
    let good = || FixedBytes(DeviceKeyPair::generate().public_key().to_bytes());
    // The identity point and a small-order point: no signature could ever verify.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    for bad in [identity, [0; 32]] {
        for (owner, sender_key) in [(good(), FixedBytes(bad)), (FixedBytes(bad), good())] {
            let create = Request::CreateMailbox(CreateMailbox {
                recipient: MailboxId::random(&mut rand::rng()),
                sender: MailboxId::random(&mut rand::rng()),
                owner,
                sender_key,
            });
            assert_eq!(
                f.call(&s, create, 0).await.0,
                Response::Error(ErrorCode::Malformed)
            );
        }
    }
    let q = f.mailbox(&s, 0).await;
    let set = Request::SetSenderKey(SetSenderKey {
        sender_key: FixedBytes(identity),
    });
    assert_eq!(
        f.call(&s, set, 0).await.0,
        Response::Error(ErrorCode::Malformed)
    );
    // The key in place still works.
    let a = f.anonymous().await;
    assert!(matches!(
        f.call(&a, send(&a, &q, 60, b"x"), 0).await.0,
        Response::Sent(_)
    ));
}

#[tokio::test]
async fn a_fetch_of_zero_envelopes_returns_none_and_says_whether_any_wait() {
    let mut f = Fixture::new(|_| {});
    let s = f.admitted(&f.member("alice")).await;
    let q = f.mailbox(&s, 0).await;
    let zero = || Request::Fetch(Fetch { limit: 0 });
    assert_eq!(
        f.call(&s, zero(), 0).await.0,
        Response::Envelopes(Envelopes {
            envelopes: BoundedVec::empty(),
            more: false
        })
    );
    let a = f.anonymous().await;
    assert!(matches!(
        f.call(&a, send(&a, &q, 60, b"x"), 0).await.0,
        Response::Sent(_)
    ));
    assert_eq!(
        f.call(&s, zero(), 0).await.0,
        Response::Envelopes(Envelopes {
            envelopes: BoundedVec::empty(),
            more: true
        })
    );
}
