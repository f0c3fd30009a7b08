//! The relay's configuration file, `relay.toml` in the data directory. `postern-relay
//! init` writes it with every setting and its default, each with a comment.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Name of the configuration file in the data directory.
pub const CONFIG_FILE: &str = "relay.toml";

/// Smallest `push_queue_bytes`: two pushes of the largest envelope.
const MIN_PUSH_QUEUE_BYTES: u64 = 2 * (postern_protocol::limits::MAX_ENVELOPE_BODY as u64 + 1024);

/// Relay settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// UDP address to listen on.
    pub listen: SocketAddr,
    /// Host name or IP that clients use to reach this relay (goes into the relay address).
    pub public_host: String,
    /// The organisation's root key, `postern-org:<base32>`. Only its members are admitted.
    pub org: String,
    /// Longest time, in seconds, an envelope is kept; a sender's TTL is clamped to it.
    /// Keep it equal to the org descriptor's maximum TTL.
    pub max_ttl_secs: u32,
    /// Where to serve the aggregate counters in the Prometheus text format
    /// (`GET /metrics`); a loopback address only. Off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// Limits that keep one member or one flood from hurting the others.
    pub limits: Limits,
}

/// Resource limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most simultaneous connections (handshakes included); more are refused.
    pub max_connections: u32,
    /// Most simultaneous connections from one source address (IPv6: one /64).
    pub max_connections_per_address: u32,
    /// Most owner connections (admitted) one member device may have open at once.
    pub max_connections_per_member: u32,
    /// Most connections at once that are still in their handshake or neither admitted
    /// nor sending; past it, or when the relay is full, the oldest of them is closed.
    pub max_pending_connections: u32,
    /// Seconds a QUIC handshake may take before it is abandoned.
    pub handshake_timeout_secs: u32,
    /// Seconds a connection may stay without being admitted (`Authenticate`) or using an
    /// operation of send connections; then it is closed.
    pub bind_timeout_secs: u32,
    /// Seconds a connection may stay silent before it is closed (clients ping to stay).
    pub idle_timeout_secs: u32,
    /// Most requests in flight on one connection (QUIC stream limit).
    pub max_concurrent_requests: u32,
    /// Sustained requests per second allowed on one connection.
    pub requests_per_sec: u32,
    /// Burst of requests allowed on one connection above the sustained rate.
    pub request_burst: u32,
    /// Failed authentications allowed per source address per minute.
    pub auth_failures_per_minute: u32,
    /// Most envelopes waiting in one mailbox.
    pub mailbox_max_envelopes: u32,
    /// Most bytes of envelope bodies waiting in one mailbox.
    pub mailbox_max_bytes: u64,
    /// Most one-time prekeys held for one directory entry.
    pub directory_max_one_time: u32,
    /// Most operations committed together in one disk flush (group commit).
    pub group_commit_max_batch: u32,
    /// Seconds between sweeps of expired envelopes.
    pub sweep_interval_secs: u32,
    /// Requests that need no identity (`Send`, `FetchPrekeys`, `FetchEntry`) allowed per
    /// source address (IPv6: per /64) per minute, over all its connections.
    pub anonymous_requests_per_minute: u32,
    /// Burst of those requests above the sustained rate.
    pub anonymous_request_burst: u32,
    /// Sends allowed into one mailbox per minute, from everyone together.
    pub queue_sends_per_minute: u32,
    /// Burst of sends into one mailbox above the sustained rate.
    pub queue_send_burst: u32,
    /// One-time prekeys handed out per directory entry per hour; past it, `FetchPrekeys`
    /// answers with the entry alone (sessions then start without a one-time prekey).
    pub one_time_prekeys_per_entry_per_hour: u32,
    /// Most connections subscribed to one mailbox; a new subscription replaces the oldest.
    pub max_subscribers_per_mailbox: u32,
    /// Most bytes of pushes waiting for one subscriber; a subscriber that falls further
    /// behind (it stopped reading) is disconnected, its envelopes kept for its next fetch.
    pub push_queue_bytes: u64,
    /// Mailboxes one member (device) may create per day.
    pub mailboxes_per_member_per_day: u32,
    /// Directory publishes (entry and prekeys) one member (device) may make per hour.
    pub publishes_per_member_per_hour: u32,
    /// Most directory entries one member (device) may hold.
    pub directory_entries_per_member: u32,
}

