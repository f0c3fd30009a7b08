//! The relay as an operator runs it: readiness and stopping told to a service manager
//! over a real `NOTIFY_SOCKET`, one relay per data directory, `stats` that says whether
//! the relay runs and how old its figures are, plain logs when redirected, the loopback
//! Prometheus endpoint, `--config` and `check-config`. Real processes on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use postern_relay::config::RelayConfig;

fn relay(args: &[&str], data: &Path) -> Output {
    Command::new(relay_bin())
        .args(args)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The next datagram on the notify socket, within 15 s.
fn notified(sock: &UnixDatagram) -> String {
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("no notification from the relay");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_relay_runs_as_an_operator_expects() {
    let org = Org::new();
    let metrics_port = free_port();
    let (d, data) = relay_dir(&org, |c| {
        c.metrics_listen = Some(([127, 0, 0, 1], metrics_port).into());
    });
    let scratch = d.scratch().to_path_buf();

    // Before it ever ran: stats says so.
    let out = relay(&["stats"], &data);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not running and has not run"),
        "{out:?}"
    );

    // Started under a service manager: it says READY=1 once it listens.
    let sock_path = scratch.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let log = scratch.join("relay.log");
    let mut child = Command::new(relay_bin())
        .args(["run", "--data"])
        .arg(&data)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("POSTERN_RELAY_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let ready = notified(&sock);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");

    // A second relay on the same directory is told plainly, and leaves the first alone.
    let second = relay(&["run"], &data);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another postern-relay is already running"),
        "{err}"
    );

    // stats: running, and how old its figures are.
    let start = Instant::now();
    let stats = loop {
        let out = relay(&["stats"], &data);
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{out:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stats.contains("running; figures from"), "{stats}");
    let json: serde_json::Value =
        serde_json::from_slice(&relay(&["stats", "--json"], &data).stdout).unwrap();
    assert_eq!(json["running"], true);
    assert!(json["age_secs"].as_u64().unwrap() < 60);

    // The Prometheus endpoint, on loopback.
    let page = get(([127, 0, 0, 1], metrics_port).into(), "/metrics");
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(
        page.contains("postern_relay_connections_accepted_total"),
        "{page}"
    );

    // SIGTERM: STOPPING=1, a clean exit, and stats then says it is not running.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let stopping = notified(&sock);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
    assert!(child.wait().unwrap().success());
    let stats = String::from_utf8_lossy(&relay(&["stats"], &data).stdout).into_owned();
    assert!(stats.contains("NOT RUNNING"), "{stats}");

    // Its log, written to a file, is plain text.
    let text = std::fs::read(&log).unwrap();
    assert!(!text.is_empty());
    assert!(!text.contains(&0x1b), "colour codes in a redirected log");
}

#[test]
fn check_config_and_another_config_file() {
    let org = Org::new();
    let (d, data) = relay_dir(&org, |_| {});
    let out = relay(&["check-config"], &data);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("relay.toml: OK"), "{text}");
    assert!(text.contains("loopback"), "{text}");

    // A config elsewhere, with a mistake: check-config names it and fails; run refuses.
    let mut c = RelayConfig::load(&data).unwrap();
    c.metrics_listen = Some("0.0.0.0:9464".parse().unwrap());
    let other = d.scratch().join("other.toml");
    std::fs::write(&other, c.to_commented_toml()).unwrap();
    let other_arg = other.to_str().unwrap();
    let out = relay(&["check-config", "--config", other_arg], &data);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
    let out = relay(&["run", "--config", other_arg], &data);
    assert!(!out.status.success());

    // A good one elsewhere is the one `run --config` uses: its port is where it listens.
    let port = free_port();
    c.metrics_listen = None;
    c.listen = ([127, 0, 0, 1], port).into();
    std::fs::write(&other, c.to_commented_toml()).unwrap();
    let mut child = Command::new(relay_bin())
        .args(["run", "--config", other_arg, "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), format!("listening on 127.0.0.1:{port}"));
    // check-config while it runs says a restart applies changes.
    let text = String::from_utf8_lossy(&relay(&["check-config"], &data).stdout).into_owned();
    assert!(text.contains("restart it to apply"), "{text}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_systemd_unit_in_contrib_is_valid() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/postern-relay.service"),
    )
    .unwrap();
    assert!(unit.contains("Type=notify"));
    assert!(unit.contains("ExecStart=/usr/local/bin/postern-relay run --data "));
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIPPED: systemd-analyze is not installed; the unit was not verified");
        return;
    };
    assert!(out.status.success());
    // Verified as installed, with this build's binary in place of /usr/local/bin's.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postern-relay.service");
    let bin = relay_bin().display().to_string();
    std::fs::write(&path, unit.replace("/usr/local/bin/postern-relay", &bin)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // The postern-relay user need not exist on a build machine.
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| {
            !l.trim().is_empty() && !l.contains("postern-relay\" not found") && !l.contains("User")
        })
        .collect();
    assert!(out.status.success() && problems.is_empty(), "{err}");
}
