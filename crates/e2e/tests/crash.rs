#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A real child process (this test binary, re-executed) decrypts envelopes into Bob's
//! vault and is SIGKILLed at random moments, again and again. Like the relay, the parent
//! redelivers everything after the last envelope the child acknowledged. Afterwards: no
//! message lost, none decrypted twice, and the session still works both ways.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use postern_e2e::{ContentType, E2eError, Messenger, OrgRoster, Received};
use postern_identity::{MemberCertificate, OrgKey, RevocationList};
use rand::{Rng, SeedableRng};

use common::*;

const CHILD_ENV: &str = "POSTERN_E2E_CRASH_CHILD";
const MESSAGES: usize = 400;
const TTL: Duration = Duration::from_secs(24 * 3600);

fn write_frames(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap();
}

fn read_frames(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    let mut r = b.as_slice();
    let mut out = Vec::new();
    while !r.is_empty() {
        let n = u32::from_be_bytes(r[..4].try_into().unwrap()) as usize;
        out.push(r[4..4 + n].to_vec());
        r = &r[4 + n..];
    }
    out
}

fn load_roster(dir: &Path) -> (OrgRoster, Vec<u8>) {
    let f = read_frames(&dir.join("trust"));
    let org = OrgKey::from_bytes(f[0].as_slice().try_into().unwrap()).unwrap();
    let mut roster = OrgRoster::new(org, RevocationList::decode(&f[1]).unwrap());
    roster.insert(MemberCertificate::decode(&f[2]).unwrap());
    roster.insert(MemberCertificate::decode(&f[3]).unwrap());
    (roster, f[4].clone())
}

/// The child: only does something when re-executed by the parent.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let start: usize = std::env::var("POSTERN_E2E_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let (roster, root) = load_roster(dir);
    let envelopes = read_frames(&dir.join("envelopes"));
    let vault = reopen(&dir.join("bob"));
    let bob = Messenger::new(&vault, &roster, &root).unwrap();
    let mut stdout = std::io::stdout().lock();
    for (i, env) in envelopes.iter().enumerate().skip(start) {
        let tag = match bob.receive(env, SystemTime::now()) {
            Ok(Received::New(_)) => "new",
            Ok(other) => panic!("unexpected {other:?}"),
            // Committed by the previous child, which died before acknowledging.
            Err(E2eError::Replay { .. }) => "replay",
            Err(e) => panic!("envelope {i}: {e}"),
        };
        writeln!(stdout, "CRASHTEST {tag} {i}").unwrap();
        stdout.flush().unwrap();
    }
    writeln!(stdout, "CRASHTEST done").unwrap();
}

#[test]
fn killed_receiver_never_loses_a_session_nor_decrypts_twice() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (alice, ac) = org.enrol(&tmp.path().join("alice"), "alice", 1);
    let (bob, bc) = org.enrol(&tmp.path().join("bob"), "bob", 2);
    let root = org.trust_root();
    write_frames(
        &tmp.path().join("trust"),
        &[
            org.root.org_key().to_bytes().to_vec(),
            org.revocations(1, vec![]).encode(),
            ac.encode(),
            bc.encode(),
            root.to_vec(),
        ],
    );
    let (roster, _) = load_roster(tmp.path());
    let am = Messenger::new(&alice, &roster, &root).unwrap();
    am.start_session("bob", &bob.prekey_bundle().unwrap(), SystemTime::now())
        .unwrap();
    let mut bodies = Vec::new();
    let mut envelopes = Vec::new();
    for i in 0..MESSAGES {
        let body = format!("message {i}").into_bytes();
        let out = am
            .send("bob", ContentType::Text, &body, TTL, SystemTime::now())
            .unwrap();
        envelopes.push(out.sealed);
        bodies.push(body);
    }
    write_frames(&tmp.path().join("envelopes"), &envelopes);
    drop(bob);

    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut new_count = vec![0u32; MESSAGES];
    let mut acked: usize = 0; // next envelope to deliver
    let (mut kills, mut replays) = (0, 0);
    for _round in 0..500 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, tmp.path())
            .env("POSTERN_E2E_CRASH_START", acked.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(5..60)));
        let killed = child.kill().is_ok(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        let mut done = false;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            // libtest may print "test crash_child ... " on the same line first.
            let Some(at) = line.find("CRASHTEST ") else {
                continue;
            };
            let rest = &line[at + "CRASHTEST ".len()..];
            if rest == "done" {
                done = true;
                continue;
            }
            let (tag, i) = rest.split_once(' ').unwrap();
            let i: usize = i.parse().unwrap();
            assert_eq!(i, acked, "deliveries are in order");
            match tag {
                "new" => new_count[i] += 1,
                "replay" => replays += 1,
                other => panic!("{other}"),
            }
            acked = i + 1;
        }
        if done {
            // (It may still have been killed between printing "done" and exiting.)
            break;
        }
        // Not done: it was killed, or it failed on its own (a panic exits with 101).
        assert_eq!(status.signal(), Some(9), "child failed by itself: {status}");
        assert!(killed);
        kills += 1;
    }
    assert_eq!(acked, MESSAGES, "the child never finished");
    assert!(
        kills >= 3,
        "only {kills} kills; the test did not exercise crashes"
    );
    // No message decrypted twice; every message decrypted once, either acknowledged as
    // new, or committed by a child that died before acknowledging (then a replay).
    assert!(new_count.iter().all(|&c| c <= 1));
    let news = new_count.iter().filter(|&&c| c == 1).count();
    assert_eq!(news + replays, MESSAGES);
    let bob = reopen(&tmp.path().join("bob"));
    let stored = bob.messages(SystemTime::now()).unwrap();
    assert_eq!(stored.len(), MESSAGES);
    for m in &stored {
        assert!(bodies.contains(&m.body));
    }
    // The session survived every crash: Bob replies, Alice reads it, and back again.
    let bm = Messenger::new(&bob, &roster, &root).unwrap();
    let reply = bm
        .send(
            "alice",
            ContentType::Text,
            b"all here",
            TTL,
            SystemTime::now(),
        )
        .unwrap();
    assert!(matches!(
        am.receive(&reply.sealed, SystemTime::now()).unwrap(),
        Received::New(_)
    ));
    let again = am
        .send("bob", ContentType::Text, b"good", TTL, SystemTime::now())
        .unwrap();
    assert!(matches!(
        bm.receive(&again.sealed, SystemTime::now()).unwrap(),
        Received::New(_)
    ));
    eprintln!("crash test: {kills} kills, {replays} committed-but-unacknowledged redeliveries");
}
