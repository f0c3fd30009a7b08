//! The relay's state: what every connection shares ([`Shared`]: store, org, settings,
//! revocation list, subscribers, counters, limiter, RNG), what one connection holds
//! ([`Session`]), and the clock reading the handler is given ([`Now`]). Plain data and
//! locks; no I/O.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use postern_identity::{OrgKey, RevocationList};
use postern_protocol::ids::{HandleTag, MailboxId};
use postern_protocol::limits::EXPORTER_LEN;
use postern_protocol::message::Push;
use rand::Rng;
use rand::rngs::StdRng;

use crate::admission::{Admitted, FailureLimiter};
use crate::budget::{Buckets, CapSlot, Caps};
use crate::config::RelayConfig;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::store::{Deleted, Store};

/// One reading of the clock, taken by the caller of the handler: monotonic time for rate
/// limits, Unix seconds for validity and expiry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// Monotonic time (rate limiters).
    pub(crate) instant: Instant,
    /// Unix seconds (certificate validity, envelope expiry).
    pub(crate) unix: u64,
}

impl Now {
    /// The clock now.
    pub(crate) fn current() -> Self {
        Self {
            instant: Instant::now(),
            unix: unix_now(),
        }
    }
}

/// Unix seconds now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// State shared by every connection. The handler reads time only from the [`Now`] it is
/// given and randomness only from `rng`, so tests drive it with a chosen clock and seed.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Durable storage.
    pub(crate) store: Store,
    /// The org whose members are admitted.
    pub(crate) org: OrgKey,
    /// Settings.
    pub(crate) config: RelayConfig,
    /// The newest revocation list held (also on disk).
    pub(crate) revocations: RwLock<Option<RevocationList>>,
    /// Subscribed connections.
    pub(crate) hub: Hub,
    /// Aggregate counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Failed-admission limiter per source address.
    pub(crate) auth_failures: FailureLimiter,
    /// Budgets of the operations open to connections that carry no identity.
    pub(crate) budgets: AnonymousBudgets,
    /// Budgets of what one member (device key) may make: mailboxes and publishes.
    pub(crate) members: MemberBudgets,
    /// Owner connections open per member (device key), capped.
    pub(crate) member_connections: Arc<Caps<[u8; 32]>>,
    /// The version of the newest revocation list accepted while running: connections
    /// watch it to close an owner connection whose member it revokes.
    pub(crate) revocation_version: tokio::sync::watch::Sender<u64>,
    /// Randomness for challenges (seeded from the OS in a running relay).
    pub(crate) rng: Mutex<StdRng>,
    /// What each connection did (test builds only; off until started).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) recorder: crate::recorder::Recorder,
}

/// What connections without identity may spend: per source address (its /64 for IPv6)
/// on every anonymous operation, per queue on sends into it, per directory entry on the
/// one-time prekeys handed out.
#[derive(Debug)]
pub(crate) struct AnonymousBudgets {
    /// `Send`, `FetchPrekeys` and `FetchEntry`, per source address prefix.
    pub(crate) by_address: Buckets<IpAddr>,
    /// `Send`, per destination queue (sender id).
    pub(crate) by_queue: Buckets<MailboxId>,
    /// One-time prekeys handed out, per directory entry.
    pub(crate) one_time: Buckets<HandleTag>,
}

impl AnonymousBudgets {
    /// The budgets `config` sets.
    pub(crate) fn new(config: &RelayConfig) -> Self {
        let l = &config.limits;
        Self {
            by_address: Buckets::per_minute(
                l.anonymous_requests_per_minute,
                l.anonymous_request_burst,
            ),
            by_queue: Buckets::per_minute(l.queue_sends_per_minute, l.queue_send_burst),
            one_time: Buckets::per_hour(
                l.one_time_prekeys_per_entry_per_hour,
                l.one_time_prekeys_per_entry_per_hour,
            ),
        }
    }
}

/// What one member (by device key) may make on owner connections: mailboxes per day and
/// directory publishes per hour. In memory only (a restart refills them); the directory
/// entries a member holds are counted by the store.
#[derive(Debug)]
pub(crate) struct MemberBudgets {
    /// `CreateMailbox`, per device key.
    pub(crate) mailboxes: Buckets<[u8; 32]>,
    /// `PublishPrekeys`, per device key.
    pub(crate) publishes: Buckets<[u8; 32]>,
}

impl MemberBudgets {
    /// The budgets `config` sets.
    pub(crate) fn new(config: &RelayConfig) -> Self {
        let l = &config.limits;
        Self {
            mailboxes: Buckets::per_day(
                l.mailboxes_per_member_per_day,
                l.mailboxes_per_member_per_day,
            ),
            publishes: Buckets::per_hour(
                l.publishes_per_member_per_hour,
                l.publishes_per_member_per_hour,
            ),
        }
    }
}

