//! A small org for tests: an org root, its sealed-sender keys, members with vaults
//! (cheap, **insecure** KDF parameters), certificates and a roster.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postern_e2e::sender_certificate::{
    SealedSenderKeys, generate_sealed_sender_keys, issue_sender_certificate,
};
use postern_e2e::{KdfParams, OrgRoster, Vault};
use postern_identity::{
    DeviceKeyPair, Handle, MemberCertificate, OrgRoot, RevocationList, RevocationListBody, Role,
    SignalPublicKey,
};

pub const PASSPHRASE: &[u8] = b"correct horse battery staple";

pub fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub struct Org {
    pub root: OrgRoot,
    pub sealed: SealedSenderKeys,
}

impl Org {
    pub fn new() -> Self {
        Self {
            root: OrgRoot::generate(),
            sealed: generate_sealed_sender_keys().unwrap(),
        }
    }

    pub fn trust_root(&self) -> [u8; 33] {
        self.sealed.trust_root_public
    }

    pub fn revocations(&self, version: u64, serials: Vec<u64>) -> RevocationList {
        self.root
            .sign_revocations(
                RevocationListBody::new(self.root.org_key(), version, serials).unwrap(),
            )
            .unwrap()
    }

    pub fn roster(&self, revoked: Vec<u64>) -> OrgRoster {
        OrgRoster::new(self.root.org_key(), self.revocations(1, revoked))
    }

    /// A member certificate naming `identity` (33 bytes), valid for a year from now.
    pub fn certificate(&self, handle: &str, identity: &[u8], serial: u64) -> MemberCertificate {
        let now = secs(SystemTime::now());
        self.root
            .issue_member_certificate(
                Handle::new(handle).unwrap(),
                Role::Courier,
                SignalPublicKey::from_bytes(identity).unwrap(),
                DeviceKeyPair::generate().public_key(),
                now - 3600,
                now + 365 * 24 * 3600,
                serial,
            )
            .unwrap()
    }

    /// A sender certificate for `handle` with `identity`, expiring at `expires`.
    pub fn sender_certificate(
        &self,
        handle: &str,
        identity: &[u8],
        expires: SystemTime,
    ) -> Vec<u8> {
        issue_sender_certificate(
            &self.sealed,
            handle,
            identity.try_into().unwrap(),
            secs(expires),
        )
        .unwrap()
    }

    /// Creates, initialises and enrols a member; returns its vault and certificate.
    pub fn enrol(&self, dir: &Path, handle: &str, serial: u64) -> (Vault, MemberCertificate) {
        let vault = Vault::create(dir, PASSPHRASE, KdfParams::insecure_for_tests()).unwrap();
        vault.initialise_member(handle, SystemTime::now()).unwrap();
        let ik = vault.identity_key().unwrap().serialize();
        let cert = self.certificate(handle, &ik, serial);
        let sc = self.sender_certificate(
            handle,
            &ik,
            SystemTime::now() + Duration::from_secs(30 * 24 * 3600),
        );
        vault.set_sender_certificate(&sc).unwrap();
        (vault, cert)
    }
}

pub fn reopen(dir: &Path) -> Vault {
    Vault::open(dir, PASSPHRASE).unwrap()
}

/// Every regular file under `dir`, recursively.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A digest of every file's bytes under `dir`.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files(dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}
