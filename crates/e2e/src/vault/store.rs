//! libsignal's store traits over one vault write transaction. Every write lands in the
//! pending transaction; the caller commits it together with the message (or drops it).
//! A failure inside a callback is kept, typed, in `failure` so that the caller can report
//! it instead of libsignal's generic error.

use std::cell::RefCell;
use std::time::SystemTime;

use async_trait::async_trait;
use libsignal_protocol::{
    Direction, GenericSignedPreKey, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore,
    KyberPreKeyId, KyberPreKeyRecord, KyberPreKeyStore, PreKeyId, PreKeyRecord, PreKeyStore,
    ProtocolAddress, PublicKey, SessionRecord, SessionStore, SignalProtocolError, SignedPreKeyId,
    SignedPreKeyRecord, SignedPreKeyStore,
};

use super::keystate::KeyState;
use super::{Table, Tx, VaultError};
use crate::error::E2eError;
use crate::trust::MemberTrust;

type Result<T> = std::result::Result<T, SignalProtocolError>;

/// Meta key of the identity key pair.
pub(crate) const IDENTITY: &[u8] = b"identity";
/// Meta key of the registration id.
pub(crate) const REGISTRATION: &[u8] = b"registration";

/// Marker error handed to libsignal when a callback failed; the typed cause is in
/// [`Stores::failure`].
#[derive(Debug, thiserror::Error)]
#[error("vault callback failed (see the typed error)")]
struct CallbackFailed;

/// One handle per libsignal store argument; all share the transaction.
#[derive(Clone, Copy)]
pub(crate) struct Stores<'a> {
    pub(crate) tx: &'a Tx<'a>,
    pub(crate) trust: &'a dyn MemberTrust,
    pub(crate) now: SystemTime,
    pub(crate) failure: &'a RefCell<Option<E2eError>>,
}

pub(crate) fn address_key(a: &ProtocolAddress) -> Vec<u8> {
    let mut k = a.name().as_bytes().to_vec();
    k.push(0);
    k.push(u8::from(a.device_id()));
    k
}

impl Stores<'_> {
    fn fail(&self, e: impl Into<E2eError>, method: &'static str) -> SignalProtocolError {
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(e.into());
        }
        SignalProtocolError::ApplicationCallbackError(method, Box::new(CallbackFailed))
    }

    fn get(
        &self,
        t: Table,
        key: &[u8],
        m: &'static str,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        self.tx.get(t, key).map_err(|e| self.fail(e, m))
    }

    fn put(&self, t: Table, key: &[u8], v: &[u8], m: &'static str) -> Result<()> {
        self.tx.put(t, key, v).map_err(|e| self.fail(e, m))
    }

    fn keystate(&self, m: &'static str) -> Result<KeyState> {
        KeyState::load(self.tx).map_err(|e| self.fail(e, m))
    }

    fn save_keystate(&self, st: &KeyState, m: &'static str) -> Result<()> {
        st.save(self.tx).map_err(|e| self.fail(e, m))
    }

    fn corrupt(&self, what: &'static str, m: &'static str) -> SignalProtocolError {
        self.fail(VaultError::Corrupt(what), m)
    }
}

#[async_trait(?Send)]
impl IdentityKeyStore for Stores<'_> {
    async fn get_identity_key_pair(&self) -> Result<IdentityKeyPair> {
        const M: &str = "get_identity_key_pair";
        let v = self
            .get(Table::Meta, IDENTITY, M)?
            .ok_or_else(|| self.fail(VaultError::NotInitialised, M))?;
        IdentityKeyPair::try_from(v.as_slice()).map_err(|_| self.corrupt("identity key pair", M))
    }

    async fn get_local_registration_id(&self) -> Result<u32> {
        const M: &str = "get_local_registration_id";
        let v = self
            .get(Table::Meta, REGISTRATION, M)?
            .ok_or_else(|| self.fail(VaultError::NotInitialised, M))?;
        let a: [u8; 4] = v
            .as_slice()
            .try_into()
            .map_err(|_| self.corrupt("registration id", M))?;
        Ok(u32::from_be_bytes(a))
    }

    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> Result<IdentityChange> {
        const M: &str = "save_identity";
        let key = address_key(address);
        let old = self.get(Table::PeerIdentity, &key, M)?;
        let new = identity.serialize();
        match old {
            Some(old) if old.as_slice() == new.as_ref() => Ok(IdentityChange::NewOrUnchanged),
            Some(_) => {
                self.put(Table::PeerIdentity, &key, &new, M)?;
                Ok(IdentityChange::ReplacedExisting)
            }
            None => {
                self.put(Table::PeerIdentity, &key, &new, M)?;
                Ok(IdentityChange::NewOrUnchanged)
            }
        }
    }

    /// Trusted iff `identity` equals the key in the peer's valid, unrevoked member
    /// certificate now. No trust on first use; the typed reason is kept.
    async fn is_trusted_identity(
        &self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
        _direction: Direction,
    ) -> Result<bool> {
        match self.trust.certified_identity(address.name(), self.now) {
            Ok(certified) if certified == *identity => Ok(true),
            Ok(_) => {
                let _ = self.fail(
                    E2eError::IdentityMismatch {
                        peer: address.name().to_owned(),
                    },
                    "is_trusted_identity",
                );
                Ok(false)
            }
            Err(reason) => {
                let _ = self.fail(
                    E2eError::Untrusted {
                        peer: address.name().to_owned(),
                        reason,
                    },
                    "is_trusted_identity",
                );
                Ok(false)
            }
        }
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> Result<Option<IdentityKey>> {
        const M: &str = "get_identity";
        match self.get(Table::PeerIdentity, &address_key(address), M)? {
            None => Ok(None),
            Some(v) => IdentityKey::decode(&v)
                .map(Some)
                .map_err(|_| self.corrupt("peer identity", M)),
        }
    }
}

