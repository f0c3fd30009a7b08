//! The QUIC server: accept loop with a connection limit, one task per connection, one
//! task per request stream, a push stream per subscription, and graceful shutdown that
//! lets in-flight requests (sends above all) finish and flush before the process exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postern_protocol::ErrorCode;
use postern_protocol::auth::EXPORTER_LABEL;
use postern_protocol::frame::{self, HEADER_LEN};
use postern_protocol::limits::{EXPORTER_LEN, MAX_FRAME_LEN};
use postern_protocol::message::Response;
use quinn::crypto::rustls::QuicServerConfig;
use quinn::{Endpoint, VarInt};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::budget::{Caps, address_key};
use crate::handler::{Effect, handle, lapsed};
use crate::hub::{Dropped, PushReceiver};
use crate::metrics::Metrics;
use crate::state::{Now, Session, Shared, unix_now};
use crate::tls::{RelayIdentity, TlsError, server_config};

/// Seconds a client has to deliver a whole request frame once it opened the stream.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for in-flight requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an owner connection re-checks its certificate's expiry without a request.
const ADMISSION_RECHECK: Duration = Duration::from_secs(30);

/// Streams a connection may have open before it is admitted or sends.
const UNBOUND_STREAMS: u32 = 4;
/// A stream's receive window: one request frame of the largest size, with its header.
const STREAM_WINDOW: VarInt = VarInt::from_u32((MAX_FRAME_LEN + HEADER_LEN) as u32);
/// A connection's receive window once it is admitted or sends (before: one frame), and
/// the most the relay sends it unacknowledged.
const BOUND_WINDOW: u64 = 4 * (MAX_FRAME_LEN + HEADER_LEN) as u64;

/// QUIC application close codes.
pub mod close {
    /// Normal close (client done, or relay shutting down).
    pub const DONE: u32 = 0;
    /// Closed after a protocol error; the error code is in the reason.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// Closed to make room: the connection was neither admitted nor sending when the
    /// relay was full (or more such connections waited than `max_pending_connections`).
    pub const BUSY: u32 = 2;
    /// Relay shutting down.
    pub const SHUTDOWN: u32 = 3;
    /// The subscription was dropped: the subscriber fell a whole push queue behind, or a
    /// newer subscription to its mailbox replaced it. Its envelopes are still stored.
    pub const SUBSCRIPTION_DROPPED: u32 = 4;
}

/// Builds the QUIC endpoint for the relay.
pub(crate) fn endpoint(
    identity: &RelayIdentity,
    listen: SocketAddr,
    shared: &Shared,
) -> Result<Endpoint, ServerError> {
    let tls = server_config(identity, &shared.config.public_host)?;
    let crypto = QuicServerConfig::try_from(tls).map_err(|e| ServerError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let limits = &shared.config.limits;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(
            Duration::from_secs(u64::from(limits.idle_timeout_secs))
                .try_into()
                .map_err(|_| ServerError::Tls("idle timeout out of range".into()))?,
        ))
        // Before a connection is admitted or sends, it may open few streams and have
        // little in flight; `raise_limits` lifts both once it is one or the other.
        .max_concurrent_bidi_streams(VarInt::from_u32(UNBOUND_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        // One request frame fits a stream's window; nothing needs more.
        .stream_receive_window(STREAM_WINDOW)
        .receive_window(STREAM_WINDOW)
        // What the relay keeps unacknowledged per connection (responses, pushes).
        .send_window(BOUND_WINDOW)
        // The protocol has no datagrams: none are accepted or buffered.
        .datagram_receive_buffer_size(None)
        .datagram_send_buffer_size(0);
    config.transport_config(Arc::new(transport));
    // Tokens for address validation are per-process; no migration (a member's address
    // is not tracked).
    config.migration(false);
    let socket = udp_socket(listen).map_err(ServerError::Bind)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| ServerError::Bind(std::io::Error::other("no async runtime")))?;
    Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        runtime,
    )
    .map_err(ServerError::Bind)
}

