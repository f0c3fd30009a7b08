//! Aggregate counters. They count events, never who caused them: no id, key, handle or
//! address is ever recorded here. The running relay writes them to `stats.json` in the
//! data directory every few seconds; `postern-relay stats` prints that file.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Name of the stats file in the data directory.
pub const STATS_FILE: &str = "stats.json";

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters, shared by every task of the relay.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of the counters at one moment (a counter a file lacks reads as 0).
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Snapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Metrics {
            /// The counters now.
            pub fn snapshot(&self) -> Snapshot {
                Snapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Connections accepted.
    connections_accepted,
    /// Connections refused at the connection limit or during shutdown.
    connections_refused,
    /// Connections open now.
    connections_open,
    /// Owner connections admitted (with a member certificate; they never send).
    owner_admissions,
    /// Connections that used an operation needing no identity (sends, directory
    /// lookups); they are never admitted.
    anonymous_connections,
    /// Failed admissions.
    auth_failed,
    /// Connections closed for being neither admitted nor used to send in time.
    bind_timeouts,
    /// Requests handled.
    requests,
    /// Requests answered with an error.
    request_errors,
    /// Frames that did not decode or exceeded the limit (the connection was closed).
    malformed_frames,
    /// Requests refused by a rate limit.
    rate_limited,
    /// Envelopes stored.
    envelopes_stored,
    /// Envelopes handed out (fetched or pushed; at-least-once, so may repeat).
    envelopes_delivered,
    /// Envelopes deleted on acknowledgement.
    envelopes_acked,
    /// Envelopes deleted on expiry.
    envelopes_expired,
    /// Sends refused for quota.
    quota_refusals,
    /// Storage commits (each one fdatasync).
    commits,
    /// Operations in those commits.
    committed_ops,
    /// Subscribers disconnected for falling a whole push queue behind.
    slow_subscribers_dropped,
    /// Subscribers replaced by a newer subscription to the same mailbox.
    subscribers_replaced,
    /// Mailbox creations and directory publishes refused by a member's budget.
    member_budget_refusals,
    /// Connections neither admitted nor sending closed to make room for new ones.
    pending_evicted,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Records one group commit of `ops` operations.
    pub fn commit(&self, ops: u64) {
        Self::inc(&self.commits);
        Self::add(&self.committed_ops, ops);
    }
}

/// What `stats.json` holds: counters since start plus what the store holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsFile {
    /// Unix seconds when written.
    pub written_at: u64,
    /// Counters since the relay started.
    pub counters: Snapshot,
    /// What the store holds.
    pub store: crate::store::StoreCounts,
    /// Envelopes held per padded size: `[bucket bytes, count]`.
    pub envelope_buckets: Vec<(usize, u64)>,
}

impl StatsFile {
    /// Writes the file atomically.
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let tmp = data_dir.join(format!("{STATS_FILE}.tmp"));
        std::fs::write(&tmp, json)?;
        std::fs::rename(tmp, data_dir.join(STATS_FILE))
    }

    /// Reads the file.
    pub fn read(data_dir: &Path) -> std::io::Result<Self> {
        let bytes = std::fs::read(data_dir.join(STATS_FILE))?;
        serde_json::from_slice(&bytes).map_err(std::io::Error::other)
    }
}
