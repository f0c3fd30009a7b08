//! Request handling: a function of (shared state, this connection's session, request,
//! the time now) to (response, effect). No sockets and no clock of its own: the caller
//! reads the clock once per request, and the RNG lives in [`Shared`], so the unit tests
//! below drive admission, limits, quotas and expiry with a chosen time.

use postern_identity::{DevicePublicKey, RevocationList};
use postern_protocol::ErrorCode;
use postern_protocol::auth::{
    OPEN_MAILBOX_CONTEXT, SEND_CONTEXT, authenticate_message, open_mailbox_message, send_message,
};
use postern_protocol::bytes::{Bytes, FixedBytes};
use postern_protocol::ids::{HandleTag, MailboxId};
use postern_protocol::message::*;
use postern_protocol::padding::is_bucket;
use postern_protocol::version::negotiate;
use sha2::{Digest, Sha256};

use crate::admission::{Admitted, admit, still_admitted, trust_code};
use crate::budget::address_key;
use crate::metrics::Metrics;
use crate::state::{Kind, Now, Session, Shared};
use crate::store::bounded;

/// The granularity of every time the relay keeps: an hour.
pub(crate) const EXPIRY_GRANULARITY_SECS: u64 = 3600;

/// Expiry kept for an envelope: `now + min(ttl, max)`, rounded up to the hour (so the
/// send time cannot be read back from it to better than the hour).
pub(crate) fn expiry_for(now: u64, ttl_secs: u32, max_ttl_secs: u32) -> u64 {
    let ttl = u64::from(ttl_secs.clamp(1, max_ttl_secs.max(1)));
    (now + ttl).div_ceil(EXPIRY_GRANULARITY_SECS) * EXPIRY_GRANULARITY_SECS
}

/// What the connection must do after answering.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Nothing.
    None,
    /// Close the connection (after the response is delivered).
    Close(ErrorCode),
    /// Start pushing for this mailbox.
    Subscribe(MailboxId),
}

fn err(code: ErrorCode) -> (Response, Effect) {
    (Response::Error(code), Effect::None)
}

/// Handles one request at `now`.
pub(crate) async fn handle(
    shared: &Shared,
    session: &Session,
    req: Request,
    now: Now,
) -> (Response, Effect) {
    Metrics::inc(&shared.metrics.requests);
    let (resp, effect) = handle_inner(shared, session, req, now).await;
    if matches!(resp, Response::Error(_)) {
        Metrics::inc(&shared.metrics.request_errors);
    }
    (resp, effect)
}

