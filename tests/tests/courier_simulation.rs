//! The courier simulation: one relay process and 15 staff over real QUIC — 3
//! coordinators, 12 couriers, 60 deliveries. Couriers go offline for random stretches
//! and catch up; the relay is SIGKILLed and restarted mid-run; one courier is revoked
//! mid-run and can no longer send or receive; wrong hand-off codes are tried and
//! refused. At the end every delivery is in a terminal state that every member involved
//! agrees on, and nothing past its TTL remains on the relay or in any vault.
//!
//! Randomness is seeded; the seed is printed, and `SIM_SEED=<n>` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use postern::delivery::{Deliveries, NewDeliveryRequest, Update};
use postern::member::Member;
use postern_deliveries::{Amount, Currency, DeliveryId, EventText, FamilyRef, HandoffCode, Status};
use postern_e2e::ContentType;
use postern_identity::Role;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COORDINATORS: usize = 3;
const COURIERS: usize = 12;
const DELIVERIES: usize = 60;
const MAX_ROUNDS: usize = 40;
const REVOKE_AT: usize = 3;
const KILL_RELAY_AT: usize = 5;
/// Deliveries whose courier keeps entering wrong codes until the delivery is flagged.
const FLAGGED: usize = 3;

struct Staff {
    member: Member,
    online: bool,
    revoked: bool,
}

/// What the simulation (standing in for the family) knows about a delivery.
struct Plan {
    courier: String,
    coordinators: [String; 2],
    code: HandoffCode,
    wrong_codes_left: u32,
}

/// A well-formed code that is not the family's (its check digit is valid, so the
/// courier's client sends it and the coordinators must refuse it).
fn wrong_code(right: &HandoffCode) -> HandoffCode {
    loop {
        let c = HandoffCode::generate();
        if c.display_grouped() != right.display_grouped() {
            return c;
        }
    }
}

