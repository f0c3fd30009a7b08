//! State-machine, role, hand-off, convergence and encoding tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use crate::*;

const AT: u64 = 1_800_000_000;

fn h(s: &str) -> Handle {
    Handle::new(s).unwrap()
}

fn coord() -> Handle {
    h("coord-1")
}

fn courier_a() -> Handle {
    h("courier-a")
}

fn courier_b() -> Handle {
    h("courier-b")
}

fn usd(decimal: &str) -> Amount {
    Amount::parse(decimal, Currency::new("USD").unwrap()).unwrap()
}

fn code_from(values: [u8; 15]) -> HandoffCode {
    let check = damm_check_digit(&values);
    let text: String = values
        .iter()
        .chain(std::iter::once(&check))
        .map(|d| char::from(b'0' + d))
        .collect();
    HandoffCode::parse(&text).unwrap()
}

fn wrong_code(right: &HandoffCode) -> HandoffCode {
    loop {
        let c = HandoffCode::generate();
        if &c != right {
            return c;
        }
    }
}

fn text(s: &str) -> EventText {
    EventText::new(s).unwrap()
}

/// A coordinator's log (with secret) and the code, created and assigned to courier-a.
struct Fixture {
    log: DeliveryLog,
    secret: CoordinatorSecret,
    code: HandoffCode,
}

impl Fixture {
    fn new() -> Self {
        let new = DeliveryLog::create(
            coord(),
            Role::Coordinator,
            AT,
            FamilyRef::new("F-1042").unwrap(),
            usd("1500.50"),
            AT + 86_400,
        )
        .unwrap();
        Self {
            log: new.log,
            secret: new.secret,
            code: new.code,
        }
    }

    fn coordinator(&mut self, kind: EventKind) -> Result<DeliveryEvent, LogError> {
        self.log.record(
            coord(),
            Role::Coordinator,
            AT + 60,
            kind,
            Some(&self.secret),
        )
    }

    fn courier(&mut self, who: Handle, kind: EventKind) -> Result<DeliveryEvent, LogError> {
        self.log.record(who, Role::Courier, AT + 60, kind, None)
    }

    /// Inserts without the local check (as if received), for events the state machine
    /// will judge during replay.
    fn receive(&mut self, who: Handle, role: Role, kind: EventKind) -> DeliveryEvent {
        let ev = DeliveryEvent::new(
            self.log.delivery(),
            self.log.next_clock().unwrap(),
            AT + 120,
            who,
            role,
            kind,
        );
        self.log.insert(ev.clone()).unwrap();
        ev
    }

    fn coordinator_view(&self) -> DeliveryState {
        self.log.derive(Some(&self.secret)).unwrap()
    }

    fn courier_view(&self) -> DeliveryState {
        self.log.derive(None).unwrap()
    }

    /// Walks the delivery to `status` along the normal path (coordinator view).
    fn to(status: Status) -> Self {
        let mut f = Self::new();
        let steps: &[Status] = match status {
            Status::Requested => &[],
            Status::Assigned => &[Status::Assigned],
            Status::PickedUp => &[Status::Assigned, Status::PickedUp],
            Status::InTransit => &[Status::Assigned, Status::PickedUp, Status::InTransit],
            Status::HandedOff | Status::HandoffClaimed => &[
                Status::Assigned,
                Status::PickedUp,
                Status::InTransit,
                Status::HandedOff,
            ],
            Status::Confirmed => &[
                Status::Assigned,
                Status::PickedUp,
                Status::InTransit,
                Status::HandedOff,
                Status::Confirmed,
            ],
            Status::Failed => &[Status::Assigned, Status::Failed],
            Status::Cancelled => &[Status::Cancelled],
            Status::Incomplete => unreachable!(),
        };
        for step in steps {
            match step {
                Status::Assigned => f.coordinator(EventKind::Assigned {
                    courier: courier_a(),
                }),
                Status::PickedUp => f.courier(courier_a(), EventKind::PickedUp),
                Status::InTransit => f.courier(courier_a(), EventKind::InTransit),
                Status::HandedOff => {
                    let code = f.code.clone();
                    f.courier(courier_a(), EventKind::HandedOff { code })
                }
                Status::Confirmed => {
                    let claim = f.coordinator_view().verified_claim().unwrap();
                    f.coordinator(EventKind::Confirmed { claim })
                }
                Status::Failed => f.courier(
                    courier_a(),
                    EventKind::Failed {
                        reason: text("road closed"),
                    },
                ),
                Status::Cancelled => f.coordinator(EventKind::Cancelled),
                _ => unreachable!(),
            }
            .unwrap();
        }
        let expected = if status == Status::HandoffClaimed {
            Status::HandedOff
        } else {
            status
        };
        assert_eq!(f.coordinator_view().status, expected);
        f
    }
}

#[test]
fn a_delivery_runs_its_whole_life_cycle_in_both_views() {
    let mut f = Fixture::to(Status::InTransit);
    let code = f.code.clone();
    let claim = f
        .courier(courier_a(), EventKind::HandedOff { code })
        .unwrap();
    assert_eq!(f.coordinator_view().status, Status::HandedOff);
    assert_eq!(f.coordinator_view().verified_claim(), Some(claim.id));
    assert_eq!(f.courier_view().status, Status::HandoffClaimed);
    f.coordinator(EventKind::Confirmed { claim: claim.id })
        .unwrap();
    let coordinator = f.coordinator_view();
    let courier = f.courier_view();
    assert_eq!(coordinator.status, Status::Confirmed);
    assert_eq!(courier.status, Status::Confirmed);
    assert!(coordinator.rejected.is_empty() && courier.rejected.is_empty());
    let details = coordinator.details.unwrap();
    assert_eq!(details.amount.to_string(), "1500.50 USD");
    assert_eq!(details.family.as_str(), "F-1042");
    assert_eq!(coordinator.courier, Some(courier_a()));
    let names: Vec<_> = coordinator
        .history
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "created",
            "assigned",
            "picked-up",
            "in-transit",
            "handed-off",
            "confirmed"
        ]
    );
}