async fn handle_inner(
    shared: &Shared,
    session: &Session,
    req: Request,
    clock: Now,
) -> (Response, Effect) {
    let limits = &shared.config.limits;
    // Rate limit every request, admitted or not.
    {
        let mut st = session.lock();
        let (tokens, last) = st.tokens;
        let at = clock.instant;
        let refill =
            at.saturating_duration_since(last).as_secs_f64() * f64::from(limits.requests_per_sec);
        let tokens = (tokens + refill).min(f64::from(limits.request_burst.max(1)));
        if tokens < 1.0 {
            st.tokens = (tokens, at.max(last));
            drop(st);
            Metrics::inc(&shared.metrics.rate_limited);
            return err(ErrorCode::RateLimited);
        }
        st.tokens = (tokens - 1.0, at.max(last));
    }

    let now = clock.unix;
    if let Request::Hello(h) = req {
        let mut st = session.lock();
        if st.challenge.is_some() {
            return err(ErrorCode::UnexpectedRequest);
        }
        let Some(version) = negotiate(h.versions.as_slice()) else {
            return (
                Response::Error(ErrorCode::UnknownVersion),
                Effect::Close(ErrorCode::UnknownVersion),
            );
        };
        let challenge = shared.random_challenge();
        st.challenge = Some(challenge);
        return (
            Response::Welcome(Welcome {
                version,
                challenge: FixedBytes(challenge),
            }),
            Effect::None,
        );
    }
    // Everything else comes after `Hello`.
    let (challenge, kind) = {
        let st = session.lock();
        match st.challenge {
            Some(c) => (c, st.kind.clone()),
            None => return err(ErrorCode::UnexpectedRequest),
        }
    };
    // An owner connection stays admitted only while its certificate is valid and not
    // revoked: checked on every request (and by the connection itself when a new list
    // arrives or time passes: `lapsed`).
    if let Kind::Owner(admitted) = &kind
        && let Err(code) = still_valid(shared, admitted, now)
    {
        return (Response::Error(code), Effect::Close(code));
    }

    match req {
        // Open to every connection: public (the list authenticates itself).
        Request::Ping(p) => (Response::Pong(p), Effect::None),
        Request::GetRevocationList => match shared.store.revocation_list() {
            Ok(list) => (
                Response::RevocationList(postern_protocol::message::RevocationList {
                    list: list.and_then(|l| Bytes::new(l).ok()),
                }),
                Effect::None,
            ),
            Err(_) => err(ErrorCode::Internal),
        },
        // Verifying a list of up to 64 KiB costs the relay: charged to the source
        // address like the requests of send connections, whoever asks.
        Request::PutRevocationList(p) => {
            if !charge_address(shared, session, clock) {
                return err(ErrorCode::RateLimited);
            }
            put_revocation(shared, p.list.as_slice()).await
        }
        Request::Authenticate(a) => {
            if !matches!(kind, Kind::Unbound) {
                return err(ErrorCode::UnexpectedRequest);
            }
            authenticate(shared, session, &a, &challenge, clock).await
        }
        Request::Send(_) | Request::FetchPrekeys(_) | Request::FetchEntry(_) => {
            // An identified connection never sends or looks up: that would pair the
            // member with the queue or the handle.
            if matches!(kind, Kind::Owner(_)) {
                return err(ErrorCode::UnexpectedRequest);
            }
            // Charged first: a request the budget refuses does not make the connection a
            // send connection (nor count one).
            if !charge_address(shared, session, clock) {
                return err(ErrorCode::RateLimited);
            }
            // Decided under the lock, so a concurrent `Authenticate` cannot make this
            // connection both.
            {
                let mut st = session.lock();
                match st.kind {
                    Kind::Owner(_) => return err(ErrorCode::UnexpectedRequest),
                    Kind::Unbound => {
                        st.kind = Kind::Anonymous;
                        Metrics::inc(&shared.metrics.anonymous_connections);
                    }
                    Kind::Anonymous => {}
                }
            }
            anonymous(shared, session, req, &challenge, clock).await
        }
        req => match kind {
            Kind::Owner(admitted) => {
                owner(shared, session, req, &admitted, &challenge, clock).await
            }
            Kind::Unbound | Kind::Anonymous => err(ErrorCode::Unauthorized),
        },
    }
}

/// Whether `admitted` is still valid at `now` under the newest list, checked under the
/// read lock (the list may hold tens of thousands of serials, and copying it would put
/// that on the hot path).
fn still_valid(shared: &Shared, admitted: &Admitted, now: u64) -> Result<(), ErrorCode> {
    let held = shared.revocations.read().unwrap_or_else(|p| p.into_inner());
    still_admitted(admitted, held.as_ref(), now)
}

/// Why an owner connection may no longer stay open at `now` (revoked, expired), if it
/// may not; `None` for any other connection. The connection calls it when a newer
/// revocation list is accepted and periodically, so a member that sends no request
/// (a subscriber waiting for pushes) is cut off too.
pub(crate) fn lapsed(shared: &Shared, session: &Session, now: u64) -> Option<ErrorCode> {
    match &session.lock().kind {
        Kind::Owner(admitted) => still_valid(shared, admitted, now).err(),
        _ => None,
    }
}

