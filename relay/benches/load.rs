//! Relay load benchmark over loopback QUIC. Prints, in one run on one machine:
//!
//! 1. the raw quinn request/response rate (1 KiB each way; one connection with 64 streams
//!    in flight, and as many connections as the relay's senders with 8 each); the better
//!    is taken as the transport's limit;
//! 2. the relay's traffic shape (send, push, batched ack) on a bare quinn server with no
//!    storage — the transport's ceiling for this protocol;
//! 3. the raw redb group-commit rate (1 KiB values, a batch per fdatasync) for three key
//!    patterns and three batch sizes; the best of them is taken as the disk's limit;
//! 4. the relay (a real `postern-relay` process): N anonymous senders (each send signed
//!    with the mailbox's sender key) and N subscribed recipients (owner connections),
//!    1 KiB padded envelopes, each send acknowledged only once durable; recipients
//!    acknowledge what they receive, as the client does, so the relay deletes it —
//!    durable sends per second, p50/p99 send-to-delivery latency, the CPU the relay and
//!    the load generator used, relay RSS; then the latency again at half that rate;
//! 5. relay RSS with 1,000 authenticated idle connections.
//!
//! Servers under test (the relay, the relay-shaped bare quinn server) run as separate
//! processes pinned to CPU 1 and the load generator (this process) to CPU 0, with
//! `taskset`, when the machine has two CPUs or more; each prints the CPUs it got.
//! `BENCH_NO_PIN=1` lets them share the cores.
//!
//! Run: `cargo bench -p postern-relay --bench load` (env BENCH_SECS, BENCH_PAIRS;
//! BENCH_ONLY=shaped|relay|senders|store|idle runs one part (senders: the S = 1/64/256
//! closed-loop table with disk bytes per send); BENCH_RELAY_BIN=path runs another
//! build of the relay, for comparisons).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use postern_identity::{DeviceKeyPair, Handle, OrgRoot, Role, SignalPublicKey};
use postern_protocol::bytes::{BoundedVec, Bytes, FixedBytes};
use postern_protocol::ids::EnvelopeId;
use postern_protocol::ids::MailboxId;
use postern_protocol::limits::MAX_ACK_IDS;
use postern_protocol::message::*;
use postern_protocol::padding::pad;
use postern_relay::config::Limits;
use postern_relay::testing::{RelayProcess, TestRelay};
use postern_relay::tls::{RelayIdentity, server_config};
use postern_transport::tls::client_config;
use postern_transport::{DeviceSigner, RelayConnection, client_endpoint};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