/// Socket buffer size asked for (the kernel caps it at `net.core.rmem_max` /
/// `wmem_max`). Every member's packets arrive on this one socket; with Linux's default
/// of 208 KiB a burst from many connections overflows it and the dropped packets cost
/// QUIC retransmissions (seen in `benches/load.rs` as `RcvbufErrors`).
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;

/// The relay's UDP socket, bound to `listen`, with large socket buffers.
fn udp_socket(listen: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(listen),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if listen.is_ipv6() {
        // Like the standard library: an IPv6 listen address means IPv6 only.
        socket.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer still works, only with more loss under bursts.
    for (set, name) in [
        (
            Socket::set_recv_buffer_size as fn(&Socket, usize) -> std::io::Result<()>,
            "receive",
        ),
        (Socket::set_send_buffer_size, "send"),
    ] {
        if let Err(e) = set(&socket, SOCKET_BUFFER) {
            tracing::warn!(error = %e, "could not enlarge the UDP {name} buffer");
        }
    }
    // Linux reports twice what it granted (bookkeeping overhead included).
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    if granted < SOCKET_BUFFER {
        tracing::info!(
            granted_kib = granted / 1024,
            wanted_kib = SOCKET_BUFFER / 1024,
            "UDP receive buffer capped by net.core.rmem_max; raise it on a busy relay"
        );
    }
    socket.bind(&listen.into())?;
    Ok(socket.into())
}

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen: {0}")]
    Bind(std::io::Error),
}

impl From<TlsError> for ServerError {
    fn from(e: TlsError) -> Self {
        ServerError::Tls(e.to_string())
    }
}

