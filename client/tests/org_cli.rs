//! Runs the real `postern` binary: from nothing to a signed, sealed member bundle, and
//! the refusals along the way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use postern_identity::*;
use sha2::{Digest, Sha256};

const PASS: &str = "correct horse battery staple";

struct Org {
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
}

impl Org {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let home = root.join("org");
        Self {
            _dir: dir,
            root,
            home,
        }
    }

    fn cmd(&self, pass: Option<&str>, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_postern"));
        c.env_remove("POSTERN_HOME")
            .env_remove("POSTERN_PASSPHRASE")
            .env("POSTERN_INSECURE_FAST_KDF", "1")
            .arg("--home")
            .arg(&self.home)
            .args(args);
        if let Some(p) = pass {
            c.env("POSTERN_PASSPHRASE", p);
        }
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(Some(PASS), args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn fails(&self, pass: Option<&str>, args: &[&str]) -> (i32, String) {
        let out = self.cmd(pass, args);
        assert!(!out.status.success(), "{args:?} succeeded unexpectedly");
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn init(&self) -> OrgKey {
        let out = self.ok(&["org", "init"]);
        out.lines().last().unwrap().parse().unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.root.join(name).to_str().unwrap().to_owned()
    }
}

/// Hashes of every file under `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    let mut map = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            map.extend(snapshot(&path));
        } else {
            map.insert(
                path.clone(),
                Sha256::digest(std::fs::read(&path).unwrap()).into(),
            );
        }
    }
    map
}

struct Member {
    request: EnrollmentRequest,
    secret: BundleSecret,
}

fn member(handle: &str) -> Member {
    let device = DeviceKeyPair::generate();
    let mut ik = [0u8; 33];
    rand::Rng::fill(&mut rand::rng(), &mut ik[..]);
    ik[0] = 0x05;
    let (request, secret) = EnrollmentRequest::create(
        Handle::new(handle).unwrap(),
        SignalPublicKey::from_bytes(&ik).unwrap(),
        &device,
    )
    .unwrap();
    Member { request, secret }
}

fn relay_address() -> String {
    RelayAddress::new([0x5a; 32], "relay.example.org", 4433)
        .unwrap()
        .to_string()
}

fn members_json(org: &Org) -> Vec<serde_json::Value> {
    serde_json::from_str(&org.ok(&["org", "members", "--json"])).unwrap()
}

#[test]
fn an_admin_goes_from_nothing_to_a_sealed_member_bundle() {
    let org = Org::new();
    let org_key = org.init();
    assert!(org_key.to_string().starts_with("postern-org:"));

    let out = org.ok(&["org", "relay", "add", &relay_address()]);
    assert!(out.contains("version 2"), "{out}");

    let alice = member("courier-7");
    std::fs::write(org.path("alice.req"), alice.request.encode()).unwrap();
    let out = org.ok(&[
        "org",
        "enroll",
        &org.path("alice.req"),
        "--role",
        "courier",
        "--valid-days",
        "30",
        "--out",
        &org.path("alice.bundle"),
        "--fingerprint",
        &alice.request.fingerprint().to_uppercase(),
    ]);
    assert!(out.contains("Enrolled courier-7 as courier"), "{out}");

    // The member's device opens and verifies the bundle.
    let sealed = std::fs::read(org.path("alice.bundle")).unwrap();
    let bundle = EnrollmentBundle::open(&sealed, &alice.secret).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    bundle.verify_for(&org_key, &alice.request, now).unwrap();
    let b = bundle.body();
    let cert = b.member_certificate.body();
    assert_eq!(cert.role, Role::Courier);
    assert!(cert.not_after >= now + 30 * 86_400 - 60 && cert.not_after <= now + 30 * 86_400 + 60);
    assert_eq!(b.descriptor.body().version, 2);
    assert_eq!(
        b.descriptor.body().relays.as_slice()[0].to_string(),
        relay_address()
    );
    let trust_root = b.descriptor.body().sealed_sender_trust_root.to_bytes();
    let sender = postern_e2e::sender_certificate::validate_sender_certificate(
        b.sender_certificate.as_slice(),
        &trust_root,
        now,
    )
    .unwrap();
    assert_eq!(sender, "courier-7");
    assert!(
        postern_e2e::sender_certificate::validate_sender_certificate(
            b.sender_certificate.as_slice(),
            &trust_root,
            cert.not_after + 1,
        )
        .is_err(),
        "the sender certificate expires with the member certificate"
    );

    // Another member gets the same directory key.
    let bob = member("coord-1");
    std::fs::write(org.path("bob.req"), bob.request.encode()).unwrap();
    org.ok(&[
        "org",
        "enroll",
        &org.path("bob.req"),
        "--role",
        "coordinator",
        "--out",
        &org.path("bob.bundle"),
    ]);
    let bob_bundle =
        EnrollmentBundle::open(&std::fs::read(org.path("bob.bundle")).unwrap(), &bob.secret)
            .unwrap();
    assert_eq!(bob_bundle.body().directory_key, b.directory_key);
    // And alice's secret cannot open bob's bundle.
    assert!(
        EnrollmentBundle::open(
            &std::fs::read(org.path("bob.bundle")).unwrap(),
            &alice.secret
        )
        .is_err()
    );

    let members = members_json(&org);
    assert_eq!(members.len(), 2);
    let alice_row = members.iter().find(|m| m["handle"] == "courier-7").unwrap();
    assert_eq!(alice_row["status"], "active");
    assert_eq!(alice_row["role"], "courier");
    let table = org.ok(&["org", "members"]);
    assert!(
        table.contains("courier-7") && table.contains("coord-1"),
        "{table}"
    );

    // --publish when no relay is reachable: the list is written, and the command fails
    // and says so (the relay in this org's descriptor does not exist).
    let (_, err) = org.fails(Some(PASS), &["org", "revoke", "courier-7", "--publish"]);
    assert!(
        err.contains("no relay accepted") && err.contains("version 2"),
        "{err}"
    );
    let members = members_json(&org);
    let alice_row = members.iter().find(|m| m["handle"] == "courier-7").unwrap();
    assert_eq!(alice_row["status"], "revoked");
    let rl =
        RevocationList::decode(&std::fs::read(org.home.join("revocations.bin")).unwrap()).unwrap();
    assert_eq!(rl.version(), 2);
    assert!(rl.is_revoked(b.member_certificate.body().serial));
    assert_eq!(
        verify_member(&b.member_certificate, &org_key, &rl, now),
        Err(TrustError::Revoked {
            serial: b.member_certificate.body().serial
        })
    );
    // Revoking again changes nothing.
    let out = org.ok(&["org", "revoke", "courier-7"]);
    assert!(out.contains("already revoked"), "{out}");

    let show = org.ok(&["org", "show"]);
    assert!(
        show.contains(&org_key.to_string()) && show.contains(&relay_address()),
        "{show}"
    );
}

