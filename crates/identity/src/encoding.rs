//! The signed-object envelope shared by every trust object, and bounded containers.
//!
//! A signed object is `body || signature`: `body` is the postcard encoding of the object's
//! fields and `signature` the final 64 bytes, an Ed25519 signature (verified strictly)
//! over `context || body`. Each object type has its own context string, so a signature
//! made for one type never verifies as another. Decoding checks the total length first,
//! then requires the body to be the one canonical postcard encoding of its fields (no
//! trailing bytes, no over-long varints), then checks the fields, then the signature.

use std::fmt;
use std::marker::PhantomData;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use zeroize::Zeroizing;

use crate::error::TrustError;

/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// The per-type signature context strings. Each ends in a NUL byte, so none is a prefix
/// of another.
pub mod context {
    /// Context of [`crate::MemberCertificate`] signatures.
    pub const MEMBER_CERTIFICATE: &[u8] = b"postern/1 member-certificate\0";
    /// Context of [`crate::OrgDescriptor`] signatures.
    pub const ORG_DESCRIPTOR: &[u8] = b"postern/1 org-descriptor\0";
    /// Context of [`crate::RevocationList`] signatures.
    pub const REVOCATION_LIST: &[u8] = b"postern/1 revocation-list\0";
    /// Context of [`crate::EnrollmentRequest`] signatures (by the device key).
    pub const ENROLLMENT_REQUEST: &[u8] = b"postern/1 enrollment-request\0";
    /// Context of [`crate::EnrollmentBundle`] signatures.
    pub const ENROLLMENT_BUNDLE: &[u8] = b"postern/1 enrollment-bundle\0";
    /// Every context, for tests and the spec.
    pub const ALL: [&[u8]; 5] = [
        MEMBER_CERTIFICATE,
        ORG_DESCRIPTOR,
        REVOCATION_LIST,
        ENROLLMENT_REQUEST,
        ENROLLMENT_BUNDLE,
    ];
}

/// The fields of a signed object type.
pub trait SignedBody: Serialize + DeserializeOwned + Sized {
    /// Human name of the object type, used in errors.
    const KIND: &'static str;
    /// The signature context string of this type.
    const CONTEXT: &'static [u8];
    /// Longest valid encoding (body and signature), checked before decoding.
    const MAX_ENCODED_LEN: usize;

    /// Checks the fields beyond what their types enforce.
    fn check(&self) -> Result<(), &'static str>;

    /// The Ed25519 public key that must have signed this body.
    fn signer(&self) -> [u8; 32];

    /// The error for a signature that does not verify.
    fn bad_signature() -> TrustError {
        TrustError::BadSignature { object: Self::KIND }
    }
}

/// A signed object whose signature has been verified under the key its body names
/// ([`SignedBody::signer`]). Values exist only by signing or by successful decoding.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<B> {
    body: B,
    // Zeroized on drop: an enrollment bundle's body holds the directory key.
    body_bytes: Zeroizing<Vec<u8>>,
    signature: [u8; SIGNATURE_LEN],
}

impl<B: SignedBody> Signed<B> {
    /// Signs `body` with `key`, which must be the key the body names as its signer.
    pub(crate) fn sign(body: B, key: &SigningKey) -> Result<Self, TrustError> {
        body.check().map_err(|reason| TrustError::Malformed {
            object: B::KIND,
            reason,
        })?;
        if key.verifying_key().to_bytes() != body.signer() {
            return Err(TrustError::Malformed {
                object: B::KIND,
                reason: "the body names another signer than the signing key",
            });
        }
        let body_bytes = postcard::to_allocvec(&body).map_err(|_| TrustError::Malformed {
            object: B::KIND,
            reason: "cannot encode",
        })?;
        let signature = sign_with_context(key, B::CONTEXT, &body_bytes);
        let signed = Self {
            body,
            body_bytes: Zeroizing::new(body_bytes),
            signature,
        };
        if signed.encoded_len() > B::MAX_ENCODED_LEN {
            return Err(TrustError::TooLarge {
                object: B::KIND,
                len: signed.encoded_len(),
                max: B::MAX_ENCODED_LEN,
            });
        }
        Ok(signed)
    }