async fn authenticate(
    shared: &Shared,
    session: &Session,
    a: &Authenticate,
    challenge: &[u8; 32],
    clock: Now,
) -> (Response, Effect) {
    if !shared.auth_failures.allowed(session.peer_ip, clock.instant) {
        Metrics::inc(&shared.metrics.rate_limited);
        return err(ErrorCode::RateLimited);
    }
    let binding = authenticate_message(&session.exporter, challenge);
    let revocations = shared.revocations();
    match admit(
        a.certificate.as_slice(),
        &a.signature.0,
        &binding,
        &shared.org,
        revocations.as_ref(),
        clock.unix,
    ) {
        Ok(admitted) => {
            {
                let mut st = session.lock();
                // A request that made it anonymous may have run meanwhile.
                if !matches!(st.kind, Kind::Unbound) {
                    return err(ErrorCode::UnexpectedRequest);
                }
                let Some(slot) = shared.member_connections.take(admitted.device_key) else {
                    Metrics::inc(&shared.metrics.connections_refused);
                    return err(ErrorCode::Unavailable);
                };
                st.member_slot = Some(slot);
                st.kind = Kind::Owner(admitted);
            }
            Metrics::inc(&shared.metrics.owner_admissions);
            (
                Response::Authenticated(Authenticated {
                    max_ttl_secs: shared.config.max_ttl_secs,
                }),
                Effect::None,
            )
        }
        Err(code) => {
            shared.auth_failures.failed(session.peer_ip, clock.instant);
            Metrics::inc(&shared.metrics.auth_failed);
            err(code)
        }
    }
}

/// The operations of a connection that carries no identity: `Send` (authorised by the
/// destination's sender key), `FetchPrekeys` and `FetchEntry` (by knowing the entry's
/// keyed hash). The caller has charged the source address's budget.
async fn anonymous(
    shared: &Shared,
    session: &Session,
    req: Request,
    challenge: &[u8; 32],
    clock: Now,
) -> (Response, Effect) {
    match req {
        Request::Send(s) => {
            if !is_bucket(s.body.len()) {
                return err(ErrorCode::BadPadding);
            }
            let key = match shared.store.sender_key(&s.to) {
                Ok(Some(Some(key))) => key,
                // A mailbox made before sender keys: its owner must set one first.
                Ok(Some(None)) => return err(ErrorCode::Unauthorized),
                Ok(None) => return err(ErrorCode::NotFound),
                Err(_) => return err(ErrorCode::Internal),
            };
            // The signature covers this connection and the destination only, so it is the
            // same on every send there: verified once, then compared.
            if !session.proven(&s.to, &key, &s.signature.0) {
                let message = send_message(&session.exporter, challenge, &s.to);
                let signed = DevicePublicKey::from_bytes(key)
                    .is_ok_and(|k| k.verify(SEND_CONTEXT, &message, &s.signature.0));
                if !signed {
                    return err(ErrorCode::BadSignature);
                }
                session.prove(s.to, key, s.signature.0);
            }
            // Charged only for sends that may write here, so no one without the key can
            // spend a queue's budget.
            if !shared.budgets.by_queue.take(s.to, clock.instant) {
                Metrics::inc(&shared.metrics.rate_limited);
                return err(ErrorCode::RateLimited);
            }
            let expires_at = expiry_for(clock.unix, s.ttl_secs, shared.config.max_ttl_secs);
            // Subscribers get the envelope from the store's writer as it is stored
            // (`relay::pusher`), not from here after the commit.
            match shared.store.send(s.to, key, expires_at, s.body).await {
                Ok(stored) => {
                    Metrics::inc(&shared.metrics.envelopes_stored);
                    (
                        Response::Sent(Sent {
                            id: stored.id,
                            expires_at,
                        }),
                        Effect::None,
                    )
                }
                Err(code) => {
                    if code == ErrorCode::QuotaExceeded {
                        Metrics::inc(&shared.metrics.quota_refusals);
                    }
                    err(code)
                }
            }
        }
        Request::FetchPrekeys(f) => {
            // Only entries that exist are budgeted, so made-up keys cannot fill the
            // budget's table.
            match shared.store.directory_entry(&f.directory) {
                Ok(Some(_)) => {}
                Ok(None) => return err(ErrorCode::NotFound),
                Err(_) => return err(ErrorCode::Internal),
            }
            // Past the entry's hourly budget of one-time prekeys, the entry alone: a
            // session can still start (from the signed and last-resort prekeys), and no
            // one can drain a member's one-time prekeys faster than the budget.
            if !shared.budgets.one_time.take(f.directory, clock.instant) {
                return entry_only(shared, &f.directory);
            }
            match shared.store.take_prekeys(f.directory).await {
                Ok((entry, one_time)) => match Bytes::new(entry) {
                    Ok(entry) => (
                        Response::Prekeys(Prekeys {
                            entry,
                            one_time: one_time.and_then(|o| Bytes::new(o).ok()),
                        }),
                        Effect::None,
                    ),
                    Err(_) => err(ErrorCode::Internal),
                },
                Err(code) => err(code),
            }
        }
        Request::FetchEntry(f) => entry_only(shared, &f.directory),
        _ => err(ErrorCode::UnexpectedRequest),
    }
}