#[test]
fn a_wrong_passphrase_is_a_clear_error_and_changes_nothing() {
    let org = Org::new();
    org.init();
    let alice = member("courier-7");
    std::fs::write(org.path("alice.req"), alice.request.encode()).unwrap();
    org.ok(&[
        "org",
        "enroll",
        &org.path("alice.req"),
        "--role",
        "courier",
        "--out",
        &org.path("a.bundle"),
    ]);
    let before = snapshot(&org.root);
    let bob = member("courier-8");
    std::fs::write(org.path("bob.req"), bob.request.encode()).unwrap();
    let before_with_req = snapshot(&org.root);
    for args in [
        vec!["org", "relay", "add", &relay_address()],
        vec!["org", "revoke", "courier-7"],
    ] {
        let (code, err) = org.fails(Some("not the passphrase"), &args);
        assert_eq!(code, 3, "{err}");
        assert!(
            err.contains("wrong passphrase") && err.contains("nothing was changed"),
            "{err}"
        );
    }
    let bundle_path = org.path("b.bundle");
    let (code, err) = org.fails(
        Some("not the passphrase"),
        &[
            "org",
            "enroll",
            &org.path("bob.req"),
            "--role",
            "courier",
            "--out",
            &bundle_path,
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert_eq!(snapshot(&org.root), before_with_req);
    assert!(!Path::new(&bundle_path).exists());
    drop(before);

    // The passphrase file works once only its owner can read it, and no passphrase at
    // all (no terminal) is explained.
    let pass_file = org.path("pass.txt");
    std::fs::write(&pass_file, format!("{PASS}\n")).unwrap();
    let with_file = || {
        Command::new(env!("CARGO_BIN_EXE_postern"))
            .env_remove("POSTERN_PASSPHRASE")
            .arg("--home")
            .arg(&org.home)
            .arg("--passphrase-file")
            .arg(&pass_file)
            .args(["org", "relay", "add", &relay_address()])
            .output()
            .unwrap()
    };
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = with_file();
        assert_eq!(out.status.code(), Some(3));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("open to other users (mode 644)") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&pass_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = with_file();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, err) = org.fails(None, &["org", "revoke", "courier-7"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("POSTERN_PASSPHRASE") && err.contains("--passphrase-file"),
        "{err}"
    );
}

#[test]
fn secrets_are_encrypted_and_private_on_disk() {
    let org = Org::new();
    org.init();
    let secrets = std::fs::read(org.home.join("secrets.pstn")).unwrap();
    assert!(secrets.starts_with(b"PSTNKEY1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for (path, _) in snapshot(&org.home) {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let mode = std::fs::metadata(&org.home).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}

#[test]
fn bad_enrollment_requests_are_refused() {
    let org = Org::new();
    org.init();
    let alice = member("courier-7");
    let mut bytes = alice.request.encode();
    let n = bytes.len();
    bytes[n - 1] ^= 0x01; // break the proof of possession
    std::fs::write(org.path("bad.req"), &bytes).unwrap();
    let before = snapshot(&org.root);
    let out_path = org.path("x.bundle");
    let (code, err) = org.fails(
        Some(PASS),
        &[
            "org",
            "enroll",
            &org.path("bad.req"),
            "--role",
            "courier",
            "--out",
            &out_path,
        ],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("proof of possession"), "{err}");
    assert_eq!(snapshot(&org.root), before);

    std::fs::write(org.path("garbage.req"), b"not a request").unwrap();
    let (code, err) = org.fails(
        Some(PASS),
        &[
            "org",
            "enroll",
            &org.path("garbage.req"),
            "--role",
            "courier",
            "--out",
            &out_path,
        ],
    );
    assert_eq!(code, 4, "{err}");

    std::fs::write(org.path("alice.req"), alice.request.encode()).unwrap();
    let (code, err) = org.fails(
        Some(PASS),
        &[
            "org",
            "enroll",
            &org.path("alice.req"),
            "--role",
            "courier",
            "--out",
            &out_path,
            "--fingerprint",
            "aaaa-bbbb",
        ],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("fingerprint"), "{err}");

    // Unknown role and out-of-range validity are usage errors.
    let (_, err) = org.fails(
        Some(PASS),
        &[
            "org",
            "enroll",
            &org.path("alice.req"),
            "--role",
            "boss",
            "--out",
            &out_path,
        ],
    );
    assert!(err.contains("admin, coordinator or courier"), "{err}");
    let (_, err) = org.fails(
        Some(PASS),
        &[
            "org",
            "enroll",
            &org.path("alice.req"),
            "--role",
            "courier",
            "--valid-days",
            "5000",
            "--out",
            &out_path,
        ],
    );
    assert!(err.contains("5000"), "{err}");

    // A handle already held by another member's keys is refused; the same keys renew.
    org.ok(&[
        "org",
        "enroll",
        &org.path("alice.req"),
        "--role",
        "courier",
        "--out",
        &out_path,
    ]);
    let (_, err) = org.fails(
        Some(PASS),
        &[
            "org",
            "enroll",
            &org.path("alice.req"),
            "--role",
            "courier",
            "--out",
            &out_path,
        ],
    );
    assert!(err.contains("already exists"), "{err}");
    let out = org.ok(&[
        "org",
        "enroll",
        &org.path("alice.req"),
        "--role",
        "courier",
        "--out",
        &org.path("renew.bundle"),
    ]);
    assert!(out.contains("Renewed"), "{out}");
    let impostor = member("courier-7");
    std::fs::write(org.path("imp.req"), impostor.request.encode()).unwrap();
    let (_, err) = org.fails(
        Some(PASS),
        &[
            "org",
            "enroll",
            &org.path("imp.req"),
            "--role",
            "admin",
            "--out",
            &org.path("i.b"),
        ],
    );
    assert!(err.contains("already belongs"), "{err}");
}

#[test]
fn misuse_is_explained() {
    let org = Org::new();
    // No org yet.
    let (_, err) = org.fails(Some(PASS), &["org", "members"]);
    assert!(err.contains("org init"), "{err}");
    // A short passphrase is refused at init.
    let (code, err) = org.fails(Some("short"), &["org", "init"]);
    assert_eq!(code, 3);
    assert!(err.contains("at least 12"), "{err}");
    // So is a long one that is easy to guess, with the estimator's reason.
    let (code, err) = org.fails(Some("password12345"), &["org", "init"]);
    assert_eq!(code, 3);
    assert!(err.contains("too easy to guess ("), "{err}");
    assert!(!org.home.join("secrets.pstn").exists());
    org.init();
    // Init twice.
    let (_, err) = org.fails(Some(PASS), &["org", "init"]);
    assert!(err.contains("already holds an org"), "{err}");
    // Bad relay address and a duplicate relay.
    let (_, err) = org.fails(Some(PASS), &["org", "relay", "add", "https://example.org"]);
    assert!(err.contains("postern://"), "{err}");
    org.ok(&["org", "relay", "add", &relay_address()]);
    let (_, err) = org.fails(Some(PASS), &["org", "relay", "add", &relay_address()]);
    assert!(err.contains("already in the org descriptor"), "{err}");
    // Unknown handle.
    let (_, err) = org.fails(Some(PASS), &["org", "revoke", "nobody"]);
    assert!(err.contains("no member has the handle"), "{err}");
    assert_eq!(members_json(&org).len(), 0);
    // No home.
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .env_remove("POSTERN_HOME")
        .args(["org", "members"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--home"));
    // POSTERN_HOME works.
    let out = Command::new(env!("CARGO_BIN_EXE_postern"))
        .env("POSTERN_HOME", &org.home)
        .args(["org", "show"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn every_org_subcommand_has_help() {
    let org = Org::new();
    for args in [
        vec!["org", "--help"],
        vec!["org", "init", "--help"],
        vec!["org", "relay", "add", "--help"],
        vec!["org", "enroll", "--help"],
        vec!["org", "revoke", "--help"],
        vec!["org", "members", "--help"],
        vec!["org", "show", "--help"],
    ] {
        let out = org.ok(&args);
        assert!(out.len() > 100, "{args:?}: {out}");
    }
    let enroll = org.ok(&["org", "enroll", "--help"]);
    assert!(enroll.contains("fingerprint") && enroll.contains("--valid-days"));
}

#[test]
fn a_damaged_org_home_is_reported_and_not_trusted() {
    let org = Org::new();
    org.init();
    let alice = member("courier-7");
    std::fs::write(org.path("alice.req"), alice.request.encode()).unwrap();
    org.ok(&[
        "org",
        "enroll",
        &org.path("alice.req"),
        "--role",
        "courier",
        "--out",
        &org.path("a.b"),
    ]);

    // A descriptor signed by another org is refused by name.
    let other = OrgRoot::from_seed(&[9; 32]);
    let foreign = other
        .sign_descriptor(postern_identity::descriptor::OrgDescriptorBody {
            org: other.org_key(),
            version: 99,
            relays: postern_identity::encoding::BoundedVec::default(),
            sealed_sender_trust_root: SignalPublicKey::from_bytes(&[5; 33]).unwrap(),
            policy: Policy::default(),
        })
        .unwrap();
    let descriptor = org.home.join("descriptor.bin");
    let original = std::fs::read(&descriptor).unwrap();
    std::fs::write(&descriptor, foreign.encode()).unwrap();
    let (_, err) = org.fails(Some(PASS), &["org", "relay", "add", &relay_address()]);
    assert!(
        err.contains("descriptor.bin") && err.contains("another org"),
        "{err}"
    );
    std::fs::write(&descriptor, original).unwrap();

    // A tampered member certificate is refused by name.
    let cert = std::fs::read_dir(org.home.join("members"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&cert).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&cert, bytes).unwrap();
    let (_, err) = org.fails(Some(PASS), &["org", "members"]);
    assert!(err.contains(".cert") && err.contains("damaged"), "{err}");

    // A tampered secrets file fails like a wrong passphrase and changes nothing.
    let secrets = org.home.join("secrets.pstn");
    let mut bytes = std::fs::read(&secrets).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&secrets, bytes).unwrap();
    let before = snapshot(&org.home);
    let (code, _) = org.fails(Some(PASS), &["org", "relay", "add", &relay_address()]);
    assert_eq!(code, 3);
    assert_eq!(snapshot(&org.home), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_publish_reaches_a_real_relay() {
    use postern_protocol::message::{Request, Response};
    let org = Org::new();
    let org_key = org.init();
    let relay_dir = postern_relay::testing::TestRelay::new(&org_key.to_string(), |_| {});
    let running = relay_dir.start().await;
    let address = running.address.to_string();
    let org2 = org;
    let out = tokio::task::spawn_blocking(move || {
        org2.ok(&["org", "relay", "add", &address]);
        let alice = member("courier-9");
        std::fs::write(org2.path("alice.req"), alice.request.encode()).unwrap();
        org2.ok(&[
            "org",
            "enroll",
            &org2.path("alice.req"),
            "--role",
            "courier",
            "--out",
            &org2.path("alice.bundle"),
        ]);
        org2.ok(&["org", "revoke", "courier-9", "--publish"])
    })
    .await
    .unwrap();
    assert!(out.contains("Published to"), "{out}");
    let conn = postern_transport::RelayConnection::connect_addr(
        running.local_addr,
        *running.address.pin(),
    )
    .await
    .unwrap();
    let Response::RevocationList(l) = conn.request(&Request::GetRevocationList).await.unwrap()
    else {
        panic!()
    };
    let held = RevocationList::decode(l.list.unwrap().as_slice()).unwrap();
    assert_eq!(held.version(), 2);
    conn.close().await;
    running.shutdown().await;
}
