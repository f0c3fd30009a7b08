//! The `postern-relay` command line: init, run, address, stats. Any binary that needs it
//! (the shipped one, the end-to-end tests' copy) is a one-line `main`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{CONFIG_FILE, RelayConfig};
use crate::metrics::StatsFile;
use crate::operator::{is_running, udp_receive_buffer_max};
use crate::relay;
use clap::{Parser, Subcommand};

/// Postern relay: holds end-to-end-encrypted envelopes for one organisation's members
/// until they fetch them, and forgets them on acknowledgement or expiry.
#[derive(Debug, Parser)]
#[command(
    name = "postern-relay",
    version,
    long_about = "Postern relay: holds end-to-end-encrypted envelopes for one organisation's \
members until they fetch them, and forgets them on acknowledgement or expiry. It cannot \
read what it holds, and it keeps no handle, address or time of arrival.\n\n\
Operators: create a relay with `init`, give the address it prints to the org's \
administrator (`postern org relay add`), then `run` it (under systemd: \
contrib/postern-relay.service, with Type=notify readiness). `check-config` checks \
relay.toml before a restart; `stats` shows the aggregate counters of a running relay.",
    after_help = "Logs go to stderr (plain text unless it is a terminal); set \
POSTERN_RELAY_LOG to a level (error, warn, info, debug, trace). No level logs client \
addresses, handles or keys."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a relay: key pair, self-signed certificate and relay.toml in DIR. The last
    /// line printed is the relay address to give to `postern org relay add`.
    Init {
        /// Data directory (created, mode 0700).
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// The organisation's key, as printed by `postern org init` (postern-org:...).
        #[arg(long, value_name = "ORG_KEY")]
        org: String,
        /// UDP address to listen on (443, where QUIC traffic is ordinary HTTP/3; binding
        /// it needs CAP_NET_BIND_SERVICE, which the systemd unit grants).
        #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:443")]
        listen: SocketAddr,
        /// Host name or IP members use to reach the relay (default: the listen IP).
        #[arg(long, value_name = "HOST")]
        public_host: Option<String>,
    },
    /// Serve until SIGTERM or SIGINT, then finish in-flight sends and stop. Tells
    /// systemd when it is ready (Type=notify) and when it stops.
    Run {
        /// Data directory made by `init`.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Configuration file (default: DIR/relay.toml).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Check the configuration and the data directory without starting, and say what
    /// would be wrong or unwise; exits non-zero on an error.
    CheckConfig {
        /// Data directory made by `init`.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Configuration file (default: DIR/relay.toml).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Print the relay address of the relay in DIR.
    Address {
        /// Data directory made by `init`.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
    },
    /// Print aggregate counters of the relay in DIR (written by the running relay every
    /// few seconds; no identifiers), how old they are and whether the relay runs.
    Stats {
        /// Data directory made by `init`.
        #[arg(long, value_name = "DIR")]
        data: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Libraries the relay links that log peer addresses and connection ids at their
/// verbose levels (quinn names the client's address and port with every packet at trace):
/// held at `error` whatever the operator asks, so no log level pairs a connection with
/// an address.
const QUIET_TARGETS: &[&str] = &["quinn", "quinn_proto", "quinn_udp", "rustls", "h2", "hyper"];

/// The log filter: `spec` (the `POSTERN_RELAY_LOG` value; `info` if unset or invalid) for
/// the relay, with [`QUIET_TARGETS`] at `error`.
fn log_filter(spec: Option<&str>) -> tracing_subscriber::EnvFilter {
    let base = spec
        .and_then(|s| tracing_subscriber::EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new("info"));
    QUIET_TARGETS
        .iter()
        .fold(base, |f, target| match format!("{target}=error").parse() {
            Ok(d) => f.add_directive(d),
            Err(_) => f,
        })
}

/// Parses the command line and runs the command; the process exit code is its result.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(
            std::env::var("POSTERN_RELAY_LOG").ok().as_deref(),
        ))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postern-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Init {
            data,
            org,
            listen,
            public_host,
        } => {
            let address = relay::init(&data, &org, listen, public_host)?;
            println!("Relay created in {}.", data.display());
            println!("Configuration: {}", data.join("relay.toml").display());
            println!("Start it with: postern-relay run --data {}", data.display());
            match address {
                Some(address) => {
                    println!("Add it to the org with: postern org relay add {address}");
                    println!("{address}");
                }
                None => println!(
                    "It listens on port 0 (any free port): its address is known once it runs."
                ),
            }
            Ok(())
        }
        Command::Address { data } => {
            println!("{}", relay::address(&data)?);
            Ok(())
        }
        Command::Run { data, config } => {
            let config = config.unwrap_or_else(|| data.join(CONFIG_FILE));
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let running = relay::start_with_config(&data, &config).await?;
                println!("listening on {}", running.local_addr);
                // Under systemd (Type=notify) this is the readiness signal; elsewhere
                // NOTIFY_SOCKET is unset and it does nothing.
                notify(&[sd_notify::NotifyState::Ready]);
                wait_for_signal().await?;
                notify(&[sd_notify::NotifyState::Stopping]);
                tracing::info!("signal received: stopping after in-flight requests");
                running.shutdown().await;
                tracing::info!("stopped");
                Ok::<(), Box<dyn std::error::Error>>(())
            })
        }
        Command::CheckConfig { data, config } => {
            let config = config.unwrap_or_else(|| data.join(CONFIG_FILE));
            let report = check_config(&data, &config)?;
            for line in &report {
                println!("{line}");
            }
            println!("{}: OK", config.display());
            Ok(())
        }
        Command::Stats { data, json } => {
            let running = is_running(&data);
            let stats = StatsFile::read(&data).map_err(|e| {
                format!(
                    "cannot read {}/stats.json ({e}); the relay {}",
                    data.display(),
                    if running {
                        "runs but has not written its figures yet: try again in a few seconds"
                    } else {
                        "is not running and has not run in this directory"
                    }
                )
            })?;
            let age = crate::state::unix_now().saturating_sub(stats.written_at);
            if json {
                let mut v = serde_json::to_value(&stats)?;
                if let Some(o) = v.as_object_mut() {
                    o.insert("running".into(), running.into());
                    o.insert("age_secs".into(), age.into());
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let c = &stats.counters;
                let s = &stats.store;
                let ago = humantime::format_duration(std::time::Duration::from_secs(age));
                if running {
                    println!("relay:              running; figures from {ago} ago");
                } else {
                    println!(
                        "relay:              NOT RUNNING; figures from its last run, {ago} ago"
                    );
                }
                println!("mailboxes:          {}", s.mailboxes);
                println!("envelopes held:     {}", s.envelopes);
                for (bucket, n) in &stats.envelope_buckets {
                    println!("  {bucket:>6}-byte envelopes: {n}");
                }
                println!("directory entries:  {}", s.directory_entries);
                println!("one-time prekeys:   {}", s.one_time_prekeys);
                println!("connections open:   {}", c.connections_open);
                println!(
                    "connections total:  {} (refused {})",
                    c.connections_accepted, c.connections_refused
                );
                println!(
                    "owner connections:  {} admitted, {} failed admissions",
                    c.owner_admissions, c.auth_failed
                );
                println!(
                    "anonymous:          {} connections (sends and lookups; never admitted)",
                    c.anonymous_connections
                );
                println!(
                    "requests:           {} ({} errors, {} rate-limited, {} malformed)",
                    c.requests, c.request_errors, c.rate_limited, c.malformed_frames
                );
                println!(
                    "envelopes:          {} stored, {} delivered, {} acked, {} expired, {} refused for quota",
                    c.envelopes_stored,
                    c.envelopes_delivered,
                    c.envelopes_acked,
                    c.envelopes_expired,
                    c.quota_refusals
                );
                println!(
                    "commits:            {} ({} operations)",
                    c.commits, c.committed_ops
                );
                println!(
                    "subscribers:        {} dropped for falling behind, {} replaced",
                    c.slow_subscribers_dropped, c.subscribers_replaced
                );
                println!(
                    "member budgets:     {} refusals (mailbox creation, publishing)",
                    c.member_budget_refusals
                );
            }
            Ok(())
        }
    }
}