/// Serves until `shutdown` turns true, then drains and returns.
pub(crate) async fn serve(
    endpoint: Endpoint,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limits = &shared.config.limits;
    let max = limits.max_connections as usize;
    let limit = Arc::new(Semaphore::new(max));
    // Live connections per source address (IPv6: per /64), capped.
    let per_address = Caps::new(limits.max_connections_per_address);
    let handshake_timeout = Duration::from_secs(u64::from(limits.handshake_timeout_secs));
    let pending = Arc::new(PendingPool::new(limits.max_pending_connections as usize));
    let next_id = AtomicU64::new(1);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                // Under load (half the permits taken), a client must first prove its
                // address (a QUIC Retry: one round trip), so spoofed Initials take no
                // permit at all.
                if !incoming.remote_address_validated()
                    && incoming.may_retry()
                    && limit.available_permits() < max / 2
                {
                    let _ = incoming.retry();
                    continue;
                }
                let Some(address) = per_address.take(address_key(incoming.remote_address().ip())) else {
                    Metrics::inc(&shared.metrics.connections_refused);
                    incoming.refuse();
                    continue;
                };
                // Full: room is made by closing the oldest connection that is neither
                // admitted nor sending (a member finishing its handshake is never the
                // oldest for long); if every connection is one or the other, refused.
                let permit = match limit.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) if pending.evict_oldest() => {
                        Metrics::inc(&shared.metrics.pending_evicted);
                        None
                    }
                    Err(_) => {
                        Metrics::inc(&shared.metrics.connections_refused);
                        incoming.refuse();
                        continue;
                    }
                };
                let conn_id = next_id.fetch_add(1, Ordering::Relaxed);
                let (slot, evicted) = pending.enter(conn_id);
                if evicted {
                    Metrics::inc(&shared.metrics.pending_evicted);
                }
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                let limit = limit.clone();
                connections.spawn(async move {
                    let _address = address;
                    let permit = match permit {
                        Some(p) => p,
                        // The evicted connection gives its permit back as it closes.
                        None => match tokio::time::timeout(EVICTION_WAIT, limit.acquire_owned()).await {
                            Ok(Ok(p)) => p,
                            _ => {
                                incoming.refuse();
                                return;
                            }
                        },
                    };
                    let _permit = permit;
                    let mut slot = slot;
                    // A handshake that stalls (a client that sent its first packet and
                    // no more) gives its permit back after the handshake timeout, or
                    // sooner if it is evicted.
                    let conn = tokio::select! {
                        biased;
                        () = slot.evicted() => return,
                        r = tokio::time::timeout(handshake_timeout, incoming) => match r {
                            Ok(Ok(conn)) => conn,
                            Ok(Err(e)) => { tracing::debug!(error = %e, "handshake failed"); return; }
                            Err(_) => { tracing::debug!("handshake timed out"); return; }
                        },
                    };
                    connection(conn, conn_id, shared, shutdown, slot).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    // Stop taking connections; let every connection task drain its requests.
    endpoint.set_server_config(None);
    tracing::info!(
        open = connections.len(),
        "shutting down: draining connections"
    );
    let drained = tokio::time::timeout(DRAIN_TIMEOUT * 2, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("connections did not drain in time; closing them");
    }
    endpoint.close(VarInt::from_u32(close::SHUTDOWN), b"shutdown");
    endpoint.wait_idle().await;
}

async fn connection(
    conn: quinn::Connection,
    conn_id: u64,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    slot: PendingSlot,
) {
    let mut slot = Some(slot);
    Metrics::inc(&shared.metrics.connections_accepted);
    Metrics::inc(&shared.metrics.connections_open);
    let mut exporter = [0u8; EXPORTER_LEN];
    if conn
        .export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .is_err()
    {
        conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), b"exporter");
        shared
            .metrics
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let session = Arc::new(Session::new(
        conn_id,
        conn.remote_address().ip(),
        exporter,
        shared.config.limits.request_burst,
        std::time::Instant::now(),
    ));
    let mut requests = JoinSet::new();
    let (close_tx, mut close_rx) = mpsc::channel::<ErrorCode>(1);
    let mut subscribed = None;
    // An owner connection that makes no request (a subscriber) is still cut off when its
    // member is revoked (at once) or its certificate expires (within a check interval).
    let mut revocations = shared.revocation_version.subscribe();
    let mut recheck = tokio::time::interval(ADMISSION_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A connection that is neither admitted nor a send connection by then is closed: it
    // could otherwise hold a connection slot with pings alone.
    let bind_deadline = tokio::time::sleep(Duration::from_secs(u64::from(
        shared.config.limits.bind_timeout_secs,
    )));
    tokio::pin!(bind_deadline);
    let mut bound = false;
    loop {
        tokio::select! {
            () = async { if let Some(s) = slot.as_mut() { s.evicted().await } }, if slot.is_some() => {
                conn.close(VarInt::from_u32(close::BUSY), b"relay busy: not admitted in time");
                break;
            }
            () = &mut bind_deadline, if !bound => {
                if session.is_unbound() {
                    Metrics::inc(&shared.metrics.bind_timeouts);
                    conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), b"not admitted in time");
                    break;
                }
                bound = true;
            }
            changed = revocations.changed() => {
                if changed.is_err() {
                    continue;
                }
                if let Some(code) = lapsed(&shared, &session, unix_now()) {
                    conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), code.description().as_bytes());
                    break;
                }
            }
            _ = recheck.tick() => {
                if let Some(code) = lapsed(&shared, &session, unix_now()) {
                    conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), code.description().as_bytes());
                    break;
                }
            }
            stream = conn.accept_bi() => {
                let Ok((send, recv)) = stream else { break };
                let shared = shared.clone();
                let session = session.clone();
                let conn2 = conn.clone();
                let close_tx = close_tx.clone();
                requests.spawn(async move {
                    if let Some(effect) = request(send, recv, &shared, &session).await {
                        match effect {
                            Effect::None => {}
                            Effect::Close(code) => { let _ = close_tx.try_send(code); }
                            Effect::Subscribe(mb) => {
                                let (queue, replaced) = shared.hub.subscribe(mb, session.conn_id);
                                Metrics::add(&shared.metrics.subscribers_replaced, replaced as u64);
                                tokio::spawn(push_stream(conn2, queue));
                                return Some(mb);
                            }
                        }
                    }
                    None
                });
            }
            Some(done) = requests.join_next(), if !requests.is_empty() => {
                if let Ok(Some(mb)) = done {
                    subscribed = Some(mb);
                }
                if slot.is_some() && !session.is_unbound() {
                    // Admitted or sending: out of the pool that can be evicted.
                    slot = None;
                    raise_limits(&conn, &shared);
                }
            }
            Some(code) = close_rx.recv() => {
                conn.close(VarInt::from_u32(close::PROTOCOL_ERROR), code.description().as_bytes());
                break;
            }
            _ = shutdown.changed() => {
                // Finish what is in flight, then say goodbye.
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
                    while requests.join_next().await.is_some() {}
                }).await;
                conn.close(VarInt::from_u32(close::SHUTDOWN), b"relay shutting down");
                break;
            }
        }
    }
    // Requests already running finish (their sends are committed) before we go.
    while let Some(done) = requests.join_next().await {
        if let Ok(Some(mb)) = done {
            subscribed = Some(mb);
        }
    }
    if let Some(mb) = subscribed {
        shared.hub.unsubscribe(&mb, conn_id);
    }
    shared
        .metrics
        .connections_open
        .fetch_sub(1, Ordering::Relaxed);
}