fn state_courier_is_none(f: &Fixture) -> bool {
    f.coordinator_view().courier.is_none()
}

/// The transition table of DELIVERIES.md §3: for each status, which events apply
/// (by their rightful author). Everything else is `IllegalTransition`.
#[test]
fn every_transition_not_in_the_table_is_refused() {
    use EventName as E;
    let allowed: &[(Status, &[EventName])] = &[
        (
            Status::Requested,
            &[E::Assigned, E::Failed, E::Cancelled, E::Note],
        ),
        (
            Status::Assigned,
            &[E::Assigned, E::PickedUp, E::Failed, E::Cancelled, E::Note],
        ),
        (
            Status::PickedUp,
            &[E::InTransit, E::Failed, E::Cancelled, E::Note],
        ),
        (
            Status::InTransit,
            &[E::HandedOff, E::Failed, E::Cancelled, E::Note],
        ),
        (
            Status::HandedOff,
            &[E::Confirmed, E::Failed, E::Cancelled, E::Note],
        ),
        (Status::Confirmed, &[]),
        (Status::Failed, &[]),
        (Status::Cancelled, &[]),
    ];
    for (status, ok) in allowed {
        for name in [
            E::Created,
            E::Assigned,
            E::PickedUp,
            E::InTransit,
            E::HandedOff,
            E::Confirmed,
            E::Failed,
            E::Cancelled,
            E::Note,
        ] {
            let mut f = Fixture::to(*status);
            let verified = f.coordinator_view().verified_claim();
            let code = f.code.clone();
            let (who, role, kind) = match name {
                E::Created => (
                    coord(),
                    Role::Coordinator,
                    EventKind::Created {
                        family: FamilyRef::new("F-1").unwrap(),
                        amount: usd("1"),
                        deadline: AT,
                    },
                ),
                E::Assigned => (
                    coord(),
                    Role::Coordinator,
                    EventKind::Assigned {
                        courier: courier_a(),
                    },
                ),
                E::PickedUp => (courier_a(), Role::Courier, EventKind::PickedUp),
                E::InTransit => (courier_a(), Role::Courier, EventKind::InTransit),
                E::HandedOff => (courier_a(), Role::Courier, EventKind::HandedOff { code }),
                E::Confirmed => (
                    coord(),
                    Role::Coordinator,
                    EventKind::Confirmed {
                        claim: verified.unwrap_or_else(EventId::random),
                    },
                ),
                E::Failed => (
                    coord(),
                    Role::Coordinator,
                    EventKind::Failed { reason: text("x") },
                ),
                E::Cancelled => (coord(), Role::Coordinator, EventKind::Cancelled),
                E::Note => (
                    coord(),
                    Role::Coordinator,
                    EventKind::Note { text: text("x") },
                ),
                _ => unreachable!(),
            };
            // Courier steps on a delivery with no courier yet are refused for that reason.
            let no_courier = state_courier_is_none(&f);
            // Judged by the replay in the coordinators' view (with the secret).
            let ev = f.receive(who, role, kind);
            let state = f.coordinator_view();
            let result = match state.rejected.iter().find(|r| r.event == ev.id) {
                Some(r) => Err(LogError::Refused(r.reason.clone())),
                None => Ok(()),
            };
            match (ok.contains(&name), result) {
                (true, Ok(_)) => {}
                (false, Err(LogError::Refused(TransitionError::AlreadyCreated)))
                    if name == E::Created => {}
                (false, Err(LogError::Refused(TransitionError::NotAssignedCourier { .. })))
                    if no_courier => {}
                (false, Err(LogError::Refused(TransitionError::UnknownClaim { .. })))
                    if name == E::Confirmed && verified.is_none() => {}
                (
                    false,
                    Err(LogError::Refused(TransitionError::IllegalTransition { from, event })),
                ) if from == *status && event == name => {}
                (expected, got) => panic!("{status} + {name}: allowed={expected}, got {got:?}"),
            }
        }
    }
}

#[test]
fn events_before_created_are_rejected_not_created() {
    let mut log = DeliveryLog::new(DeliveryId::random());
    let err = log
        .record(coord(), Role::Coordinator, AT, EventKind::Cancelled, None)
        .unwrap_err();
    assert_eq!(
        err,
        LogError::Refused(TransitionError::NotCreated {
            event: EventName::Cancelled
        })
    );
}

#[test]
fn couriers_may_not_record_coordinator_steps() {
    let mut f = Fixture::to(Status::HandedOff);
    let claim = f.coordinator_view().verified_claim().unwrap();
    for kind in [
        EventKind::Assigned {
            courier: courier_a(),
        },
        EventKind::Confirmed { claim },
        EventKind::Cancelled,
        EventKind::HandoffRefused {
            claim,
            failed_attempts: 1,
        },
        EventKind::Created {
            family: FamilyRef::new("F-1").unwrap(),
            amount: usd("1"),
            deadline: AT,
        },
    ] {
        let name = kind.name();
        assert_eq!(
            f.courier(courier_a(), kind).unwrap_err(),
            LogError::Refused(TransitionError::NotAuthorized {
                handle: courier_a(),
                role: Role::Courier,
                event: name,
            })
        );
    }
}

