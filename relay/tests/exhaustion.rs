//! Exhausting the relay before admission (issue 11): handshakes that never finish,
//! connections that never say who they are, one address holding many connections. Real
//! QUIC on loopback; the hostile handshakes are real QUIC Initial packets sent from
//! sockets that never answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use postern_protocol::ids::HandleTag;
use postern_protocol::message::*;
use postern_transport::{RelayConnection, TransportError};

/// `n` QUIC Initial packets, each the first flight of a real client's handshake with a
/// fresh connection id, captured from a socket that never answers.
async fn captured_initials(n: usize) -> Vec<Vec<u8>> {
    let capture = UdpSocket::bind("127.0.0.1:0").unwrap();
    capture
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let target = capture.local_addr().unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let endpoint = postern_transport::client_endpoint(false).unwrap();
        let attempt = tokio::spawn({
            let endpoint = endpoint.clone();
            async move {
                let _ = RelayConnection::connect_on(&endpoint, target, [0; 32]).await;
            }
        });
        let mut buf = vec![0u8; 2048];
        let (len, _) = tokio::task::block_in_place(|| capture.recv_from(&mut buf)).unwrap();
        buf.truncate(len);
        out.push(buf);
        attempt.abort();
    }
    out
}

/// Starts one handshake per packet, each from its own socket, and never answers: the
/// relay is left with half-open handshakes. The sockets are returned so their ports stay
/// taken.
fn stall(relay: SocketAddr, initials: &[Vec<u8>]) -> Vec<UdpSocket> {
    initials
        .iter()
        .map(|p| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(p, relay).unwrap();
            s
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_that_never_finish_do_not_lock_members_out() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| {
        c.limits.max_connections = 8;
        c.limits.handshake_timeout_secs = 1;
    });
    let relay = start(&data).await;
    let p = pin(&data);
    let initials = captured_initials(40).await;
    let _held = stall(relay.local_addr, &initials);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A member still gets in at once: past half the permits the relay asks new clients
    // to prove their address first, which the stalled ones never do.
    let m = org.member("courier-1");
    let mut c = tokio::time::timeout(
        Duration::from_secs(5),
        RelayConnection::connect_addr(relay.local_addr, p),
    )
    .await
    .expect("connecting took too long")
    .expect("refused while handshakes stall");
    c.authenticate(&m).await.unwrap();
    // And the stalled ones give their permits back after the handshake timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let conns: Vec<RelayConnection> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(
                RelayConnection::connect_addr(relay.local_addr, p)
                    .await
                    .unwrap(),
            );
        }
        v
    };
    assert_eq!(conns.len(), 6);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_neither_authenticates_nor_sends_is_closed() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.limits.bind_timeout_secs = 1);
    let relay = start(&data).await;
    let p = pin(&data);
    let idle = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
    let mut owner = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
    owner.authenticate(&org.member("coord-1")).await.unwrap();
    let anonymous = RelayConnection::connect_addr(relay.local_addr, p)
        .await
        .unwrap();
    let lookup = Request::FetchEntry(FetchEntry {
        directory: HandleTag([1; 32]),
    });
    assert!(matches!(
        anonymous.request(&lookup).await,
        Err(TransportError::Refused(
            postern_protocol::ErrorCode::NotFound
        ))
    ));
    // Pings alone do not keep a connection that is neither.
    for n in 0..3 {
        let _ = idle.request(&Request::Ping(Ping { nonce: n })).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let closed = tokio::time::timeout(Duration::from_secs(3), idle.quic().closed())
        .await
        .expect("an unbound connection stayed open");
    match closed {
        quinn::ConnectionError::ApplicationClosed(a) => {
            assert_eq!(a.reason.as_ref(), b"not admitted in time");
        }
        other => panic!("{other:?}"),
    }
    for c in [&owner, &anonymous] {
        assert!(matches!(
            c.request(&Request::Ping(Ping { nonce: 9 })).await.unwrap(),
            Response::Pong(_)
        ));
    }
    assert_eq!(relay.metrics().bind_timeouts.load(Ordering::Relaxed), 1);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_its_share_of_connections() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.limits.max_connections_per_address = 3);
    let relay = start(&data).await;
    let p = pin(&data);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            RelayConnection::connect_addr(relay.local_addr, p)
                .await
                .unwrap(),
        );
    }
    assert!(
        RelayConnection::connect_addr(relay.local_addr, p)
            .await
            .is_err()
    );
    assert_eq!(
        relay.metrics().connections_refused.load(Ordering::Relaxed),
        1
    );
    // A connection that ends gives its place back.
    held.pop().unwrap().close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    held.push(
        RelayConnection::connect_addr(relay.local_addr, p)
            .await
            .unwrap(),
    );
    relay.shutdown().await;
}

