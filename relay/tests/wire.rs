//! What a network observer and an active prober see of the QUIC transport.
//!
//! The Great Firewall decrypts QUIC Initial packets (their keys derive from a connection
//! id sent in clear) and reads the ClientHello's server name and ALPN. These tests do the
//! same to a recorded session: every datagram between a real client and a real relay
//! passes through a recording UDP forwarder, the Initials are decrypted with quinn's own
//! Initial keys, and the ClientHello is parsed by rustls. Nothing may name Postern.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use common::*;
use quinn::crypto::ServerConfig as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::UdpSocket;

/// Which way a datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToRelay,
    ToClient,
}

/// Every datagram that crossed the forwarder, in order.
type Capture = Arc<Mutex<Vec<(Dir, Vec<u8>)>>>;

/// A UDP forwarder in front of `relay` that records every datagram both ways; each
/// client address gets its own upstream socket, as a NAT would give it.
async fn recording_forwarder(relay: SocketAddr) -> (SocketAddr, Capture) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    let capture: Capture = Arc::default();
    let cap = capture.clone();
    tokio::spawn(async move {
        let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, client)) = front.recv_from(&mut buf).await else {
                return;
            };
            cap.lock().unwrap().push((Dir::ToRelay, buf[..n].to_vec()));
            let up = match upstreams.get(&client) {
                Some(up) => up.clone(),
                None => {
                    let up = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                    up.connect(relay).await.unwrap();
                    let (up2, front2, cap2) = (up.clone(), front.clone(), cap.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65_536];
                        while let Ok(n) = up2.recv(&mut buf).await {
                            cap2.lock()
                                .unwrap()
                                .push((Dir::ToClient, buf[..n].to_vec()));
                            let _ = front2.send_to(&buf[..n], client).await;
                        }
                    });
                    upstreams.insert(client, up.clone());
                    up
                }
            };
            let _ = up.send(&buf[..n]).await;
        }
    });
    (addr, capture)
}

/// A QUIC variable-length integer at `*at`, advancing it.
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let first = *b.get(*at)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*at..*at + len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    *at += len;
    Some(v)
}

/// The clear part of a long-header QUIC packet.
struct LongHeader {
    /// Packet type (0 Initial, 1 0-RTT, 2 Handshake, 3 Retry).
    ty: u8,
    /// Destination connection id.
    dcid: Vec<u8>,
    /// Source connection id.
    scid: Vec<u8>,
    /// Where the (protected) packet number starts.
    pn_offset: usize,
    /// Where the packet ends in its datagram.
    end: usize,
}

/// The long-header packet at the start of `d`; `None` for a short header.
fn long_header(d: &[u8]) -> Option<LongHeader> {
    if d.first()? & 0x80 == 0 {
        return None;
    }
    let ty = (d[0] >> 4) & 0x03;
    let mut at = 5;
    let dl = usize::from(*d.get(at)?);
    let dcid = d.get(at + 1..at + 1 + dl)?.to_vec();
    at += 1 + dl;
    let sl = usize::from(*d.get(at)?);
    let scid = d.get(at + 1..at + 1 + sl)?.to_vec();
    at += 1 + sl;
    if ty == 3 {
        // Retry: no length; it is the rest of the datagram.
        return Some(LongHeader {
            ty,
            dcid,
            scid,
            pn_offset: at,
            end: d.len(),
        });
    }
    if ty == 0 {
        let token = usize::try_from(varint(d, &mut at)?).ok()?;
        at += token;
    }
    let len = usize::try_from(varint(d, &mut at)?).ok()?;
    Some(LongHeader {
        ty,
        dcid,
        scid,
        pn_offset: at,
        end: at + len,
    })
}

/// Decrypts one Initial packet with keys from `cid`; `None` if they are the wrong keys.
fn open_initial(packet: &[u8], pn_offset: usize, cid: &[u8], dir: Dir) -> Option<Vec<u8>> {
    let tls = postern_relay::tls::server_config(
        &postern_relay::tls::RelayIdentity::generate().unwrap(),
        "127.0.0.1",
    )
    .unwrap();
    let server = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let keys = server
        .initial_keys(1, &quinn::ConnectionId::new(cid))
        .unwrap();
    // The relay's view: packets from the client are opened with its remote keys.
    let (header_key, packet_key) = match dir {
        Dir::ToRelay => (&keys.header.remote, &keys.packet.remote),
        Dir::ToClient => (&keys.header.local, &keys.packet.local),
    };
    let mut p = packet.to_vec();
    header_key.decrypt(pn_offset, &mut p);
    let pn_len = usize::from(p[0] & 0x03) + 1;
    let mut pn = 0u64;
    for &x in p.get(pn_offset..pn_offset + pn_len)? {
        pn = (pn << 8) | u64::from(x);
    }
    let header_len = pn_offset + pn_len;
    let mut payload = BytesMut::from(&p[header_len..]);
    packet_key
        .decrypt(pn, &p[..header_len], &mut payload)
        .ok()?;
    Some(payload.to_vec())
}