#[async_trait(?Send)]
impl SessionStore for Stores<'_> {
    async fn load_session(&self, address: &ProtocolAddress) -> Result<Option<SessionRecord>> {
        const M: &str = "load_session";
        match self.get(Table::Session, &address_key(address), M)? {
            None => Ok(None),
            Some(v) => SessionRecord::deserialize(&v)
                .map(Some)
                .map_err(|_| self.corrupt("session record", M)),
        }
    }

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: &SessionRecord,
    ) -> Result<()> {
        let bytes = zeroize::Zeroizing::new(record.serialize()?);
        self.put(
            Table::Session,
            &address_key(address),
            &bytes,
            "store_session",
        )
    }
}

#[async_trait(?Send)]
impl PreKeyStore for Stores<'_> {
    async fn get_pre_key(&self, id: PreKeyId) -> Result<PreKeyRecord> {
        const M: &str = "get_pre_key";
        let v = self
            .get(Table::PreKey, &u32::from(id).to_be_bytes(), M)?
            .ok_or(SignalProtocolError::InvalidPreKeyId)?;
        PreKeyRecord::deserialize(&v).map_err(|_| self.corrupt("prekey", M))
    }

    async fn save_pre_key(&mut self, id: PreKeyId, record: &PreKeyRecord) -> Result<()> {
        let bytes = zeroize::Zeroizing::new(record.serialize()?);
        self.put(
            Table::PreKey,
            &u32::from(id).to_be_bytes(),
            &bytes,
            "save_pre_key",
        )
    }

    async fn remove_pre_key(&mut self, id: PreKeyId) -> Result<()> {
        const M: &str = "remove_pre_key";
        self.tx
            .delete(Table::PreKey, &u32::from(id).to_be_bytes())
            .map_err(|e| self.fail(e, M))?;
        let mut st = self.keystate(M)?;
        st.one_time_ec.retain(|&x| x != u32::from(id));
        self.save_keystate(&st, M)
    }
}

#[async_trait(?Send)]
impl SignedPreKeyStore for Stores<'_> {
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> Result<SignedPreKeyRecord> {
        const M: &str = "get_signed_pre_key";
        let v = self
            .get(Table::SignedPreKey, &u32::from(id).to_be_bytes(), M)?
            .ok_or(SignalProtocolError::InvalidSignedPreKeyId)?;
        SignedPreKeyRecord::deserialize(&v).map_err(|_| self.corrupt("signed prekey", M))
    }

    async fn save_signed_pre_key(
        &mut self,
        id: SignedPreKeyId,
        record: &SignedPreKeyRecord,
    ) -> Result<()> {
        let bytes = zeroize::Zeroizing::new(record.serialize()?);
        self.put(
            Table::SignedPreKey,
            &u32::from(id).to_be_bytes(),
            &bytes,
            "save_signed_pre_key",
        )
    }
}

#[async_trait(?Send)]
impl KyberPreKeyStore for Stores<'_> {
    async fn get_kyber_pre_key(&self, id: KyberPreKeyId) -> Result<KyberPreKeyRecord> {
        const M: &str = "get_kyber_pre_key";
        let v = self
            .get(Table::KyberPreKey, &u32::from(id).to_be_bytes(), M)?
            .ok_or(SignalProtocolError::InvalidKyberPreKeyId)?;
        KyberPreKeyRecord::deserialize(&v).map_err(|_| self.corrupt("Kyber prekey", M))
    }

    async fn save_kyber_pre_key(
        &mut self,
        id: KyberPreKeyId,
        record: &KyberPreKeyRecord,
    ) -> Result<()> {
        let bytes = zeroize::Zeroizing::new(record.serialize()?);
        self.put(
            Table::KyberPreKey,
            &u32::from(id).to_be_bytes(),
            &bytes,
            "save_kyber_pre_key",
        )
    }

    /// One-time Kyber keys are deleted; a last-resort key refuses a repeated
    /// (Kyber id, signed prekey id, base key) triple.
    async fn mark_kyber_pre_key_used(
        &mut self,
        id: KyberPreKeyId,
        ec_prekey_id: SignedPreKeyId,
        base_key: &PublicKey,
    ) -> Result<()> {
        const M: &str = "mark_kyber_pre_key_used";
        let raw = u32::from(id);
        let mut st = self.keystate(M)?;
        if st.one_time_kyber.contains(&raw) {
            self.tx
                .delete(Table::KyberPreKey, &raw.to_be_bytes())
                .map_err(|e| self.fail(e, M))?;
            st.one_time_kyber.retain(|&x| x != raw);
            return self.save_keystate(&st, M);
        }
        let mut key = raw.to_be_bytes().to_vec();
        key.extend_from_slice(&u32::from(ec_prekey_id).to_be_bytes());
        key.extend_from_slice(&base_key.serialize());
        if self.get(Table::KyberUsed, &key, M)?.is_some() {
            return Err(SignalProtocolError::InvalidMessage(
                libsignal_protocol::CiphertextMessageType::PreKey,
                "reused base key",
            ));
        }
        self.put(Table::KyberUsed, &key, &[], M)
    }
}