fn secs() -> u64 {
    std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

fn pairs() -> usize {
    std::env::var("BENCH_PAIRS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32)
}

// ---------- 1. raw quinn ----------

/// A bare quinn server endpoint with the relay's TLS, and how clients reach it.
struct BareQuinn {
    addr: SocketAddr,
    client: Arc<QuicClientConfig>,
}

impl BareQuinn {
    fn start() -> (quinn::Endpoint, Self) {
        Self::start_with(&RelayIdentity::generate().unwrap())
    }

    fn start_with(identity: &RelayIdentity) -> (quinn::Endpoint, Self) {
        let crypto =
            QuicServerConfig::try_from(server_config(identity, "127.0.0.1").unwrap()).unwrap();
        let mut sc = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut tc = quinn::TransportConfig::default();
        tc.max_concurrent_bidi_streams(quinn::VarInt::from_u32(256));
        sc.transport_config(Arc::new(tc));
        let server = quinn::Endpoint::server(sc, "127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let client =
            QuicClientConfig::try_from(client_config(identity.pin().unwrap()).unwrap()).unwrap();
        (
            server,
            Self {
                addr,
                client: Arc::new(client),
            },
        )
    }

    /// A client connection from its own endpoint, as each member has.
    async fn connect(&self) -> quinn::Connection {
        client_endpoint(false)
            .unwrap()
            .connect_with(
                quinn::ClientConfig::new(self.client.clone()),
                self.addr,
                "127.0.0.1",
            )
            .unwrap()
            .await
            .unwrap()
    }
}

/// Request/response rate of a bare quinn echo server: `connections` client connections
/// (each its own endpoint, like the relay's members), `streams` requests in flight on
/// each.
async fn raw_quinn(connections: usize, streams: usize) -> f64 {
    let (server, bare) = BareQuinn::start();
    tokio::spawn(async move {
        while let Some(inc) = server.accept().await {
            tokio::spawn(async move {
                let conn = inc.await.unwrap();
                while let Ok((mut s, mut r)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let req = r.read_to_end(4096).await.unwrap();
                        s.write_all(&req).await.unwrap();
                        let _ = s.finish();
                    });
                }
            });
        }
    });
    let mut conns = Vec::new();
    for _ in 0..connections {
        conns.push(bare.connect().await);
    }
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..connections * streams {
        let (conn, done, stop) = (conns[i % connections].clone(), done.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let payload = vec![7u8; 1024];
            while !stop.load(Ordering::Relaxed) {
                let (mut s, mut r) = conn.open_bi().await.unwrap();
                s.write_all(&payload).await.unwrap();
                s.finish().unwrap();
                r.read_to_end(4096).await.unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs())).await;
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed);
    let rate = n as f64 / start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    rate
}

// ---------- 2. the relay's traffic shape on bare quinn ----------

/// The relay's QUIC traffic without the relay: `pairs` sender connections each sending
/// 1 KiB requests (`in_flight` at a time) that a bare quinn server answers with 48 bytes
/// and forwards on a unidirectional stream to the paired recipient connection, whose
/// acker answers with batched ack requests, as in [`relay_load`]. No storage, no
/// admission, no parsing: the transport's ceiling for this protocol's shape.
/// Send-to-recipient queues of the relay-shaped bare quinn server, by pair number.
type Queues =
    Arc<std::sync::Mutex<std::collections::HashMap<u32, tokio::sync::mpsc::Sender<Vec<u8>>>>>;

/// The bare quinn server of [`relay_shaped_quinn`]: answers sends with 48 bytes and
/// forwards each to its pair's subscribed recipient on a unidirectional stream.
async fn shaped_server(server: quinn::Endpoint) {
    let queues: Queues = Arc::default();
    while let Some(inc) = server.accept().await {
        let queues = queues.clone();
        tokio::spawn(async move {
            let Ok(conn) = inc.await else { return };
            while let Ok((mut s, mut r)) = conn.accept_bi().await {
                let (queues, conn) = (queues.clone(), conn.clone());
                tokio::spawn(async move {
                    let Ok(req) = r.read_to_end(16 * 1024).await else {
                        return;
                    };
                    let pair = u32::from_be_bytes(req[1..5].try_into().unwrap());
                    match req[0] {
                        b'R' => {
                            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);
                            queues.lock().unwrap().insert(pair, tx);
                            let Ok(mut uni) = conn.open_uni().await else {
                                return;
                            };
                            let _ = s.write_all(b"subscribed").await;
                            let _ = s.finish();
                            while let Some(m) = rx.recv().await {
                                if uni.write_all(&m).await.is_err() {
                                    break;
                                }
                            }
                        }
                        b'S' => {
                            let _ = s.write_all(&[0u8; 48]).await;
                            let _ = s.finish();
                            let tx = queues.lock().unwrap().get(&pair).cloned();
                            if let Some(tx) = tx {
                                let _ = tx.try_send(req);
                            }
                        }
                        _ => {
                            let _ = s.write_all(&[0u8; 8]).await;
                            let _ = s.finish();
                        }
                    }
                });
            }
        });
    }
}

