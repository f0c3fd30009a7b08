//! A member's Signal key material, kept in the vault: identity key pair, registration id,
//! the signed EC prekey and the Kyber1024 last-resort prekey (rotated together on a
//! schedule, the previous ones kept for a grace period so that PreKey messages already in
//! flight still decrypt), and batches of one-time EC and Kyber prekeys, replenished when
//! the relay runs low.

use std::time::{Duration, SystemTime};

use libsignal_protocol::{
    DeviceId, GenericSignedPreKey, IdentityKey, IdentityKeyPair, KeyPair, KyberPreKeyId,
    KyberPreKeyRecord, PreKeyBundle, PreKeyId, PreKeyRecord, PublicKey, SignedPreKeyId,
    SignedPreKeyRecord, kem,
};
use rand::{Rng, TryRngCore};

use crate::bundle::encode_bundle;
use crate::error::E2eError;
use crate::sender_certificate::MEMBER_DEVICE_ID;
use crate::vault::keystate::{KeyState, Rotating};
use crate::vault::store::{IDENTITY, REGISTRATION};
use crate::vault::{Table, Tx, Vault, VaultError};
use crate::{timestamp, unix_ms};

/// Meta key of the local member name.
pub(crate) const LOCAL_NAME: &[u8] = b"local-name";
/// Meta key of our sealed-sender certificate.
pub(crate) const SENDER_CERT: &[u8] = b"sender-cert";

/// When to rotate and how many one-time prekeys to keep published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreKeyPolicy {
    /// Rotate the signed and last-resort prekeys when the current ones are this old.
    pub rotate_every: Duration,
    /// Keep replaced signed/last-resort prekeys this long (PreKey messages in flight).
    pub grace: Duration,
    /// Replenish one-time prekeys when fewer than this many remain on the relay.
    pub low_water: usize,
    /// Top up to this many.
    pub target: usize,
}

impl Default for PreKeyPolicy {
    /// Rotate weekly, keep old keys 30 days (the relay's maximum TTL is shorter), keep
    /// 100 one-time prekeys published, replenish below 20.
    fn default() -> Self {
        Self {
            rotate_every: Duration::from_secs(7 * 24 * 3600),
            grace: Duration::from_secs(30 * 24 * 3600),
            low_water: 20,
            target: 100,
        }
    }
}

/// A signed EC prekey's public part.
#[derive(Debug, Clone)]
pub struct SignedEcPreKey {
    /// Its id.
    pub id: SignedPreKeyId,
    /// Public key.
    pub public: PublicKey,
    /// XEdDSA signature by the identity key over `public.serialize()`.
    pub signature: Vec<u8>,
}

