#![allow(clippy::unwrap_used, clippy::expect_used)]
//! One vault used by several tasks at once. The model: one `Vault` per process (a second
//! open is refused), shared between threads/tasks; redb serialises write transactions,
//! so concurrent receives, sends and purges never interleave their ratchet updates.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use postern_e2e::{ContentType, Messenger, Received, VaultError};

use common::*;

const N: usize = 150;
const TTL: Duration = Duration::from_secs(3600);

#[test]
fn tasks_sharing_one_vault_receive_send_and_purge_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (alice, ac) = org.enrol(&tmp.path().join("alice"), "alice", 1);
    let (bob, bc) = org.enrol(&tmp.path().join("bob"), "bob", 2);
    let mut roster = org.roster(vec![]);
    roster.insert(ac);
    roster.insert(bc);
    let root = org.trust_root();
    let am = Messenger::new(&alice, &roster, &root).unwrap();
    am.start_session("bob", &bob.prekey_bundle().unwrap(), SystemTime::now())
        .unwrap();
    // Bob answers once so both directions have a session.
    let first = am
        .send("bob", ContentType::Text, b"hello", TTL, SystemTime::now())
        .unwrap();
    Messenger::new(&bob, &roster, &root)
        .unwrap()
        .receive(&first.sealed, SystemTime::now())
        .unwrap();
    let inbound: Vec<_> = (0..N)
        .map(|i| {
            am.send(
                "bob",
                ContentType::Text,
                format!("in {i}").as_bytes(),
                TTL,
                SystemTime::now(),
            )
            .unwrap()
            .sealed
        })
        .collect();

    // A second opener of Bob's vault, in this process, gets a clear error.
    assert!(matches!(
        postern_e2e::Vault::open(&tmp.path().join("bob"), PASSPHRASE),
        Err(VaultError::AlreadyOpen)
    ));

    let bob = Arc::new(bob);
    let outbound = std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let m = Messenger::new(&bob, &roster, &root).unwrap();
            for env in &inbound {
                assert!(matches!(
                    m.receive(env, SystemTime::now()).unwrap(),
                    Received::New(_)
                ));
            }
        });
        let sender = s.spawn(|| {
            let m = Messenger::new(&bob, &roster, &root).unwrap();
            (0..N)
                .map(|i| {
                    m.send(
                        "alice",
                        ContentType::Text,
                        format!("out {i}").as_bytes(),
                        TTL,
                        SystemTime::now(),
                    )
                    .unwrap()
                    .sealed
                })
                .collect::<Vec<_>>()
        });
        let purger = s.spawn(|| {
            for _ in 0..50 {
                bob.purge_expired(SystemTime::now()).unwrap();
                bob.messages(SystemTime::now()).unwrap();
            }
        });
        receiver.join().unwrap();
        purger.join().unwrap();
        sender.join().unwrap()
    });
    assert_eq!(bob.messages(SystemTime::now()).unwrap().len(), N + 1);
    for (i, env) in outbound.iter().enumerate() {
        match am.receive(env, SystemTime::now()).unwrap() {
            Received::New(m) => assert_eq!(m.body, format!("out {i}").as_bytes()),
            other => panic!("{other:?}"),
        }
    }
}
