//! The delivery library against a real relay on loopback, real vault files and a real
//! org: a coordinator, a second coordinator and two couriers run deliveries through
//! their life cycle; what the courier's client receives is scanned for the hand-off
//! code and its commitment.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use postern::delivery::{
    BUNDLE_BODY_PREFIX, Deliveries, DeliveryError, MEMBERS_BODY_PREFIX, NewDeliveryRequest,
    SECRET_BODY_PREFIX, Update, decode_bundle,
};
use postern::member::SendPath;
use postern::member::{Connection, Member, unix_now};
use postern_deliveries::{
    Amount, Currency, DeliveryId, DeliveryState, EventText, FamilyRef, HandoffCode, LogError,
    Status, TransitionError,
};
use postern_demo::DemoWorld;
use postern_e2e::{ContentType, KdfParams};
use postern_identity::{Policy, Role};

const PASS: &[u8] = b"correct horse battery staple";

async fn member(w: &DemoWorld, handle: &str, role: Role) -> Member {
    w.enroll(handle, role, PASS, KdfParams::insecure_for_tests())
        .await
        .unwrap()
}

fn request(courier: &str, family: &str, extra: &[&str]) -> NewDeliveryRequest {
    NewDeliveryRequest {
        courier: courier.into(),
        family: FamilyRef::new(family).unwrap(),
        amount: Amount::parse("1500.50", Currency::new("USD").unwrap()).unwrap(),
        deadline: unix_now() + 86_400,
        coordinators: extra.iter().map(|s| s.to_string()).collect(),
    }
}

/// Fetches what the relay holds for `m` (as sync would), keeping a copy of every
/// delivery message body for scanning, then syncs.
async fn courier_sync(
    m: &Member,
    d: &mut Deliveries<'_>,
    conn: &Connection,
    seen: &mut Vec<Vec<u8>>,
) {
    let report = m.fetch(conn).await.unwrap();
    for msg in &report.new {
        if msg.content_type == ContentType::DeliveryEvent {
            match msg.body.strip_prefix(BUNDLE_BODY_PREFIX) {
                Some(rest) => seen.extend(decode_bundle(rest).unwrap()),
                None => seen.push(msg.body.clone()),
            }
        }
    }
    d.sync(conn).await.unwrap();
}

/// A relay with one coordinator (`coord-1`) and one courier (`courier-a`).
async fn coordinator_and_courier(dir: &std::path::Path) -> (DemoWorld, Member, Member) {
    let w = DemoWorld::start(dir, Policy::default()).await.unwrap();
    let coord = member(&w, "coord-1", Role::Coordinator).await;
    let courier = member(&w, "courier-a", Role::Courier).await;
    (w, coord, courier)
}

fn other_code(code: &HandoffCode) -> HandoffCode {
    loop {
        let c = HandoffCode::generate();
        if &c != code {
            return c;
        }
    }
}

