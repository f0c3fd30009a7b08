//! The Postern demo: one delivery through its whole life, on the real code. Its own crate
//! so that the staff binary never links the relay it starts.
//!
//! In a temporary directory it starts a relay on 127.0.0.1 (in process, real QUIC),
//! makes an org (an org root, descriptor and revocation list, as `postern org` does),
//! enrolls a coordinator and a courier (real vaults, with the insecure fast key
//! derivation: it is a demo), runs a delivery from creation to confirmation with a
//! wrong hand-off code refused on the way and text messages both ways, shows what the
//! relay holds (counts and padded sizes only), and removes everything.
//!
//! The script is thin: every step is a call to `postern::member` or
//! `postern::delivery`. [`DemoWorld`] (relay + org) is public so tests can use the same
//! set-up.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};

use postern_deliveries::{Amount, Currency, DeliveryId, FamilyRef, HandoffCode, Status};
use postern_e2e::KdfParams;
use postern_e2e::sender_certificate::{SealedSenderKeys, generate_sealed_sender_keys};
use postern_identity::descriptor::OrgDescriptorBody;
use postern_identity::encoding::BoundedVec;
use postern_identity::{
    DirectoryKey, OrgDescriptor, OrgRoot, Policy, RevocationList, RevocationListBody, Role,
    SignalPublicKey,
};
use postern_relay::relay;

use postern::delivery::{Deliveries, DeliveryError, NewDeliveryRequest, Update};
use postern::member::{Member, MemberError, unix_now};
use postern::org::Issuer;