/// `BENCH_SHAPED_SERVER=1`: this process is the relay-shaped bare quinn server (on its
/// own pinned core): prints its address and key pin, serves until killed.
fn run_shaped_server() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let identity = RelayIdentity::generate().unwrap();
        let (server, bare) = BareQuinn::start_with(&identity);
        println!("{} {}", bare.addr, hex(&identity.pin().unwrap()));
        shaped_server(server).await;
    });
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The relay-shaped server as a separate process (pinned like the relay); its pid and
/// how clients reach it.
fn spawn_shaped_server() -> (Child, BareQuinn) {
    let mut cmd = pinned_command(std::env::current_exe().unwrap());
    let mut child = cmd
        .env("BENCH_SHAPED_SERVER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let (addr, pin) = line.trim().split_once(' ').unwrap();
    let mut p = [0u8; 32];
    for (i, b) in p.iter_mut().enumerate() {
        *b = u8::from_str_radix(&pin[2 * i..2 * i + 2], 16).unwrap();
    }
    let client = QuicClientConfig::try_from(client_config(p).unwrap()).unwrap();
    (
        child,
        BareQuinn {
            addr: addr.parse().unwrap(),
            client: Arc::new(client),
        },
    )
}

/// The relay's traffic shape on bare quinn, the server a separate pinned process:
/// sends/s, pushes/s, ack requests/s, and the server's CPU in cores.
async fn relay_shaped_quinn(pairs: usize, in_flight: usize) -> (f64, f64, f64, f64) {
    const MSG: usize = 1024;
    let (mut child, bare) = spawn_shaped_server();
    let server_pid = child.id().to_string();
    print_cpus("relay-shaped bare quinn server", &server_pid);
    let request = |conn: quinn::Connection, body: Vec<u8>| async move {
        let (mut s, mut r) = conn.open_bi().await?;
        s.write_all(&body).await?;
        s.finish()?;
        r.read_to_end(64).await?;
        Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
    };
    let done = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let ack_requests = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for pair in 0..pairs as u32 {
        let recipient = bare.connect().await;
        let mut hello = vec![b'R'];
        hello.extend_from_slice(&pair.to_be_bytes());
        request(recipient.clone(), hello).await.unwrap();
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<[u8; 32]>();
        let (acker_conn, ack_requests) = (recipient.clone(), ack_requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while ack_rx.recv_many(&mut ids, MAX_ACK_IDS).await > 0 {
                ack_requests.fetch_add(1, Ordering::Relaxed);
                let mut body = vec![b'A', 0, 0, 0, 0];
                for id in ids.drain(..) {
                    body.extend_from_slice(&id);
                }
                if request(acker_conn.clone(), body).await.is_err() {
                    break;
                }
            }
        }));
        let delivered = delivered.clone();
        tasks.push(tokio::spawn(async move {
            // The stream shows up with its first push.
            let Ok(mut pushes) = recipient.accept_uni().await else {
                return;
            };
            let mut m = vec![0u8; MSG];
            while pushes.read_exact(&mut m).await.is_ok() {
                delivered.fetch_add(1, Ordering::Relaxed);
                let _ = ack_tx.send([7; 32]);
            }
        }));
        let sender = bare.connect().await;
        for _ in 0..in_flight {
            let (sender, done, stop) = (sender.clone(), done.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut body = vec![0x42u8; MSG];
                body[0] = b'S';
                body[1..5].copy_from_slice(&pair.to_be_bytes());
                while !stop.load(Ordering::Relaxed) {
                    if request(sender.clone(), body.clone()).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = || [&done, &delivered, &ack_requests].map(|c| c.load(Ordering::Relaxed) as f64);
    let c0 = counts();
    let cpu0 = cpu_ticks(&server_pid);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs())).await;
    let c1 = counts();
    let cpu1 = cpu_ticks(&server_pid);
    let t = start.elapsed().as_secs_f64();
    let rate = (
        (c1[0] - c0[0]) / t,
        (c1[1] - c0[1]) / t,
        (c1[2] - c0[2]) / t,
        (cpu1 - cpu0) as f64 / 100.0 / t,
    );
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let _ = child.kill();
    let _ = child.wait();
    rate
}

// ---------- 3. raw redb ----------

/// Key patterns for the raw redb measurement; the best of them is the disk's limit.
#[derive(Clone, Copy, Debug)]
enum KeyPattern {
    /// Random keys, never deleted: the table grows.
    RandomGrowing,
    /// Increasing keys, never deleted: appends at the right edge.
    Sequential,
    /// Random keys, each batch also deleting the previous batch's keys (a steady state
    /// like recipients acknowledging what they received).
    RandomSteady,
}

fn raw_redb(dir: &Path, batch: usize, pattern: KeyPattern) -> f64 {
    const T: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("t");
    let db = redb::Database::create(dir.join(format!("raw-{batch}-{pattern:?}.redb"))).unwrap();
    let body = vec![0xabu8; 1024];
    let start = Instant::now();
    let mut n = 0u64;
    let mut previous: Vec<[u8; 64]> = Vec::new();
    while start.elapsed() < Duration::from_secs(secs()) {
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(T).unwrap();
            let mut this = Vec::with_capacity(batch);
            for _ in 0..batch {
                // Same key shape as the relay: 64 bytes (mailbox ‖ envelope id).
                let mut k = [0u8; 64];
                match pattern {
                    KeyPattern::Sequential => k[32..40].copy_from_slice(&n.to_be_bytes()),
                    _ => k[32..].copy_from_slice(&rand::random::<[u8; 32]>()),
                }
                t.insert(k.as_slice(), body.as_slice()).unwrap();
                this.push(k);
                n += 1;
            }
            if matches!(pattern, KeyPattern::RandomSteady) {
                for k in std::mem::replace(&mut previous, this) {
                    t.remove(k.as_slice()).unwrap();
                }
            }
        }
        txn.commit().unwrap(); // Durability::Immediate: fdatasync
    }
    n as f64 / start.elapsed().as_secs_f64()
}

// ---------- 3b. the relay's store alone (no QUIC) ----------

