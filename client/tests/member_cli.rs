//! Runs the real `postern` binary against a relay on loopback: org init, relay add, member
//! init, org enroll, enroll, send, inbox --json, watch --json, and refusals with their
//! exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use postern_relay::relay;
use postern_relay::testing::TestRelay;

const PASS: &str = "correct horse battery staple";

fn postern(home: &Path, pass: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postern"))
        .env_remove("POSTERN_HOME")
        .env("POSTERN_PASSPHRASE", pass)
        .env("POSTERN_INSECURE_FAST_KDF", "1")
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap()
}

fn ok(home: &Path, args: &[&str]) -> String {
    let out = postern(home, PASS, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(home: &Path, pass: &str, args: &[&str]) -> (i32, String) {
    let out = postern(home, pass, args);
    assert!(!out.status.success(), "{args:?} succeeded unexpectedly");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn member(root: &Path, org_home: &Path, handle: &str) -> PathBuf {
    let home = root.join(handle);
    let req = root.join(format!("{handle}.req"));
    let bundle = root.join(format!("{handle}.bundle"));
    let out = ok(&home, &["init", "--handle", handle, "--out", s(&req)]);
    let fingerprint = out.lines().last().unwrap().to_owned();
    ok(
        org_home,
        &[
            "org",
            "enroll",
            s(&req),
            "--role",
            "courier",
            "--out",
            s(&bundle),
            "--fingerprint",
            &fingerprint,
        ],
    );
    let out = ok(&home, &["enroll", s(&bundle)]);
    assert!(out.contains(&format!("Enrolled as {handle}")), "{out}");
    home
}

/// An org (admin home) and a relay on loopback that the org's descriptor names.
struct Org {
    tmp: tempfile::TempDir,
    org_home: PathBuf,
    rt: tokio::runtime::Runtime,
    running: relay::Running,
    _relay_dir: TestRelay,
}

impl Org {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let org_home = tmp.path().join("org");
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
        let relay_dir = TestRelay::new(&org_key, |_| {});
        let running = rt.block_on(relay_dir.start());
        let address = running.address.clone();
        ok(&org_home, &["org", "relay", "add", &address.to_string()]);
        Self {
            tmp,
            org_home,
            rt,
            running,
            _relay_dir: relay_dir,
        }
    }

    fn shutdown(self) {
        self.rt.block_on(self.running.shutdown());
    }
}

#[test]
fn init_enroll_send_and_inbox_through_the_real_binary() {
    let org = Org::new();
    let (root, org_home) = (org.tmp.path(), &org.org_home);

    let alice = member(root, org_home, "alice");
    let bob = member(root, org_home, "bob");

    let out = ok(
        &alice,
        &["send", "bob", "meet at the usual place", "--ttl", "2h"],
    );
    assert!(out.contains("Sent to bob"), "{out}");
    let json = ok(&bob, &["inbox", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{json}");
    let m = &list[0];
    assert_eq!(m["from"], "alice");
    assert_eq!(m["body"], "meet at the usual place");
    assert_eq!(m["id"].as_str().unwrap().len(), 32);
    for field in ["sent_at", "expires_at"] {
        let t = m[field].as_str().unwrap();
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| panic!("{field} is not RFC 3339: {t}"));
    }
    // Listing again shows the stored message; nothing new arrives twice.
    let again: serde_json::Value = serde_json::from_str(&ok(&bob, &["inbox", "--json"])).unwrap();
    assert_eq!(again.as_array().unwrap().len(), 1);

    // Reply and human output.
    ok(&bob, &["send", "alice", "ok"]);
    let out = ok(&alice, &["inbox"]);
    assert!(out.contains("from bob") && out.contains("ok"), "{out}");
    let contacts: serde_json::Value =
        serde_json::from_str(&ok(&alice, &["contacts", "--json"])).unwrap();
    assert_eq!(contacts[0]["handle"], "bob");
    let va = ok(&alice, &["verify", "bob", "--json"]);
    let vb = ok(&bob, &["verify", "alice", "--json"]);
    let na: serde_json::Value = serde_json::from_str(&va).unwrap();
    let nb: serde_json::Value = serde_json::from_str(&vb).unwrap();
    assert_eq!(na["safety_number"], nb["safety_number"]);
    let st: serde_json::Value = serde_json::from_str(&ok(&alice, &["status", "--json"])).unwrap();
    assert_eq!(st["relay_reachable"], true);
    assert_eq!(st["enrolled"], true);
    assert!(st["prekeys_available"].as_u64().unwrap() >= 20);

    // Refusals and their exit codes.
    let (code, err) = fails(&alice, "wrong passphrase!!", &["inbox"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("wrong passphrase"), "{err}");
    let (code, err) = fails(&alice, PASS, &["send", "nobody", "hi"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no member nobody"), "{err}");
    let (code, err) = fails(&alice, PASS, &["send", "bob", "hi", "--ttl", "30d"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("shorter --ttl"), "{err}");
    let (code, err) = fails(&root.join("nobody-home"), PASS, &["inbox"]);
    assert_eq!(code, 6, "{err}");
    // A TTL that does not parse, or is zero, is a usage error, found before the vault
    // is unlocked (the wrong passphrase here is never tried).
    for ttl in ["soon", "0s"] {
        let (code, err) = fails(
            &alice,
            "wrong passphrase!!",
            &["send", "bob", "hi", "--ttl", ttl],
        );
        assert_eq!(code, 2, "{ttl}: {err}");
        assert!(err.contains("--ttl"), "{err}");
    }
    let tampered = root.join("tampered.bundle");
    let carol = root.join("carol");
    ok(
        &carol,
        &[
            "init",
            "--handle",
            "carol",
            "--out",
            s(&root.join("carol.req")),
        ],
    );
    ok(
        org_home,
        &[
            "org",
            "enroll",
            s(&root.join("carol.req")),
            "--role",
            "courier",
            "--out",
            s(&tampered),
        ],
    );
    let mut bytes = std::fs::read(&tampered).unwrap();
    let n = bytes.len() - 3;
    bytes[n] ^= 1;
    std::fs::write(&tampered, bytes).unwrap();
    let (code, err) = fails(&carol, PASS, &["enroll", s(&tampered)]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("bundle is refused"), "{err}");

    // Wipe.
    let out = ok(&carol, &["wipe", "--yes"]);
    assert!(out.contains("Wiped"), "{out}");
    assert!(!carol.join("vault").exists());

    org.shutdown();
}

#[test]
fn help_documents_the_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Exit codes"), "{text}");
    // The table is the one the code classifies errors by.
    assert!(text.contains(&postern::cli::exit::help_text()), "{text}");
    for cmd in [
        "init", "enroll", "send", "inbox", "watch", "contacts", "verify", "status", "wipe",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from --help");
    }
}

#[test]
fn watch_prints_waiting_then_pushed_messages_as_json_lines() {
    let org = Org::new();
    let (root, org_home) = (org.tmp.path(), &org.org_home);
    let alice = member(root, org_home, "alice");
    let bob = member(root, org_home, "bob");

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
    org.shutdown();
}
