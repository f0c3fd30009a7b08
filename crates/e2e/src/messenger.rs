//! Sending and receiving: PQXDH session set-up from a bundle, the ratchet, sealed sender
//! for every message, trust checked against member certificates, and the received
//! message stored in the same vault transaction as the ratchet state.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use libsignal_protocol::{
    CiphertextMessageType, DeviceId, IdentityKey, PreKeySignalMessage, ProtocolAddress, PublicKey,
    SenderCertificate, SignalMessage, SignalProtocolError, message_decrypt_prekey,
    message_decrypt_signal, process_prekey_bundle, sealed_sender_decrypt_to_usmc,
    sealed_sender_encrypt,
};
use rand::TryRngCore;
use zeroize::Zeroizing;

use crate::bundle::decode_bundle;
use crate::error::E2eError;
use crate::fingerprint::SafetyNumber;
use crate::keys::{LOCAL_NAME, SENDER_CERT};
use crate::plaintext::{ContentType, MessageId, Plaintext};
use crate::sender_certificate::MEMBER_DEVICE_ID;
use crate::trust::MemberTrust;
use crate::vault::store::{Stores, address_key};
use crate::vault::{StoredMessage, Table, Tx, Vault, VaultError, message_key};
use crate::{run, timestamp, unix_ms};

/// The version byte of a sealed-sender v1 message, the only kind accepted.
pub const SEALED_SENDER_V1: u8 = 0x11;

/// The largest sealed message accepted: the protocol's largest envelope bucket (64 KiB)
/// holds the sealed message plus at least one padding byte.
pub const MAX_SEALED_LEN: usize = 64 * 1024 - 1;

/// What [`Messenger::receive`] made of an envelope.
#[derive(Debug)]
pub enum Received {
    /// A new message, now stored in the vault.
    New(StoredMessage),
    /// A message id already received from this sender (a resend): the ratchet advanced,
    /// nothing new is stored.
    Duplicate {
        /// Sender.
        sender: String,
        /// The repeated id.
        id: MessageId,
    },
    /// The message had already expired on arrival: the ratchet advanced, nothing stored.
    Expired {
        /// Sender.
        sender: String,
        /// Its id.
        id: MessageId,
    },
}

/// An encrypted, sealed message ready for the relay (to be padded into an envelope).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The message id inside.
    pub id: MessageId,
    /// Sealed-sender v1 ciphertext.
    pub sealed: Vec<u8>,
}

/// The end-to-end API over one vault: trust decisions come from `trust`; sender
/// certificates must chain to `trust_root` (the org's sealed-sender trust root).
pub struct Messenger<'a> {
    /// The member's vault.
    vault: &'a Vault,
    /// Member certificates and revocations.
    trust: &'a dyn MemberTrust,
    /// The org's sealed-sender trust root (from the org descriptor).
    trust_root: PublicKey,
    /// Longest a received message is kept from its receipt, whatever expiry its sender
    /// wrote (the org's maximum TTL; `None`: the sender's expiry as written).
    max_ttl: Option<Duration>,
}

fn member_address(name: &str) -> Result<ProtocolAddress, E2eError> {
    let device = DeviceId::new(MEMBER_DEVICE_ID).map_err(|_| E2eError::BadAddress)?;
    Ok(ProtocolAddress::new(name.to_owned(), device))
}

fn take(failure: &RefCell<Option<E2eError>>) -> Option<E2eError> {
    failure.borrow_mut().take()
}

impl<'a> Messenger<'a> {
    /// `trust_root` is the 33-byte serialized sealed-sender trust root.
    pub fn new(
        vault: &'a Vault,
        trust: &'a dyn MemberTrust,
        trust_root: &[u8],
    ) -> Result<Self, E2eError> {
        let trust_root =
            PublicKey::deserialize(trust_root).map_err(|_| E2eError::SenderCertificateInvalid)?;
        Ok(Self {
            vault,
            trust,
            trust_root,
            max_ttl: None,
        })
    }