async fn store_alone(dir: &Path, concurrency: usize) -> f64 {
    use postern_relay::store::{Quotas, Store};
    let d = dir.join(format!("store-{concurrency}"));
    std::fs::create_dir_all(&d).unwrap();
    let store = Store::open(
        &d,
        Quotas {
            max_envelopes: u32::MAX,
            max_bytes: u64::MAX,
            max_one_time: 10,
            max_entries_per_owner: 4,
        },
        512,
        Arc::new(postern_relay::metrics::Metrics::default()),
        None,
    )
    .unwrap();
    let (r, s) = (
        MailboxId::random(&mut rand::rng()),
        MailboxId::random(&mut rand::rng()),
    );
    let sender_key = DeviceKeyPair::generate().public_key().to_bytes();
    store
        .create_mailbox(r, s, [1; 32], sender_key)
        .await
        .unwrap();
    let body: EnvelopeBody = Bytes::new(pad(&[0x42; 900]).unwrap()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, stop, done, body) = (store.clone(), stop.clone(), done.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                store
                    .send(s, sender_key, u64::MAX, body.clone())
                    .await
                    .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs())).await;
    stop.store(true, Ordering::Relaxed);
    let rate = done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    store.close();
    rate
}

// ---------- 4. the relay ----------

struct Member {
    cert: Vec<u8>,
    device: DeviceKeyPair,
}

impl DeviceSigner for Member {
    fn certificate(&self) -> Vec<u8> {
        self.cert.clone()
    }
    fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.device.sign(context, message)
    }
}

fn member(root: &OrgRoot, handle: &str) -> Member {
    let device = DeviceKeyPair::generate();
    let mut signal = [5u8; 33];
    signal[1..].copy_from_slice(&rand::random::<[u8; 32]>());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let cert = root
        .issue_member_certificate(
            Handle::new(handle).unwrap(),
            Role::Courier,
            SignalPublicKey::from_bytes(&signal).unwrap(),
            device.public_key(),
            now - 60,
            now + 86_400,
            rand::random(),
        )
        .unwrap();
    Member {
        cert: cert.encode(),
        device,
    }
}

/// User + system CPU time of a process, in clock ticks (1/100 s).
fn cpu_ticks(pid: &str) -> u64 {
    stat_ticks(&format!("/proc/{pid}/stat"))
}

/// CPU ticks of the relay's storage writer thread (named `postern-relay-writer`, which
/// the kernel shortens to 15 bytes).
fn writer_ticks(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.starts_with("postern-relay-w"))
        })
        .map(|t| stat_ticks(&t.path().join("stat").to_string_lossy()))
        .sum()
}

fn stat_ticks(path: &str) -> u64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 12th, stime
    // the 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The CPU servers under test run on, and the one this load generator runs on, when the
/// machine has two or more and `taskset` is there (`BENCH_NO_PIN=1` turns it off).
const SERVER_CPU: &str = "1";
const GENERATOR_CPU: &str = "0";

fn pinning() -> bool {
    std::env::var_os("BENCH_PINNED").is_some()
}

/// Re-runs this benchmark on [`GENERATOR_CPU`] unless it already runs pinned (or may not
/// be); returns only in the pinned (or unpinned) run.
fn pin_self() {
    if pinning() || std::env::var_os("BENCH_NO_PIN").is_some() {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let has_taskset = std::process::Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if cpus < 2 || !has_taskset {
        println!(
            "not pinned ({cpus} CPUs, taskset {}): server and load generator share the cores",
            if has_taskset { "found" } else { "missing" }
        );
        return;
    }
    let status = std::process::Command::new("taskset")
        .args(["-c", GENERATOR_CPU])
        .arg(std::env::current_exe().unwrap())
        .args(std::env::args_os().skip(1))
        .env("BENCH_PINNED", "1")
        .status()
        .unwrap();
    std::process::exit(status.code().unwrap_or(1));
}

/// `bin` run on [`SERVER_CPU`] when pinning, else as it is.
fn pinned_command(bin: std::path::PathBuf) -> std::process::Command {
    if pinning() {
        let mut c = std::process::Command::new("taskset");
        c.args(["-c", SERVER_CPU]).arg(bin);
        c
    } else {
        std::process::Command::new(bin)
    }
}

/// Prints the CPUs a process may run on.
fn print_cpus(what: &str, pid: &str) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let cpus = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map_or("?", str::trim);
    println!("  {what} (pid {pid}) runs on CPUs {cpus}");
}

struct Relay {
    child: Child,
    addr: SocketAddr,
    pin: [u8; 32],
}

