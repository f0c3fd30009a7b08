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