#[test]
fn coordinators_and_admins_may_not_record_courier_steps() {
    for role in [Role::Coordinator, Role::Admin] {
        let mut f = Fixture::to(Status::Assigned);
        let code = f.code.clone();
        for kind in [
            EventKind::PickedUp,
            EventKind::InTransit,
            EventKind::HandedOff { code },
        ] {
            let name = kind.name();
            let err = f
                .log
                .record(coord(), role, AT, kind, Some(&f.secret))
                .unwrap_err();
            assert_eq!(
                err,
                LogError::Refused(TransitionError::NotAuthorized {
                    handle: coord(),
                    role,
                    event: name,
                })
            );
        }
    }
}

#[test]
fn admins_may_do_what_coordinators_do() {
    let mut f = Fixture::new();
    f.log
        .record(
            h("admin"),
            Role::Admin,
            AT,
            EventKind::Assigned {
                courier: courier_a(),
            },
            None,
        )
        .unwrap();
    f.log
        .record(h("admin"), Role::Admin, AT, EventKind::Cancelled, None)
        .unwrap();
    assert_eq!(f.coordinator_view().status, Status::Cancelled);
}

#[test]
fn a_courier_cannot_act_on_another_couriers_delivery() {
    let mut f = Fixture::to(Status::Assigned);
    for kind in [
        EventKind::PickedUp,
        EventKind::Note { text: text("hi") },
        EventKind::Failed { reason: text("x") },
    ] {
        assert_eq!(
            f.courier(courier_b(), kind).unwrap_err(),
            LogError::Refused(TransitionError::NotAssignedCourier {
                handle: courier_b()
            })
        );
    }
    // Received rather than recorded locally: rejected in the replay, state unchanged.
    f.receive(courier_b(), Role::Courier, EventKind::PickedUp);
    let state = f.coordinator_view();
    assert_eq!(state.status, Status::Assigned);
    assert_eq!(
        state.rejected[0].reason,
        TransitionError::NotAssignedCourier {
            handle: courier_b()
        }
    );
}

#[test]
fn reassignment_moves_the_delivery_between_couriers() {
    let mut f = Fixture::to(Status::Assigned);
    f.coordinator(EventKind::Assigned {
        courier: courier_b(),
    })
    .unwrap();
    assert!(f.courier(courier_a(), EventKind::PickedUp).is_err());
    f.courier(courier_b(), EventKind::PickedUp).unwrap();
    // No reassignment after pick-up.
    assert!(matches!(
        f.coordinator(EventKind::Assigned {
            courier: courier_a()
        }),
        Err(LogError::Refused(TransitionError::IllegalTransition {
            from: Status::PickedUp,
            ..
        }))
    ));
}

#[test]
fn a_courier_lists_only_deliveries_assigned_to_them() {
    let mut book = DeliveryBook::new();
    let mut ids = Vec::new();
    for courier in [Some(courier_a()), Some(courier_b()), None] {
        let new = DeliveryLog::create(
            coord(),
            Role::Coordinator,
            AT,
            FamilyRef::new("F-7").unwrap(),
            usd("10"),
            AT,
        )
        .unwrap();
        let id = new.log.delivery();
        book.add_new(new);
        if let Some(c) = courier {
            book.record(
                &id,
                coord(),
                Role::Coordinator,
                AT,
                EventKind::Assigned { courier: c },
            )
            .unwrap();
        }
        ids.push(id);
    }
    let mine: Vec<_> = book
        .list_for(&courier_a(), Role::Courier)
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(mine, vec![ids[0]]);
    assert_eq!(book.list_for(&h("courier-c"), Role::Courier).len(), 0);
    assert_eq!(book.list_for(&coord(), Role::Coordinator).len(), 3);
    // Reassigned away: no longer listed.
    book.record(
        &ids[0],
        coord(),
        Role::Coordinator,
        AT,
        EventKind::Assigned {
            courier: courier_b(),
        },
    )
    .unwrap();
    assert!(book.list_for(&courier_a(), Role::Courier).is_empty());
}

#[test]
fn duplicate_events_are_harmless() {
    let mut f = Fixture::to(Status::InTransit);
    let before = f.coordinator_view();
    for ev in f.log.events().into_iter().cloned().collect::<Vec<_>>() {
        assert_eq!(f.log.insert(ev.clone()).unwrap(), Inserted::Duplicate);
        let bytes = ev.encode();
        assert_eq!(
            f.log.receive(&bytes, &ev.author, ev.role).unwrap(),
            Inserted::Duplicate
        );
    }
    assert_eq!(f.coordinator_view(), before);
}

#[test]
fn events_received_out_of_order_converge() {
    let f = Fixture::to(Status::Confirmed);
    let events: Vec<DeliveryEvent> = f.log.events().into_iter().cloned().collect();
    let mut reversed = DeliveryLog::new(f.log.delivery());
    for ev in events.iter().rev() {
        reversed.insert(ev.clone()).unwrap();
        if ev.clock > 1 {
            // Without `created`, nothing applies yet.
            assert_eq!(reversed.derive(None).unwrap().status, Status::Incomplete);
        }
    }
    assert_eq!(
        reversed.derive(Some(&f.secret)).unwrap(),
        f.coordinator_view()
    );
    assert_eq!(reversed.derive(None).unwrap(), f.courier_view());
    assert_eq!(reversed.derive(None).unwrap().status, Status::Confirmed);
}