fn spawn_relay(dir: &Path, org: &OrgRoot) -> Relay {
    // Limits out of the way; sweeps as often as in production (not the harness's 1 s).
    let relay = TestRelay::init_in(&dir.join("relay"), &org.org_key().to_string(), 0, |c| {
        c.limits.requests_per_sec = 1_000_000;
        c.limits.request_burst = 1_000_000;
        c.limits.max_concurrent_requests = 256;
        c.limits.mailbox_max_envelopes = 1_000_000;
        c.limits.mailbox_max_bytes = 1 << 40;
        // Every sender is on 127.0.0.1, each writing to one queue: the per-address and
        // per-queue budgets would measure the limiter, not the relay.
        c.limits.anonymous_requests_per_minute = 1_000_000_000;
        c.limits.anonymous_request_burst = 1_000_000_000;
        c.limits.queue_sends_per_minute = 1_000_000_000;
        c.limits.queue_send_burst = 1_000_000_000;
        c.limits.sweep_interval_secs = Limits::default().sweep_interval_secs;
    });
    // BENCH_RELAY_BIN runs another build of the relay against the same load (A/B).
    let mut bin: std::path::PathBuf = std::env::var_os("BENCH_RELAY_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_postern-relay").into())
        .into();
    if pinning() {
        // The harness runs `BIN run --data DIR`: a wrapper puts the relay on its core.
        let wrapper = dir.join("pinned-relay.sh");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec taskset -c {SERVER_CPU} '{}' \"$@\"\n",
                bin.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin = wrapper;
    }
    let process = RelayProcess::spawn_logging(&bin, relay.data(), &dir.join("relay.log"), "warn");
    print_cpus("relay", &process.child.id().to_string());
    Relay {
        child: process.child,
        addr: process.addr,
        pin: relay.pin(),
    }
}

struct LoadResult {
    rate: f64,
    p50_us: u64,
    p99_us: u64,
    delivered: usize,
    /// Envelopes the recipients acknowledged (deleted), per second.
    ack_rate: f64,
    /// Ack requests per second (each carries the ids received since the previous one).
    ack_request_rate: f64,
    /// CPU used by the relay process, in cores.
    relay_cores: f64,
    /// CPU used by the relay's storage writer thread, in cores.
    writer_cores: f64,
    /// CPU used by this (load-generating) process, in cores.
    generator_cores: f64,
    /// Bytes the relay process caused to be written to disk per durable send.
    disk_bytes_per_send: f64,
}

impl LoadResult {
    fn describe(&self) -> String {
        format!(
            "{:.0} durable sends/s ({:.0} acks/s in {:.0} ack requests/s), p50 {} us, p99 {} us send->delivery ({} deliveries sampled)\n    CPU: relay {:.2} cores = {:.1} us per send ({:.1} us storage writer, {:.1} us QUIC and handlers), load generator {:.2} cores = {:.1} us per send",
            self.rate,
            self.ack_rate,
            self.ack_request_rate,
            self.p50_us,
            self.p99_us,
            self.delivered,
            self.relay_cores,
            1e6 * self.relay_cores / self.rate.max(1.0),
            1e6 * self.writer_cores / self.rate.max(1.0),
            1e6 * (self.relay_cores - self.writer_cores) / self.rate.max(1.0),
            self.generator_cores,
            1e6 * self.generator_cores / self.rate.max(1.0),
        ) + &format!(
            "\n    disk: {:.1} KiB written by the relay per durable send",
            self.disk_bytes_per_send / 1024.0
        )
    }
}