async fn run(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = World::new();
    let mut staff: BTreeMap<String, Staff> = BTreeMap::new();
    for i in 0..COORDINATORS {
        let h = format!("coord-{i}");
        let member = world.enroll(&h, Role::Coordinator).await;
        staff.insert(
            h,
            Staff {
                member,
                online: true,
                revoked: false,
            },
        );
    }
    for i in 0..COURIERS {
        let h = format!("courier-{i:02}");
        let member = world.enroll(&h, Role::Courier).await;
        staff.insert(
            h,
            Staff {
                member,
                online: true,
                revoked: false,
            },
        );
    }
    let courier_names: Vec<String> = (0..COURIERS).map(|i| format!("courier-{i:02}")).collect();
    let revoked_courier = courier_names[COURIERS - 1].clone();

    // Coordinators create the deliveries, each with a second coordinator on it.
    let mut plans: BTreeMap<DeliveryId, Plan> = BTreeMap::new();
    for d in 0..DELIVERIES {
        let creator = format!("coord-{}", d % COORDINATORS);
        let other = format!("coord-{}", (d + 1) % COORDINATORS);
        let courier = courier_names[d % COURIERS].clone();
        let s = &staff[&creator];
        let conn = s.member.connect().await.unwrap();
        let mut deliveries = Deliveries::open(&s.member).unwrap();
        let created = deliveries
            .create(
                &conn,
                NewDeliveryRequest {
                    courier: courier.clone(),
                    family: FamilyRef::new(&format!("FAM-{d:03}")).unwrap(),
                    amount: Amount::parse(
                        &format!("{}.00", 100 + d),
                        Currency::new("USD").unwrap(),
                    )
                    .unwrap(),
                    deadline: postern::member::unix_now() + 7 * 86_400,
                    coordinators: vec![other.clone()],
                },
            )
            .await
            .unwrap();
        conn.close().await;
        let wrong = if d < FLAGGED {
            3
        } else if rng.random_bool(0.2) {
            1
        } else {
            0
        };
        plans.insert(
            created.id,
            Plan {
                courier,
                coordinators: [creator, other],
                code: created.code,
                wrong_codes_left: wrong,
            },
        );
    }

    let mut rounds = 0;
    for round in 0..MAX_ROUNDS {
        rounds = round + 1;
        if round == REVOKE_AT {
            world.revoke(&revoked_courier).await;
            staff.get_mut(&revoked_courier).unwrap().revoked = true;
        }
        if round == KILL_RELAY_AT {
            world.kill_relay();
            world.start_relay();
        }
        // Couriers come and go; coordinators stay online.
        for (h, s) in staff.iter_mut() {
            if h.starts_with("courier") {
                s.online = rng.random_bool(0.6);
            }
        }
        let names: Vec<String> = staff.keys().cloned().collect();
        for h in &names {
            let s = &staff[h];
            if !s.online {
                continue;
            }
            if s.revoked {
                // A revoked member can no longer reach anything.
                let err = s.member.connect().await.unwrap_err();
                assert!(
                    is_revoked(&err),
                    "seed {seed}: revoked {h} connected: {err}"
                );
                continue;
            }
            let conn = s.member.connect().await.unwrap();
            let mut deliveries = Deliveries::open(&s.member).unwrap();
            deliveries.sync(&conn).await.unwrap();
            // Some chatter that must disappear on time.
            if rng.random_bool(0.3) {
                let to = &courier_names[rng.random_range(0..COURIERS - 1)];
                if to != h {
                    let _ = s
                        .member
                        .send(
                            &conn,
                            to,
                            ContentType::Text,
                            b"short-lived chatter",
                            Some(Duration::from_secs(2)),
                        )
                        .await;
                }
            }
            for state in deliveries.list() {
                let id = state.id;
                let Some(plan) = plans.get_mut(&id) else {
                    continue;
                };
                if state.status.is_terminal() {
                    continue;
                }
                if h.starts_with("courier") {
                    let next = match state.status {
                        Status::Assigned => Some(Update::PickedUp),
                        Status::PickedUp => Some(Update::InTransit),
                        _ => None,
                    };
                    if let Some(u) = next {
                        deliveries.update(&conn, &id, u).await.unwrap();
                    } else if state.status == Status::InTransit && !state.flagged {
                        let code = if plan.wrong_codes_left > 0 {
                            plan.wrong_codes_left -= 1;
                            wrong_code(&plan.code)
                        } else {
                            plan.code.clone()
                        };
                        // The courier enters the family's code; coordinators decide.
                        let _ = deliveries.handoff(&conn, &id, code).await;
                    }
                } else if state.flagged || plan.courier == revoked_courier {
                    let reason = if state.flagged {
                        "too many wrong hand-off codes"
                    } else {
                        "courier revoked"
                    };
                    let _ = deliveries
                        .update(&conn, &id, Update::Failed(EventText::new(reason).unwrap()))
                        .await;
                } else if state.status == Status::HandedOff {
                    let _ = deliveries.update(&conn, &id, Update::Confirmed).await;
                }
            }
            deliveries.sync(&conn).await.unwrap();
            conn.close().await;
        }
        // Done when every coordinator sees every delivery terminal and every online
        // courier has caught up.
        if round > KILL_RELAY_AT && all_terminal(&staff, &plans).await {
            break;
        }
    }
    println!("seed {seed}: {rounds} rounds");

    // Everyone catches up once more, then every member involved must agree.
    for (h, s) in &staff {
        if s.revoked {
            continue;
        }
        let conn = s.member.connect().await.unwrap();
        let mut deliveries = Deliveries::open(&s.member).unwrap();
        deliveries.sync(&conn).await.unwrap();
        conn.close().await;
        let _ = h;
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (id, plan) in &plans {
        let mut views = BTreeSet::new();
        let mut involved = vec![plan.coordinators[0].clone(), plan.coordinators[1].clone()];
        if plan.courier != revoked_courier {
            involved.push(plan.courier.clone());
        }
        for h in &involved {
            let d = Deliveries::open(&staff[h].member).unwrap();
            let state = d.show(id).unwrap();
            assert!(
                state.status.is_terminal(),
                "seed {seed}: {id} is {:?} for {h}",
                state.status
            );
            views.insert(format!("{:?}", state.status));
        }
        assert_eq!(
            views.len(),
            1,
            "seed {seed}: members disagree on {id}: {views:?}"
        );
        let d = Deliveries::open(&staff[&plan.coordinators[0]].member).unwrap();
        *outcomes
            .entry(format!("{:?}", d.show(id).unwrap().status))
            .or_default() += 1;
        // A courier's client never saw another courier's delivery.
        for other in courier_names
            .iter()
            .filter(|c| **c != plan.courier && **c != revoked_courier)
        {
            let d = Deliveries::open(&staff[other].member).unwrap();
            assert!(d.show(id).is_err(), "seed {seed}: {other} sees {id}");
        }
    }
    println!("seed {seed}: outcomes {outcomes:?}");
    assert!(outcomes.get("Confirmed").copied().unwrap_or(0) > 0);
    assert!(outcomes.get("Failed").copied().unwrap_or(0) >= FLAGGED);

    // Nothing past its TTL remains: wait out the chatter's TTL, let the relay sweep.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = postern::member::unix_now();
    for (h, s) in &staff {
        s.member.purge_expired().unwrap();
        for m in s.member.messages().unwrap() {
            assert!(
                m.expires_at_ms / 1000 >= now,
                "seed {seed}: {h} keeps an expired message"
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // one more relay sweep
    world.stop_relay();
    let (counts, earliest) = world.relay_holdings();
    println!("seed {seed}: relay holds {counts:?}");
    if let Some(e) = earliest {
        assert!(e > now, "seed {seed}: the relay keeps an expired envelope");
    }
}

async fn all_terminal(staff: &BTreeMap<String, Staff>, plans: &BTreeMap<DeliveryId, Plan>) -> bool {
    for i in 0..COORDINATORS {
        let s = &staff[&format!("coord-{i}")];
        let d = Deliveries::open(&s.member).unwrap();
        for (id, plan) in plans {
            if !plan.coordinators.contains(&format!("coord-{i}")) {
                continue;
            }
            match d.show(id) {
                Ok(state) if state.status.is_terminal() => {}
                _ => return false,
            }
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn couriers_deliveries_converge_through_outages_revocation_and_wrong_codes() {
    let seed = std::env::var("SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("SIM_SEED={seed}");
    run(seed).await;
}