/// Gives a connection that is now admitted or sending its full stream count and window.
fn raise_limits(conn: &quinn::Connection, shared: &Shared) {
    conn.set_max_concurrent_bi_streams(VarInt::from_u32(
        shared.config.limits.max_concurrent_requests,
    ));
    conn.set_receive_window(VarInt::from_u64(BOUND_WINDOW).unwrap_or(STREAM_WINDOW));
}

/// How long a new connection waits for the permit of the one evicted for it.
const EVICTION_WAIT: Duration = Duration::from_secs(2);

/// Connections still in their handshake or not yet admitted or sending, oldest first. At
/// most `max` of them; past that, or when the relay is full, the oldest is evicted: such
/// a connection has shown nothing yet, and a member's own connection leaves the pool
/// within a round trip or two of arriving.
#[derive(Debug)]
struct PendingPool {
    max: usize,
    queue: std::sync::Mutex<Waiting>,
}

/// Pending connections by id, oldest first, each with the sender whose drop evicts it.
type Waiting = std::collections::VecDeque<(u64, tokio::sync::oneshot::Sender<()>)>;

/// A connection's place in the [`PendingPool`]; it leaves the pool when dropped.
struct PendingSlot {
    pool: Arc<PendingPool>,
    id: u64,
    /// Fires (the sender dropped) when the connection is evicted.
    evicted: tokio::sync::oneshot::Receiver<()>,
}

impl PendingPool {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            queue: Default::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds connection `id`; also whether that evicted the oldest (the pool was full).
    fn enter(self: &Arc<Self>, id: u64) -> (PendingSlot, bool) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut q = self.lock();
        let evicted = q.len() >= self.max && q.pop_front().is_some();
        q.push_back((id, tx));
        (
            PendingSlot {
                pool: self.clone(),
                id,
                evicted: rx,
            },
            evicted,
        )
    }

    /// Evicts the oldest pending connection; false if there is none.
    fn evict_oldest(&self) -> bool {
        self.lock().pop_front().is_some()
    }
}

impl PendingSlot {
    /// Resolves once the connection was evicted.
    async fn evicted(&mut self) {
        let _ = (&mut self.evicted).await;
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.pool.lock().retain(|(id, _)| *id != self.id);
    }
}