#[test]
fn conflicting_events_with_one_id_are_all_rejected() {
    let mut f = Fixture::to(Status::Assigned);
    let ev = f.courier(courier_a(), EventKind::PickedUp).unwrap();
    let mut twin = ev.clone();
    twin.kind = EventKind::Note { text: text("twin") };
    assert_eq!(f.log.insert(twin).unwrap(), Inserted::New);
    let state = f.coordinator_view();
    assert_eq!(state.status, Status::Assigned);
    assert_eq!(state.rejected.len(), 2);
    assert!(
        state
            .rejected
            .iter()
            .all(|r| r.reason == TransitionError::ConflictingEventId)
    );
}

#[test]
fn wrong_codes_are_refused_counted_and_flag_the_delivery() {
    let mut f = Fixture::to(Status::InTransit);
    let mut claims = Vec::new();
    for n in 1..=MAX_HANDOFF_ATTEMPTS {
        let wrong = wrong_code(&f.code);
        claims.push(
            f.courier(courier_a(), EventKind::HandedOff { code: wrong })
                .unwrap()
                .id,
        );
        let state = f.coordinator_view();
        assert_eq!(state.status, Status::InTransit);
        assert_eq!(state.failed_handoff_attempts, n);
        assert_eq!(state.flagged, n >= MAX_HANDOFF_ATTEMPTS);
        assert_eq!(
            state.rejected.last().unwrap().reason,
            TransitionError::WrongHandoffCode { failed_attempts: n }
        );
        // The courier's view knows nothing yet: it waits for a verdict.
        assert_eq!(f.courier_view().status, Status::HandoffClaimed);
    }
    // Even the right code is refused once flagged.
    let code = f.code.clone();
    let late = f
        .courier(courier_a(), EventKind::HandedOff { code })
        .unwrap();
    let state = f.coordinator_view();
    assert_eq!(state.status, Status::InTransit);
    assert_eq!(
        state.rejected.last().unwrap().reason,
        TransitionError::HandoffFlagged
    );
    assert_eq!(state.failed_handoff_attempts, MAX_HANDOFF_ATTEMPTS);
    assert_eq!(
        f.coordinator(EventKind::Confirmed { claim: late.id })
            .unwrap_err(),
        LogError::Refused(TransitionError::VerdictContradicts { claim: late.id })
    );

    // The coordinator's client sends the verdicts; the courier's view catches up.
    let verdicts = f
        .log
        .record_due_refusals(&coord(), Role::Coordinator, AT, &f.secret)
        .unwrap();
    assert_eq!(verdicts.len(), 4);
    assert!(f.coordinator_view().refusals_due().is_empty());
    let courier = f.courier_view();
    assert_eq!(courier.status, Status::InTransit);
    assert!(courier.flagged);
    assert_eq!(courier.failed_handoff_attempts, MAX_HANDOFF_ATTEMPTS);
    assert!(
        courier
            .claims
            .iter()
            .all(|c| c.outcome == ClaimOutcome::Refused)
    );
    // And the courier's own client now refuses another attempt.
    let code = f.code.clone();
    assert_eq!(
        f.log
            .record(
                courier_a(),
                Role::Courier,
                AT,
                EventKind::HandedOff { code },
                None
            )
            .unwrap_err(),
        LogError::Refused(TransitionError::HandoffFlagged)
    );
    // A flagged delivery can still be closed by a coordinator.
    f.coordinator(EventKind::Failed {
        reason: text("hand-off not verified"),
    })
    .unwrap();
    assert_eq!(f.courier_view().status, Status::Failed);
    assert_eq!(f.coordinator_view().status, Status::Failed);
}

#[test]
fn a_wrong_code_then_the_right_one_is_confirmed() {
    let mut f = Fixture::to(Status::InTransit);
    let wrong = wrong_code(&f.code);
    f.courier(courier_a(), EventKind::HandedOff { code: wrong })
        .unwrap();
    let refusals = f
        .log
        .record_due_refusals(&coord(), Role::Coordinator, AT, &f.secret)
        .unwrap();
    assert_eq!(refusals.len(), 1);
    assert_eq!(f.courier_view().status, Status::InTransit);
    assert_eq!(f.courier_view().failed_handoff_attempts, 1);
    let code = f.code.clone();
    let claim = f
        .courier(courier_a(), EventKind::HandedOff { code })
        .unwrap()
        .id;
    f.coordinator(EventKind::Confirmed { claim }).unwrap();
    for view in [f.coordinator_view(), f.courier_view()] {
        assert_eq!(view.status, Status::Confirmed);
        assert_eq!(view.failed_handoff_attempts, 1);
        assert!(!view.flagged);
    }
}

#[test]
fn contradictory_verdicts_are_rejected_by_coordinators() {
    let mut f = Fixture::to(Status::HandedOff);
    let claim = f.coordinator_view().verified_claim().unwrap();
    f.receive(
        coord(),
        Role::Coordinator,
        EventKind::HandoffRefused {
            claim,
            failed_attempts: 1,
        },
    );
    let state = f.coordinator_view();
    assert_eq!(state.status, Status::HandedOff);
    assert_eq!(
        state.rejected[0].reason,
        TransitionError::VerdictContradicts { claim }
    );
    let unknown = EventId::random();
    f.receive(
        coord(),
        Role::Coordinator,
        EventKind::Confirmed { claim: unknown },
    );
    assert_eq!(
        f.coordinator_view().rejected[1].reason,
        TransitionError::UnknownClaim { claim: unknown }
    );
}