/// Tells the service manager, if there is one, about a change of state.
fn notify(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "cannot notify the service manager");
    }
}

/// What `check-config` finds: an error ends it; the lines returned are notes and
/// warnings for the operator.
fn check_config(data: &Path, config: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let c = RelayConfig::load_file(config)?;
    relay::pin(data)?;
    let mut notes = vec![
        format!(
            "listen {} (UDP); members reach it as {}",
            c.listen, c.public_host
        ),
        format!(
            "max_ttl_secs {} ({}); keep it equal to the org descriptor's maximum TTL",
            c.max_ttl_secs,
            humantime::format_duration(std::time::Duration::from_secs(u64::from(c.max_ttl_secs)))
        ),
        match c.metrics_listen {
            Some(m) => format!("metrics served at http://{m}/metrics"),
            None => "metrics endpoint off".to_owned(),
        },
    ];
    if c.listen.ip().is_loopback() {
        notes.push(format!(
            "warning: listen {} is a loopback address: only this machine can reach the relay",
            c.listen
        ));
    }
    if let Some(max) = udp_receive_buffer_max()
        && max < crate::server::SOCKET_BUFFER as u64
    {
        notes.push(format!(
            "warning: net.core.rmem_max is {max} bytes: bursts will drop packets; raise it \
             (contrib/sysctl.d/90-postern-relay.conf: net.core.rmem_max = 4194304)"
        ));
    }
    if is_running(data) {
        notes.push("a relay is running on this directory: restart it to apply the changes".into());
    }
    Ok(notes)
}

async fn wait_for_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_log_level_lets_the_network_libraries_name_peers() {
        for spec in [
            None,
            Some("trace"),
            Some("quinn=trace,trace"),
            Some("not a filter["),
        ] {
            let shown = log_filter(spec).to_string();
            for target in QUIET_TARGETS {
                assert!(
                    shown.contains(&format!("{target}=error")),
                    "{spec:?} gives {shown}"
                );
                assert!(
                    !shown.contains(&format!("{target}=trace")),
                    "{spec:?} gives {shown}"
                );
            }
        }
        assert!(log_filter(Some("debug")).to_string().contains("debug"));
    }
}