impl Limits {
    /// The quotas the store enforces.
    pub fn quotas(&self) -> crate::store::Quotas {
        crate::store::Quotas {
            max_envelopes: self.mailbox_max_envelopes,
            max_bytes: self.mailbox_max_bytes,
            max_one_time: self.directory_max_one_time,
            max_entries_per_owner: self.directory_entries_per_member,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_address: 64,
            max_pending_connections: 256,
            max_connections_per_member: 16,
            handshake_timeout_secs: 10,
            bind_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_concurrent_requests: 64,
            requests_per_sec: 200,
            request_burst: 400,
            auth_failures_per_minute: 10,
            mailbox_max_envelopes: 10_000,
            mailbox_max_bytes: 64 * 1024 * 1024,
            directory_max_one_time: 500,
            group_commit_max_batch: 512,
            sweep_interval_secs: 30,
            anonymous_requests_per_minute: 240,
            anonymous_request_burst: 120,
            queue_sends_per_minute: 120,
            queue_send_burst: 120,
            one_time_prekeys_per_entry_per_hour: 20,
            max_subscribers_per_mailbox: 4,
            push_queue_bytes: 1024 * 1024,
            mailboxes_per_member_per_day: 32,
            publishes_per_member_per_hour: 60,
            directory_entries_per_member: 4,
        }
    }
}

