//! The relay as a real process: killed with SIGKILL while clients send, stopped with
//! SIGTERM while clients send, and the bytes it leaves on disk and in its logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use postern_identity::DeviceKeyPair;
use postern_protocol::bytes::BoundedVec;
use postern_protocol::ids::EnvelopeId;
use postern_protocol::message::*;
use postern_protocol::padding::unpad;
use postern_transport::RelayConnection;

/// Fetches every envelope waiting in the mailbox; returns content by envelope id.
async fn drain(c: &RelayConnection) -> HashMap<EnvelopeId, Vec<u8>> {
    let mut out = HashMap::new();
    loop {
        let Response::Envelopes(e) = c
            .request(&Request::Fetch(Fetch { limit: 64 }))
            .await
            .unwrap()
        else {
            panic!()
        };
        let mut ids = Vec::new();
        for env in e.envelopes.as_slice() {
            out.insert(env.id, unpad(env.body.as_slice()).unwrap().to_vec());
            ids.push(env.id);
        }
        // Fetch does not delete: page by acknowledging what we have read only when asked.
        if !e.more {
            return out;
        }
        // Without acks a fetch returns the same first page, so ack into a side list.
        c.request(&Request::Ack(Ack {
            ids: BoundedVec::new(ids).unwrap(),
        }))
        .await
        .unwrap();
    }
}

/// Contents whose send the relay acknowledged.
type Acked = Arc<Mutex<HashSet<Vec<u8>>>>;

/// Senders, each on its own anonymous connection, that keep sending numbered envelopes
/// into the mailbox until the relay goes away; returns the contents whose send was
/// acknowledged.
fn start_senders(
    addr: SocketAddr,
    pin: [u8; 32],
    mb: &Mailbox,
    n: usize,
) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut tasks = Vec::new();
    for s in 0..n {
        let (to, key) = (mb.sender, DeviceKeyPair::from_seed(&mb.sender_key.seed()));
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(c) = RelayConnection::connect_addr(addr, pin).await else {
                return;
            };
            for i in 0u32.. {
                let content = format!("s{s}-m{i}").into_bytes();
                match send(&c, to, &key, 3600, &content).await {
                    Ok(Response::Sent(_)) => {
                        acked.lock().unwrap().insert(content);
                    }
                    _ => return,
                }
            }
        }));
    }
    (acked, tasks)
}

fn fixed_port_relay(org: &Org) -> (TestRelay, std::path::PathBuf) {
    let port = free_port();
    relay_dir(org, |c| {
        c.listen = format!("127.0.0.1:{port}").parse().unwrap();
        c.limits.requests_per_sec = 100_000;
        c.limits.request_burst = 100_000;
        // Every sender is on 127.0.0.1 and they all write to one queue.
        unlimited_anonymous(c);
    })
}

async fn recipient(addr: SocketAddr, pin: [u8; 32], org: &Org) -> (Member, Mailbox) {
    let bob = org.member("bob");
    let c = admitted(addr, pin, &bob).await;
    let mb = create_mailbox(&c).await;
    c.close().await;
    (bob, mb)
}