/// The CRYPTO frames of a decrypted Initial payload, as (offset, data).
fn crypto_frames(payload: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < payload.len() {
        let Some(ty) = varint(payload, &mut at) else {
            break;
        };
        match ty {
            0x00 | 0x01 => {}
            0x02 | 0x03 => {
                let _largest = varint(payload, &mut at);
                let _delay = varint(payload, &mut at);
                let ranges = varint(payload, &mut at).unwrap_or(0);
                let _first = varint(payload, &mut at);
                for _ in 0..ranges * 2 {
                    varint(payload, &mut at);
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        varint(payload, &mut at);
                    }
                }
            }
            0x06 => {
                let off = varint(payload, &mut at).unwrap();
                let len = usize::try_from(varint(payload, &mut at).unwrap()).unwrap();
                out.push((off, payload[at..at + len].to_vec()));
                at += len;
            }
            0x1c => {
                let _code = varint(payload, &mut at);
                let _frame = varint(payload, &mut at);
                let len = usize::try_from(varint(payload, &mut at).unwrap_or(0)).unwrap();
                at += len;
            }
            other => panic!("unexpected frame type {other:#x} in an Initial packet"),
        }
    }
    out
}

/// What an observer decrypts from a capture: the handshake bytes each way in Initial
/// packets, one entry per connection (keyed by the client's first connection id).
#[derive(Default)]
struct Decrypted {
    /// Client's CRYPTO stream per connection.
    from_client: BTreeMap<Vec<u8>, BTreeMap<u64, Vec<u8>>>,
    /// Relay's CRYPTO stream per connection.
    from_relay: BTreeMap<Vec<u8>, BTreeMap<u64, Vec<u8>>>,
    /// Initial packets seen (each decrypted).
    initials: usize,
}

fn decrypt_initials(capture: &[(Dir, Vec<u8>)]) -> Decrypted {
    let mut out = Decrypted::default();
    // Keys come from the client's first destination id (or a Retry's new one).
    let mut candidates: Vec<Vec<u8>> = Vec::new();
    for (dir, datagram) in capture {
        let mut rest = &datagram[..];
        while let Some(LongHeader {
            ty,
            dcid,
            scid,
            pn_offset,
            end,
        }) = long_header(rest)
        {
            let packet = &rest[..end.min(rest.len())];
            if ty == 3 {
                candidates.push(scid.clone());
            }
            if ty == 0 {
                if *dir == Dir::ToRelay && !candidates.contains(&dcid) {
                    candidates.push(dcid.clone());
                }
                let opened = candidates
                    .iter()
                    .find_map(|cid| open_initial(packet, pn_offset, cid, *dir).map(|p| (cid, p)));
                let (cid, payload) = opened.expect("every Initial opens with public keys");
                out.initials += 1;
                let streams = match dir {
                    Dir::ToRelay => &mut out.from_client,
                    Dir::ToClient => &mut out.from_relay,
                };
                let stream = streams.entry(cid.clone()).or_default();
                for (off, data) in crypto_frames(&payload) {
                    stream.insert(off, data);
                }
            }
            rest = &rest[end.min(rest.len())..];
        }
    }
    out
}

/// A CRYPTO stream's contiguous bytes from offset 0.
fn assemble(frames: &BTreeMap<u64, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (&off, data) in frames {
        let off = usize::try_from(off).unwrap();
        if off > out.len() {
            break;
        }
        let skip = out.len() - off;
        if skip < data.len() {
            out.extend_from_slice(&data[skip..]);
        }
    }
    out
}

/// The server name and ALPN ids of a ClientHello (a TLS handshake message), parsed by
/// rustls as a TLS server would.
fn client_hello(handshake: &[u8]) -> (Option<String>, Vec<Vec<u8>>) {
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).unwrap().to_be_bytes());
    record.extend_from_slice(handshake);
    let mut acceptor = rustls::server::Acceptor::default();
    acceptor.read_tls(&mut &record[..]).unwrap();
    let accepted = acceptor
        .accept()
        .map_err(|(e, _)| e)
        .unwrap()
        .expect("a whole ClientHello");
    let hello = accepted.client_hello();
    let name = hello.server_name().map(str::to_owned);
    let alpn = hello
        .alpn()
        .map(|ids| ids.map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    (name, alpn)
}

