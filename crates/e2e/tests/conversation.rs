#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Two members, real vault files, real libsignal: a session from a bundle, then 1,000
//! messages each way with reordering, 10 % loss and late deliveries across ratchet
//! turns, closing and reopening both vaults between batches.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use postern_e2e::{ContentType, MessageId, Messenger, Received, Vault};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use common::*;

const BATCHES: usize = 10;
const PER_BATCH: usize = 100;
const TTL: Duration = Duration::from_secs(24 * 3600);

struct Side {
    name: &'static str,
    dir: std::path::PathBuf,
    vault: Option<Vault>,
    /// Envelopes held back for a later batch (delivered after the ratchet turned).
    late: Vec<(MessageId, Vec<u8>)>,
    /// What each delivered id must decrypt to.
    expected: HashMap<MessageId, Vec<u8>>,
    received: usize,
}

/// Sends a batch from `from` to `to`, losing ~10 %, holding back ~5 % for the next
/// batch, shuffling the rest; delivers and checks.
fn batch(
    from: &mut Side,
    to: &mut Side,
    roster: &postern_e2e::OrgRoster,
    root: &[u8],
    rng: &mut StdRng,
    round: usize,
) {
    let sender = Messenger::new(from.vault.as_ref().unwrap(), roster, root).unwrap();
    let mut wire = Vec::new();
    // Late envelopes from the previous batch arrive among this one's.
    let mut late = std::mem::take(&mut from.late);
    for i in 0..PER_BATCH {
        let body = format!("{} -> {} round {round} message {i}", from.name, to.name).into_bytes();
        let out = sender
            .send(to.name, ContentType::Text, &body, TTL, SystemTime::now())
            .unwrap();
        let roll: f64 = rng.random();
        if roll < 0.10 {
            continue; // lost
        }
        to.expected.insert(out.id, body);
        if roll < 0.15 {
            from.late.push((out.id, out.sealed));
        } else {
            wire.push((out.id, out.sealed));
        }
    }
    wire.append(&mut late);
    wire.shuffle(rng);
    let receiver = Messenger::new(to.vault.as_ref().unwrap(), roster, root).unwrap();
    for (id, sealed) in wire {
        match receiver.receive(&sealed, SystemTime::now()).unwrap() {
            Received::New(m) => {
                assert_eq!(m.id, id);
                assert_eq!(m.sender, from.name);
                assert_eq!(&m.body, to.expected.get(&id).unwrap());
                to.received += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn deliver_late(from: &mut Side, to: &mut Side, roster: &postern_e2e::OrgRoster, root: &[u8]) {
    let receiver = Messenger::new(to.vault.as_ref().unwrap(), roster, root).unwrap();
    for (id, sealed) in std::mem::take(&mut from.late) {
        let Received::New(m) = receiver.receive(&sealed, SystemTime::now()).unwrap() else {
            panic!("late message not new");
        };
        assert_eq!(m.id, id);
        to.received += 1;
    }
}

#[test]
fn thousand_messages_each_way_with_reordering_loss_and_reopening() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (alice_vault, alice_cert) = org.enrol(&tmp.path().join("alice"), "alice", 1);
    let (bob_vault, bob_cert) = org.enrol(&tmp.path().join("bob"), "bob", 2);
    let mut roster = org.roster(vec![]);
    roster.insert(alice_cert);
    roster.insert(bob_cert);
    let root = org.trust_root();

    // Alice fetches Bob's bundle and starts the session (PQXDH).
    let bundle = bob_vault.prekey_bundle().unwrap();
    Messenger::new(&alice_vault, &roster, &root)
        .unwrap()
        .start_session("bob", &bundle, SystemTime::now())
        .unwrap();

    let mut alice = Side {
        name: "alice",
        dir: tmp.path().join("alice"),
        vault: Some(alice_vault),
        late: Vec::new(),
        expected: HashMap::new(),
        received: 0,
    };
    let mut bob = Side {
        name: "bob",
        dir: tmp.path().join("bob"),
        vault: Some(bob_vault),
        late: Vec::new(),
        expected: HashMap::new(),
        received: 0,
    };
    let mut rng = StdRng::seed_from_u64(0x5057_4552_4e21);
    for round in 0..BATCHES {
        batch(&mut alice, &mut bob, &roster, &root, &mut rng, round);
        batch(&mut bob, &mut alice, &roster, &root, &mut rng, round);
        // Close both vaults and open them again.
        for side in [&mut alice, &mut bob] {
            side.vault = None;
            side.vault = Some(reopen(&side.dir));
        }
    }
    // Deliver what was still held back.
    deliver_late(&mut alice, &mut bob, &roster, &root);
    deliver_late(&mut bob, &mut alice, &roster, &root);
    for side in [&alice, &bob] {
        // Every delivered message arrived exactly once; lost ones never did.
        assert_eq!(side.received, side.expected.len(), "{}", side.name);
        let stored = side
            .vault
            .as_ref()
            .unwrap()
            .messages(SystemTime::now())
            .unwrap();
        assert_eq!(stored.len(), side.expected.len());
        assert!(side.expected.len() > BATCHES * PER_BATCH * 85 / 100);
    }
    eprintln!(
        "conversation: {} + {} messages delivered in {:?}",
        alice.received,
        bob.received,
        started.elapsed()
    );
}