/// Bytes a process caused to be written to storage (`write_bytes` of /proc/PID/io).
fn disk_written(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `pairs` sender connections each sending to its own subscribed recipient, with
/// `in_flight` sends outstanding per sender; `target_rate` (total per second) paces them
/// if set.
async fn relay_load(
    relay: &Relay,
    org: &OrgRoot,
    pairs: usize,
    in_flight: usize,
    target_rate: Option<f64>,
) -> LoadResult {
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let acks = Arc::new(AtomicU64::new(0));
    let ack_requests = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    let body: EnvelopeBody = Bytes::new(pad(&[0x42; 900]).unwrap()).unwrap(); // 1 KiB bucket
    for i in 0..pairs {
        // Recipient: mailbox, subscription, records arrival times.
        let rm = member(org, &format!("recipient-{i}"));
        let mut rc = RelayConnection::connect_addr(relay.addr, relay.pin)
            .await
            .unwrap();
        rc.authenticate(&rm).await.unwrap();
        let owner = postern_identity::DeviceKeyPair::generate();
        // Its private half is what the sender holds: every send is signed with it.
        let sender_key = Arc::new(postern_identity::DeviceKeyPair::generate());
        let (recipient, sender_id) = (
            MailboxId::random(&mut rand::rng()),
            MailboxId::random(&mut rand::rng()),
        );
        rc.request(&Request::CreateMailbox(CreateMailbox {
            recipient,
            sender: sender_id,
            owner: FixedBytes(owner.public_key().to_bytes()),
            sender_key: FixedBytes(sender_key.public_key().to_bytes()),
        }))
        .await
        .unwrap();
        rc.open_mailbox(recipient, &owner).await.unwrap();
        let mut pushes = rc.subscribe().await.unwrap();
        let lat = latencies.clone();
        let stop_r = stop.clone();
        // Like a real client, the recipient acknowledges what it received (so the relay
        // deletes it); acks batch up while one is in flight.
        let rc = Arc::new(rc);
        let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<EnvelopeId>();
        let (acker_conn, acks_done, ack_requests) =
            (rc.clone(), acks.clone(), ack_requests.clone());
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while ack_rx.recv_many(&mut ids, MAX_ACK_IDS).await > 0 {
                let n = ids.len() as u64;
                let req = Request::Ack(Ack {
                    ids: BoundedVec::new(std::mem::take(&mut ids)).unwrap(),
                });
                if let Ok(Response::Acked(_)) = acker_conn.request(&req).await {
                    acks_done.fetch_add(n, Ordering::Relaxed);
                    ack_requests.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        tasks.push(tokio::spawn(async move {
            let _keep = rc;
            while !stop_r.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(200), pushes.next()).await {
                    Ok(Ok(Some(Push::Envelope(e)))) => {
                        // The send time travels in the (unencrypted, benchmark-only) body.
                        let b = e.body.as_slice();
                        let sent = u64::from_be_bytes(b[..8].try_into().unwrap());
                        let now = epoch.elapsed().as_micros() as u64;
                        lat.lock().unwrap().push(now.saturating_sub(sent));
                        let _ = ack_tx.send(e.id);
                    }
                    Ok(Ok(Some(_))) | Err(_) => {}
                    _ => break,
                }
            }
        }));
        // Sender: an anonymous connection (senders never authenticate), each send signed
        // with the mailbox's sender key.
        let sc = RelayConnection::connect_addr(relay.addr, relay.pin)
            .await
            .unwrap();
        let sc = Arc::new(sc);
        for _ in 0..in_flight {
            let (sc, stop, acked, body, sender_key) = (
                sc.clone(),
                stop.clone(),
                acked.clone(),
                body.clone(),
                sender_key.clone(),
            );
            let per_task_interval =
                target_rate.map(|r| Duration::from_secs_f64((pairs * in_flight) as f64 / r));
            tasks.push(tokio::spawn(async move {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(iv) = per_task_interval {
                        next += iv;
                        tokio::time::sleep_until(next.into()).await;
                    }
                    let mut b = body.clone().into_vec();
                    b[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
                    let sent = sc
                        .send(sender_id, 3600, Bytes::new(b).unwrap(), &sender_key)
                        .await;
                    if sent.is_ok() {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    // Warm up, then measure.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a0 = acked.load(Ordering::Relaxed);
    let k0 = acks.load(Ordering::Relaxed);
    let r0 = ack_requests.load(Ordering::Relaxed);
    let relay_pid = relay.child.id().to_string();
    let (relay_t0, writer_t0, gen_t0) = (
        cpu_ticks(&relay_pid),
        writer_ticks(&relay_pid),
        cpu_ticks("self"),
    );
    latencies.lock().unwrap().clear();
    let disk0 = disk_written(&relay_pid);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs())).await;
    let n = acked.load(Ordering::Relaxed) - a0;
    let disk = disk_written(&relay_pid).saturating_sub(disk0);
    let deleted = acks.load(Ordering::Relaxed) - k0;
    let ack_request_count = ack_requests.load(Ordering::Relaxed) - r0;
    let (relay_cpu, writer_cpu, gen_cpu) = (
        (cpu_ticks(&relay_pid) - relay_t0) as f64 / 100.0,
        (writer_ticks(&relay_pid) - writer_t0) as f64 / 100.0,
        (cpu_ticks("self") - gen_t0) as f64 / 100.0,
    );
    let elapsed = start.elapsed().as_secs_f64();
    let mut lats = latencies.lock().unwrap().clone();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    lats.sort_unstable();
    let pct = |p: f64| {
        lats.get(((lats.len() as f64 * p) as usize).min(lats.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    LoadResult {
        rate: n as f64 / elapsed,
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        delivered: lats.len(),
        ack_rate: deleted as f64 / elapsed,
        ack_request_rate: ack_request_count as f64 / elapsed,
        relay_cores: relay_cpu / elapsed,
        writer_cores: writer_cpu / elapsed,
        generator_cores: gen_cpu / elapsed,
        disk_bytes_per_send: disk as f64 / n.max(1) as f64,
    }
}

async fn idle_connections(relay: &Relay, org: &OrgRoot, n: usize) -> Vec<RelayConnection> {
    let m = Arc::new(member(org, "idle-member"));
    let endpoint = client_endpoint(false).unwrap();
    let mut conns = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(50) {
        let mut batch = Vec::new();
        for _ in 0..50.min(n - chunk * 50) {
            let (e, m, addr, pin) = (endpoint.clone(), m.clone(), relay.addr, relay.pin);
            batch.push(tokio::spawn(async move {
                let mut c = RelayConnection::connect_on(&e, addr, pin).await.unwrap();
                c.authenticate(&*m).await.unwrap();
                c
            }));
        }
        for t in batch {
            conns.push(t.await.unwrap());
        }
    }
    conns
}

/// Prints the relay's group-commit counters (from its stats file, written every 5 s).
fn print_group_commit(dir: &Path) {
    std::thread::sleep(Duration::from_secs(6));
    match postern_relay::metrics::StatsFile::read(&dir.join("relay")) {
        Err(e) => println!("relay group commit: stats unavailable ({e})"),
        Ok(stats) => {
            let c = &stats.counters;
            println!(
                "relay group commit: {} commits for {} operations ({:.1} per fdatasync on average)",
                c.commits,
                c.committed_ops,
                c.committed_ops as f64 / c.commits.max(1) as f64
            );
        }
    }
}

/// S closed-loop senders, each its own connection with one send in flight to its own
/// subscribed, acknowledging recipient: durable sends/s, p99, disk bytes per send, for
/// S = 1, 64, 256; and one sender's durable send against one synced write plus a
/// loopback round trip.
fn senders_table(rt: &tokio::runtime::Runtime, dir: &Path) {
    let synced = raw_redb(dir, 1, KeyPattern::Sequential);
    let rtt = rt.block_on(raw_quinn(1, 1));
    let floor_us = 1e6 / synced + 1e6 / rtt;
    println!(
        "one synced 1 KiB write: {:.0} us; one loopback QUIC round trip: {:.0} us",
        1e6 / synced,
        1e6 / rtt
    );
    println!(
        "| S | durable sends/s | p50 send->recv | p99 send->recv | relay CPU per send | disk per send |"
    );
    println!("|---|---|---|---|---|---|");
    let org = OrgRoot::generate();
    let mut single = None;
    for s in [1usize, 64, 256] {
        let mut relay = spawn_relay(&dir.join(format!("s{s}")), &org);
        let r = rt.block_on(relay_load(&relay, &org, s, 1, None));
        println!(
            "| {s} | {:.0} | {:.1} ms | {:.1} ms | {:.1} us | {:.1} KiB |",
            r.rate,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            1e6 * r.relay_cores / r.rate.max(1.0),
            r.disk_bytes_per_send / 1024.0
        );
        if s == 1 {
            single = Some(1e6 / r.rate.max(1.0));
        }
        let _ = relay.child.kill();
        let _ = relay.child.wait();
    }
    if let Some(us) = single {
        println!(
            "goal: one sender's durable send <= 2x (synced write + round trip) = {:.0} us -> {} ({us:.0} us: {:.2}x)",
            2.0 * floor_us,
            if us <= 2.0 * floor_us {
                "met"
            } else {
                "NOT met"
            },
            us / floor_us
        );
    }
}

fn main() {
    if std::env::var_os("BENCH_SHAPED_SERVER").is_some() {
        run_shaped_server();
        return;
    }
    pin_self();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!(
        "postern-relay load benchmark ({} s per measurement, {} sender/recipient pairs)",
        secs(),
        pairs()
    );
    println!(
        "machine: CPUs {} online; loopback; data dir on {}",
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .unwrap_or_default()
            .trim(),
        dir.path().display()
    );
    print_cpus("load generator", "self");

    if std::env::var("BENCH_ONLY").as_deref() == Ok("idle") {
        let org = OrgRoot::generate();
        let mut relay = spawn_relay(dir.path(), &org);
        let rss0 = rss_kib(relay.child.id());
        let conns = rt.block_on(idle_connections(&relay, &org, 1000));
        std::thread::sleep(Duration::from_secs(1));
        println!(
            "relay RSS: {rss0} KiB at start, {} KiB with {} authenticated idle connections",
            rss_kib(relay.child.id()),
            conns.len()
        );
        let _ = relay.child.kill();
        let _ = relay.child.wait();
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("store") {
        let raw = raw_redb(dir.path(), 256, KeyPattern::RandomGrowing);
        let store = rt.block_on(store_alone(dir.path(), 256));
        println!(
            "raw redb (256 per fdatasync): {raw:.0}/s; relay store alone: {store:.0}/s ({:.0}%)",
            100.0 * store / raw
        );
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("shaped") {
        let (sends, delivered, ack_requests, cores) = rt.block_on(relay_shaped_quinn(pairs(), 8));
        println!(
            "relay-shaped bare quinn: {sends:.0} sends/s, {delivered:.0} pushes/s, {ack_requests:.0} ack requests/s; server CPU {cores:.2} cores = {:.1} us per send",
            1e6 * cores / sends.max(1.0)
        );
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("senders") {
        senders_table(&rt, dir.path());
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("relay") {
        let org = OrgRoot::generate();
        let mut relay = spawn_relay(dir.path(), &org);
        let sat = rt.block_on(relay_load(&relay, &org, pairs(), 8, None));
        println!("relay, saturating: {}", sat.describe());
        let half = rt.block_on(relay_load(&relay, &org, pairs(), 8, Some(sat.rate / 2.0)));
        println!("relay, half rate: {}", half.describe());
        print_group_commit(dir.path());
        let _ = relay.child.kill();
        let _ = relay.child.wait();
        return;
    }
    let mut quinn_rate = 0f64;
    for (connections, streams) in [(1, 64), (pairs(), 8)] {
        let r = rt.block_on(raw_quinn(connections, streams));
        quinn_rate = quinn_rate.max(r);
        println!(
            "raw quinn request/response (1 KiB each way, {connections} connections x {streams} streams): {r:>8.0} req/s"
        );
    }
    let (shaped, shaped_pushes, shaped_acks, shaped_cores) =
        rt.block_on(relay_shaped_quinn(pairs(), 8));
    let shaped_us = 1e6 * shaped_cores / shaped.max(1.0);
    println!(
        "the relay's traffic on bare quinn ({} pairs x 8 in flight; send, push, batched ack; no storage; separate server process): {shaped:>8.0} sends/s ({shaped_pushes:.0} pushes/s, {shaped_acks:.0} ack requests/s), server CPU {shaped_cores:.2} cores = {shaped_us:.1} us per send",
        pairs()
    );
    let mut redb_best = 0f64;
    for pattern in [
        KeyPattern::RandomGrowing,
        KeyPattern::Sequential,
        KeyPattern::RandomSteady,
    ] {
        for batch in [16, 64, 256] {
            let r = raw_redb(dir.path(), batch, pattern);
            redb_best = redb_best.max(r);
            println!(
                "raw redb group commit (1 KiB, {batch:>3} per fdatasync, {:<13}): {r:>8.0} inserts/s",
                format!("{pattern:?}")
            );
        }
    }

    let store_rate = rt.block_on(store_alone(dir.path(), 256));
    println!(
        "relay store alone (256 concurrent sends, group commit):     {store_rate:>10.0} durable sends/s"
    );

    let org = OrgRoot::generate();
    let mut relay = spawn_relay(dir.path(), &org);
    let rss0 = rss_kib(relay.child.id());
    let sat = rt.block_on(relay_load(&relay, &org, pairs(), 8, None));
    let rss_load = rss_kib(relay.child.id());
    println!(
        "relay, saturating ({} pairs x 8 in flight): {}",
        pairs(),
        sat.describe()
    );
    let half = rt.block_on(relay_load(&relay, &org, pairs(), 8, Some(sat.rate / 2.0)));
    println!(
        "relay, half rate (target {:.0}/s): {}",
        sat.rate / 2.0,
        half.describe()
    );
    println!(
        "relay RSS: {} KiB at start, {} KiB after load",
        rss0, rss_load
    );
    print_group_commit(dir.path());
    let binding = quinn_rate * 0.5;
    let disk = redb_best * 0.8;
    let (limit_name, limit) = if binding < disk {
        ("50% of raw quinn", binding)
    } else {
        ("80% of raw redb", disk)
    };
    println!(
        "goal: durable sends/s >= {limit_name} = {limit:.0}/s -> {} ({:.0}% of raw quinn, {:.0}% of raw redb; {:.0}% of the relay's traffic on bare quinn)",
        if sat.rate >= limit { "met" } else { "NOT met" },
        100.0 * sat.rate / quinn_rate,
        100.0 * sat.rate / redb_best,
        100.0 * sat.rate / shaped
    );
    let relay_us = 1e6 * sat.relay_cores / sat.rate.max(1.0);
    println!(
        "goal: relay CPU per durable send <= 1.3x the bare-quinn shape's -> {} ({relay_us:.1} us vs {shaped_us:.1} us: {:.2}x)",
        if relay_us <= 1.3 * shaped_us {
            "met"
        } else {
            "NOT met"
        },
        relay_us / shaped_us.max(0.001)
    );
    println!(
        "goal: p99 send->delivery < 5 ms at half rate -> {} ({} us)",
        if half.p99_us < 5000 { "met" } else { "NOT met" },
        half.p99_us
    );

    let conns = rt.block_on(idle_connections(&relay, &org, 1000));
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "relay RSS with {} authenticated idle connections: {} KiB",
        conns.len(),
        rss_kib(relay.child.id())
    );
    drop(conns);
    let _ = relay.child.kill();
    let _ = relay.child.wait();
}