/// A signed Kyber prekey's public part (last-resort or one-time).
#[derive(Clone)]
pub struct SignedKyberPreKey {
    /// Its id.
    pub id: KyberPreKeyId,
    /// Public key (Kyber1024).
    pub public: kem::PublicKey,
    /// XEdDSA signature by the identity key over `public.serialize()`.
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for SignedKyberPreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedKyberPreKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The long-lived public prekeys a member publishes.
#[derive(Debug, Clone)]
pub struct PublicPreKeys {
    /// Registration id.
    pub registration_id: u32,
    /// Identity key.
    pub identity: IdentityKey,
    /// Current signed EC prekey.
    pub signed: SignedEcPreKey,
    /// Current Kyber last-resort prekey.
    pub last_resort: SignedKyberPreKey,
}

/// One one-time prekey unit as the directory hands it out: a one-time EC prekey and a
/// one-time Kyber prekey, used together by one session set-up.
#[derive(Debug, Clone)]
pub struct OneTimePreKey {
    /// One-time EC prekey id.
    pub ec_id: PreKeyId,
    /// One-time EC public key.
    pub ec_public: PublicKey,
    /// One-time Kyber prekey.
    pub kyber: SignedKyberPreKey,
}

/// A batch of new one-time prekeys' public parts, to publish.
#[derive(Debug, Clone, Default)]
pub struct OneTimePreKeys {
    /// The units, each to be handed out once.
    pub keys: Vec<OneTimePreKey>,
}

/// Assembles a bundle from the directory entry's long-lived keys and, if the directory
/// had one left, a one-time unit (else the last-resort Kyber prekey is used and no
/// one-time EC prekey).
pub fn assemble_bundle(
    keys: &PublicPreKeys,
    one_time: Option<&OneTimePreKey>,
) -> Result<PreKeyBundle, E2eError> {
    let one_time_ec = one_time.map(|o| (o.ec_id, o.ec_public));
    let kyber = one_time.map_or(&keys.last_resort, |o| &o.kyber);
    let device = DeviceId::new(MEMBER_DEVICE_ID).map_err(|_| E2eError::BadAddress)?;
    Ok(PreKeyBundle::new(
        keys.registration_id,
        device,
        one_time_ec,
        keys.signed.id,
        keys.signed.public,
        keys.signed.signature.clone(),
        kyber.id,
        kyber.public.clone(),
        kyber.signature.clone(),
        keys.identity,
    )?)
}

fn os_rng() -> impl rand::CryptoRng {
    rand::rngs::OsRng.unwrap_err()
}

fn identity_pair(tx: &Tx<'_>) -> Result<IdentityKeyPair, E2eError> {
    let v = tx
        .get(Table::Meta, IDENTITY)?
        .ok_or(VaultError::NotInitialised)?;
    IdentityKeyPair::try_from(v.as_slice())
        .map_err(|_| VaultError::Corrupt("identity key pair").into())
}

fn new_signed(
    tx: &Tx<'_>,
    st: &mut KeyState,
    identity: &IdentityKeyPair,
    now: SystemTime,
) -> Result<(), E2eError> {
    let mut rng = os_rng();
    let id = st.next_signed_id;
    st.next_signed_id = st.next_signed_id.wrapping_add(1).max(1);
    let pair = KeyPair::generate(&mut rng);
    let sig = identity
        .private_key()
        .calculate_signature(&pair.public_key.serialize(), &mut rng)
        .map_err(libsignal_protocol::SignalProtocolError::from)?;
    let rec = SignedPreKeyRecord::new(SignedPreKeyId::from(id), timestamp(now), &pair, &sig);
    tx.put(
        Table::SignedPreKey,
        &id.to_be_bytes(),
        &zeroize::Zeroizing::new(rec.serialize()?),
    )?;
    st.signed.push(Rotating {
        id,
        created_ms: unix_ms(now),
        retired_ms: 0,
    });
    let kid = st.next_kyber_id;
    st.next_kyber_id = st.next_kyber_id.wrapping_add(1).max(1);
    let krec = KyberPreKeyRecord::generate(
        kem::KeyType::Kyber1024,
        KyberPreKeyId::from(kid),
        identity.private_key(),
    )?;
    tx.put(
        Table::KyberPreKey,
        &kid.to_be_bytes(),
        &zeroize::Zeroizing::new(krec.serialize()?),
    )?;
    st.last_resort.push(Rotating {
        id: kid,
        created_ms: unix_ms(now),
        retired_ms: 0,
    });
    Ok(())
}

impl Vault {
    /// Generates the member's key material (identity key pair, registration id, signed
    /// prekey, Kyber last-resort prekey) and records the member name (its handle: the
    /// name in its sender certificate and in its peers' sessions). Fails if already done.
    pub fn initialise_member(&self, name: &str, now: SystemTime) -> Result<(), E2eError> {
        if name.is_empty() || name.len() > 64 {
            return Err(E2eError::BadAddress);
        }
        let tx = self.begin()?;
        if tx.get(Table::Meta, IDENTITY)?.is_some() {
            return Err(VaultError::AlreadyExists.into());
        }
        let mut rng = os_rng();
        let identity = IdentityKeyPair::generate(&mut rng);
        // Signal uses 14-bit registration ids.
        let registration: u32 = rng.random_range(1..16380);
        tx.put(
            Table::Meta,
            IDENTITY,
            &zeroize::Zeroizing::new(identity.serialize().to_vec()),
        )?;
        tx.put(Table::Meta, REGISTRATION, &registration.to_be_bytes())?;
        tx.put(Table::Meta, LOCAL_NAME, name.as_bytes())?;
        let mut st = KeyState {
            next_prekey_id: 1,
            next_kyber_id: 1,
            next_signed_id: 1,
            ..Default::default()
        };
        new_signed(&tx, &mut st, &identity, now)?;
        st.save(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// The member name recorded at initialisation.
    pub fn member_name(&self) -> Result<String, E2eError> {
        let v = self
            .get(Table::Meta, LOCAL_NAME)?
            .ok_or(VaultError::NotInitialised)?;
        String::from_utf8(v.to_vec()).map_err(|_| VaultError::Corrupt("member name").into())
    }

    /// The member's public identity key (goes into its member certificate).
    pub fn identity_key(&self) -> Result<IdentityKey, E2eError> {
        let tx = self.begin()?;
        Ok(*identity_pair(&tx)?.identity_key())
    }

    /// The current long-lived public prekeys.
    pub fn public_prekeys(&self) -> Result<PublicPreKeys, E2eError> {
        let tx = self.begin()?;
        public_prekeys_in(&tx)
    }

    /// Generates `count` one-time EC and `count` one-time Kyber prekeys and returns their
    /// public parts for publication.
    pub fn generate_one_time_prekeys(&self, count: usize) -> Result<OneTimePreKeys, E2eError> {
        let tx = self.begin()?;
        let out = generate_one_time_in(&tx, count)?;
        tx.commit()?;
        Ok(out)
    }

    /// One-time (EC, Kyber) prekeys held and not yet used.
    pub fn one_time_prekey_counts(&self) -> Result<(usize, usize), E2eError> {
        let tx = self.begin()?;
        let st = KeyState::load(&tx)?;
        Ok((st.one_time_ec.len(), st.one_time_kyber.len()))
    }

    /// If fewer than `policy.low_water` one-time prekeys remain published, makes enough
    /// new ones to reach `policy.target`.
    pub fn replenish_one_time_prekeys(
        &self,
        remaining_published: usize,
        policy: &PreKeyPolicy,
    ) -> Result<Option<OneTimePreKeys>, E2eError> {
        if remaining_published >= policy.low_water {
            return Ok(None);
        }
        let n = policy.target.saturating_sub(remaining_published);
        self.generate_one_time_prekeys(n).map(Some)
    }

    /// Rotates the signed and last-resort prekeys if the current ones are older than
    /// `policy.rotate_every`, and deletes replaced ones older than `policy.grace`.
    /// Returns the new public prekeys when it rotated.
    pub fn rotate_prekeys_if_due(
        &self,
        now: SystemTime,
        policy: &PreKeyPolicy,
    ) -> Result<Option<PublicPreKeys>, E2eError> {
        let tx = self.begin()?;
        let mut st = KeyState::load(&tx)?;
        let now_ms = unix_ms(now);
        let grace = policy.grace.as_millis() as u64;
        // Delete keys retired longer ago than the grace period.
        let mut dead_kyber = Vec::new();
        for (list, table) in [
            (&mut st.signed, Table::SignedPreKey),
            (&mut st.last_resort, Table::KyberPreKey),
        ] {
            let mut keep = Vec::new();
            for r in list.drain(..) {
                if r.retired_ms != 0 && r.retired_ms.saturating_add(grace) <= now_ms {
                    tx.delete(table, &r.id.to_be_bytes())?;
                    if table == Table::KyberPreKey {
                        dead_kyber.push(r.id);
                    }
                } else {
                    keep.push(r);
                }
            }
            *list = keep;
        }
        if !dead_kyber.is_empty() {
            for rec in tx.scan(Table::KyberUsed)? {
                let id = rec
                    .key
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                if id.is_some_and(|id| dead_kyber.contains(&id)) {
                    tx.delete(Table::KyberUsed, &rec.key)?;
                }
            }
        }
        let due = st.current_signed().is_none_or(|c| {
            c.created_ms
                .saturating_add(policy.rotate_every.as_millis() as u64)
                <= now_ms
        });
        let rotated = if due {
            for r in st.signed.iter_mut().chain(st.last_resort.iter_mut()) {
                if r.retired_ms == 0 {
                    r.retired_ms = now_ms.max(1);
                }
            }
            let identity = identity_pair(&tx)?;
            new_signed(&tx, &mut st, &identity, now)?;
            true
        } else {
            false
        };
        st.save(&tx)?;
        let out = if rotated {
            Some(public_prekeys_in(&tx)?)
        } else {
            None
        };
        tx.commit()?;
        Ok(out)
    }

    /// A complete encoded bundle for direct exchange (tests, in-person set-up): current
    /// keys plus one fresh one-time EC and one fresh one-time Kyber prekey.
    pub fn prekey_bundle(&self) -> Result<Vec<u8>, E2eError> {
        let tx = self.begin()?;
        let public = public_prekeys_in(&tx)?;
        let one = generate_one_time_in(&tx, 1)?;
        let bundle = assemble_bundle(&public, one.keys.first())?;
        let bytes = encode_bundle(&bundle)?;
        tx.commit()?;
        Ok(bytes)
    }

    /// Stores this member's sealed-sender certificate (from the enrollment bundle). It
    /// must name this member, device 1, and this member's identity key.
    pub fn set_sender_certificate(&self, certificate: &[u8]) -> Result<(), E2eError> {
        let cert = libsignal_protocol::SenderCertificate::deserialize(certificate)
            .map_err(|_| E2eError::OwnSenderCertificate("does not parse"))?;
        let tx = self.begin()?;
        let identity = identity_pair(&tx)?;
        let name = tx
            .get(Table::Meta, LOCAL_NAME)?
            .ok_or(VaultError::NotInitialised)?;
        if cert.key()? != *identity.public_key() {
            return Err(E2eError::OwnSenderCertificate("not for this identity key"));
        }
        if cert.sender_uuid()?.as_bytes() != name.as_slice()
            || u8::from(cert.sender_device_id()?) != MEMBER_DEVICE_ID
        {
            return Err(E2eError::OwnSenderCertificate("not for this member"));
        }
        tx.put(Table::Meta, SENDER_CERT, certificate)?;
        tx.commit()?;
        Ok(())
    }
}

fn public_prekeys_in(tx: &Tx<'_>) -> Result<PublicPreKeys, E2eError> {
    let st = KeyState::load(tx)?;
    let identity = identity_pair(tx)?;
    let registration = tx
        .get(Table::Meta, REGISTRATION)?
        .ok_or(VaultError::NotInitialised)?;
    let registration_id = u32::from_be_bytes(
        registration
            .as_slice()
            .try_into()
            .map_err(|_| VaultError::Corrupt("registration id"))?,
    );
    let cur = st
        .current_signed()
        .ok_or(VaultError::Corrupt("no current signed prekey"))?;
    let srec = tx
        .get(Table::SignedPreKey, &cur.id.to_be_bytes())?
        .ok_or(VaultError::Corrupt("signed prekey missing"))?;
    let srec = SignedPreKeyRecord::deserialize(&srec)?;
    let lr = st
        .current_last_resort()
        .ok_or(VaultError::Corrupt("no current last-resort prekey"))?;
    let krec = tx
        .get(Table::KyberPreKey, &lr.id.to_be_bytes())?
        .ok_or(VaultError::Corrupt("last-resort prekey missing"))?;
    let krec = KyberPreKeyRecord::deserialize(&krec)?;
    Ok(PublicPreKeys {
        registration_id,
        identity: *identity.identity_key(),
        signed: SignedEcPreKey {
            id: srec.id()?,
            public: srec.public_key()?,
            signature: srec.signature()?,
        },
        last_resort: SignedKyberPreKey {
            id: krec.id()?,
            public: krec.public_key()?,
            signature: krec.signature()?,
        },
    })
}

fn generate_one_time_in(tx: &Tx<'_>, count: usize) -> Result<OneTimePreKeys, E2eError> {
    let mut st = KeyState::load(tx)?;
    let identity = identity_pair(tx)?;
    let mut rng = os_rng();
    let mut out = OneTimePreKeys::default();
    for _ in 0..count {
        let id = st.next_prekey_id;
        st.next_prekey_id = st.next_prekey_id.wrapping_add(1).max(1);
        let pair = KeyPair::generate(&mut rng);
        let rec = PreKeyRecord::new(PreKeyId::from(id), &pair);
        tx.put(
            Table::PreKey,
            &id.to_be_bytes(),
            &zeroize::Zeroizing::new(rec.serialize()?),
        )?;
        st.one_time_ec.push(id);

        let kid = st.next_kyber_id;
        st.next_kyber_id = st.next_kyber_id.wrapping_add(1).max(1);
        let krec = KyberPreKeyRecord::generate(
            kem::KeyType::Kyber1024,
            KyberPreKeyId::from(kid),
            identity.private_key(),
        )?;
        tx.put(
            Table::KyberPreKey,
            &kid.to_be_bytes(),
            &zeroize::Zeroizing::new(krec.serialize()?),
        )?;
        st.one_time_kyber.push(kid);
        out.keys.push(OneTimePreKey {
            ec_id: PreKeyId::from(id),
            ec_public: pair.public_key,
            kyber: SignedKyberPreKey {
                id: KyberPreKeyId::from(kid),
                public: krec.public_key()?,
                signature: krec.signature()?,
            },
        });
    }
    st.save(tx)?;
    Ok(out)
}
