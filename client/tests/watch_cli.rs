//! `postern watch --json` through the real binary: a message that was waiting arrives
//! first, a new one is pushed while it watches, and expired ones never show.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use postern_relay::relay;

const PASS: &str = "correct horse battery staple";

fn postern(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postern"))
        .env_remove("POSTERN_HOME")
        .env("POSTERN_PASSPHRASE", PASS)
        .env("POSTERN_INSECURE_FAST_KDF", "1")
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = postern(home, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn member(root: &Path, org_home: &Path, handle: &str) -> PathBuf {
    let home = root.join(handle);
    let req = root.join(format!("{handle}.req"));
    let bundle = root.join(format!("{handle}.bundle"));
    ok(
        &home,
        &["init", "--handle", handle, "--out", req.to_str().unwrap()],
    );
    ok(
        org_home,
        &[
            "org",
            "enroll",
            req.to_str().unwrap(),
            "--role",
            "courier",
            "--out",
            bundle.to_str().unwrap(),
        ],
    );
    ok(&home, &["enroll", bundle.to_str().unwrap()]);
    home
}

#[test]
fn watch_prints_waiting_then_pushed_messages_as_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let org_home = root.join("org");
    let org_key = ok(&org_home, &["org", "init"])
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = root.join("relay");
    relay::init(&data, &org_key, "127.0.0.1:0".parse().unwrap(), None).unwrap();
    let running = rt.block_on(relay::start(&data)).unwrap();
    let mut address = relay::address(&data).unwrap();
    address.port = running.local_addr.port();
    ok(&org_home, &["org", "relay", "add", &address.to_string()]);
    let alice = member(root, &org_home, "alice");
    let bob = member(root, &org_home, "bob");

    ok(&alice, &["send", "bob", "waiting before watch"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .env_remove("POSTERN_HOME")
        .env("POSTERN_PASSPHRASE", PASS)
        .env("POSTERN_INSECURE_FAST_KDF", "1")
        .arg("--home")
        .arg(&bob)
        .args(["watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let first: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(first["from"], "alice");
    assert_eq!(first["body"], "waiting before watch");
    // Sent while bob watches: pushed, not polled.
    ok(&alice, &["send", "bob", "pushed while watching"]);
    let second: serde_json::Value =
        serde_json::from_str(&rx.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
    assert_eq!(second["body"], "pushed while watching");
    child.kill().unwrap();
    child.wait().unwrap();
    rt.block_on(running.shutdown());
}
