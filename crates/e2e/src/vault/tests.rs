//! Vault tests on real files: what the files reveal, wrong passphrases, exclusive opening.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use libsignal_protocol::{
    GenericSignedPreKey, IdentityKeyPair, KyberPreKeyRecord, PreKeyRecord, SessionRecord,
    SignedPreKeyRecord,
};

use super::*;
use crate::messenger::{Messenger, Received};
use crate::testkit::{Org, PASSPHRASE, files, snapshot};

/// Every 8-byte window of every file under `dir`, plus the files for confirmation.
struct Haystack {
    windows: HashSet<[u8; 8]>,
    files: Vec<Vec<u8>>,
}

impl Haystack {
    fn of(dirs: &[&Path]) -> Self {
        let mut windows = HashSet::new();
        let mut all = Vec::new();
        for d in dirs {
            for f in files(d) {
                let b = std::fs::read(f).unwrap();
                for w in b.windows(8) {
                    windows.insert(<[u8; 8]>::try_from(w).unwrap());
                }
                all.push(b);
            }
        }
        Self {
            windows,
            files: all,
        }
    }

    fn contains(&self, needle: &[u8]) -> bool {
        assert!(needle.len() >= 8);
        if !self
            .windows
            .contains(&<[u8; 8]>::try_from(&needle[..8]).unwrap())
        {
            return false;
        }
        self.files
            .iter()
            .any(|f| f.windows(needle.len()).any(|w| w == needle))
    }
}

/// Private keys, session state and vault keys held in `vault`.
fn secrets_of(vault: &Vault) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let id = vault.get(Table::Meta, store::IDENTITY).unwrap().unwrap();
    let pair = IdentityKeyPair::try_from(id.as_slice()).unwrap();
    out.push((
        "identity private".into(),
        pair.private_key().serialize().to_vec(),
    ));
    out.push((
        "identity public".into(),
        pair.public_key().serialize().to_vec(),
    ));
    for r in vault.scan(Table::PreKey).unwrap() {
        let rec = PreKeyRecord::deserialize(&r.value).unwrap();
        out.push((
            "prekey private".into(),
            rec.private_key().unwrap().serialize().to_vec(),
        ));
    }
    for r in vault.scan(Table::SignedPreKey).unwrap() {
        let rec = SignedPreKeyRecord::deserialize(&r.value).unwrap();
        out.push((
            "signed prekey private".into(),
            rec.private_key().unwrap().serialize().to_vec(),
        ));
    }
    for r in vault.scan(Table::KyberPreKey).unwrap() {
        let rec = KyberPreKeyRecord::deserialize(&r.value).unwrap();
        let sk = rec.secret_key().unwrap().serialize();
        // Several windows of the (large) Kyber secret key.
        for (i, c) in sk.chunks(64).enumerate().step_by(5) {
            out.push((format!("kyber secret chunk {i}"), c.to_vec()));
        }
    }
    for r in vault.scan(Table::Session).unwrap() {
        let bytes = SessionRecord::deserialize(&r.value)
            .unwrap()
            .serialize()
            .unwrap();
        for c in bytes.chunks(32) {
            // High-entropy chunks only (keys), not protobuf framing.
            if c.len() == 32 && c.iter().collect::<HashSet<_>>().len() >= 20 {
                out.push(("session record chunk".into(), c.to_vec()));
            }
        }
    }
    out.push(("vault value key".into(), vault.keys.value.to_vec()));
    out.push(("vault blind key".into(), vault.keys.blind.to_vec()));
    out
}

