//! Changes this member makes: create a delivery, update it, claim a hand-off; each is
//! recorded first, then queued and sent.

use super::*;

impl Deliveries<'_> {
    /// Creates a delivery (coordinator or admin): checks the courier's and the extra
    /// coordinators' certificates, records `created` and `assigned`, keeps the secret,
    /// and sends the events to the courier and the coordinators and the secret to the
    /// coordinators only. Returns the hand-off code for the family.
    pub async fn create(
        &mut self,
        conn: &Connection,
        req: NewDeliveryRequest,
    ) -> Result<Created, DeliveryError> {
        if !is_coordinator(self.role) {
            return Err(DeliveryError::NotPermitted {
                role: self.role,
                action: "create deliveries",
                fix: "ask a coordinator",
            });
        }
        let courier = handle(&req.courier)?;
        match self.role_of(conn, &req.courier).await? {
            Role::Courier => {}
            role => {
                return Err(DeliveryError::NotACourier {
                    handle: req.courier,
                    role,
                });
            }
        }
        let mut coordinators: BTreeSet<String> = BTreeSet::new();
        coordinators.insert(self.handle.as_str().to_owned());
        for c in &req.coordinators {
            handle(c)?;
            if c == self.handle.as_str() {
                continue;
            }
            let role = self.role_of(conn, c).await?;
            if !is_coordinator(role) {
                return Err(DeliveryError::NotACoordinator {
                    handle: c.clone(),
                    role,
                });
            }
            coordinators.insert(c.clone());
        }
        if coordinators.len() > MAX_COORDINATORS {
            return Err(DeliveryError::TooManyCoordinators);
        }
        let now = unix_now();
        let new = postern_deliveries::DeliveryLog::create(
            self.handle.clone(),
            self.role,
            now,
            req.family,
            req.amount,
            req.deadline,
        )?;
        let mut new = new;
        let secret_body = secret_body(&new.secret);
        let id = new.log.delivery();
        // Recorded on the new log before it joins the book: a refusal leaves nothing.
        let assigned = new.log.record(
            self.handle.clone(),
            self.role,
            now,
            EventKind::Assigned { courier },
            Some(&new.secret),
        )?;
        let (created, code) = self.book.add_new(new);
        self.ids.insert(id);
        self.coordinators.insert(id, coordinators.clone());
        let members = members_body(id, &coordinators)?;
        let others: Vec<String> = coordinators
            .iter()
            .filter(|c| *c != self.handle.as_str())
            .cloned()
            .collect();
        for c in &others {
            self.enqueue(c, secret_body.to_vec(), true);
        }
        for to in others.iter().chain(std::iter::once(&req.courier)) {
            self.enqueue(to, members.clone(), false);
            self.enqueue(to, created.encode(), false);
            self.enqueue(to, assigned.encode(), false);
        }
        self.save()?;
        let delivered = self.send_outbox(conn).await?;
        Ok(Created {
            id,
            code,
            delivered,
        })
    }

    pub(super) fn enqueue(&mut self, to: &str, body: Vec<u8>, coordinator_only: bool) {
        self.outbox.push(Outgoing {
            to: to.to_owned(),
            body,
            coordinator_only,
        });
    }

    /// The members an event on `id` goes to: its coordinators and its courier (and its
    /// creator), except ourselves.
    pub(super) fn involved(&self, id: &DeliveryId) -> Vec<(String, bool)> {
        let mut to: BTreeMap<String, bool> = BTreeMap::new();
        for c in self.coordinators.get(id).into_iter().flatten() {
            to.insert(c.clone(), true);
        }
        if let Some(state) = self.book.derive(id) {
            if let Some(d) = &state.details {
                to.insert(d.created_by.as_str().to_owned(), true);
            }
            if let Some(c) = &state.courier {
                to.insert(c.as_str().to_owned(), false);
            }
        }
        to.remove(self.handle.as_str());
        to.into_iter().collect()
    }

    pub(super) fn record_and_enqueue(
        &mut self,
        id: &DeliveryId,
        kind: EventKind,
    ) -> Result<DeliveryEvent, DeliveryError> {
        let event = self
            .book
            .record(id, self.handle.clone(), self.role, unix_now(), kind)?;
        let body = event.encode();
        for (to, coordinator_only) in self.involved(id) {
            self.enqueue(&to, body.clone(), coordinator_only);
        }
        Ok(event)
    }

    /// Records a change on a delivery this member may see, and sends it to everyone
    /// involved.
    pub async fn update(
        &mut self,
        conn: &Connection,
        id: &DeliveryId,
        update: Update,
    ) -> Result<Delivered, DeliveryError> {
        let state = self.show(id)?;
        let kind = match update {
            Update::PickedUp => EventKind::PickedUp,
            Update::InTransit => EventKind::InTransit,
            Update::Cancelled => EventKind::Cancelled,
            Update::Failed(reason) => EventKind::Failed { reason },
            Update::Note(text) => EventKind::Note { text },
            Update::Confirmed => {
                if !is_coordinator(self.role) {
                    return Err(DeliveryError::NotPermitted {
                        role: self.role,
                        action: "confirm a hand-off",
                        fix: "enter the family's code with `postern delivery handoff ID` (it asks for the code); a coordinator's client confirms it",
                    });
                }
                let claim = state
                    .verified_claim()
                    .filter(|_| state.status == Status::HandedOff)
                    .ok_or_else(|| DeliveryError::NothingToConfirm(id.to_string()))?;
                EventKind::Confirmed { claim }
            }
        };
        self.record_and_enqueue(id, kind)?;
        self.save()?;
        self.send_outbox(conn).await
    }

    /// The assigned courier claims the hand-off with the code the family gave. The
    /// coordinators' clients verify it; the answer arrives with a later sync.
    pub async fn handoff(
        &mut self,
        conn: &Connection,
        id: &DeliveryId,
        code: HandoffCode,
    ) -> Result<Delivered, DeliveryError> {
        self.show(id)?;
        if self.role != Role::Courier {
            return Err(DeliveryError::NotPermitted {
                role: self.role,
                action: "claim a hand-off",
                fix: "only the assigned courier enters the family's code",
            });
        }
        self.record_and_enqueue(id, EventKind::HandedOff { code })?;
        self.save()?;
        self.send_outbox(conn).await
    }
}