#[test]
fn two_coordinators_refusing_the_same_claim_is_harmless() {
    let mut f = Fixture::to(Status::InTransit);
    let wrong = wrong_code(&f.code);
    let claim = f
        .courier(courier_a(), EventKind::HandedOff { code: wrong })
        .unwrap()
        .id;
    let mut other = f.log.clone();
    let first = f
        .log
        .record_due_refusals(&coord(), Role::Coordinator, AT, &f.secret)
        .unwrap();
    let second = other
        .record_due_refusals(&h("coord-2"), Role::Coordinator, AT, &f.secret)
        .unwrap();
    assert_eq!((first.len(), second.len()), (1, 1));
    f.log.insert(second[0].clone()).unwrap();
    for view in [f.coordinator_view(), f.courier_view()] {
        assert_eq!(view.status, Status::InTransit);
        assert_eq!(view.failed_handoff_attempts, 1);
        assert_eq!(
            view.rejected.last().unwrap().reason,
            TransitionError::DuplicateVerdict { claim }
        );
    }
}

#[test]
fn verdicts_need_the_coordinator_secret() {
    let mut f = Fixture::to(Status::HandedOff);
    let claim = f.coordinator_view().verified_claim().unwrap();
    let delivery = f.log.delivery();
    for kind in [
        EventKind::Confirmed { claim },
        EventKind::HandoffRefused {
            claim,
            failed_attempts: 1,
        },
    ] {
        assert_eq!(
            f.log
                .record(coord(), Role::Coordinator, AT, kind, None)
                .unwrap_err(),
            LogError::SecretRequired { delivery }
        );
    }
    let mut book = DeliveryBook::new();
    assert_eq!(
        book.record(
            &delivery,
            coord(),
            Role::Coordinator,
            AT,
            EventKind::Cancelled
        )
        .unwrap_err(),
        LogError::UnknownDelivery(delivery)
    );
}

#[test]
fn a_confirmation_of_a_wrong_code_is_rejected_by_coordinators() {
    let mut f = Fixture::to(Status::InTransit);
    let wrong = wrong_code(&f.code);
    let claim = f
        .courier(courier_a(), EventKind::HandedOff { code: wrong })
        .unwrap()
        .id;
    assert!(matches!(
        f.coordinator(EventKind::Confirmed { claim }),
        Err(LogError::Refused(
            TransitionError::VerdictContradicts { .. }
        ))
    ));
}

#[test]
fn the_commitment_never_travels_in_an_event() {
    let mut f = Fixture::to(Status::InTransit);
    let secret_bytes = f.secret.encode();
    let salt = &secret_bytes[17..49];
    let commitment = f.secret.commitment().to_vec();
    let code_digits = f.code.digits().to_vec();
    for ev in f.log.events() {
        let bytes = ev.encode();
        for needle in [salt, &commitment[..], &code_digits[..]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{:?}",
                ev.kind.name()
            );
        }
    }
    // Only the courier's claim carries a code: the one the courier entered.
    let code = f.code.clone();
    let claim = f
        .courier(courier_a(), EventKind::HandedOff { code })
        .unwrap();
    assert!(claim.encode().windows(16).any(|w| w == code_digits));
}

#[test]
fn received_events_must_name_their_sender() {
    let mut f = Fixture::to(Status::Assigned);
    let forged = DeliveryEvent::new(
        f.log.delivery(),
        9,
        AT,
        coord(),
        Role::Coordinator,
        EventKind::Cancelled,
    );
    let err = f
        .log
        .receive(&forged.encode(), &courier_a(), Role::Courier)
        .unwrap_err();
    assert!(matches!(err, LogError::AuthorMismatch { .. }));
    let promoted = DeliveryEvent::new(
        f.log.delivery(),
        9,
        AT,
        courier_a(),
        Role::Coordinator,
        EventKind::Cancelled,
    );
    let err = f
        .log
        .receive(&promoted.encode(), &courier_a(), Role::Courier)
        .unwrap_err();
    assert!(matches!(err, LogError::AuthorMismatch { .. }));
    assert_eq!(
        f.log
            .receive(&[0xff], &courier_a(), Role::Courier)
            .unwrap_err(),
        LogError::Decode(DecodeError::UnsupportedVersion(0xff))
    );
}

#[test]
fn logs_refuse_foreign_events_and_secrets() {
    let mut f = Fixture::new();
    let other = DeliveryId::random();
    let ev = DeliveryEvent::new(
        other,
        1,
        AT,
        coord(),
        Role::Coordinator,
        EventKind::Cancelled,
    );
    assert!(matches!(
        f.log.insert(ev),
        Err(LogError::WrongDelivery { .. })
    ));
    let secret = CoordinatorSecret::commit(other, &f.code);
    assert!(matches!(
        f.log.derive(Some(&secret)),
        Err(LogError::SecretForOtherDelivery { .. })
    ));
}

