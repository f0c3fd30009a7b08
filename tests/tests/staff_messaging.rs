//! Staff exchange messages through a relay process that is killed and restarted, one
//! member is revoked mid-run, and short-lived messages disappear from relay and vaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use postern_e2e::ContentType;
use postern_identity::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_a_relay_kill_and_a_revoked_member_is_cut_off() {
    let mut world = World::new();
    let coord = world.enroll("coord-a", Role::Coordinator).await;
    let c1 = world.enroll("courier-1", Role::Courier).await;
    let c2 = world.enroll("courier-2", Role::Courier).await;

    // The coordinator writes to both couriers; courier-2 is offline.
    let conn = coord.connect().await.unwrap();
    coord
        .send(
            &conn,
            "courier-1",
            ContentType::Text,
            b"pick up at 10",
            None,
        )
        .await
        .unwrap();
    coord
        .send(&conn, "courier-2", ContentType::Text, b"stand by", None)
        .await
        .unwrap();
    coord
        .send(
            &conn,
            "courier-1",
            ContentType::Text,
            b"this one expires fast",
            Some(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    conn.close().await;

    // The relay dies (SIGKILL) with everything still queued, and comes back.
    world.kill_relay();
    world.start_relay();

    let conn1 = c1.connect().await.unwrap();
    let got = c1.fetch(&conn1).await.unwrap();
    let bodies: Vec<_> = got.new.iter().map(|m| m.body.clone()).collect();
    assert!(bodies.contains(&b"pick up at 10".to_vec()), "{bodies:?}");
    c1.send(&conn1, "coord-a", ContentType::Text, b"on my way", None)
        .await
        .unwrap();
    conn1.close().await;

    // courier-2 is revoked while offline: it can no longer connect, send or receive.
    world.revoke("courier-2").await;
    let err = c2.connect().await.unwrap_err();
    assert!(is_revoked(&err), "{err}");

    // The coordinator hears from courier-1, and can no longer write to courier-2.
    let conn = coord.connect().await.unwrap();
    let got = coord.fetch(&conn).await.unwrap();
    assert!(got.new.iter().any(|m| m.body == b"on my way"));
    assert!(
        coord
            .send(&conn, "courier-2", ContentType::Text, b"still there?", None)
            .await
            .is_err()
    );
    conn.close().await;

    // After the short TTL, the message is gone from courier-1's vault.
    tokio::time::sleep(Duration::from_secs(3)).await;
    c1.purge_expired().unwrap();
    assert!(
        c1.messages()
            .unwrap()
            .iter()
            .all(|m| m.body != b"this one expires fast")
    );
    // The relay holds only courier-2's unfetched message, unexpired.
    world.stop_relay();
    let (counts, earliest) = world.relay_holdings();
    assert_eq!(counts.envelopes, 1, "{counts:?}");
    assert!(earliest.unwrap() > postern::member::unix_now());
}