impl Shared {
    /// The shared state of a relay serving `org` with `config`.
    pub(crate) fn new(
        store: Store,
        org: OrgKey,
        config: RelayConfig,
        revocations: Option<RevocationList>,
        metrics: Arc<Metrics>,
        rng: StdRng,
    ) -> Self {
        let hub = Hub::new(
            config.limits.max_subscribers_per_mailbox,
            config.limits.push_queue_bytes,
        );
        Self {
            store,
            org,
            auth_failures: FailureLimiter::new(config.limits.auth_failures_per_minute),
            budgets: AnonymousBudgets::new(&config),
            members: MemberBudgets::new(&config),
            member_connections: Caps::new(config.limits.max_connections_per_member),
            revocation_version: tokio::sync::watch::Sender::new(
                revocations.as_ref().map_or(0, RevocationList::version),
            ),
            config,
            revocations: RwLock::new(revocations),
            hub,
            metrics,
            rng: Mutex::new(rng),
            #[cfg(any(test, feature = "testing"))]
            recorder: Default::default(),
        }
    }

    /// A copy of the newest revocation list held.
    pub(crate) fn revocations(&self) -> Option<RevocationList> {
        self.revocations
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// 32 fresh random bytes (a challenge).
    pub(crate) fn random_challenge(&self) -> [u8; 32] {
        self.rng.lock().unwrap_or_else(|p| p.into_inner()).random()
    }

    /// Tells subscribers of mailboxes that have room again.
    pub(crate) fn space_returned(&self, deleted: &Deleted) {
        let Some(frame) = crate::hub::encode(&Push::SpaceAvailable) else {
            return;
        };
        for mb in &deleted.space_returned {
            let (_, slow) = self.hub.push(mb, &frame);
            Metrics::add(&self.metrics.slow_subscribers_dropped, slow as u64);
        }
    }
}

/// Per-connection state.
#[derive(Debug)]
pub(crate) struct Session {
    /// Connection number, local to this process (for the hub only).
    pub(crate) conn_id: u64,
    /// Source address, for the failed-admission limiter only; never logged or stored.
    pub(crate) peer_ip: IpAddr,
    /// TLS exporter value of this connection.
    pub(crate) exporter: [u8; EXPORTER_LEN],
    /// Mutable part, locked briefly (never across an await).
    state: Mutex<SessionState>,
}

/// What a connection is, fixed by the first request after `Hello` that needs one: an
/// owner connection (admitted with a member certificate: creates, opens, fetches from and
/// acknowledges mailboxes, publishes, never sends) or an anonymous one (sends and
/// directory lookups, never admitted). No connection is ever both.
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// Neither yet.
    Unbound,
    /// Admitted with this member's certificate.
    Owner(Admitted),
    /// Has used an operation open to connections without identity.
    Anonymous,
}

/// What changes during a connection.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// The challenge sent in `Welcome`, once `Hello` was answered.
    pub(crate) challenge: Option<[u8; 32]>,
    /// Owner, anonymous, or not yet either.
    pub(crate) kind: Kind,
    /// The mailbox opened on this connection.
    pub(crate) mailbox: Option<MailboxId>,
    /// Whether a subscription was started.
    pub(crate) subscribed: bool,
    /// An owner connection's place among its member's connections.
    pub(crate) member_slot: Option<CapSlot<[u8; 32]>>,
    /// Request rate limiter: tokens and when they were last refilled.
    pub(crate) tokens: (f64, Instant),
    /// Send signatures verified on this connection: destination, the sender key they
    /// verified under, the signature (at most [`MAX_PROOFS`]).
    pub(crate) proofs: Vec<(MailboxId, [u8; 32], [u8; 64])>,
}

/// Most destinations a connection's verified send signatures are remembered for; sends to
/// others are verified every time.
pub(crate) const MAX_PROOFS: usize = 16;

impl Session {
    /// A new connection's session, opened at `now`, with a full request bucket.
    pub(crate) fn new(
        conn_id: u64,
        peer_ip: IpAddr,
        exporter: [u8; EXPORTER_LEN],
        burst: u32,
        now: Instant,
    ) -> Self {
        Self {
            conn_id,
            peer_ip,
            exporter,
            state: Mutex::new(SessionState {
                challenge: None,
                kind: Kind::Unbound,
                mailbox: None,
                subscribed: false,
                member_slot: None,
                tokens: (f64::from(burst), now),
                proofs: Vec::new(),
            }),
        }
    }

    /// Whether `signature` was verified on this connection for sends to `to` under
    /// `key` (the mailbox's sender key now: after a rotation the old proof is worthless).
    pub(crate) fn proven(&self, to: &MailboxId, key: &[u8; 32], signature: &[u8; 64]) -> bool {
        self.lock()
            .proofs
            .iter()
            .any(|(t, k, s)| t == to && k == key && s == signature)
    }

    /// Remembers a verified send signature.
    pub(crate) fn prove(&self, to: MailboxId, key: [u8; 32], signature: [u8; 64]) {
        let mut st = self.lock();
        st.proofs.retain(|(t, _, _)| *t != to);
        if st.proofs.len() < MAX_PROOFS {
            st.proofs.push((to, key, signature));
        }
    }

    /// Whether the connection is still neither an owner nor a send connection.
    pub(crate) fn is_unbound(&self) -> bool {
        matches!(self.lock().kind, Kind::Unbound)
    }

    /// The mutable part (held briefly, never across an await).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, SessionState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