/// The configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path} is not a valid relay configuration: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What was wrong, from the TOML parser.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl RelayConfig {
    /// Defaults for a new relay.
    pub fn new(listen: SocketAddr, public_host: String, org: String) -> Self {
        Self {
            listen,
            public_host,
            org,
            max_ttl_secs: 7 * 24 * 3600,
            metrics_listen: None,
            limits: Limits::default(),
        }
    }

    /// Reads `relay.toml` from `data_dir`.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        Self::load_file(&data_dir.join(CONFIG_FILE))
    }

    /// Reads and checks the configuration file at `path`.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: p.clone(),
            message: e.to_string(),
        })?;
        config
            .validate()
            .map_err(|message| ConfigError::Invalid { path: p, message })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        let positive = [
            ("limits.max_connections", u64::from(l.max_connections)),
            ("limits.idle_timeout_secs", u64::from(l.idle_timeout_secs)),
            (
                "limits.max_connections_per_address",
                u64::from(l.max_connections_per_address),
            ),
            (
                "limits.max_connections_per_member",
                u64::from(l.max_connections_per_member),
            ),
            (
                "limits.max_pending_connections",
                u64::from(l.max_pending_connections),
            ),
            (
                "limits.handshake_timeout_secs",
                u64::from(l.handshake_timeout_secs),
            ),
            ("limits.bind_timeout_secs", u64::from(l.bind_timeout_secs)),
            (
                "limits.max_concurrent_requests",
                u64::from(l.max_concurrent_requests),
            ),
            ("limits.requests_per_sec", u64::from(l.requests_per_sec)),
            (
                "limits.anonymous_requests_per_minute",
                u64::from(l.anonymous_requests_per_minute),
            ),
            (
                "limits.queue_sends_per_minute",
                u64::from(l.queue_sends_per_minute),
            ),
            (
                "limits.one_time_prekeys_per_entry_per_hour",
                u64::from(l.one_time_prekeys_per_entry_per_hour),
            ),
            (
                "limits.mailbox_max_envelopes",
                u64::from(l.mailbox_max_envelopes),
            ),
            ("limits.mailbox_max_bytes", l.mailbox_max_bytes),
            (
                "limits.group_commit_max_batch",
                u64::from(l.group_commit_max_batch),
            ),
            (
                "limits.sweep_interval_secs",
                u64::from(l.sweep_interval_secs),
            ),
            (
                "limits.max_subscribers_per_mailbox",
                u64::from(l.max_subscribers_per_mailbox),
            ),
            (
                "limits.mailboxes_per_member_per_day",
                u64::from(l.mailboxes_per_member_per_day),
            ),
            (
                "limits.publishes_per_member_per_hour",
                u64::from(l.publishes_per_member_per_hour),
            ),
            (
                "limits.directory_entries_per_member",
                u64::from(l.directory_entries_per_member),
            ),
            ("max_ttl_secs", u64::from(self.max_ttl_secs)),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(format!("{name} must be greater than 0"));
            }
        }
        if let Some(m) = self.metrics_listen
            && !m.ip().is_loopback()
        {
            return Err(format!(
                "metrics_listen = \"{m}\" is not a loopback address: the counters are served only on this machine (e.g. \"127.0.0.1:9464\"); scrape them through an SSH tunnel or a local agent"
            ));
        }
        if l.push_queue_bytes < MIN_PUSH_QUEUE_BYTES {
            return Err(format!(
                "limits.push_queue_bytes must be at least {MIN_PUSH_QUEUE_BYTES} (two of the largest envelopes)"
            ));
        }
        Ok(())
    }

    /// The commented TOML text `init` writes.
    pub fn to_commented_toml(&self) -> String {
        let l = &self.limits;
        format!(
            r#"# postern-relay configuration. Restart the relay after editing.

# UDP address to listen on.
listen = "{listen}"
# Host name or IP that members use to reach this relay (part of the relay address).
public_host = "{host}"
# The organisation whose members this relay serves (postern-org:...).
org = "{org}"
# Longest time an envelope is kept, in seconds; senders' TTLs are clamped to it.
# Keep it equal to the org descriptor's maximum TTL.
max_ttl_secs = {ttl}
# Serve the aggregate counters (no identifiers) in the Prometheus text format at
# http://ADDR/metrics; a loopback address only. Off unless set.
{metrics}

[limits]
# Most simultaneous connections (handshakes included); more are refused.
max_connections = {mc}
# Most simultaneous connections from one address (IPv6: one /64). Members behind one
# NAT share it: allow about three per member there.
max_connections_per_address = {mcpa}
# Most owner connections (admitted with a certificate) one member device may hold.
max_connections_per_member = {mcpm}
# Most connections at once still in their handshake or neither admitted nor sending;
# past it, or when max_connections is reached, the oldest of them is closed (code 2) to
# make room, so members always get in while strangers hold idle connections.
max_pending_connections = {mpc}
# Seconds a handshake may take, and seconds a connection may stay before it is
# admitted or sends (then it is closed).
handshake_timeout_secs = {hts}
bind_timeout_secs = {bts}
# Seconds of silence after which a connection is closed.
idle_timeout_secs = {idle}
# Most requests in flight on one connection.
max_concurrent_requests = {mcr}
# Sustained requests per second per connection, and the burst above it.
requests_per_sec = {rps}
request_burst = {burst}
# Failed authentications allowed per source address per minute.
auth_failures_per_minute = {af}
# Per-mailbox quota: envelopes waiting, and bytes of envelope bodies.
mailbox_max_envelopes = {mme}
mailbox_max_bytes = {mmb}
# Most one-time prekeys held per directory entry.
directory_max_one_time = {dmo}
# Most operations committed together in one disk flush.
group_commit_max_batch = {gc}
# Seconds between sweeps that delete expired envelopes.
sweep_interval_secs = {sweep}
# Connections that carry no identity (sends, directory lookups): requests per minute
# per source address (IPv6: per /64), and the burst above it.
anonymous_requests_per_minute = {arpm}
anonymous_request_burst = {arb}
# Sends into one mailbox per minute from everyone together, and the burst above it.
queue_sends_per_minute = {qspm}
queue_send_burst = {qsb}
# One-time prekeys handed out per directory entry per hour (beyond: entry alone).
one_time_prekeys_per_entry_per_hour = {otph}
# Most connections subscribed to one mailbox (a new one replaces the oldest), and the
# most bytes of pushes waiting for one of them: one that falls further behind is
# disconnected (its envelopes stay stored). Push memory is at most about
# push_queue_bytes for each subscribed connection.
max_subscribers_per_mailbox = {msm}
push_queue_bytes = {pqb}
# Per member device: mailboxes created per day, directory publishes per hour, and
# directory entries held.
mailboxes_per_member_per_day = {mpd}
publishes_per_member_per_hour = {pph}
directory_entries_per_member = {dem}
"#,
            listen = self.listen,
            host = self.public_host,
            org = self.org,
            ttl = self.max_ttl_secs,
            metrics = match self.metrics_listen {
                Some(m) => format!("metrics_listen = \"{m}\""),
                None => "# metrics_listen = \"127.0.0.1:9464\"".to_owned(),
            },
            mc = l.max_connections,
            mcpa = l.max_connections_per_address,
            mpc = l.max_pending_connections,
            mcpm = l.max_connections_per_member,
            hts = l.handshake_timeout_secs,
            bts = l.bind_timeout_secs,
            idle = l.idle_timeout_secs,
            mcr = l.max_concurrent_requests,
            rps = l.requests_per_sec,
            burst = l.request_burst,
            af = l.auth_failures_per_minute,
            mme = l.mailbox_max_envelopes,
            mmb = l.mailbox_max_bytes,
            dmo = l.directory_max_one_time,
            gc = l.group_commit_max_batch,
            sweep = l.sweep_interval_secs,
            arpm = l.anonymous_requests_per_minute,
            arb = l.anonymous_request_burst,
            qspm = l.queue_sends_per_minute,
            qsb = l.queue_send_burst,
            otph = l.one_time_prekeys_per_entry_per_hour,
            msm = l.max_subscribers_per_mailbox,
            pqb = l.push_queue_bytes,
            mpd = l.mailboxes_per_member_per_day,
            pph = l.publishes_per_member_per_hour,
            dem = l.directory_entries_per_member,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commented_toml_round_trips() {
        let c = RelayConfig::new(
            "127.0.0.1:4433".parse().unwrap(),
            "127.0.0.1".into(),
            "postern-org:abc".into(),
        );
        let back: RelayConfig = toml::from_str(&c.to_commented_toml()).unwrap();
        assert_eq!(back, c);
        let mut m = c.clone();
        m.metrics_listen = Some("127.0.0.1:9464".parse().unwrap());
        let back: RelayConfig = toml::from_str(&m.to_commented_toml()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn the_metrics_endpoint_listens_on_loopback_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = RelayConfig::new(
            "0.0.0.0:4433".parse().unwrap(),
            "h".into(),
            "postern-org:x".into(),
        );
        c.metrics_listen = Some("0.0.0.0:9464".parse().unwrap());
        std::fs::write(dir.path().join(CONFIG_FILE), c.to_commented_toml()).unwrap();
        let err = RelayConfig::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("not a loopback address"), "{err}");
        c.metrics_listen = Some("[::1]:9464".parse().unwrap());
        std::fs::write(dir.path().join(CONFIG_FILE), c.to_commented_toml()).unwrap();
        assert!(RelayConfig::load(dir.path()).is_ok());
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "listen = 5").unwrap();
        let err = RelayConfig::load(dir.path()).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        let mut c = RelayConfig::new(
            "127.0.0.1:4433".parse().unwrap(),
            "h".into(),
            "postern-org:x".into(),
        );
        c.limits.mailbox_max_envelopes = 0;
        std::fs::write(dir.path().join(CONFIG_FILE), c.to_commented_toml()).unwrap();
        let err = RelayConfig::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("mailbox_max_envelopes"), "{err}");
    }
}