/// Reads one request frame, handles it, writes the response. Returns the effect, or
/// `None` if the stream failed before a request was read.
async fn request(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    shared: &Shared,
    session: &Session,
) -> Option<Effect> {
    // A stream the client finished early is a truncated frame (Malformed); a stream that
    // broke (reset, connection lost) is nobody to answer (None).
    let truncated = |e: quinn::ReadExactError| match e {
        quinn::ReadExactError::FinishedEarly(_) => Some(ErrorCode::Malformed),
        quinn::ReadExactError::ReadError(_) => None,
    };
    let read = async {
        let mut header = [0u8; HEADER_LEN];
        recv.read_exact(&mut header).await.map_err(truncated)?;
        let len = frame::body_len(header).map_err(|e| Some(e.code()))?;
        // Buffer only what actually arrives (a header may promise 256 KiB and send
        // nothing); more than announced, or less before the stream ends, is malformed.
        let body = recv.read_to_end(len).await.map_err(|e| match e {
            quinn::ReadToEndError::TooLong => Some(ErrorCode::Malformed),
            quinn::ReadToEndError::Read(_) => None,
        })?;
        if body.len() != len {
            return Err(Some(ErrorCode::Malformed));
        }
        let req = frame::decode_request(&body).map_err(|e| Some(e.code()))?;
        Ok((body, req))
    };
    let outcome = match tokio::time::timeout(REQUEST_READ_TIMEOUT, read).await {
        Ok(Ok((_body, req))) => {
            #[cfg(any(test, feature = "testing"))]
            let seen = req.clone();
            let outcome = handle(shared, session, req, Now::current()).await;
            #[cfg(any(test, feature = "testing"))]
            shared
                .recorder
                .record(session.conn_id, &_body, &seen, &outcome.0);
            outcome
        }
        Ok(Err(Some(code))) => {
            Metrics::inc(&shared.metrics.malformed_frames);
            (Response::Error(code), Effect::Close(code))
        }
        Ok(Err(None)) | Err(_) => return None,
    };
    let (resp, effect) = outcome;
    if let Ok(bytes) = frame::encode_frame(&resp)
        && send.write_all(&bytes).await.is_ok()
        && send.finish().is_ok()
        && matches!(effect, Effect::Close(_))
    {
        // Let the error reach the client before the connection is closed.
        let _ = tokio::time::timeout(Duration::from_secs(2), send.stopped()).await;
    }
    Some(effect)
}

/// Writes pushes to one relay-opened unidirectional stream until the queue ends or the
/// connection goes. A subscriber the hub dropped (too slow, or replaced) has its
/// connection closed at once, even while a write waits on the peer's flow control: that
/// frees its queue and QUIC's buffers; its envelopes stay stored for its next fetch.
async fn push_stream(conn: quinn::Connection, mut queue: PushReceiver) {
    let Ok(mut stream) = conn.open_uni().await else {
        return;
    };
    let why = loop {
        let frame = match queue.next().await {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let _ = stream.finish();
                return;
            }
            Err(why) => break why,
        };
        let written = tokio::select! {
            biased;
            why = queue.dropped() => break why,
            r = stream.write_chunk(frame.clone()) => r.is_ok(),
        };
        queue.written(&frame);
        if !written {
            return;
        }
    };
    let reason: &[u8] = match why {
        Dropped::TooSlow => b"push queue full: fetch to catch up",
        Dropped::Replaced => b"replaced by a newer subscription",
    };
    let _ = stream.reset(VarInt::from_u32(close::SUBSCRIPTION_DROPPED));
    conn.close(VarInt::from_u32(close::SUBSCRIPTION_DROPPED), reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the kernel allows an unprivileged socket to ask for, if it says.
    fn kernel_max(name: &str) -> Option<usize> {
        std::fs::read_to_string(format!("/proc/sys/net/core/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    #[test]
    fn the_relay_socket_gets_the_largest_buffers_the_kernel_allows() {
        let socket = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let socket = socket2::Socket::from(socket);
        for (got, max) in [
            (socket.recv_buffer_size().unwrap(), kernel_max("rmem_max")),
            (socket.send_buffer_size().unwrap(), kernel_max("wmem_max")),
        ] {
            let Some(max) = max else { continue };
            // Linux reports twice what was set (the bookkeeping overhead).
            assert!(
                got >= 2 * SOCKET_BUFFER.min(max),
                "buffer {got} bytes; the kernel allows {max}"
            );
        }
    }

    #[test]
    fn an_ipv6_listen_address_binds_ipv6_only() {
        // Not every machine has IPv6 loopback; skip where it cannot bind at all.
        let Ok(socket) = udp_socket("[::1]:0".parse().unwrap()) else {
            return;
        };
        assert!(socket2::Socket::from(socket).only_v6().unwrap());
    }
}