async fn open(addr: SocketAddr, pin: [u8; 32], m: &Member, mb: &Mailbox) -> RelayConnection {
    let mut c = admitted(addr, pin, m).await;
    c.open_mailbox(mb.recipient, &mb.owner).await.unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_every_acknowledged_envelope_is_delivered_and_none_after_its_ack() {
    let org = Org::new();
    let (dir, data) = fixed_port_relay(&org);
    let p = pin(&data);
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rounds = 0;
    let mut total_acked = 0;
    let (bob, mb) = {
        let relay = spawn_relay(&data, &dir.scratch().join("log0"));
        let r = recipient(relay.addr, p, &org).await;
        relay.terminate();
        r
    };
    for round in 0..3u64 {
        let relay = spawn_relay(&data, &dir.scratch().join(format!("log{round}")));
        let addr = relay.addr;
        let (acked, tasks) = start_senders(addr, p, &mb, 6);
        // Kill at a pseudo-random moment while the senders are busy.
        let wait = 300 + (seed.wrapping_mul(round + 1) % 700);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        relay.kill9();
        // Responses already on the wire are read within moments; then the senders, whose
        // requests can no longer succeed, are stopped.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for t in &tasks {
            t.abort();
        }
        let acked = acked.lock().unwrap().clone();
        assert!(
            !acked.is_empty(),
            "seed {seed}: nothing was sent before the kill"
        );

        // Restart: every acknowledged envelope is there.
        let relay = spawn_relay(&data, &dir.scratch().join(format!("log{round}b")));
        let c = open(relay.addr, p, &bob, &mb).await;
        let mut got: HashMap<EnvelopeId, Vec<u8>> = HashMap::new();
        // Collect everything (acking as we page), then check.
        got.extend(drain(&c).await);
        let contents: HashSet<Vec<u8>> = got.values().cloned().collect();
        let missing: Vec<_> = acked.difference(&contents).collect();
        assert!(
            missing.is_empty(),
            "seed {seed}: {} acknowledged envelopes lost, e.g. {:?}",
            missing.len(),
            String::from_utf8_lossy(missing[0])
        );
        // Acknowledge the rest; after a restart nothing comes back.
        let ids: Vec<EnvelopeId> = got.keys().copied().collect();
        for chunk in ids.chunks(256) {
            c.request(&Request::Ack(Ack {
                ids: BoundedVec::new(chunk.to_vec()).unwrap(),
            }))
            .await
            .unwrap();
        }
        c.close().await;
        assert!(relay.terminate().success());
        let relay = spawn_relay(&data, &dir.scratch().join(format!("log{round}c")));
        let c = open(relay.addr, p, &bob, &mb).await;
        assert!(
            drain(&c).await.is_empty(),
            "seed {seed}: acked envelopes delivered again"
        );
        c.close().await;
        relay.kill9();
        rounds += 1;
        total_acked += acked.len();
    }
    println!("{rounds} kills, {total_acked} acknowledged sends, none lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_sends_and_exits_cleanly() {
    let org = Org::new();
    let (dir, data) = fixed_port_relay(&org);
    let p = pin(&data);
    let relay = spawn_relay(&data, &dir.scratch().join("log-a"));
    let (bob, mb) = recipient(relay.addr, p, &org).await;
    let (acked, tasks) = start_senders(relay.addr, p, &mb, 6);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = relay.terminate();
    assert!(status.success(), "relay exited with {status}");
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(40), t).await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let relay = spawn_relay(&data, &dir.scratch().join("log-b"));
    let c = open(relay.addr, p, &bob, &mb).await;
    let contents: HashSet<Vec<u8>> = drain(&c).await.into_values().collect();
    assert!(
        acked.is_subset(&contents),
        "acknowledged sends lost at SIGTERM"
    );
    c.close().await;
    relay.kill9();
}