/// Whether `key` is an Ed25519 public key (a point on the curve): one that is not could
/// never verify a signature, and would make its mailbox unusable without saying so.
fn valid_key(key: &[u8; 32]) -> bool {
    DevicePublicKey::from_bytes(*key).is_ok()
}

/// Takes one token of the source address's budget; false (and counted) if none is left.
fn charge_address(shared: &Shared, session: &Session, clock: Now) -> bool {
    let ok = shared
        .budgets
        .by_address
        .take(address_key(session.peer_ip), clock.instant);
    if !ok {
        Metrics::inc(&shared.metrics.rate_limited);
    }
    ok
}

/// Takes one of the member's tokens from `budget`; false (and counted) if none is left.
fn member_budget(
    shared: &Shared,
    budget: &crate::budget::Buckets<[u8; 32]>,
    admitted: &Admitted,
    clock: Now,
) -> bool {
    let ok = budget.take(admitted.device_key, clock.instant);
    if !ok {
        Metrics::inc(&shared.metrics.member_budget_refusals);
    }
    ok
}

/// `Prekeys` with the entry alone.
fn entry_only(shared: &Shared, directory: &HandleTag) -> (Response, Effect) {
    match shared.store.directory_entry(directory) {
        Ok(Some(entry)) => match Bytes::new(entry) {
            Ok(entry) => (
                Response::Prekeys(Prekeys {
                    entry,
                    one_time: None,
                }),
                Effect::None,
            ),
            Err(_) => err(ErrorCode::Internal),
        },
        Ok(None) => err(ErrorCode::NotFound),
        Err(_) => err(ErrorCode::Internal),
    }
}