    /// Keeps received messages at most `max_ttl` from their receipt: a sender cannot make
    /// a message outlive the org's policy on the recipient's device.
    pub fn with_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = Some(max_ttl);
        self
    }

    /// A messenger whose sealed-sender trust root is the one certified in the org
    /// descriptor (which the caller has checked is signed by its org's root), and which
    /// keeps received messages no longer than the descriptor's maximum TTL from receipt.
    pub fn for_org(
        vault: &'a Vault,
        trust: &'a dyn MemberTrust,
        descriptor: &postern_identity::OrgDescriptor,
    ) -> Result<Self, E2eError> {
        let body = descriptor.body();
        Ok(
            Self::new(vault, trust, &body.sealed_sender_trust_root.to_bytes())?
                .with_max_ttl(Duration::from_secs(body.policy.max_ttl_secs)),
        )
    }

    fn certified(&self, peer: &str, now: SystemTime) -> Result<IdentityKey, E2eError> {
        self.trust
            .certified_identity(peer, now)
            .map_err(|reason| E2eError::Untrusted {
                peer: peer.to_owned(),
                reason,
            })
    }

    /// Starts a session with `peer` from its encoded prekey bundle (PQXDH). The bundle's
    /// identity key must be the one in `peer`'s valid member certificate.
    pub fn start_session(
        &self,
        peer: &str,
        bundle: &[u8],
        now: SystemTime,
    ) -> Result<(), E2eError> {
        let bundle = decode_bundle(bundle)?;
        let certified = self.certified(peer, now)?;
        if *bundle.identity_key()? != certified {
            return Err(E2eError::IdentityMismatch {
                peer: peer.to_owned(),
            });
        }
        if u8::from(bundle.device_id()?) != MEMBER_DEVICE_ID {
            return Err(E2eError::BadAddress);
        }
        let addr = member_address(peer)?;
        let tx = self.vault.begin()?;
        let failure = RefCell::new(None);
        let stores = Stores {
            tx: &tx,
            trust: self.trust,
            now,
            failure: &failure,
        };
        let (mut sessions, mut identities) = (stores, stores);
        let mut rng = rand::rngs::OsRng.unwrap_err();
        run(process_prekey_bundle(
            &addr,
            &mut sessions,
            &mut identities,
            &bundle,
            now,
            &mut rng,
        ))
        .map_err(|e| take(&failure).unwrap_or(E2eError::Signal(e)))?;
        tx.commit()?;
        Ok(())
    }

    /// Whether a session with `peer` exists.
    pub fn has_session(&self, peer: &str) -> Result<bool, E2eError> {
        Ok(self
            .vault
            .get(Table::Session, &address_key(&member_address(peer)?))?
            .is_some())
    }

    /// Encrypts and seals a new message to `peer` with a fresh id, expiring `ttl` after
    /// `now`.
    pub fn send(
        &self,
        peer: &str,
        content_type: ContentType,
        body: &[u8],
        ttl: Duration,
        now: SystemTime,
    ) -> Result<Outgoing, E2eError> {
        let sent = unix_ms(now);
        let plaintext = Plaintext {
            id: MessageId::random(),
            content_type,
            sent_at_ms: sent,
            expires_at_ms: sent.saturating_add(ttl.as_millis().max(1) as u64),
            body: body.to_vec(),
        };
        self.send_plaintext(peer, &plaintext, now)
    }

    /// Encrypts and seals `plaintext` to `peer` (a resend keeps its id, so the peer
    /// de-duplicates it). The ratchet step is committed before the envelope is returned.
    pub fn send_plaintext(
        &self,
        peer: &str,
        plaintext: &Plaintext,
        now: SystemTime,
    ) -> Result<Outgoing, E2eError> {
        let encoded = Zeroizing::new(plaintext.encode()?);
        let sealed = self.seal_encoded(peer, &encoded, now)?;
        Ok(Outgoing {
            id: plaintext.id,
            sealed,
        })
    }

    /// Encrypts and seals already-encoded plaintext bytes.
    pub(crate) fn seal_encoded(
        &self,
        peer: &str,
        encoded: &[u8],
        now: SystemTime,
    ) -> Result<Vec<u8>, E2eError> {
        let certified = self.certified(peer, now)?;
        let addr = member_address(peer)?;
        let tx = self.vault.begin()?;
        let cert = own_sender_certificate(&tx, now)?;
        if let Some(known) = tx.get(Table::PeerIdentity, &address_key(&addr))?
            && known.as_slice() != certified.serialize().as_ref()
        {
            return Err(E2eError::IdentityMismatch {
                peer: peer.to_owned(),
            });
        }
        let failure = RefCell::new(None);
        let stores = Stores {
            tx: &tx,
            trust: self.trust,
            now,
            failure: &failure,
        };
        let (mut sessions, mut identities) = (stores, stores);
        let mut rng = rand::rngs::OsRng.unwrap_err();
        let sealed = run(sealed_sender_encrypt(
            &addr,
            &cert,
            encoded,
            &mut sessions,
            &mut identities,
            now,
            &mut rng,
        ))
        .map_err(|e| {
            take(&failure).unwrap_or(match e {
                SignalProtocolError::SessionNotFound(_) => E2eError::NoSession {
                    peer: peer.to_owned(),
                },
                other => E2eError::Signal(other),
            })
        })?;
        tx.commit()?;
        Ok(sealed)
    }

    /// Unseals and decrypts an envelope body, checks the sender (certificate chain to
    /// the trust root, not expired, a member whose certificate is valid, unrevoked and
    /// names the same identity key), and stores the message. The ratchet state, the
    /// prekey bookkeeping and the message are committed in one transaction; on any
    /// error nothing is written.
    pub fn receive(&self, sealed: &[u8], now: SystemTime) -> Result<Received, E2eError> {
        // libsignal reads only the high nibble of the version byte (and accepts 0);
        // accept exactly what we send, so no envelope has two spellings.
        if sealed.len() > MAX_SEALED_LEN || sealed.first() != Some(&SEALED_SENDER_V1) {
            return Err(E2eError::Unseal);
        }
        let tx = self.vault.begin()?;
        let failure = RefCell::new(None);
        let stores = Stores {
            tx: &tx,
            trust: self.trust,
            now,
            failure: &failure,
        };
        let usmc = run(sealed_sender_decrypt_to_usmc(sealed, &stores))
            .map_err(|_| take(&failure).unwrap_or(E2eError::Unseal))?;
        let cert = usmc
            .sender()
            .map_err(|_| E2eError::SenderCertificateInvalid)?;
        let peer = cert
            .sender_uuid()
            .map_err(|_| E2eError::SenderCertificateInvalid)?
            .to_owned();
        let device = cert
            .sender_device_id()
            .map_err(|_| E2eError::SenderCertificateInvalid)?;
        check_sender_certificate(cert, &self.trust_root, &peer, now)?;
        let local = tx
            .get(Table::Meta, LOCAL_NAME)?
            .ok_or(VaultError::NotInitialised)?;
        if local.as_slice() == peer.as_bytes() && u8::from(device) == MEMBER_DEVICE_ID {
            return Err(E2eError::SelfSend);
        }
        if u8::from(device) != MEMBER_DEVICE_ID {
            return Err(E2eError::SenderCertificateInvalid);
        }
        let certified = self.certified(&peer, now)?;
        if cert.key()? != *certified.public_key() {
            return Err(E2eError::IdentityMismatch { peer });
        }
        let addr = ProtocolAddress::new(peer.clone(), device);
        let (mut sessions, mut identities, mut prekeys, signed, mut kyber) =
            (stores, stores, stores, stores, stores);
        let mut rng = rand::rngs::OsRng.unwrap_err();
        let decrypted = match usmc.msg_type()? {
            CiphertextMessageType::Whisper => match SignalMessage::try_from(usmc.contents()?) {
                Ok(m) => run(message_decrypt_signal(
                    &m,
                    &addr,
                    &mut sessions,
                    &mut identities,
                    &mut rng,
                )),
                Err(e) => Err(e),
            },
            CiphertextMessageType::PreKey => {
                match PreKeySignalMessage::try_from(usmc.contents()?) {
                    Ok(m) => run(message_decrypt_prekey(
                        &m,
                        &addr,
                        &mut sessions,
                        &mut identities,
                        &mut prekeys,
                        &signed,
                        &mut kyber,
                        &mut rng,
                    )),
                    Err(e) => Err(e),
                }
            }
            other => Err(SignalProtocolError::InvalidMessage(
                other,
                "unexpected message type inside sealed sender",
            )),
        };
        let bytes = Zeroizing::new(decrypted.map_err(|e| {
            take(&failure).unwrap_or(match e {
                SignalProtocolError::DuplicatedMessage(..) => {
                    E2eError::Replay { peer: peer.clone() }
                }
                SignalProtocolError::SessionNotFound(_) => {
                    E2eError::NoSession { peer: peer.clone() }
                }
                SignalProtocolError::UntrustedIdentity(_) => {
                    E2eError::IdentityMismatch { peer: peer.clone() }
                }
                source => E2eError::Decrypt {
                    peer: peer.clone(),
                    source,
                },
            })
        })?);
        let plaintext = Plaintext::decode(&bytes)?;
        let received = store_received(&tx, peer, plaintext, now, self.max_ttl)?;
        tx.commit()?;
        Ok(received)
    }

    /// The safety number with `peer` (60 digits and the scannable form), from the
    /// identity key the session uses.
    pub fn safety_number(&self, peer: &str) -> Result<SafetyNumber, E2eError> {
        let local_name = self.vault.member_name()?;
        let local = self.vault.identity_key()?;
        let addr = member_address(peer)?;
        let remote = self
            .vault
            .get(Table::PeerIdentity, &address_key(&addr))?
            .ok_or_else(|| E2eError::NoSession {
                peer: peer.to_owned(),
            })?;
        let remote =
            IdentityKey::decode(&remote).map_err(|_| VaultError::Corrupt("peer identity"))?;
        SafetyNumber::new(&local_name, &local, peer, &remote)
    }
}