fn scan(dir: &Path, needles: &[(&str, Vec<u8>)], what: &str) {
    for (path, bytes) in all_bytes(dir) {
        for (name, needle) in needles {
            assert!(
                !contains(&bytes, needle),
                "{what}: {} contains the {name}",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_logs_hold_no_handle_role_key_or_address() {
    let org = Org::new();
    let (dir, data) = fixed_port_relay(&org);
    let p = pin(&data);
    let log = dir.scratch().join("relay.log");
    // The most verbose level there is, for the relay and everything it links.
    let relay = RelayProcess::spawn_logging(relay_bin(), &data, &log, "trace");
    let handle_a = "zq-courier-marker-41";
    let handle_b = "zq-coordinator-marker-42";
    let a = org.member_valid(
        handle_a,
        postern_identity::Role::Courier,
        now() - 60,
        now() + 3600,
    );
    let b = org.member_valid(
        handle_b,
        postern_identity::Role::Coordinator,
        now() - 60,
        now() + 3600,
    );
    let mut ca = admitted(relay.addr, p, &a).await;
    let cb = admitted(relay.addr, p, &b).await;
    let mb = create_mailbox(&ca).await;
    ca.open_mailbox(mb.recipient, &mb.owner).await.unwrap();
    // Sends come on an anonymous connection (from the same address).
    let anon = RelayConnection::connect_addr(relay.addr, p).await.unwrap();
    for i in 0..20 {
        let r = mb
            .send(&anon, 3600, format!("opaque-{i}").as_bytes())
            .await
            .unwrap();
        assert!(matches!(r, Response::Sent(_)), "{r:?}");
    }
    cb.request(&Request::PublishPrekeys(PublishPrekeys {
        directory: postern_protocol::HandleTag([0x5c; 32]),
        entry: postern_protocol::Bytes::try_from(&b"sealed-entry"[..]).unwrap(),
        one_time: BoundedVec::empty(),
    }))
    .await
    .unwrap();
    // A failed admission too: its handle must not be logged either.
    let stranger = Org::new().member("zq-stranger-marker-43");
    let mut cs = RelayConnection::connect_addr(relay.addr, p).await.unwrap();
    assert!(cs.authenticate(&stranger).await.is_err());
    tokio::time::sleep(Duration::from_secs(6)).await; // let stats.json be written
    ca.close().await;
    cb.close().await;
    anon.close().await;
    assert!(relay.terminate().success());

    let mut needles: Vec<(&str, Vec<u8>)> = vec![
        ("handle a", handle_a.as_bytes().to_vec()),
        ("handle b", handle_b.as_bytes().to_vec()),
        ("stranger handle", b"zq-stranger-marker-43".to_vec()),
        ("role name", b"coordinator".to_vec()),
        ("device key a", a.device.public_key().to_bytes().to_vec()),
        ("device key b", b.device.public_key().to_bytes().to_vec()),
        ("certificate a", a.cert.clone()),
        ("certificate b", b.cert.clone()),
    ];
    // Envelope bodies are sealed at rest under epoch keys: not even the padded
    // ciphertext the member sent is on disk as it was sent.
    let bodies: Vec<(&str, Vec<u8>)> = vec![("envelope body", b"opaque-1".to_vec())];
    scan(&data, &bodies, "data directory");
    scan(&data, &needles, "data directory");
    // The data directory must not hold the members' address either (relay.toml holds the
    // relay's own listen address, which here is the same loopback IP, so skip that file).
    for (path, bytes) in all_bytes(&data) {
        if path.ends_with("relay.toml") {
            continue;
        }
        assert!(
            !contains(&bytes, b"127.0.0.1"),
            "{} holds an IP",
            path.display()
        );
        assert!(
            !contains(&bytes, &[127, 0, 0, 1]),
            "{} holds an IP",
            path.display()
        );
    }
    // Logs (trace level): no handle, key, certificate, mailbox id or member address.
    needles.push(("mailbox id", mb.recipient.to_string().into_bytes()));
    needles.push(("sender id", mb.sender.to_string().into_bytes()));
    scan(
        dir.scratch().join("relay.log").parent().unwrap(),
        &needles[..3],
        "log",
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    for (name, needle) in &needles {
        assert!(
            !contains(log_text.as_bytes(), needle),
            "log contains the {name}"
        );
    }
    let member_port = ca_port_hint(&log_text);
    assert!(
        member_port.is_none(),
        "log contains a client address: {member_port:?}"
    );
}

/// Any `127.0.0.1:<port>` in the log other than the relay's own listen line.
fn ca_port_hint(log: &str) -> Option<String> {
    log.lines()
        .filter(|l| !l.contains("relay listening"))
        .find(|l| l.contains("127.0.0.1:"))
        .map(str::to_owned)
}