#[test]
fn a_log_holds_a_bounded_number_of_events() {
    let mut f = Fixture::to(Status::Assigned);
    while f.log.len() < MAX_EVENTS_PER_DELIVERY {
        f.receive(
            coord(),
            Role::Coordinator,
            EventKind::Note { text: text("n") },
        );
    }
    let ev = DeliveryEvent::new(
        f.log.delivery(),
        1,
        AT,
        coord(),
        Role::Coordinator,
        EventKind::Cancelled,
    );
    assert_eq!(
        f.log.insert(ev),
        Err(LogError::Full {
            max: MAX_EVENTS_PER_DELIVERY
        })
    );
    assert_eq!(f.log.len(), MAX_EVENTS_PER_DELIVERY);
}

#[test]
fn a_clock_near_the_limit_cannot_be_advanced() {
    let mut f = Fixture::new();
    let ev = DeliveryEvent::new(
        f.log.delivery(),
        MAX_CLOCK,
        AT,
        coord(),
        Role::Coordinator,
        EventKind::Cancelled,
    );
    assert_eq!(DeliveryEvent::decode(&ev.encode()).unwrap(), ev);
    f.log.insert(ev).unwrap();
    assert_eq!(f.log.next_clock(), Err(LogError::ClockExhausted));
    let mut over = DeliveryEvent::new(
        f.log.delivery(),
        0,
        AT,
        coord(),
        Role::Coordinator,
        EventKind::Cancelled,
    );
    over.clock = MAX_CLOCK + 1;
    assert_eq!(
        DeliveryEvent::decode(&over.encode()),
        Err(DecodeError::ClockOutOfRange)
    );
}

#[test]
fn closed_deliveries_are_purged_after_the_retention_period() {
    let mut book = DeliveryBook::new();
    let mut make = |at: u64, close: Option<EventKind>| {
        let new = DeliveryLog::create(
            coord(),
            Role::Coordinator,
            at,
            FamilyRef::new("F-9").unwrap(),
            usd("5"),
            at,
        )
        .unwrap();
        let id = new.log.delivery();
        book.add_new(new);
        if let Some(kind) = close {
            book.record(&id, coord(), Role::Coordinator, at, kind)
                .unwrap();
        }
        id
    };
    let day = SECONDS_PER_DAY;
    let old_cancelled = make(AT, Some(EventKind::Cancelled));
    let old_failed = make(AT, Some(EventKind::Failed { reason: text("x") }));
    let old_open = make(AT, None);
    let recent_cancelled = make(AT + 25 * day, Some(EventKind::Cancelled));
    let now = AT + 30 * day;
    let mut purged = book.purge_closed(now, 30);
    purged.sort();
    let mut expected = vec![old_cancelled, old_failed];
    expected.sort();
    assert_eq!(purged, expected);
    assert!(book.log(&old_cancelled).is_none() && book.secret(&old_cancelled).is_none());
    assert!(book.log(&old_open).is_some());
    assert!(book.log(&recent_cancelled).is_some());
    // One second short of the period: kept.
    assert!(book.purge_closed(AT + 55 * day - 1, 30).is_empty());
    assert_eq!(book.purge_closed(AT + 55 * day, 30), vec![recent_cancelled]);
    // Confirmed deliveries too.
    let f = Fixture::to(Status::Confirmed);
    let id = f.log.delivery();
    for ev in f.log.events() {
        book.insert(ev.clone()).unwrap();
    }
    assert!(book.purge_closed(AT + 60 * day, 365).is_empty());
    assert_eq!(book.purge_closed(AT + 60 * day, 1), vec![id]);
}

#[test]
fn events_that_never_become_valid_are_purged_too() {
    let mut book = DeliveryBook::new();
    let ev = DeliveryEvent::new(
        DeliveryId::random(),
        5,
        AT,
        courier_a(),
        Role::Courier,
        EventKind::PickedUp,
    );
    book.insert(ev.clone()).unwrap();
    assert!(book.purge_closed(AT + SECONDS_PER_DAY - 1, 1).is_empty());
    assert_eq!(
        book.purge_closed(AT + SECONDS_PER_DAY, 1),
        vec![ev.delivery]
    );
}

// ---- encoding ---------------------------------------------------------------------

fn arb_handle() -> impl Strategy<Value = Handle> {
    "[a-z0-9][a-z0-9._-]{1,31}".prop_map(|s| Handle::new(&s).unwrap())
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Admin),
        Just(Role::Coordinator),
        Just(Role::Courier)
    ]
}

fn arb_text() -> impl Strategy<Value = EventText> {
    "[a-zA-Z0-9][a-zA-Z0-9 \n.,é한]{0,80}".prop_map(|s| EventText::new(&s).unwrap())
}

fn arb_code() -> impl Strategy<Value = HandoffCode> {
    proptest::array::uniform15(0u8..10).prop_map(code_from)
}

fn arb_kind() -> impl Strategy<Value = EventKind> {
    let currency = proptest::sample::select(CURRENCIES.iter().map(|c| c.0).collect::<Vec<_>>())
        .prop_map(|c| Currency::new(c).unwrap());
    prop_oneof![
        (
            "[A-Z0-9][A-Z0-9-]{1,22}[A-Z0-9]",
            1u64..,
            currency,
            any::<u64>()
        )
            .prop_map(|(f, minor, c, deadline)| EventKind::Created {
                family: FamilyRef::new(&f).unwrap(),
                amount: Amount::from_minor(minor, c).unwrap(),
                deadline,
            }),
        arb_handle().prop_map(|courier| EventKind::Assigned { courier }),
        Just(EventKind::PickedUp),
        Just(EventKind::InTransit),
        arb_code().prop_map(|code| EventKind::HandedOff { code }),
        any::<[u8; 16]>().prop_map(|c| EventKind::Confirmed { claim: EventId(c) }),
        arb_text().prop_map(|reason| EventKind::Failed { reason }),
        Just(EventKind::Cancelled),
        arb_text().prop_map(|text| EventKind::Note { text }),
        (any::<[u8; 16]>(), any::<u32>()).prop_map(|(c, n)| EventKind::HandoffRefused {
            claim: EventId(c),
            failed_attempts: n
        }),
    ]
}