/// The demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Writing to the output failed.
    #[error("could not write output: {0}")]
    Output(#[from] std::io::Error),
    /// Setting up the relay or the org failed.
    #[error("setting up the demo failed: {0}")]
    Setup(String),
    /// A member operation failed.
    #[error(transparent)]
    Member(#[from] MemberError),
    /// A delivery operation failed.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// A demo value was refused (a bug).
    #[error(transparent)]
    Value(#[from] postern_deliveries::ValueError),
    /// A step did not behave as it should (a bug).
    #[error("demo check failed: {0}")]
    Check(String),
}

fn setup<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> DemoError {
    move |e| DemoError::Setup(format!("{what}: {e}"))
}

fn check(ok: bool, what: &str) -> Result<(), DemoError> {
    if ok {
        Ok(())
    } else {
        Err(DemoError::Check(what.to_owned()))
    }
}

/// A throwaway org with a relay on loopback, for the demo and tests: the org root is
/// held in memory and members are enrolled directly (what `postern org enroll` does,
/// without the org home on disk).
pub struct DemoWorld {
    /// Where the relay and the member homes live.
    dir: PathBuf,
    /// The org root (in memory: a demo).
    root: OrgRoot,
    /// Issues members' sealed-sender certificates.
    sealed_sender: SealedSenderKeys,
    /// The org directory key members receive.
    directory_key: DirectoryKey,
    /// The signed org descriptor naming the relay.
    descriptor: OrgDescriptor,
    /// The signed (empty) revocation list.
    revocations: RevocationList,
    /// The running relay.
    relay: relay::Running,
}

impl std::fmt::Debug for DemoWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoWorld")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl DemoWorld {
    /// Makes an org and starts its relay on 127.0.0.1 (a free port), under `dir`.
    pub async fn start(dir: &Path, policy: Policy) -> Result<Self, DemoError> {
        let root = OrgRoot::generate();
        let org = root.org_key();
        let data = dir.join("relay");
        relay::init(
            &data,
            &org.to_string(),
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            None,
        )
        .map_err(setup("relay init"))?;
        let running = relay::start(&data).await.map_err(setup("relay start"))?;
        let address = running.address.clone();
        let sealed_sender = generate_sealed_sender_keys().map_err(setup("sealed sender"))?;
        let descriptor = root
            .sign_descriptor(OrgDescriptorBody {
                org,
                version: 1,
                relays: BoundedVec::new(vec![address])
                    .map_err(|_| DemoError::Setup("descriptor: relay list".into()))?,
                sealed_sender_trust_root: SignalPublicKey::from_bytes(
                    &sealed_sender.trust_root_public,
                )
                .map_err(setup("trust root"))?,
                policy,
            })
            .map_err(setup("descriptor"))?;
        let revocations = root
            .sign_revocations(
                RevocationListBody::new(org, 1, vec![]).map_err(setup("revocations"))?,
            )
            .map_err(setup("revocations"))?;
        Ok(Self {
            dir: dir.to_owned(),
            root,
            sealed_sender,
            directory_key: DirectoryKey::generate(),
            descriptor,
            revocations,
            relay: running,
        })
    }

    /// The running relay (its store's counts, for the demo and tests).
    pub fn relay(&self) -> &relay::Running {
        &self.relay
    }

    /// The home directory a member `handle` gets.
    pub fn home(&self, handle: &str) -> PathBuf {
        self.dir.join(handle)
    }

    /// Creates a member (vault with `kdf` under `passphrase`) and enrolls them with
    /// `role`, as `postern init` + `postern org enroll` + `postern enroll` do.
    pub async fn enroll(
        &self,
        handle: &str,
        role: Role,
        passphrase: &[u8],
        kdf: KdfParams,
    ) -> Result<Member, DemoError> {
        let (mut member, request) = Member::init(&self.home(handle), handle, passphrase, kdf)?;
        let issuer = Issuer {
            root: &self.root,
            sealed_sender: &self.sealed_sender,
            directory_key: &self.directory_key,
            descriptor: &self.descriptor,
            revocations: &self.revocations,
        };
        let serial = rand::random::<u64>() | 1;
        let sealed = issuer
            .issue_bundle(&request, role, 30, serial, unix_now())
            .map_err(setup("enrollment bundle"))?
            .sealed_bundle;
        member
            .enroll(&sealed, Some(self.root.org_key()), &|_| {})
            .await?;
        Ok(member)
    }

    /// Revokes `serials` (on top of those already revoked): signs the next revocation
    /// list, which later enrollments carry, and returns it to be published (`postern org
    /// revoke --publish` puts it on the relay).
    pub fn revoke(&mut self, serials: &[u64]) -> Result<RevocationList, DemoError> {
        let body = self.revocations.body();
        let mut revoked = body.revoked.as_slice().to_vec();
        revoked.extend_from_slice(serials);
        revoked.sort_unstable();
        revoked.dedup();
        let next = self
            .root
            .sign_revocations(
                RevocationListBody::new(body.org, body.version + 1, revoked)
                    .map_err(setup("revocations"))?,
            )
            .map_err(setup("revocations"))?;
        self.revocations = next.clone();
        Ok(next)
    }

    /// Stops the relay gracefully.
    pub async fn shutdown(self) {
        self.relay.shutdown().await;
    }
}

/// Runs the demo, writing its narration to `out`.
pub fn run(out: &mut impl Write) -> Result<(), DemoError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(setup("tokio"))?;
    let tmp = tempfile::Builder::new()
        .prefix("postern-demo-")
        .tempdir()
        .map_err(setup("temporary directory"))?;
    let result = rt.block_on(script(tmp.path(), out));
    let shown = tmp.path().display().to_string();
    tmp.close()
        .map_err(setup("removing the temporary directory"))?;
    result?;
    writeln!(out, "Removed {shown}: relay data and both vaults are gone.")?;
    Ok(())
}

const PASS: &[u8] = b"demo passphrase, not a secret";

fn relay_holdings(world: &DemoWorld, out: &mut impl Write) -> Result<(), DemoError> {
    let store = &world.relay().store();
    let c = store.counts().map_err(setup("relay counts"))?;
    writeln!(
        out,
        "   The relay holds: {} mailboxes, {} envelopes, {} directory entries, {} one-time prekeys.",
        c.mailboxes, c.envelopes, c.directory_entries, c.one_time_prekeys
    )?;
    let hist = store.bucket_histogram().map_err(setup("relay buckets"))?;
    if hist.is_empty() {
        writeln!(
            out,
            "   No envelope is waiting: every message was fetched, acknowledged and deleted."
        )?;
    }
    for (size, n) in hist {
        writeln!(
            out,
            "   {n} envelope(s) of exactly {size} bytes (padded bucket)"
        )?;
    }
    writeln!(
        out,
        "   That is all it can see: no sender, no handle, no content, no delivery details."
    )?;
    Ok(())
}

