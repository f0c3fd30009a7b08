//! A client connection to a relay: pinned-key QUIC, `Hello`, admission, one request per
//! stream, and the push stream.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use postern_identity::{DeviceKeyPair, RelayAddress};
use postern_protocol::ErrorCode;
use postern_protocol::auth::{
    AUTHENTICATE_CONTEXT, EXPORTER_LABEL, OPEN_MAILBOX_CONTEXT, SEND_CONTEXT, authenticate_message,
    open_mailbox_message, send_message,
};
use postern_protocol::bytes::{BoundedVec, Bytes, FixedBytes};
use postern_protocol::frame::{self, FrameDecoder, HEADER_LEN};
use postern_protocol::ids::MailboxId;
use postern_protocol::limits::EXPORTER_LEN;
use postern_protocol::message::*;
use postern_protocol::version::SUPPORTED_VERSIONS;
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{Endpoint, VarInt};

use crate::error::TransportError;
use crate::tls::client_config;

/// A client endpoint: one UDP socket on an ephemeral port.
pub fn client_endpoint(ipv6: bool) -> Result<Endpoint, TransportError> {
    let bind: SocketAddr = if ipv6 {
        SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    Endpoint::client(bind).map_err(|e| TransportError::Connect(e.to_string()))
}

/// How long the QUIC handshake may take (an unreachable relay answers nothing at all).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A signer for `Authenticate`: signs `context || message` with the device key.
pub trait DeviceSigner {
    /// The encoded member certificate.
    fn certificate(&self) -> Vec<u8>;
    /// Ed25519 signature over `context || message` by the certificate's device key.
    fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64];
}

/// One QUIC connection to a relay.
#[derive(Debug)]
pub struct RelayConnection {
    /// Kept so the endpoint lives as long as the connection.
    endpoint: Endpoint,
    /// The connection.
    conn: quinn::Connection,
    /// Challenge from `Welcome`.
    challenge: [u8; 32],
    /// TLS exporter value of this connection.
    exporter: [u8; EXPORTER_LEN],
    /// Maximum TTL, from `Authenticated`.
    max_ttl_secs: Option<u32>,
}

impl RelayConnection {
    /// Connects to `address`, checking the relay's key against the address's pin, and
    /// says `Hello`.
    pub async fn connect(address: &RelayAddress) -> Result<Self, TransportError> {
        let target = format!("{}:{}", address.host(), address.port());
        let addr: SocketAddr = target
            .to_socket_addrs()
            .map_err(|_| TransportError::Resolve(target.clone()))?
            .next()
            .ok_or_else(|| TransportError::Resolve(target.clone()))?;
        let endpoint = client_endpoint(addr.is_ipv6())?;
        Self::connect_named(&endpoint, addr, address.host(), *address.pin()).await
    }

    /// Connects to a socket address with a pin, on a new local endpoint (no server name
    /// is sent).
    pub async fn connect_addr(addr: SocketAddr, pin: [u8; 32]) -> Result<Self, TransportError> {
        let endpoint = client_endpoint(addr.is_ipv6())?;
        Self::connect_on(&endpoint, addr, pin).await
    }

    /// Connects through an existing endpoint (many connections can share one socket); no
    /// server name is sent.
    pub async fn connect_on(
        endpoint: &Endpoint,
        addr: SocketAddr,
        pin: [u8; 32],
    ) -> Result<Self, TransportError> {
        Self::connect_named(endpoint, addr, &addr.ip().to_string(), pin).await
    }

