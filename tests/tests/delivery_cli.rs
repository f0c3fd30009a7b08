//! `postern delivery …` as a user runs them: the real binary against
//! a real relay on loopback, real vault files, `POSTERN_INSECURE_FAST_KDF=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use postern_deliveries::HandoffCode;
use postern_demo::DemoWorld;
use postern_e2e::KdfParams;
use postern_identity::{Policy, Role};
use serde_json::Value;

const PASS: &str = "correct horse battery staple";

async fn postern(home: &Path, args: &[&str]) -> Output {
    postern_with_input(home, args, "").await
}

/// Runs `postern` with `input` on its standard input (how a script gives a hand-off code).
async fn postern_with_input(home: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postern-under-test"));
    cmd.arg("--home")
        .arg(home)
        .args(args)
        .env("POSTERN_PASSPHRASE", PASS)
        .env("POSTERN_INSECURE_FAST_KDF", "1")
        .env_remove("POSTERN_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let input = input.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        // The command may exit before reading (a refused argument): ignore a broken pipe.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Runs `postern` with no passphrase available (no variable, no file, no terminal).
fn postern_without_passphrase(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postern-under-test"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("POSTERN_PASSPHRASE")
        .env_remove("POSTERN_HOME")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `postern delivery handoff ID`, the code given on standard input.
async fn handoff(home: &Path, id: &str, code: &str) -> Output {
    postern_with_input(home, &["delivery", "handoff", id], &format!("{code}\n")).await
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap()
}

fn refused(o: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_commands_run_a_delivery_with_json_output() {
    let tmp = tempfile::tempdir().unwrap();
    let w = DemoWorld::start(tmp.path(), Policy::default())
        .await
        .unwrap();
    for (h, role) in [("coord-1", Role::Coordinator), ("courier-a", Role::Courier)] {
        let m = w
            .enroll(h, role, PASS.as_bytes(), KdfParams::insecure_for_tests())
            .await
            .unwrap();
        m.close();
    }
    let (coord, courier) = (w.home("coord-1"), w.home("courier-a"));

    // Bad input is refused with the fix, before anything is recorded.
    let o = postern(
        &coord,
        &[
            "delivery",
            "new",
            "--courier",
            "courier-a",
            "--family",
            "F-1",
            "--amount",
            "10",
            "--currency",
            "XYZ",
        ],
    )
    .await;
    refused(&o, 2, "XYZ");
    let o = postern(
        &courier,
        &[
            "delivery",
            "new",
            "--courier",
            "courier-a",
            "--family",
            "F-100",
            "--amount",
            "10",
            "--currency",
            "USD",
        ],
    )
    .await;
    refused(&o, 4, "may not create deliveries");
    let o = postern(
        &coord,
        &[
            "delivery",
            "new",
            "--courier",
            "courier-a",
            "--family",
            "F-100",
            "--amount",
            "10",
            "--currency",
            "USD",
            "--deadline",
            "yesterday",
        ],
    )
    .await;
    refused(&o, 2, "bad deadline");
    // Typing mistakes are usage errors (2), found before the passphrase is asked for:
    // here there is none to be had, which would be exit 3.
    let new = |flag: &str, value: &str| {
        let mut args = vec![
            "delivery",
            "new",
            "--courier",
            "courier-a",
            "--family",
            "F-100",
            "--amount",
            "10",
            "--currency",
            "USD",
        ];
        let at = args.iter().position(|a| *a == flag).unwrap();
        args[at + 1] = value;
        postern_without_passphrase(&coord, &args)
    };
    refused(&new("--amount", "ten"), 2, "--amount");
    refused(&new("--amount", "10.123"), 2, "--amount");
    refused(&new("--currency", "usd?"), 2, "--currency");
    refused(&new("--family", "Kim family"), 2, "--family");
    let mut late = new("--amount", "10");
    assert_eq!(late.status.code(), Some(3), "a good command does ask");
    late = postern_without_passphrase(&coord, &["delivery", "show", "not-an-id"]);
    refused(&late, 2, "not a delivery id");
    late = postern_without_passphrase(
        &coord,
        &[
            "delivery",
            "new",
            "--courier",
            "c",
            "--family",
            "F-1",
            "--amount",
            "1",
            "--currency",
            "USD",
            "--deadline",
            "yesterday",
        ],
    );
    refused(&late, 2, "bad deadline");

    let o = postern(
        &coord,
        &[
            "delivery",
            "new",
            "--courier",
            "courier-a",
            "--family",
            "F-2001",
            "--amount",
            "300000",
            "--currency",
            "KRW",
            "--deadline",
            "3d",
            "--json",
        ],
    )
    .await;
    let created = json(&o);
    let id = created["id"].as_str().unwrap().to_owned();
    let code = created["handoff_code"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "assigned");
    assert_eq!(created["amount_minor"], 300000);
    assert_eq!(created["currency"], "KRW");
    assert_eq!(created["sent_to"], serde_json::json!(["courier-a"]));
    let right = HandoffCode::parse(&code).unwrap();

    // Human output names the code's rules.
    let o = postern(
        &coord,
        &[
            "delivery",
            "new",
            "--courier",
            "courier-a",
            "--family",
            "F-2002",
            "--amount",
            "5.25",
            "--currency",
            "EUR",
        ],
    )
    .await;
    let text = ok(&o);
    assert!(text.contains("HAND-OFF CODE"), "{text}");
    assert!(text.contains("never to the courier"), "{text}");

    let list = json(&postern(&coord, &["delivery", "list", "--json"]).await);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let list = json(&postern(&courier, &["delivery", "list", "--json"]).await);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains("handoff_code"));
    assert!(!list.to_string().contains(&right.display_grouped()));

    ok(&postern(&courier, &["delivery", "update", &id, "picked-up"]).await);
    let o = postern(
        &courier,
        &[
            "delivery",
            "update",
            &id,
            "in-transit",
            "--note",
            "crossing tonight",
        ],
    )
    .await;
    assert!(ok(&o).contains("in-transit"));
    // A note with a line posing as a history entry (control characters and direction
    // overrides are refused in notes already): the coordinator's `show` prints it under
    // a bar, so it cannot pass for one.
    let forged =
        "ok\n    2026-01-01T00:00:00Z  confirmed        by coord-1 (coordinator) -> confirmed";
    ok(&postern(
        &courier,
        &["delivery", "update", &id, "note", "--note", forged],
    )
    .await);
    let shown = ok(&postern(&coord, &["delivery", "show", &id]).await);
    let posing: Vec<&str> = shown
        .lines()
        .filter(|l| l.contains("2026-01-01T00:00:00Z"))
        .collect();
    assert_eq!(posing.len(), 1, "{shown}");
    assert!(posing[0].trim_start().starts_with('|'), "{shown}");
    refused(
        &postern(&courier, &["delivery", "update", &id, "failed"]).await,
        2,
        "--note",
    );
    refused(
        &postern(&courier, &["delivery", "update", &id, "arrived"]).await,
        2,
        "unknown status",
    );
    refused(
        &postern(&courier, &["delivery", "update", &id, "confirmed"]).await,
        4,
        "may not confirm",
    );
    refused(
        &postern(
            &courier,
            &["delivery", "show", "AAAAAAAAAAAAAAAAAAAAAAAAAA"],
        )
        .await,
        4,
        "no delivery",
    );

    // A misread digit is caught locally (check digit) and costs no attempt.
    let mut typo = right.display_grouped().into_bytes();
    typo[0] = if typo[0] == b'9' { b'8' } else { typo[0] + 1 };
    let typo = String::from_utf8(typo).unwrap();
    refused(&handoff(&courier, &id, &typo).await, 2, "does not count");
    // The code is never taken from the command line (shell history, `ps`), and nothing
    // typed is no code at all; neither counts as an attempt.
    refused(
        &postern(&courier, &["delivery", "handoff", &id, "--code", &code]).await,
        2,
        "shell history",
    );
    refused(&handoff(&courier, &id, "").await, 2, "no hand-off code");
    // A wrong (but well-formed) code is refused by the coordinator's client.
    let wrong = loop {
        let c = HandoffCode::generate();
        if c != right {
            break c;
        }
    };
    ok(&handoff(&courier, &id, &wrong.display_grouped()).await);
    let shown = json(&postern(&coord, &["delivery", "show", &id, "--json"]).await);
    assert_eq!(shown["status"], "in-transit");
    assert_eq!(shown["failed_handoff_attempts"], 1);
    assert!(
        shown["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("wrong hand-off code")
    );

    ok(&handoff(&courier, &id, &code).await);
    let shown = json(&postern(&coord, &["delivery", "show", &id, "--json"]).await);
    assert_eq!(shown["status"], "confirmed");
    let kinds: Vec<&str> = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event_kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "created",
            "assigned",
            "picked-up",
            "note",
            "in-transit",
            "note",
            "handoff-refused",
            "handed-off",
            "confirmed"
        ]
    );
    let mine = json(&postern(&courier, &["delivery", "show", &id, "--json"]).await);
    assert_eq!(mine["status"], "confirmed");
    assert_eq!(mine["failed_handoff_attempts"], 1);
    assert_eq!(mine["flagged"], false);
    let human = ok(&postern(&courier, &["delivery", "show", &id]).await);
    assert!(
        human.contains("confirmed") && human.contains("crossing tonight"),
        "{human}"
    );
    let table = ok(&postern(&coord, &["delivery", "list"]).await);
    assert!(
        table.contains(&id) && table.contains("300000 KRW"),
        "{table}"
    );

    // Relay gone: reading still works from the device, with a warning; changes fail
    // with exit 5 and record nothing.
    w.shutdown().await;
    let o = postern(&courier, &["delivery", "show", &id, "--json"]).await;
    assert_eq!(json(&o)["status"], "confirmed");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not synced"));
    let o = postern(
        &courier,
        &["delivery", "update", &id, "note", "--note", "late"],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