fn arb_event() -> impl Strategy<Value = DeliveryEvent> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        0..=MAX_CLOCK,
        any::<u64>(),
        arb_handle(),
        arb_role(),
        arb_kind(),
    )
        .prop_map(|(d, id, clock, at, author, role, kind)| DeliveryEvent {
            delivery: DeliveryId(d),
            id: EventId(id),
            clock,
            at,
            author,
            role,
            kind,
        })
}

#[test]
fn the_largest_event_fits_the_limit() {
    let ev = DeliveryEvent {
        delivery: DeliveryId([0xff; 16]),
        id: EventId([0xff; 16]),
        clock: MAX_CLOCK,
        at: u64::MAX,
        author: Handle::new(&"a".repeat(32)).unwrap(),
        role: Role::Coordinator,
        kind: EventKind::Note {
            text: text(&"한".repeat(MAX_TEXT_LEN / 3)),
        },
    };
    let len = ev.encode().len();
    assert!(len <= MAX_EVENT_LEN, "{len}");
    assert_eq!(DeliveryEvent::decode(&ev.encode()).unwrap(), ev);
}

#[test]
fn malformed_event_bytes_get_typed_errors() {
    let ev = DeliveryEvent::new(
        DeliveryId::random(),
        3,
        AT,
        coord(),
        Role::Coordinator,
        EventKind::Cancelled,
    );
    let bytes = ev.encode();
    assert_eq!(DeliveryEvent::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        DeliveryEvent::decode(&[2]),
        Err(DecodeError::UnsupportedVersion(2))
    );
    assert_eq!(
        DeliveryEvent::decode(&bytes[..bytes.len() - 1]),
        Err(DecodeError::Malformed)
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(
        DeliveryEvent::decode(&trailing),
        Err(DecodeError::TrailingBytes)
    );
    assert!(matches!(
        DeliveryEvent::decode(&vec![1; MAX_EVENT_LEN + 1]),
        Err(DecodeError::TooLong { .. })
    ));
    // Clock 3 written as an over-long varint (0x83 0x00) is not canonical.
    // Layout: version (1), delivery id (16), event id (16), then the clock varint.
    assert_eq!(bytes[33], 3);
    let mut long = bytes[..33].to_vec();
    long.extend([0x83, 0x00]);
    long.extend(&bytes[34..]);
    assert!(matches!(
        DeliveryEvent::decode(&long),
        Err(DecodeError::NonCanonical | DecodeError::Malformed)
    ));
    // An unknown event kind.
    let mut unknown = bytes.clone();
    *unknown.last_mut().unwrap() = 10;
    assert_eq!(DeliveryEvent::decode(&unknown), Err(DecodeError::Malformed));
}

proptest! {
    #[test]
    fn events_round_trip(ev in arb_event()) {
        let bytes = ev.encode();
        prop_assert!(bytes.len() <= MAX_EVENT_LEN);
        prop_assert_eq!(DeliveryEvent::decode(&bytes).unwrap(), ev);
    }

    #[test]
    fn event_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1300)) {
        let _ = DeliveryEvent::decode(&bytes);
    }

    #[test]
    fn mutated_events_decode_or_fail_cleanly(
        ev in arb_event(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = ev.encode();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        if let Ok(decoded) = DeliveryEvent::decode(&bytes) {
            prop_assert_eq!(decoded.encode(), bytes);
        }
    }
}

// ---- convergence ------------------------------------------------------------------

/// A tiny deterministic shuffle, so that proptest controls the permutation.
fn shuffled<T: Clone>(items: &[T], mut seed: u64) -> Vec<T> {
    let mut v = items.to_vec();
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

#[derive(Clone, Debug)]
enum Step {
    Act {
        actor: usize,
        action: u8,
    },
    /// Copies one actor's events to another, or to everyone.
    Sync {
        from: usize,
        to: Option<usize>,
    },
}

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        prop_oneof![
            3 => (0usize..4, any::<u8>()).prop_map(|(actor, action)| Step::Act { actor, action }),
            1 => (0usize..4, 0usize..4).prop_map(|(from, to)| Step::Sync { from, to: Some(to) }),
            1 => (0usize..4).prop_map(|from| Step::Sync { from, to: None }),
        ],
        0..150,
    )
}