#[test]
fn vault_files_hold_no_plaintext_handle_or_key_in_the_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let org = Org::new();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let (alice, ac) = org.enrol(&a_dir, "courier-quartz", 1);
    let (bob, bc) = org.enrol(&b_dir, "coord-obsidian", 2);
    let mut roster = org.roster(vec![]);
    roster.insert(ac);
    roster.insert(bc);
    let root = org.trust_root();
    let am = Messenger::new(&alice, &roster, &root).unwrap();
    let bm = Messenger::new(&bob, &roster, &root).unwrap();
    am.start_session(
        "coord-obsidian",
        &bob.prekey_bundle().unwrap(),
        SystemTime::now(),
    )
    .unwrap();
    let mut bodies = Vec::new();
    for i in 0..40 {
        for (from, to, peer) in [(&am, &bm, "coord-obsidian"), (&bm, &am, "courier-quartz")] {
            let body = format!("FAMILY-REF-KX{i:04} 1500000 KRW hand-off at the north gate");
            let out = from
                .send(
                    peer,
                    crate::ContentType::Text,
                    body.as_bytes(),
                    Duration::from_secs(3600),
                    SystemTime::now(),
                )
                .unwrap();
            assert!(matches!(
                to.receive(&out.sealed, SystemTime::now()).unwrap(),
                Received::New(_)
            ));
            bodies.push(body);
        }
    }
    let mut secrets = secrets_of(&alice);
    secrets.extend(secrets_of(&bob));
    drop((alice, bob));
    let hay = Haystack::of(&[&a_dir, &b_dir]);
    assert!(!hay.files.is_empty());
    let mut needles: Vec<(String, Vec<u8>)> = bodies
        .iter()
        .map(|b| ("plaintext".to_string(), b.as_bytes().to_vec()))
        .collect();
    needles.push(("common body part".into(), b"north gate".to_vec()));
    needles.push(("handle".into(), b"courier-quartz".to_vec()));
    needles.push(("handle".into(), b"coord-obsidian".to_vec()));
    needles.push(("passphrase".into(), PASSPHRASE.to_vec()));
    needles.extend(secrets);
    assert!(needles.len() > 100);
    assert!(needles.iter().any(|(w, _)| w == "session record chunk"));
    // The scanner does find what is there in the clear (the header magic).
    assert!(hay.contains(b"PSTVAULT"));
    for (what, n) in &needles {
        assert!(!hay.contains(n), "{what} found in the vault files");
    }
}

#[test]
fn wrong_passphrase_is_refused_and_leaves_the_vault_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let vault = Vault::create(&dir, b"right", KdfParams::insecure_for_tests()).unwrap();
    vault.put_record(b"contact", b"value").unwrap();
    drop(vault);
    let before = snapshot(&dir);
    assert!(matches!(
        Vault::open(&dir, b"wrong"),
        Err(VaultError::WrongPassphrase)
    ));
    assert!(matches!(
        Vault::open(&dir, b""),
        Err(VaultError::WrongPassphrase)
    ));
    assert!(before == snapshot(&dir), "a failed open changed the files");
    let vault = Vault::open(&dir, b"right").unwrap();
    assert_eq!(
        vault.get_record(b"contact").unwrap().unwrap().as_slice(),
        b"value"
    );
    // Not a vault; an existing vault is not overwritten.
    assert!(matches!(
        Vault::open(tmp.path(), b"right"),
        Err(VaultError::NotAVault)
    ));
    drop(vault);
    assert!(matches!(
        Vault::create(&dir, b"other", KdfParams::insecure_for_tests()),
        Err(VaultError::AlreadyExists)
    ));
}

#[test]
fn a_second_opener_gets_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = Vault::create(tmp.path(), b"pw", KdfParams::insecure_for_tests()).unwrap();
    assert!(matches!(
        Vault::open(tmp.path(), b"pw"),
        Err(VaultError::AlreadyOpen)
    ));
    drop(vault);
    Vault::open(tmp.path(), b"pw").unwrap();
}

#[test]
fn a_value_moved_to_another_key_does_not_open() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = Vault::create(tmp.path(), b"pw", KdfParams::insecure_for_tests()).unwrap();
    vault.put_record(b"a", b"secret a").unwrap();
    vault.put_record(b"b", b"secret b").unwrap();
    // Swap the two sealed values on disk (as an attacker with the file could).
    let (ka, kb) = (
        blind(&vault.keys, Table::App, b"a"),
        blind(&vault.keys, Table::App, b"b"),
    );
    let txn = vault.db.begin_write().unwrap();
    {
        let mut t = txn.open_table(TABLE).unwrap();
        let va = t.get(ka.as_slice()).unwrap().unwrap().value().to_vec();
        let vb = t.get(kb.as_slice()).unwrap().unwrap().value().to_vec();
        t.insert(ka.as_slice(), vb.as_slice()).unwrap();
        t.insert(kb.as_slice(), va.as_slice()).unwrap();
    }
    txn.commit().unwrap();
    assert!(matches!(
        vault.get_record(b"a"),
        Err(VaultError::Corrupt(_))
    ));
    assert!(matches!(
        vault.get_record(b"b"),
        Err(VaultError::Corrupt(_))
    ));
}

#[test]
fn default_kdf_parameters_are_strong() {
    let p = KdfParams::default();
    assert!(p.m_cost_kib >= 64 * 1024 && p.t_cost >= 3);
}