    /// Decodes and verifies: length bounds, canonical encoding, field checks, signature.
    pub fn decode(bytes: &[u8]) -> Result<Self, TrustError> {
        let malformed = |reason| TrustError::Malformed {
            object: B::KIND,
            reason,
        };
        if bytes.len() > B::MAX_ENCODED_LEN {
            return Err(TrustError::TooLarge {
                object: B::KIND,
                len: bytes.len(),
                max: B::MAX_ENCODED_LEN,
            });
        }
        let Some(split) = bytes.len().checked_sub(SIGNATURE_LEN) else {
            return Err(malformed("truncated"));
        };
        let (body_bytes, signature) = bytes.split_at(split);
        let (body, rest) = postcard::take_from_bytes::<B>(body_bytes)
            .map_err(|_| malformed("truncated or invalid fields"))?;
        if !rest.is_empty() {
            return Err(malformed("trailing bytes"));
        }
        let canonical = Zeroizing::new(
            postcard::to_allocvec(&body).map_err(|_| malformed("cannot re-encode"))?,
        );
        if canonical.as_slice() != body_bytes {
            return Err(malformed("non-canonical encoding"));
        }
        body.check().map_err(malformed)?;
        let mut sig = [0u8; SIGNATURE_LEN];
        sig.copy_from_slice(signature);
        verify_with_context(&body.signer(), B::CONTEXT, body_bytes, &sig)
            .map_err(|()| B::bad_signature())?;
        Ok(Self {
            body,
            body_bytes: Zeroizing::new(body_bytes.to_vec()),
            signature: sig,
        })
    }

    /// The encoding: `body || signature`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.body_bytes);
        out.extend_from_slice(&self.signature);
        out
    }

    /// The verified fields.
    pub fn body(&self) -> &B {
        &self.body
    }

    fn encoded_len(&self) -> usize {
        self.body_bytes.len() + SIGNATURE_LEN
    }
}

impl<B: SignedBody + fmt::Debug> fmt::Debug for Signed<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("kind", &B::KIND)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}

// Embedded in other objects (the enrollment bundle) as a length-prefixed byte string.
impl<B: SignedBody> Serialize for Signed<B> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.encode())
    }
}

impl<'de, B: SignedBody> Deserialize<'de> for Signed<B> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<B>(PhantomData<B>);
        impl<B: SignedBody> Visitor<'_> for V<B> {
            type Value = Signed<B>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an encoded {}", B::KIND)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Signed::decode(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_bytes(V(PhantomData))
    }
}

/// Signs `context || message`.
pub(crate) fn sign_with_context(key: &SigningKey, context: &[u8], message: &[u8]) -> [u8; 64] {
    let mut data = Vec::with_capacity(context.len() + message.len());
    data.extend_from_slice(context);
    data.extend_from_slice(message);
    key.sign(&data).to_bytes()
}

/// Verifies (strictly: canonical `S`, no small-order keys) a signature over
/// `context || message`.
pub(crate) fn verify_with_context(
    signer: &[u8; 32],
    context: &[u8],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), ()> {
    let key = VerifyingKey::from_bytes(signer).map_err(|_| ())?;
    let mut data = Vec::with_capacity(context.len() + message.len());
    data.extend_from_slice(context);
    data.extend_from_slice(message);
    key.verify_strict(&data, &Signature::from_bytes(signature))
        .map_err(|_| ())
}

/// A sequence of at most `MAX` elements. Its decoder refuses a longer length prefix
/// before allocating anything.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// Wraps `items`, or gives them back if there are more than `MAX`.
    pub fn new(items: Vec<T>) -> Result<Self, Vec<T>> {
        if items.len() > MAX {
            Err(items)
        } else {
            Ok(Self(items))
        }
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BoundedVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize, const MAX: usize> Serialize for BoundedVec<T, MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BoundedVec<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for V<T, MAX> {
            type Value = BoundedVec<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a sequence of at most {MAX} elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let hint = seq.size_hint().unwrap_or(0);
                if hint > MAX {
                    return Err(de::Error::invalid_length(hint, &self));
                }
                let mut items = Vec::with_capacity(hint);
                while let Some(item) = seq.next_element()? {
                    if items.len() == MAX {
                        return Err(de::Error::invalid_length(MAX + 1, &self));
                    }
                    items.push(item);
                }
                Ok(BoundedVec(items))
            }
        }
        deserializer.deserialize_seq(V::<T, MAX>(PhantomData))
    }
}

/// A byte string of at most `MAX` bytes. On the wire: a varint length, then the bytes.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct BoundedBytes<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> BoundedBytes<MAX> {
    /// Wraps `bytes`, or gives them back if there are more than `MAX`.
    pub fn new(bytes: Vec<u8>) -> Result<Self, Vec<u8>> {
        if bytes.len() > MAX {
            Err(bytes)
        } else {
            Ok(Self(bytes))
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BoundedBytes<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BoundedBytes({} bytes)", self.0.len())
    }
}

impl<const MAX: usize> Serialize for BoundedBytes<MAX> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BoundedBytes<MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for V<MAX> {
            type Value = BoundedBytes<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "at most {MAX} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                if v.len() > MAX {
                    return Err(E::invalid_length(v.len(), &self));
                }
                Ok(BoundedBytes(v.to_vec()))
            }
        }
        deserializer.deserialize_bytes(V::<MAX>)
    }
}