fn names_postern(bytes: &[u8]) -> bool {
    bytes.windows(7).any(|w| w.eq_ignore_ascii_case(b"postern"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decrypted_quic_session_names_no_postern_and_offers_only_h3() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, unlimited_anonymous);
    let relay = start(&data).await;
    let p = pin(&data);
    let (fwd, capture) = recording_forwarder(relay.local_addr).await;

    // A whole session: an owner connection creates and opens a mailbox, an anonymous
    // one sends to it, the owner fetches it; both through the recording forwarder.
    let alice = org.member("alice");
    let (owner, mb) = with_mailbox(fwd, p, &alice).await;
    let sender = anonymous(fwd, p).await;
    sent(mb.send(&sender, 3600, b"the parcel crossed at dawn").await);
    assert_eq!(fetched(&owner, 10).await.envelopes.len(), 1);
    sender.close().await;
    owner.close().await;

    let capture = capture.lock().unwrap().clone();
    assert!(capture.len() > 10, "the forwarder saw the session");
    for (dir, d) in &capture {
        assert!(!names_postern(d), "a {dir:?} datagram names postern");
    }
    let seen = decrypt_initials(&capture);
    assert_eq!(seen.from_client.len(), 2, "two connections' ClientHellos");
    assert!(seen.initials >= 4);
    for frames in seen.from_client.values() {
        let hello = assemble(frames);
        assert!(!names_postern(&hello), "the ClientHello names postern");
        let (name, alpn) = client_hello(&hello);
        // The address's host is an IP literal: no server name at all.
        assert_eq!(name, None);
        assert_eq!(alpn, vec![b"h3".to_vec()]);
    }
    for frames in seen.from_relay.values() {
        let server_hello = assemble(frames);
        assert!(!server_hello.is_empty());
        assert!(
            !names_postern(&server_hello),
            "the ServerHello names postern"
        );
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_address_with_a_domain_presents_it_as_the_server_name() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.public_host = "cdn-static.example.org".into());
    let relay = start(&data).await;
    let (fwd, capture) = recording_forwarder(relay.local_addr).await;
    let endpoint = postern_transport::connection::client_endpoint(false).unwrap();
    let conn = postern_transport::RelayConnection::connect_named(
        &endpoint,
        fwd,
        "cdn-static.example.org",
        pin(&data),
    )
    .await
    .unwrap();
    conn.close().await;
    let seen = decrypt_initials(&capture.lock().unwrap());
    let hello = assemble(seen.from_client.values().next().unwrap());
    let (name, alpn) = client_hello(&hello);
    assert_eq!(name.as_deref(), Some("cdn-static.example.org"));
    assert_eq!(alpn, vec![b"h3".to_vec()]);
    assert!(!names_postern(&hello));
    relay.shutdown().await;
}

/// Accepts any certificate: an active prober's client, which wants to see what the
/// relay shows rather than to trust it.
#[derive(Debug)]
struct Prober(rustls::crypto::WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Prober {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The certificate a prober speaking HTTP/3's ALPN is shown by the relay at `addr`.
async fn probed_certificate(addr: SocketAddr, server_name: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Prober(
            provider.signature_verification_algorithms,
        )))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h3".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let endpoint = postern_transport::connection::client_endpoint(false).unwrap();
    let conn = endpoint
        .connect_with(
            quinn::ClientConfig::new(Arc::new(crypto)),
            addr,
            server_name,
        )
        .unwrap()
        .await
        .unwrap();
    let chain = conn
        .peer_identity()
        .unwrap()
        .downcast::<Vec<CertificateDer<'static>>>()
        .unwrap();
    conn.close(0u32.into(), b"");
    chain[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prober_is_shown_a_certificate_for_the_operators_domain_and_nothing_else() {
    let org = Org::new();
    let (_d, data) = relay_dir(&org, |c| c.public_host = "cdn-static.example.org".into());
    let relay = start(&data).await;
    let cert = probed_certificate(relay.local_addr, "cdn-static.example.org").await;
    assert!(!names_postern(&cert), "the certificate names postern");
    assert!(
        !contains(&cert, b"rcgen"),
        "the certificate names its generator"
    );
    let der = CertificateDer::from(cert.as_slice());
    let parsed = webpki::EndEntityCert::try_from(&der).unwrap();
    let name = ServerName::try_from("cdn-static.example.org").unwrap();
    parsed.verify_is_valid_for_subject_name(&name).unwrap();
    // Same key as the pin, whatever name the certificate carries.
    assert_eq!(postern_transport::tls::spki_pin(&cert), Some(pin(&data)));
    relay.shutdown().await;

    // A relay reached by IP shows a certificate that names nothing.
    let (_d, data) = relay_dir(&org, |_| {});
    let relay = start(&data).await;
    let cert = probed_certificate(relay.local_addr, "127.0.0.1").await;
    assert!(!names_postern(&cert) && !contains(&cert, b"rcgen"));
    let der = CertificateDer::from(cert.as_slice());
    let parsed = webpki::EndEntityCert::try_from(&der).unwrap();
    let ip = ServerName::try_from("127.0.0.1").unwrap();
    assert!(parsed.verify_is_valid_for_subject_name(&ip).is_err());
    relay.shutdown().await;
}
