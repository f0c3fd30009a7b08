//! Sending the outbox and receiving: fetch, check each message's author and role, apply
//! it to the book, give verdicts on hand-off claims, purge closed deliveries.

use super::*;

impl Deliveries<'_> {
    /// Sends every queued message. Those the relay accepts leave the queue; those to
    /// revoked, unknown or wrongly-roled members are dropped and reported; the rest stay
    /// queued for the next call.
    pub async fn send_outbox(&mut self, conn: &Connection) -> Result<Delivered, DeliveryError> {
        let mut report = Delivered::default();
        if self.outbox.is_empty() {
            return Ok(report);
        }
        // Delivery messages live as long as the org allows (a courier may be offline for
        // days); at the relay every envelope has that TTL anyway (`Member::send`).
        let policy = self.member.policy()?;
        let mut ttl = policy.max_ttl_secs;
        if conn.relay_max_ttl_secs > 0 {
            ttl = ttl.min(u64::from(conn.relay_max_ttl_secs));
        }
        let ttl = Duration::from_secs(ttl.max(1));
        let pending = std::mem::take(&mut self.outbox);
        // One message per recipient and pass: their queued bodies go together, in order,
        // so a delivery event makes one envelope per recipient, as a chat message does.
        let mut recipients: Vec<String> = Vec::new();
        for out in &pending {
            if !recipients.contains(&out.to) {
                recipients.push(out.to.clone());
            }
        }
        let mut keep = Vec::new();
        for (i, to) in recipients.iter().enumerate() {
            let mut mine: Vec<Outgoing> = pending.iter().filter(|o| &o.to == to).cloned().collect();
            if mine.iter().any(|o| o.coordinator_only) {
                match self.role_of(conn, to).await {
                    Ok(r) if is_coordinator(r) => {}
                    Ok(r) => {
                        report
                            .dropped
                            .push(format!("{to}: enrolled as {r}, not a coordinator"));
                        mine.retain(|o| !o.coordinator_only);
                    }
                    Err(DeliveryError::Member(e)) if e.is_refusal() => {
                        report.dropped.push(format!("{to}: {e}"));
                        continue;
                    }
                    Err(_) => {
                        report.queued.push(to.clone());
                        keep.extend(mine);
                        continue;
                    }
                }
            }
            let chunks: Vec<&[Outgoing]> = mine.chunks(MAX_BUNDLE).collect();
            for (c, chunk) in chunks.iter().enumerate() {
                let body = match chunk {
                    [one] => Zeroizing::new(one.body.clone()),
                    many => {
                        let bodies: Vec<&[u8]> = many.iter().map(|o| o.body.as_slice()).collect();
                        bundle_body(&bodies)?
                    }
                };
                match self
                    .member
                    .send(conn, to, ContentType::DeliveryEvent, &body, Some(ttl))
                    .await
                {
                    Ok(_) => report.sent_to.push(to.clone()),
                    Err(e) if e.is_refusal() => report.dropped.push(format!("{to}: {e}")),
                    Err(MemberError::Vault(e)) => {
                        // Keep what was not sent: this and the later chunks, and every
                        // later recipient's messages.
                        keep.extend(chunks[c..].iter().flat_map(|k| k.iter().cloned()));
                        keep.extend(
                            pending
                                .iter()
                                .filter(|o| recipients[i + 1..].contains(&o.to))
                                .cloned(),
                        );
                        self.outbox = keep;
                        self.save()?;
                        return Err(MemberError::Vault(e).into());
                    }
                    Err(_) => {
                        report.queued.push(to.clone());
                        keep.extend(chunk.iter().cloned());
                    }
                }
            }
        }
        self.outbox = keep;
        self.save()?;
        for list in [&mut report.sent_to, &mut report.queued] {
            list.sort();
            list.dedup();
        }
        Ok(report)
    }

    /// Brings this member's deliveries up to date: fetches pending messages, processes
    /// every stored delivery message, sends due verdicts (coordinators), purges closed
    /// deliveries past the org's retention, and sends the outbox.
    pub async fn sync(&mut self, conn: &Connection) -> Result<SyncReport, DeliveryError> {
        let fetched = self.member.fetch(conn).await?;
        let mut report = SyncReport {
            fetched: fetched.new.len(),
            ..SyncReport::default()
        };
        let messages: Vec<StoredMessage> = self
            .member
            .messages()?
            .into_iter()
            .filter(|m| m.content_type == ContentType::DeliveryEvent)
            .collect();
        for m in &messages {
            // A bundle is its bodies, in order, each from the same sender.
            let parts = match m.body.strip_prefix(BUNDLE_BODY_PREFIX) {
                None => vec![m.clone()],
                Some(rest) => match decode_bundle(rest) {
                    Ok(bodies) => bodies
                        .into_iter()
                        .map(|body| {
                            let mut part = m.clone();
                            part.body = body;
                            part
                        })
                        .collect(),
                    Err(why) => {
                        report.refused.push(format!("from {}: {why}", m.sender));
                        continue;
                    }
                },
            };
            for part in &parts {
                // A local failure (vault, relay) stops here: the unprocessed messages
                // stay stored and are processed by the next sync.
                if let Err(why) = self.process(conn, part, &mut report).await? {
                    report.refused.push(format!("from {}: {why}", m.sender));
                }
            }
        }
        report.verdicts = self.give_verdicts()?;
        report.purged = self.purge_closed_at(unix_now())?;
        // The book is the record now: drop the processed messages.
        for m in &messages {
            self.member
                .vault()
                .delete_message(&m.sender, &m.id)
                .map_err(MemberError::from)?;
        }
        report.delivered = self.send_outbox(conn).await?;
        Ok(report)
    }

    /// Removes every closed delivery (with its secret and coordinators) whose last
    /// event is at least the org's retention period before `now` (unix seconds), and
    /// saves. [`Deliveries::sync`] calls it with the current time. Returns how many.
    pub fn purge_closed_at(&mut self, now: u64) -> Result<usize, DeliveryError> {
        let retention = u64::from(self.member.policy()?.retention_days);
        let purged = self.book.purge_closed(now, retention);
        for id in &purged {
            self.ids.remove(id);
            self.coordinators.remove(id);
        }
        self.save()?;
        Ok(purged.len())
    }

    /// Processes one delivery message. The inner `Err` is why it was refused (it is
    /// then dropped); the outer one a local or relay failure (it is kept for later).
    pub(super) async fn process(
        &mut self,
        conn: &Connection,
        m: &StoredMessage,
        report: &mut SyncReport,
    ) -> Result<Result<(), String>, DeliveryError> {
        let Some(sender_role) = self.member.contact_role(&m.sender)? else {
            return Ok(Err(
                "sender's certificate is not active (revoked or expired)".into(),
            ));
        };
        let assigned_to = match DeliveryEvent::decode(&m.body) {
            Ok(DeliveryEvent {
                kind: EventKind::Assigned { courier },
                ..
            }) if courier != self.handle => Some(courier),
            _ => None,
        };
        let assigned_role = match assigned_to {
            None => None,
            Some(c) => match self.role_of(conn, c.as_str()).await {
                Ok(role) => Some((c, role)),
                Err(DeliveryError::Member(e)) if !e.is_refusal() => return Err(e.into()),
                Err(e) => return Ok(Err(format!("assigned courier {c}: {e}"))),
            },
        };
        Ok(self.apply(m, sender_role, assigned_role, report))
    }

    /// Applies one delivery message from an authenticated sender.
    pub(super) fn apply(
        &mut self,
        m: &StoredMessage,
        sender_role: Role,
        assigned_role: Option<(Handle, Role)>,
        report: &mut SyncReport,
    ) -> Result<(), String> {
        let sender = Handle::new(&m.sender).map_err(|_| "bad sender handle")?;
        if let Some(rest) = m.body.strip_prefix(SECRET_BODY_PREFIX) {
            if !is_coordinator(self.role) {
                // Never keep a commitment on a courier's device.
                return Err("coordinator secret sent to a courier: dropped unread".into());
            }
            if !is_coordinator(sender_role) {
                return Err("coordinator secret from a courier".into());
            }
            let secret = CoordinatorSecret::decode(rest).map_err(|e| e.to_string())?;
            let id = secret.delivery();
            if self.book.secret(&id).is_none() {
                self.book.add_secret(secret);
                self.ids.insert(id);
                report.secrets += 1;
            }
            return Ok(());
        }
        if let Some(rest) = m.body.strip_prefix(MEMBERS_BODY_PREFIX) {
            if !is_coordinator(sender_role) {
                return Err("coordinator list from a courier".into());
            }
            let (id, coordinators) = decode_coordinator_list(rest)?;
            let set = self.coordinators.entry(id).or_default();
            set.extend(coordinators.iter().map(|h| h.as_str().to_owned()));
            set.insert(m.sender.clone());
            return Ok(());
        }
        let event = DeliveryEvent::decode(&m.body).map_err(|e| e.to_string())?;
        if let EventKind::Assigned { courier } = &event.kind {
            let role = match &assigned_role {
                _ if courier == &self.handle => self.role,
                Some((c, role)) if c == courier => *role,
                _ => return Err("assigned courier not checked".into()),
            };
            if role != Role::Courier {
                return Err(format!(
                    "assigned event names {courier}, who is enrolled as {role}, not a courier"
                ));
            }
        }
        let id = event.delivery;
        match self.book.receive(&m.body, &sender, sender_role) {
            Ok(postern_deliveries::Inserted::New) => report.events += 1,
            Ok(postern_deliveries::Inserted::Duplicate) => {}
            Err(e) => return Err(e.to_string()),
        }
        self.ids.insert(id);
        if is_coordinator(sender_role) {
            self.coordinators
                .entry(id)
                .or_default()
                .insert(m.sender.clone());
        }
        Ok(())
    }

    /// With the secret: refuses wrong codes and confirms a verified hand-off.
    pub(super) fn give_verdicts(&mut self) -> Result<usize, DeliveryError> {
        if !is_coordinator(self.role) {
            return Ok(0);
        }
        let mut n = 0;
        let ids: Vec<DeliveryId> = self.ids.iter().copied().collect();
        for id in ids {
            if self.book.secret(&id).is_none() {
                continue;
            }
            let Some(state) = self.book.derive(&id) else {
                continue;
            };
            for (claim, failed_attempts) in state.refusals_due() {
                self.record_and_enqueue(
                    &id,
                    EventKind::HandoffRefused {
                        claim,
                        failed_attempts,
                    },
                )?;
                n += 1;
            }
            let state = self.book.derive(&id);
            if let Some(state) = state
                && state.status == Status::HandedOff
                && let Some(claim) = state.verified_claim()
            {
                match self.record_and_enqueue(&id, EventKind::Confirmed { claim }) {
                    Ok(_) => n += 1,
                    // Another coordinator confirmed first.
                    Err(DeliveryError::Refused(LogError::Refused(
                        TransitionError::DuplicateVerdict { .. },
                    ))) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }
}