fn show(
    out: &mut impl Write,
    who: &str,
    d: &Deliveries<'_>,
    id: &DeliveryId,
) -> Result<Status, DemoError> {
    let s = d.show(id)?;
    let mut line = format!("   {who} sees: {}", s.status);
    if s.failed_handoff_attempts > 0 {
        line.push_str(&format!(
            ", {} wrong hand-off code(s)",
            s.failed_handoff_attempts
        ));
    }
    if s.flagged {
        line.push_str(", FLAGGED");
    }
    writeln!(out, "{line}")?;
    Ok(s.status)
}

async fn script(dir: &Path, out: &mut impl Write) -> Result<(), DemoError> {
    writeln!(
        out,
        "Postern demo: one courier delivery, end to end, on the real code."
    )?;
    writeln!(out, "Working in {}", dir.display())?;
    writeln!(out)?;

    writeln!(out, "1. An org and its relay")?;
    let world = DemoWorld::start(dir, Policy::default()).await?;
    writeln!(
        out,
        "   Relay listening on 127.0.0.1:{} (QUIC, pinned key); org root created in memory.",
        world.relay().local_addr.port()
    )?;
    writeln!(out)?;

    writeln!(out, "2. Two staff members enroll")?;
    writeln!(
        out,
        "   WARNING: the vaults use the insecure fast key derivation, to keep the demo quick. Real vaults use Argon2id (64 MiB)."
    )?;
    let kdf = KdfParams::insecure_for_tests();
    let coord = world
        .enroll("coord-seoul", Role::Coordinator, PASS, kdf)
        .await?;
    let courier = world.enroll("courier-7", Role::Courier, PASS, kdf).await?;
    writeln!(
        out,
        "   coord-seoul (coordinator) and courier-7 (courier) are enrolled."
    )?;
    let cc = coord.connect().await?;
    let kc = courier.connect().await?;
    let mut cd = Deliveries::open(&coord)?;
    let mut kd = Deliveries::open(&courier)?;
    writeln!(out)?;

    writeln!(out, "3. coord-seoul creates a delivery for courier-7")?;
    let created = cd
        .create(
            &cc,
            NewDeliveryRequest {
                courier: "courier-7".into(),
                family: FamilyRef::new("F-1042")?,
                amount: Amount::parse("1500.50", Currency::new("USD")?)?,
                deadline: unix_now() + 3 * 86_400,
                coordinators: vec![],
            },
        )
        .await?;
    let id = created.id;
    writeln!(
        out,
        "   Delivery {id}: family F-1042, 1500.50 USD, deadline in 3 days."
    )?;
    writeln!(
        out,
        "   Hand-off code, shown only to the coordinator: {}",
        created.code.display_grouped()
    )?;
    writeln!(
        out,
        "   (In real use it reaches the family out of band, never the courier. Only a salted commitment stays on coord-seoul's device.)"
    )?;
    writeln!(
        out,
        "   Events sent end to end encrypted to: {}",
        created.delivered.sent_to.join(", ")
    )?;
    coord
        .send_text(&cc, "courier-7", "Pick-up at the usual place, 18:00.", None)
        .await?;
    writeln!(
        out,
        "   coord-seoul -> courier-7: \"Pick-up at the usual place, 18:00.\""
    )?;
    relay_holdings(&world, out)?;
    writeln!(out)?;

    writeln!(out, "4. courier-7 syncs, picks up, and is on the way")?;
    kd.sync(&kc).await?;
    for m in courier.messages()? {
        if m.content_type == postern_e2e::ContentType::Text {
            writeln!(
                out,
                "   courier-7 reads from {}: \"{}\"",
                m.sender,
                String::from_utf8_lossy(&m.body)
            )?;
        }
    }
    show(out, "courier-7", &kd, &id)?;
    check(!kd.holds_secret(&id), "the courier holds no commitment")?;
    writeln!(out, "   courier-7 holds no commitment and no code.")?;
    kd.update(&kc, &id, Update::PickedUp).await?;
    courier
        .send_text(&kc, "coord-seoul", "Picked up. Leaving now.", None)
        .await?;
    writeln!(
        out,
        "   courier-7 -> coord-seoul: \"Picked up. Leaving now.\""
    )?;
    kd.update(&kc, &id, Update::InTransit).await?;
    cd.sync(&cc).await?;
    show(out, "coord-seoul", &cd, &id)?;
    writeln!(out)?;

    writeln!(out, "5. At the hand-off, a misheard code")?;
    let wrong = loop {
        let c = HandoffCode::generate();
        if c != created.code {
            break c;
        }
    };
    writeln!(
        out,
        "   courier-7 enters {} (wrong).",
        wrong.display_grouped()
    )?;
    kd.handoff(&kc, &id, wrong).await?;
    show(out, "courier-7", &kd, &id)?;
    cd.sync(&cc).await?;
    writeln!(
        out,
        "   coord-seoul's client checks it against the commitment: refused, and tells the courier."
    )?;
    show(out, "coord-seoul", &cd, &id)?;
    kd.sync(&kc).await?;
    show(out, "courier-7", &kd, &id)?;
    writeln!(out)?;

    writeln!(out, "6. The family reads the code again; the right one")?;
    kd.handoff(&kc, &id, created.code.clone()).await?;
    writeln!(out, "   courier-7 enters the code the family reads out.")?;
    show(out, "courier-7", &kd, &id)?;
    cd.sync(&cc).await?;
    writeln!(
        out,
        "   coord-seoul's client verifies it and confirms the delivery."
    )?;
    let c_final = show(out, "coord-seoul", &cd, &id)?;
    kd.sync(&kc).await?;
    let k_final = show(out, "courier-7", &kd, &id)?;
    check(c_final == Status::Confirmed, "coordinator sees confirmed")?;
    check(k_final == c_final, "both sides agree")?;
    courier
        .send_text(
            &kc,
            "coord-seoul",
            "Family confirmed receipt. Heading back.",
            None,
        )
        .await?;
    cd.sync(&cc).await?;
    for m in coord.messages()? {
        if m.content_type == postern_e2e::ContentType::Text {
            writeln!(
                out,
                "   coord-seoul reads from {}: \"{}\"",
                m.sender,
                String::from_utf8_lossy(&m.body)
            )?;
        }
    }
    writeln!(out)?;

    writeln!(
        out,
        "7. Final state, as both members derive it from the events they hold"
    )?;
    let cs = cd.show(&id)?;
    let ks = kd.show(&id)?;
    check(
        cs.status == ks.status
            && cs.failed_handoff_attempts == ks.failed_handoff_attempts
            && cs.flagged == ks.flagged
            && cs.courier == ks.courier,
        "both views agree",
    )?;
    writeln!(
        out,
        "   FINAL: delivery {id} {} (wrong codes: {}, flagged: {}); coordinator and courier agree.",
        cs.status, cs.failed_handoff_attempts, cs.flagged
    )?;
    for h in &cs.history {
        writeln!(
            out,
            "     {:<16} by {:<12} -> {}",
            h.name.as_str(),
            h.author.as_str(),
            h.status
        )?;
    }
    for r in &cs.rejected {
        writeln!(
            out,
            "     refused: {} by {}: {}",
            r.name,
            r.author.as_str(),
            r.reason
        )?;
    }
    writeln!(out)?;

    writeln!(out, "8. What the relay holds now")?;
    relay_holdings(&world, out)?;
    writeln!(out)?;

    cc.close().await;
    kc.close().await;
    drop(cd);
    drop(kd);
    coord.close();
    courier.close();
    world.shutdown().await;
    writeln!(out, "9. Clean-up: relay stopped.")?;
    Ok(())
}