/// Runs a random script of honest clients (two coordinators with the secret, two
/// couriers), each recording on its own partial view so that concurrent events share
/// clocks, and returns every event recorded plus the secret.
fn simulate(steps: &[Step]) -> (DeliveryId, Vec<DeliveryEvent>, CoordinatorSecret) {
    let f = Fixture::new();
    let actors = [
        (coord(), Role::Coordinator),
        (h("coord-2"), Role::Coordinator),
        (courier_a(), Role::Courier),
        (courier_b(), Role::Courier),
    ];
    let mut views: Vec<DeliveryLog> = vec![
        f.log.clone(),
        f.log.clone(),
        DeliveryLog::new(f.log.delivery()),
        DeliveryLog::new(f.log.delivery()),
    ];
    let mut all: Vec<DeliveryEvent> = f.log.events().into_iter().cloned().collect();
    for step in steps {
        match *step {
            Step::Sync { from, to } => {
                let evs: Vec<DeliveryEvent> = views[from].events().into_iter().cloned().collect();
                for (i, view) in views.iter_mut().enumerate() {
                    if to.is_none_or(|to| to == i) {
                        for ev in &evs {
                            view.insert(ev.clone()).unwrap();
                        }
                    }
                }
            }
            Step::Act { actor, action } => {
                let (who, role) = actors[actor].clone();
                let secret = (role == Role::Coordinator).then_some(&f.secret);
                let view = &mut views[actor];
                let state = view.derive(secret).unwrap();
                // Rarely close the delivery, so that histories get far.
                let closing = action >= 253;
                let action = action % 97;
                let kind = if closing {
                    if role == Role::Coordinator && action % 2 == 0 {
                        EventKind::Cancelled
                    } else {
                        EventKind::Failed { reason: text("x") }
                    }
                } else if role == Role::Coordinator {
                    match action {
                        0..=9 => EventKind::Assigned {
                            courier: courier_a(),
                        },
                        10..=14 => EventKind::Assigned {
                            courier: courier_b(),
                        },
                        15..=49 => match state.verified_claim() {
                            Some(claim) => EventKind::Confirmed { claim },
                            None => continue,
                        },
                        50..=89 => {
                            if let Some(secret) = secret {
                                all.extend(
                                    view.record_due_refusals(&who, role, AT, secret).unwrap(),
                                );
                            }
                            continue;
                        }
                        _ => EventKind::Note {
                            text: text("call me"),
                        },
                    }
                } else {
                    match action {
                        0..=19 => EventKind::PickedUp,
                        20..=39 => EventKind::InTransit,
                        40..=52 => EventKind::HandedOff {
                            code: f.code.clone(),
                        },
                        53..=89 => EventKind::HandedOff {
                            code: wrong_code(&f.code),
                        },
                        _ => EventKind::Note {
                            text: text("at the river"),
                        },
                    }
                };
                if let Ok(ev) = view.record(who, role, AT, kind, secret) {
                    all.push(ev);
                }
            }
        }
    }
    (f.log.delivery(), all, f.secret)
}

fn derive_from(
    id: DeliveryId,
    events: &[DeliveryEvent],
    secret: Option<&CoordinatorSecret>,
) -> DeliveryState {
    let mut log = DeliveryLog::new(id);
    for ev in events {
        log.insert(ev.clone()).unwrap();
    }
    log.derive(secret).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_order_with_duplicates_derives_the_same_state(
        steps in arb_steps(),
        seeds in proptest::collection::vec(any::<u64>(), 3),
        dup_every in 1usize..5,
    ) {
        let (id, events, secret) = simulate(&steps);
        let with = derive_from(id, &events, Some(&secret));
        let without = derive_from(id, &events, None);
        for seed in seeds {
            let mut order = shuffled(&events, seed | 1);
            let dups: Vec<_> = order.iter().step_by(dup_every).cloned().collect();
            order.extend(dups);
            let order = shuffled(&order, seed.rotate_left(17) | 1);
            prop_assert_eq!(&derive_from(id, &order, Some(&secret)), &with);
            prop_assert_eq!(&derive_from(id, &order, None), &without);
        }
    }

    #[test]
    fn coordinator_and_courier_views_agree_once_verdicts_are_in(steps in arb_steps()) {
        let (id, mut events, secret) = simulate(&steps);
        // A coordinator catches up on everything and sends the verdicts due.
        let mut log = DeliveryLog::new(id);
        for ev in &events {
            log.insert(ev.clone()).unwrap();
        }
        events.extend(log.record_due_refusals(&coord(), Role::Coordinator, AT, &secret).unwrap());
        let coordinator = derive_from(id, &events, Some(&secret));
        let courier = derive_from(id, &events, None);
        match coordinator.status {
            Status::HandedOff => prop_assert_eq!(courier.status, Status::HandoffClaimed),
            Status::InTransit => {
                prop_assert_eq!(courier.status, Status::InTransit);
            }
            s => prop_assert_eq!(courier.status, s),
        }
        prop_assert_eq!(&coordinator.courier, &courier.courier);
        if !coordinator.status.is_terminal() {
            prop_assert_eq!(coordinator.flagged, courier.flagged);
            prop_assert_eq!(coordinator.failed_handoff_attempts, courier.failed_handoff_attempts);
        }
    }

    #[test]
    fn arbitrary_event_sets_converge(
        mut events in proptest::collection::vec(arb_event(), 0..40),
        seed in any::<u64>(),
    ) {
        // Put them all in one delivery, with small clocks so that they interleave.
        let id = DeliveryId([7; 16]);
        for ev in &mut events {
            ev.delivery = id;
            ev.clock %= 8;
        }
        let code = code_from([1; 15]);
        let secret = CoordinatorSecret::commit_with_salt(id, [9; 32], &code);
        let a = derive_from(id, &events, Some(&secret));
        let b = derive_from(id, &shuffled(&events, seed | 1), Some(&secret));
        prop_assert_eq!(a, b);
        let a = derive_from(id, &events, None);
        let b = derive_from(id, &shuffled(&events, seed | 1), None);
        prop_assert_eq!(a, b);
    }
}