/// The relay process's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Sends `n` envelopes of the largest padding bucket into `mb` on `c`.
async fn flood(c: &RelayConnection, mb: &Mailbox, n: usize) {
    let content = vec![0x5a; 60_000];
    for _ in 0..n {
        sent(mb.send(c, 3600, &content).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_that_stop_reading_do_not_grow_the_relay() {
    let org = Org::new();
    let (d, data) = relay_dir(&org, unlimited_anonymous);
    let log = d.scratch().join("relay.log");
    let relay = spawn_relay(&data, &log);
    let pid = relay.child.id();
    let addr = relay.addr;
    let p = pin(&data);
    let m = org.member("courier-1");
    let sender = anonymous(addr, p).await;

    // First the same traffic twice with nobody subscribed: what the relay's caches and
    // allocator grow by for 256 stored envelopes of 64 KiB.
    let (_quiet_owner, quiet) = with_mailbox(addr, p, &m).await;
    flood(&sender, &quiet, 256).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = rss_kib(pid);
    let (_quiet_owner2, quiet2) = with_mailbox(addr, p, &m).await;
    flood(&sender, &quiet2, 256).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);
    let unsubscribed_mib = before.saturating_sub(start) / 1024;

    // One member subscribes its mailbox on 16 connections and reads none of the pushes:
    // 256 envelopes of 64 KiB each.
    let (_owner, mb) = with_mailbox(addr, p, &m).await;
    let mut stalled = Vec::new();
    for _ in 0..16 {
        let mut c = admitted(addr, p, &m).await;
        c.open_mailbox(mb.recipient, &mb.owner).await.unwrap();
        let pushes = c.subscribe().await.unwrap();
        stalled.push((c, pushes));
    }
    // A member on another mailbox who does read.
    let other = org.member("coord-1");
    let (reader, theirs) = with_mailbox(addr, p, &other).await;
    let mut reading = reader.subscribe().await.unwrap();

    flood(&sender, &mb, 256).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "relay RSS grew {unsubscribed_mib} MiB for 256 envelopes unsubscribed, \
         {grown_mib} MiB for 256 with 16 stalled subscribers ({after} KiB)"
    );
    // Every subscriber holding a copy of every body would be 256 MiB more; bounded
    // queues of shared frames are a few MiB.
    assert!(
        grown_mib <= unsubscribed_mib + 24,
        "relay grew by {grown_mib} MiB with stalled subscribers, {unsubscribed_mib} MiB without"
    );

    // Every stalled subscriber was disconnected (replaced or too slow), with the reason.
    for (c, _) in &stalled {
        let closed = tokio::time::timeout(Duration::from_secs(5), c.quic().closed())
            .await
            .expect("a stalled subscriber is still connected");
        match closed {
            quinn::ConnectionError::ApplicationClosed(a) => assert_eq!(
                a.error_code,
                quinn::VarInt::from_u32(postern_relay::server::close::SUBSCRIPTION_DROPPED)
            ),
            other => panic!("{other:?}"),
        }
    }
    // Nothing was lost: all 256 wait for the member's next fetch.
    let mut again = admitted(addr, p, &m).await;
    let pending = again.open_mailbox(mb.recipient, &mb.owner).await.unwrap();
    assert_eq!(pending, 256);
    // And the member who reads was not affected.
    sent(theirs.send(&sender, 3600, b"still here").await);
    let push = tokio::time::timeout(Duration::from_secs(5), reading.next())
        .await
        .expect("no push for the reading subscriber")
        .unwrap();
    assert!(matches!(push, Some(Push::Envelope(_))), "{push:?}");
    drop(stalled);
    assert!(relay.terminate().success());
}

/// The QUIC application close code a connection ended with, within 5 s.
async fn closed_with(c: &RelayConnection) -> Option<u32> {
    match tokio::time::timeout(Duration::from_secs(5), c.quic().closed()).await {
        Ok(quinn::ConnectionError::ApplicationClosed(a)) => {
            Some(u32::try_from(a.error_code.into_inner()).unwrap())
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_get_in_while_strangers_hold_every_connection() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| {
        c.limits.max_connections = 8;
        c.limits.bind_timeout_secs = 60;
    });
    let relay = start(&data).await;
    let p = pin(&data);
    // Strangers hold every connection the relay has, and say nothing.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(anonymous(relay.local_addr, p).await);
    }
    // A member still gets in at once: the oldest idle connection makes room.
    let m = org.member("courier-1");
    let member = tokio::time::timeout(Duration::from_secs(2), async {
        let mut c = RelayConnection::connect_addr(relay.local_addr, p).await?;
        c.authenticate(&m).await?;
        Ok::<_, TransportError>(c)
    })
    .await
    .expect("the member waited")
    .expect("the member was refused");
    assert_eq!(
        closed_with(&idle[0]).await,
        Some(postern_relay::server::close::BUSY)
    );
    // Admitted members are never the ones evicted: fill the rest with members, and the
    // next stranger is refused while every member stays.
    let mut members = vec![member];
    for n in 0..7 {
        members.push(admitted(relay.local_addr, p, &org.member(&format!("m-{n}"))).await);
    }
    assert!(
        RelayConnection::connect_addr(relay.local_addr, p)
            .await
            .is_err()
    );
    for c in &members {
        assert!(matches!(
            c.request(&Request::Ping(Ping { nonce: 1 })).await.unwrap(),
            Response::Pong(_)
        ));
    }
    assert!(relay.metrics().pending_evicted.load(Ordering::Relaxed) >= 7);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_max_pending_connections_wait_unadmitted() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| {
        c.limits.max_pending_connections = 3;
        c.limits.bind_timeout_secs = 60;
    });
    let relay = start(&data).await;
    let p = pin(&data);
    let (owner, mb) = with_mailbox(relay.local_addr, p, &org.member("coord-1")).await;
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(anonymous(relay.local_addr, p).await);
    }
    for c in &idle[..3] {
        assert_eq!(
            closed_with(c).await,
            Some(postern_relay::server::close::BUSY)
        );
    }
    // The three newest still wait, and one that sends leaves the pool for good: newer
    // connections evict the others, not it.
    sent(mb.send(&idle[3], 3600, b"hello").await);
    for _ in 0..3 {
        idle.push(anonymous(relay.local_addr, p).await);
    }
    sent(mb.send(&idle[3], 3600, b"still here").await);
    for c in &idle[4..6] {
        assert_eq!(
            closed_with(c).await,
            Some(postern_relay::server::close::BUSY)
        );
    }
    drop(owner);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_offers_no_datagrams_and_few_streams_before_admission() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.limits.bind_timeout_secs = 60);
    let relay = start(&data).await;
    let p = pin(&data);
    let c = anonymous(relay.local_addr, p).await;
    // No datagram buffer for anyone to fill.
    assert_eq!(c.quic().max_datagram_size(), None);
    // Before it is admitted or sends, a connection gets 4 request streams at once: a
    // fifth waits for one of them to close.
    let mut open = Vec::new();
    for _ in 0..4 {
        open.push(c.quic().open_bi().await.unwrap());
    }
    let fifth = tokio::time::timeout(Duration::from_millis(500), c.quic().open_bi()).await;
    assert!(fifth.is_err(), "a fifth stream opened before admission");
    drop(open);
    relay.shutdown().await;
}