fn own_sender_certificate(tx: &Tx<'_>, now: SystemTime) -> Result<SenderCertificate, E2eError> {
    let bytes = tx
        .get(Table::Meta, SENDER_CERT)?
        .ok_or(E2eError::OwnSenderCertificate("none stored"))?;
    let cert = SenderCertificate::deserialize(&bytes)
        .map_err(|_| E2eError::OwnSenderCertificate("does not parse"))?;
    if cert.expiration()?.epoch_millis() <= unix_ms(now) {
        return Err(E2eError::OwnSenderCertificate(
            "expired; renew it with the org",
        ));
    }
    Ok(cert)
}

fn check_sender_certificate(
    cert: &SenderCertificate,
    root: &PublicKey,
    peer: &str,
    now: SystemTime,
) -> Result<(), E2eError> {
    let invalid = |_| E2eError::SenderCertificateInvalid;
    if cert.validate(root, timestamp(now)).map_err(invalid)? {
        return Ok(());
    }
    let expires = cert.expiration().map_err(invalid)?;
    // Valid at its own expiry but not now: the chain is good and it has expired.
    if expires.epoch_millis() < unix_ms(now) && cert.validate(root, expires).map_err(invalid)? {
        return Err(E2eError::SenderCertificateExpired {
            peer: peer.to_owned(),
            expired_at_ms: expires.epoch_millis(),
        });
    }
    Err(E2eError::SenderCertificateInvalid)
}