fn same_outcome(a: &DeliveryState, b: &DeliveryState) {
    assert_eq!(a.status, b.status);
    assert_eq!(a.flagged, b.flagged);
    assert_eq!(a.failed_handoff_attempts, b.failed_handoff_attempts);
    assert_eq!(a.courier, b.courier);
    assert_eq!(a.details, b.details);
    assert_eq!(a.failure_reason, b.failure_reason);
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_run_their_life_cycle_and_the_courier_never_holds_the_code() {
    let tmp = tempfile::tempdir().unwrap();
    let w = DemoWorld::start(tmp.path(), Policy::default())
        .await
        .unwrap();
    let coord = member(&w, "coord-1", Role::Coordinator).await;
    let coord2 = member(&w, "coord-2", Role::Coordinator).await;
    let courier = member(&w, "courier-a", Role::Courier).await;
    let other = member(&w, "courier-b", Role::Courier).await;
    let (cc, cc2, kc, oc) = (
        coord.connect().await.unwrap(),
        coord2.connect().await.unwrap(),
        courier.connect().await.unwrap(),
        other.connect().await.unwrap(),
    );
    let mut cd = Deliveries::open(&coord).unwrap();
    let mut cd2 = Deliveries::open(&coord2).unwrap();
    let mut kd = Deliveries::open(&courier).unwrap();
    let mut od = Deliveries::open(&other).unwrap();
    let mut seen = Vec::new();

    // Refusals before anything is created.
    let err = kd
        .create(&kc, request("courier-b", "F-1", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::NotPermitted { .. }), "{err}");
    let err = cd
        .create(&cc, request("coord-2", "F-1", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::NotACourier { .. }), "{err}");
    let err = cd
        .create(&cc, request("courier-a", "F-1", &["courier-b"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeliveryError::NotACoordinator { .. }),
        "{err}"
    );
    assert!(cd.list().is_empty());

    // Two deliveries for courier-a; the first also involves coord-2.
    let held = || w.relay().store().counts().unwrap().envelopes;
    let before = held();
    let d1 = cd
        .create(&cc, request("courier-a", "F-1042", &["coord-2"]))
        .await
        .unwrap();
    assert!(d1.delivered.queued.is_empty());
    assert_eq!(d1.delivered.sent_to, vec!["coord-2", "courier-a"]);
    // The creation (events, coordinator list, and coord-2's secret) is one envelope per
    // recipient at the relay, not a burst of them to one mailbox.
    assert_eq!(held() - before, 2, "one envelope per recipient");
    let d2 = cd
        .create(&cc, request("courier-a", "F-2077", &[]))
        .await
        .unwrap();
    let (id1, id2) = (d1.id, d2.id);
    let commitments = [
        cd.secret_commitment(&id1).unwrap(),
        cd.secret_commitment(&id2).unwrap(),
    ];

    // The second coordinator gets the events and the commitment.
    cd2.sync(&cc2).await.unwrap();
    assert!(cd2.holds_secret(&id1));
    assert_eq!(cd2.secret_commitment(&id1).unwrap(), commitments[0]);
    assert_eq!(cd2.show(&id1).unwrap().status, Status::Assigned);
    assert_eq!(cd2.coordinators(&id1), vec!["coord-1", "coord-2"]);
    assert!(
        cd2.show(&id2).is_err(),
        "coord-2 is not on the second delivery"
    );

    // The courier sees both, without the secret; the other courier sees nothing.
    courier_sync(&courier, &mut kd, &kc, &mut seen).await;
    assert_eq!(kd.list().len(), 2);
    assert!(!kd.holds_secret(&id1) && !kd.holds_secret(&id2));
    assert_eq!(kd.coordinators(&id1), vec!["coord-1", "coord-2"]);
    let report = od.sync(&oc).await.unwrap();
    assert_eq!(report.fetched, 0);
    assert!(od.list().is_empty());

    for id in [id1, id2] {
        kd.update(&kc, &id, Update::PickedUp).await.unwrap();
        kd.update(&kc, &id, Update::InTransit).await.unwrap();
    }
    kd.update(
        &kc,
        &id1,
        Update::Note(EventText::new("family moved to the next village").unwrap()),
    )
    .await
    .unwrap();

    // A wrong code on the first delivery: refused and counted, on both sides.
    kd.handoff(&kc, &id1, other_code(&d1.code)).await.unwrap();
    assert_eq!(kd.show(&id1).unwrap().status, Status::HandoffClaimed);
    let r = cd.sync(&cc).await.unwrap();
    assert_eq!(r.verdicts, 1);
    let s = cd.show(&id1).unwrap();
    assert_eq!(
        (s.status, s.failed_handoff_attempts),
        (Status::InTransit, 1)
    );
    assert!(s.rejected.iter().any(|r| matches!(
        r.reason,
        TransitionError::WrongHandoffCode { failed_attempts: 1 }
    )));
    courier_sync(&courier, &mut kd, &kc, &mut seen).await;
    let s = kd.show(&id1).unwrap();
    assert_eq!(
        (s.status, s.failed_handoff_attempts),
        (Status::InTransit, 1)
    );

    // Three wrong codes on the second: flagged; then even the right code is refused.
    for _ in 0..3 {
        kd.handoff(&kc, &id2, other_code(&d2.code)).await.unwrap();
        cd.sync(&cc).await.unwrap();
        courier_sync(&courier, &mut kd, &kc, &mut seen).await;
    }
    let s = cd.show(&id2).unwrap();
    assert!(s.flagged);
    assert_eq!(s.failed_handoff_attempts, 3);
    assert_eq!(s.status, Status::InTransit);
    let k = kd.show(&id2).unwrap();
    assert!(k.flagged);
    same_outcome(&s, &k);
    let err = kd.handoff(&kc, &id2, d2.code.clone()).await.unwrap_err();
    assert!(
        matches!(
            err,
            DeliveryError::Refused(LogError::Refused(TransitionError::HandoffFlagged))
        ),
        "{err}"
    );
    // The coordinator investigates and closes it.
    cd.update(&cc, &id2, Update::Cancelled).await.unwrap();

    // The right code on the first: verified and confirmed by the coordinator's client.
    kd.handoff(&kc, &id1, d1.code.clone()).await.unwrap();
    cd.sync(&cc).await.unwrap();
    assert_eq!(cd.show(&id1).unwrap().status, Status::Confirmed);
    cd2.sync(&cc2).await.unwrap();
    courier_sync(&courier, &mut kd, &kc, &mut seen).await;

    // Everyone involved derives the same final state.
    let c1 = cd.show(&id1).unwrap();
    assert_eq!(c1.status, Status::Confirmed);
    assert_eq!(c1.failed_handoff_attempts, 1);
    same_outcome(&c1, &kd.show(&id1).unwrap());
    same_outcome(&c1, &cd2.show(&id1).unwrap());
    let c2 = cd.show(&id2).unwrap();
    assert_eq!(c2.status, Status::Cancelled);
    same_outcome(&c2, &kd.show(&id2).unwrap());
    // Only the coordinators' replicas name each verdict once: no duplicates.
    assert!(
        cd2.show(&id1)
            .unwrap()
            .rejected
            .iter()
            .all(|r| !matches!(r.reason, TransitionError::DuplicateVerdict { .. }))
    );

    // The courier's client never received a secret, a commitment or a code.
    assert!(seen.len() >= 10, "scanned {} messages", seen.len());
    for body in &seen {
        assert!(!body.starts_with(SECRET_BODY_PREFIX));
        assert!(body.first() == Some(&1) || body.starts_with(MEMBERS_BODY_PREFIX));
        for c in &commitments {
            assert!(!contains(body, c), "commitment reached the courier");
        }
        for code in [&d1.code, &d2.code] {
            assert!(
                !contains(body, code.digits()),
                "hand-off code reached the courier"
            );
        }
    }
    assert!(
        courier.messages().unwrap().is_empty(),
        "processed messages are deleted"
    );

    // The other courier never saw either delivery.
    od.sync(&oc).await.unwrap();
    assert!(od.list().is_empty());
    assert!(od.show(&id1).is_err());
    assert!(other.messages().unwrap().is_empty());

    // State survives closing and reopening; closed deliveries go after the retention.
    drop(cd);
    let mut cd = Deliveries::open(&coord).unwrap();
    same_outcome(&c1, &cd.show(&id1).unwrap());
    assert_eq!(cd.purge_closed_at(unix_now()).unwrap(), 0);
    let later = unix_now() + 31 * 86_400;
    assert_eq!(cd.purge_closed_at(later).unwrap(), 2);
    drop(cd);
    let cd = Deliveries::open(&coord).unwrap();
    assert!(cd.list().is_empty());
    assert!(cd.secret_commitment(&id1).is_none());

    for c in [cc, cc2, kc, oc] {
        c.close().await;
    }
    w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_courier_drops_a_coordinator_secret_sent_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, coord, courier) = coordinator_and_courier(tmp.path()).await;
    let (cc, kc) = (
        coord.connect().await.unwrap(),
        courier.connect().await.unwrap(),
    );
    let mut cd = Deliveries::open(&coord).unwrap();
    let mut kd = Deliveries::open(&courier).unwrap();
    let d = cd
        .create(&cc, request("courier-a", "F-1042", &[]))
        .await
        .unwrap();

    // A buggy or hostile coordinator client sends the secret to the courier.
    let mut body = SECRET_BODY_PREFIX.to_vec();
    body.extend_from_slice(&postern_deliveries::CoordinatorSecret::commit(d.id, &d.code).encode());
    coord
        .send(&cc, "courier-a", ContentType::DeliveryEvent, &body, None)
        .await
        .unwrap();
    // And a forged event naming another author.
    let forged = postern_deliveries::DeliveryEvent::new(
        d.id,
        9,
        unix_now(),
        postern_identity::Handle::new("coord-1").unwrap(),
        Role::Coordinator,
        postern_deliveries::EventKind::Cancelled,
    );
    courier
        .send(
            &kc,
            "coord-1",
            ContentType::DeliveryEvent,
            &forged.encode(),
            None,
        )
        .await
        .unwrap();

    let r = kd.sync(&kc).await.unwrap();
    assert_eq!(r.secrets, 0);
    assert!(
        r.refused.iter().any(|s| s.contains("dropped unread")),
        "{:?}",
        r.refused
    );
    assert!(!kd.holds_secret(&d.id));
    assert!(courier.messages().unwrap().is_empty());
    assert_eq!(kd.show(&d.id).unwrap().status, Status::Assigned);

    let r = cd.sync(&cc).await.unwrap();
    assert_eq!(r.refused.len(), 1, "{:?}", r.refused);
    assert_eq!(cd.show(&d.id).unwrap().status, Status::Assigned);

    cc.close().await;
    kc.close().await;
    w.shutdown().await;
}

#[test]
fn delivery_ids_in_errors_are_readable() {
    let id = DeliveryId::random();
    let e = DeliveryError::UnknownDelivery(id.to_string());
    assert!(e.to_string().contains(&id.to_string()));
    assert_eq!(postern::cli::exit::Classify::exit_class(&e).code(), 4);
}

/// Whether `state`'s history holds a note with exactly `text`.
fn has_note(state: &DeliveryState, text: &str) -> bool {
    state
        .history
        .iter()
        .any(|h| h.text.as_ref().is_some_and(|t| t.as_str() == text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_the_relay_is_unreachable_is_queued_and_sent_once_by_a_later_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let (w, coord, courier) = coordinator_and_courier(tmp.path()).await;
    let (cc, kc) = (
        coord.connect().await.unwrap(),
        courier.connect().await.unwrap(),
    );
    let mut cd = Deliveries::open(&coord).unwrap();
    let mut kd = Deliveries::open(&courier).unwrap();
    let id = cd
        .create(&cc, request("courier-a", "F-7", &[]))
        .await
        .unwrap()
        .id;
    kd.sync(&kc).await.unwrap();
    assert_eq!(kd.show(&id).unwrap().status, Status::Assigned);

    // The coordinator's connections (owner and send) are gone: the note is recorded and
    // queued, not lost.
    cc.relay().quic().close(0u32.into(), b"network gone");
    cc.anonymous()
        .await
        .unwrap()
        .quic()
        .close(0u32.into(), b"network gone");
    let text = "meet at the second bridge";
    let delivered = cd
        .update(&cc, &id, Update::Note(EventText::new(text).unwrap()))
        .await
        .unwrap();
    assert!(delivered.sent_to.is_empty(), "{delivered:?}");
    assert_eq!(delivered.queued, vec!["courier-a".to_owned()]);
    assert_eq!(cd.queued(), 1);
    assert!(has_note(&cd.show(&id).unwrap(), text));
    kd.sync(&kc).await.unwrap();
    assert!(!has_note(&kd.show(&id).unwrap(), text));

    // The coordinator's client restarts (the queue lives in the vault) and reconnects:
    // the next sync sends the note, once.
    drop(cd);
    let mut cd = Deliveries::open(&coord).unwrap();
    assert_eq!(cd.queued(), 1);
    let cc = coord.connect().await.unwrap();
    let report = cd.sync(&cc).await.unwrap();
    assert_eq!(report.delivered.sent_to, vec!["courier-a".to_owned()]);
    assert!(report.delivered.queued.is_empty());
    assert_eq!(cd.queued(), 0);
    assert!(cd.sync(&cc).await.unwrap().delivered.sent_to.is_empty());
    let report = kd.sync(&kc).await.unwrap();
    assert_eq!(report.events, 1, "{report:?}");
    let state = kd.show(&id).unwrap();
    assert!(has_note(&state, text));
    assert_eq!(
        state.history.iter().filter(|h| h.text.is_some()).count(),
        1,
        "the note arrived once"
    );
    for c in [cc, kc] {
        c.close().await;
    }
    w.shutdown().await;
}