/// The operations of an owner connection (admitted, still valid).
async fn owner(
    shared: &Shared,
    session: &Session,
    req: Request,
    admitted: &Admitted,
    challenge: &[u8; 32],
    clock: Now,
) -> (Response, Effect) {
    let now = clock.unix;
    match req {
        Request::CreateMailbox(c) => {
            if !valid_key(&c.sender_key.0) || !valid_key(&c.owner.0) {
                return err(ErrorCode::Malformed);
            }
            if !member_budget(shared, &shared.members.mailboxes, admitted, clock) {
                return err(ErrorCode::RateLimited);
            }
            match shared
                .store
                .create_mailbox(c.recipient, c.sender, c.owner.0, c.sender_key.0)
                .await
            {
                Ok(()) => (Response::MailboxCreated, Effect::None),
                Err(code) => err(code),
            }
        }
        Request::OpenMailbox(o) => {
            let owner = match shared.store.mailbox(&o.recipient) {
                Ok(Some((owner, pending))) => (owner, pending),
                Ok(None) => return err(ErrorCode::NotFound),
                Err(_) => return err(ErrorCode::Internal),
            };
            let message = open_mailbox_message(&session.exporter, challenge, &o.recipient);
            let signed = DevicePublicKey::from_bytes(owner.0)
                .is_ok_and(|key| key.verify(OPEN_MAILBOX_CONTEXT, &message, &o.signature.0));
            if !signed {
                shared.auth_failures.failed(session.peer_ip, clock.instant);
                return err(ErrorCode::BadSignature);
            }
            let mut st = session.lock();
            if st.subscribed && st.mailbox != Some(o.recipient) {
                return err(ErrorCode::UnexpectedRequest);
            }
            st.mailbox = Some(o.recipient);
            (
                Response::MailboxOpened(MailboxOpened { pending: owner.1 }),
                Effect::None,
            )
        }
        Request::PublishPrekeys(p) => {
            if !member_budget(shared, &shared.members.publishes, admitted, clock) {
                return err(ErrorCode::RateLimited);
            }
            let owner_tag: [u8; 32] = Sha256::new()
                .chain_update(b"postern/1 relay directory owner\0")
                .chain_update(admitted.device_key)
                .finalize()
                .into();
            let one_time = p
                .one_time
                .into_vec()
                .into_iter()
                .map(Bytes::into_vec)
                .collect();
            match shared
                .store
                .publish(p.directory, owner_tag, p.entry.into_vec(), one_time)
                .await
            {
                Ok(n) => (
                    Response::PrekeysPublished(PrekeysPublished {
                        one_time_available: n,
                    }),
                    Effect::None,
                ),
                Err(code) => err(code),
            }
        }
        Request::Subscribe => {
            let mut st = session.lock();
            let Some(mb) = st.mailbox else {
                return err(ErrorCode::Unauthorized);
            };
            if st.subscribed {
                return err(ErrorCode::UnexpectedRequest);
            }
            st.subscribed = true;
            (Response::Subscribed, Effect::Subscribe(mb))
        }
        Request::Fetch(f) => {
            let Some(mb) = session.lock().mailbox else {
                return err(ErrorCode::Unauthorized);
            };
            match shared.store.fetch(&mb, usize::from(f.limit), now) {
                Ok((envelopes, more)) => {
                    Metrics::add(&shared.metrics.envelopes_delivered, envelopes.len() as u64);
                    (
                        Response::Envelopes(Envelopes {
                            envelopes: bounded(envelopes),
                            more,
                        }),
                        Effect::None,
                    )
                }
                Err(_) => err(ErrorCode::Internal),
            }
        }
        Request::Ack(a) => {
            let Some(mb) = session.lock().mailbox else {
                return err(ErrorCode::Unauthorized);
            };
            match shared.store.ack(mb, a.ids.into_vec()).await {
                Ok(deleted) => {
                    Metrics::add(&shared.metrics.envelopes_acked, u64::from(deleted.count));
                    shared.space_returned(&deleted);
                    (
                        Response::Acked(Acked {
                            deleted: deleted.count,
                        }),
                        Effect::None,
                    )
                }
                Err(code) => err(code),
            }
        }
        Request::SetSenderKey(k) => {
            let Some(mb) = session.lock().mailbox else {
                return err(ErrorCode::Unauthorized);
            };
            if !valid_key(&k.sender_key.0) {
                return err(ErrorCode::Malformed);
            }
            match shared.store.set_sender_key(mb, k.sender_key.0).await {
                Ok(()) => (Response::SenderKeySet, Effect::None),
                Err(code) => err(code),
            }
        }
        // Handled by the caller.
        _ => err(ErrorCode::UnexpectedRequest),
    }
}

async fn put_revocation(shared: &Shared, bytes: &[u8]) -> (Response, Effect) {
    let offered = match RevocationList::decode(bytes) {
        Ok(l) => l,
        Err(e) => return err(trust_code(&e)),
    };
    let held = shared.revocations();
    match RevocationList::accept_update(held.as_ref(), &offered, &shared.org) {
        Ok(true) => {}
        Ok(false) => {
            return (
                Response::RevocationListAccepted(RevocationListAccepted {
                    version: offered.version(),
                }),
                Effect::None,
            );
        }
        Err(e) => return err(trust_code(&e)),
    }
    let version = offered.version();
    if let Err(code) = shared.store.put_revocation(version, bytes.to_vec()).await {
        return err(code);
    }
    {
        let mut w = shared
            .revocations
            .write()
            .unwrap_or_else(|p| p.into_inner());
        // A concurrent put may have stored a newer one meanwhile; keep the newest.
        if w.as_ref().is_none_or(|h| h.version() < version) {
            *w = Some(offered);
        }
    }
    if let Some(frame) = crate::hub::encode(&Push::RevocationListUpdated { version }) {
        let slow = shared.hub.broadcast(&frame);
        Metrics::add(&shared.metrics.slow_subscribers_dropped, slow as u64);
    }
    shared.revocation_version.send_replace(version);
    (
        Response::RevocationListAccepted(RevocationListAccepted { version }),
        Effect::None,
    )
}

#[cfg(test)]
mod tests;