fn store_received(
    tx: &Tx<'_>,
    sender: String,
    mut plaintext: Plaintext,
    now: SystemTime,
    max_ttl: Option<Duration>,
) -> Result<Received, E2eError> {
    let key = message_key(&sender, &plaintext.id);
    let now_ms = unix_ms(now);
    if let Some(max) = max_ttl {
        let cap = now_ms.saturating_add(u64::try_from(max.as_millis()).unwrap_or(u64::MAX));
        plaintext.expires_at_ms = plaintext.expires_at_ms.min(cap);
    }
    if tx.get(Table::Seen, &key)?.is_some() {
        return Ok(Received::Duplicate {
            sender,
            id: plaintext.id,
        });
    }
    tx.put(Table::Seen, &key, &plaintext.expires_at_ms.to_be_bytes())?;
    if plaintext.expires_at_ms <= now_ms {
        return Ok(Received::Expired {
            sender,
            id: plaintext.id,
        });
    }
    let msg = StoredMessage {
        sender,
        id: plaintext.id,
        content_type: plaintext.content_type,
        sent_at_ms: plaintext.sent_at_ms,
        expires_at_ms: plaintext.expires_at_ms,
        received_at_ms: now_ms,
        body: plaintext.body.clone(),
    };
    tx.put(Table::Message, &key, &msg.encode())?;
    Ok(Received::New(msg))
}

#[cfg(test)]
#[path = "messenger_tests.rs"]
mod tests;