    /// Connects through `endpoint`, presenting `host` as the TLS server name when it is a
    /// DNS name (an IP literal sends none, as every TLS client does). The name is what an
    /// observer reads in the ClientHello; the relay is authenticated by `pin` alone.
    pub async fn connect_named(
        endpoint: &Endpoint,
        addr: SocketAddr,
        host: &str,
        pin: [u8; 32],
    ) -> Result<Self, TransportError> {
        let tls = client_config(pin)?;
        let crypto =
            QuicClientConfig::try_from(tls).map_err(|e| TransportError::Connect(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(Duration::from_secs(10)));
        config.transport_config(Arc::new(transport));
        let endpoint = endpoint.clone();
        let connecting = endpoint
            .connect_with(config, addr, host)
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| {
                TransportError::Connect(format!(
                    "no answer from {addr} within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let mut exporter = [0u8; EXPORTER_LEN];
        conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
            .map_err(|_| TransportError::Connect("TLS exporter unavailable".into()))?;
        let mut this = Self {
            endpoint,
            conn,
            challenge: [0; 32],
            exporter,
            max_ttl_secs: None,
        };
        let hello = Request::Hello(Hello {
            versions: BoundedVec::new(SUPPORTED_VERSIONS.to_vec()).unwrap_or_default(),
        });
        match this.request(&hello).await? {
            Response::Welcome(w) => this.challenge = w.challenge.0,
            _ => return Err(TransportError::UnexpectedResponse),
        }
        Ok(this)
    }

    /// What an `Authenticate` signature covers on this connection (after its context).
    pub fn binding(&self) -> Vec<u8> {
        authenticate_message(&self.exporter, &self.challenge)
    }

    /// Authenticates with the member's certificate and device key.
    pub async fn authenticate(
        &mut self,
        signer: &(dyn DeviceSigner + Sync),
    ) -> Result<u32, TransportError> {
        let signature = signer.sign(AUTHENTICATE_CONTEXT, &self.binding());
        let req = Request::Authenticate(Authenticate {
            certificate: Bytes::new(signer.certificate())
                .map_err(|_| TransportError::Refused(ErrorCode::Malformed))?,
            signature: FixedBytes(signature),
        });
        match self.request(&req).await? {
            Response::Authenticated(a) => {
                self.max_ttl_secs = Some(a.max_ttl_secs);
                Ok(a.max_ttl_secs)
            }
            _ => Err(TransportError::UnexpectedResponse),
        }
    }

    /// The maximum TTL the relay announced at admission.
    pub fn max_ttl_secs(&self) -> Option<u32> {
        self.max_ttl_secs
    }

    /// What an `OpenMailbox` signature covers on this connection (after its context).
    pub fn open_mailbox_message(&self, recipient: &MailboxId) -> Vec<u8> {
        open_mailbox_message(&self.exporter, &self.challenge, recipient)
    }

    /// Opens a mailbox on this connection with its owner key.
    pub async fn open_mailbox(
        &mut self,
        recipient: MailboxId,
        owner: &DeviceKeyPair,
    ) -> Result<u32, TransportError> {
        let signature = owner.sign(OPEN_MAILBOX_CONTEXT, &self.open_mailbox_message(&recipient));
        let req = Request::OpenMailbox(OpenMailbox {
            recipient,
            signature: FixedBytes(signature),
        });
        match self.request(&req).await? {
            Response::MailboxOpened(o) => Ok(o.pending),
            _ => Err(TransportError::UnexpectedResponse),
        }
    }

    /// What a `Send` signature covers on this connection (after its context).
    pub fn send_message(&self, to: &MailboxId) -> Vec<u8> {
        send_message(&self.exporter, &self.challenge, to)
    }

    /// Stores `body` in the mailbox whose sender id is `to`, signed with that mailbox's
    /// sender key. The connection must carry no identity (never `authenticate` on it).
    pub async fn send(
        &self,
        to: MailboxId,
        ttl_secs: u32,
        body: EnvelopeBody,
        sender_key: &DeviceKeyPair,
    ) -> Result<Sent, TransportError> {
        let signature = sender_key.sign(SEND_CONTEXT, &self.send_message(&to));
        let req = Request::Send(SendEnvelope {
            to,
            ttl_secs,
            body,
            signature: FixedBytes(signature),
        });
        match self.request(&req).await? {
            Response::Sent(s) => Ok(s),
            _ => Err(TransportError::UnexpectedResponse),
        }
    }

    /// Sends one request and returns its response; an `Error` response becomes
    /// [`TransportError::Refused`].
    pub async fn request(&self, req: &Request) -> Result<Response, TransportError> {
        let bytes =
            frame::encode_frame(req).map_err(|_| TransportError::Refused(ErrorCode::Malformed))?;
        match self.raw_request(&bytes).await? {
            Response::Error(code) => Err(TransportError::Refused(code)),
            other => Ok(other),
        }
    }

    /// Writes raw bytes as a request (tests use it to send hostile frames) and reads the
    /// response.
    pub async fn raw_request(&self, bytes: &[u8]) -> Result<Response, TransportError> {
        let work = async {
            let (mut send, mut recv) = self
                .conn
                .open_bi()
                .await
                .map_err(|e| TransportError::Connection(e.to_string()))?;
            send.write_all(bytes)
                .await
                .map_err(|e| TransportError::Connection(e.to_string()))?;
            let _ = send.finish();
            let mut header = [0u8; HEADER_LEN];
            recv.read_exact(&mut header)
                .await
                .map_err(|e| TransportError::Connection(e.to_string()))?;
            let len = frame::body_len(header)?;
            let body = recv
                .read_to_end(len)
                .await
                .map_err(|e| TransportError::Connection(e.to_string()))?;
            if body.len() != len {
                return Err(TransportError::Connection("response truncated".into()));
            }
            Ok(frame::decode_response(&body)?)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| TransportError::Timeout)?
    }

    /// Subscribes the open mailbox and returns the push stream.
    pub async fn subscribe(&self) -> Result<PushStream, TransportError> {
        match self.request(&Request::Subscribe).await? {
            Response::Subscribed => {}
            _ => return Err(TransportError::UnexpectedResponse),
        }
        // QUIC announces the relay's stream only with its first bytes, so it is accepted
        // lazily, on the first `next`.
        Ok(PushStream {
            conn: self.conn.clone(),
            recv: None,
            decoder: FrameDecoder::new(),
        })
    }

    /// Closes the connection politely (waits briefly so the close reaches the relay).
    pub async fn close(self) {
        self.conn.close(VarInt::from_u32(0), b"bye");
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }

    /// The underlying QUIC connection (tests inspect close reasons).
    pub fn quic(&self) -> &quinn::Connection {
        &self.conn
    }
}

/// Pushes from the relay for a subscribed mailbox.
#[derive(Debug)]
pub struct PushStream {
    /// The connection the stream arrives on.
    conn: quinn::Connection,
    /// The relay-opened unidirectional stream, once it arrived.
    recv: Option<quinn::RecvStream>,
    /// Splits it into frames.
    decoder: FrameDecoder,
}

impl PushStream {
    /// The next push; `Ok(None)` when the relay ended the stream.
    pub async fn next(&mut self) -> Result<Option<Push>, TransportError> {
        loop {
            if let Some(body) = self.decoder.next_body()? {
                return Ok(Some(frame::decode_push(&body)?));
            }
            let recv = match &mut self.recv {
                Some(r) => r,
                None => {
                    let r = self
                        .conn
                        .accept_uni()
                        .await
                        .map_err(|e| TransportError::Connection(e.to_string()))?;
                    self.recv.insert(r)
                }
            };
            let mut buf = [0u8; 16 * 1024];
            match recv.read(&mut buf).await {
                Ok(Some(n)) => self.decoder.push(&buf[..n]),
                Ok(None) => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
                Err(e) => return Err(TransportError::Connection(e.to_string())),
            }
        }
    }
}
