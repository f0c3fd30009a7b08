//! The simulation's world: an org run with the real `postern org` code, a relay running
//! as a real process (killed and restarted at will), and staff members using the real
//! member library with real vault files.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use postern::cli::Context;
use postern::member::{Member, MemberError};
use postern::org::{self, EnrollArgs, OrgCommand, RelayCommand, RevokeArgs};
use postern::passphrase::PassphraseSource;
use postern_e2e::KdfParams;
use postern_identity::{OrgKey, Role};
use postern_relay::testing::{RelayProcess, TestRelay, free_port};

pub const PASS: &str = "simulation passphrase, not for production";

/// The org, the relay and the staff of one simulation.
pub struct World {
    pub tmp: tempfile::TempDir,
    pub org_home: PathBuf,
    pub ctx: Context,
    pub org_key: OrgKey,
    pub relay_dir: TestRelay,
    pub relay: Option<RelayProcess>,
}

impl World {
    /// Creates the org (admin home), a relay on a fixed loopback port, and adds the relay
    /// to the org descriptor.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let org_home = tmp.path().join("org");
        let pass_file = tmp.path().join("org-passphrase");
        std::fs::write(&pass_file, PASS).unwrap();
        // A passphrase file must be private to its owner.
        std::fs::set_permissions(
            &pass_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        let ctx = Context {
            home: Some(org_home.clone()),
            passphrase: PassphraseSource {
                file: Some(pass_file),
            },
        };
        let mut out = Vec::new();
        org::run(OrgCommand::Init, &ctx, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let org_key: OrgKey = text.lines().last().unwrap().trim().parse().unwrap();

        // A fixed port, so the relay keeps its address across restarts; quick sweeps, so
        // expiry is visible within the test.
        let relay_dir = TestRelay::init_in(
            &tmp.path().join("relay"),
            &org_key.to_string(),
            free_port(),
            |_| {},
        );
        let address = relay_dir.address();
        let mut out = Vec::new();
        org::run(
            OrgCommand::Relay(RelayCommand::Add {
                address: address.to_string().parse().unwrap(),
            }),
            &ctx,
            &mut out,
        )
        .unwrap();
        let mut world = Self {
            tmp,
            org_home,
            ctx,
            org_key,
            relay_dir,
            relay: None,
        };
        world.start_relay();
        world
    }

    pub fn start_relay(&mut self) {
        assert!(self.relay.is_none());
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_relay-under-test"));
        self.relay = Some(self.relay_dir.spawn(bin));
    }

    pub fn kill_relay(&mut self) {
        self.relay.take().unwrap().kill9();
    }

    pub fn stop_relay(&mut self) {
        let status = self.relay.take().unwrap().terminate();
        assert!(status.success(), "relay exited with {status}");
    }

    /// A new staff member: `postern init`, `postern org enroll`, `postern enroll`.
    pub async fn enroll(&self, handle: &str, role: Role) -> Member {
        let home = self.tmp.path().join("staff").join(handle);
        let (mut member, request) = Member::init(
            &home,
            handle,
            PASS.as_bytes(),
            KdfParams::insecure_for_tests(),
        )
        .unwrap();
        let req_path = self.tmp.path().join(format!("{handle}.request"));
        let bundle_path = self.tmp.path().join(format!("{handle}.bundle"));
        std::fs::write(&req_path, request.encode()).unwrap();
        let mut out = Vec::new();
        org::run(
            OrgCommand::Enroll(EnrollArgs {
                request: req_path,
                role,
                valid_days: 30,
                out: bundle_path.clone(),
                fingerprint: Some(request.fingerprint()),
            }),
            &self.ctx,
            &mut out,
        )
        .unwrap();
        let bundle = std::fs::read(&bundle_path).unwrap();
        member
            .enroll(&bundle, Some(self.org_key), &|_| {})
            .await
            .unwrap();
        member
    }

    /// `postern org revoke <handle> --publish` (a blocking command, as on the admin's
    /// machine: run off the async threads).
    pub async fn revoke(&self, handle: &str) {
        let (ctx, handle) = (self.ctx.clone(), handle.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            org::run(
                OrgCommand::Revoke(RevokeArgs {
                    handle,
                    publish: true,
                }),
                &ctx,
                &mut out,
            )
            .unwrap();
        })
        .await
        .unwrap();
    }

    /// What the relay's database file holds, and its earliest envelope expiry (the relay
    /// must be stopped).
    pub fn relay_holdings(&self) -> (postern_relay::store::StoreCounts, Option<u64>) {
        self.relay_dir.holdings()
    }
}

/// Whether an error is the relay refusing a revoked member.
pub fn is_revoked(e: &MemberError) -> bool {
    format!("{e:?}").contains("Revoked") || e.to_string().contains("revoked")
}
