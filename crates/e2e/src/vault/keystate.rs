//! Bookkeeping of the member's prekeys (stored sealed under `Meta/"keystate"`): id
//! counters, signed and last-resort Kyber prekeys with their ages, live one-time ids.

use super::{Table, Tx, VaultError};

/// Meta key of the key state.
pub(crate) const KEYSTATE: &[u8] = b"keystate";

/// A rotating prekey (signed EC or last-resort Kyber).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rotating {
    pub(crate) id: u32,
    pub(crate) created_ms: u64,
    /// 0 while current; the time it was replaced otherwise.
    pub(crate) retired_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyState {
    pub(crate) next_prekey_id: u32,
    pub(crate) next_kyber_id: u32,
    pub(crate) next_signed_id: u32,
    pub(crate) signed: Vec<Rotating>,
    pub(crate) last_resort: Vec<Rotating>,
    pub(crate) one_time_ec: Vec<u32>,
    pub(crate) one_time_kyber: Vec<u32>,
}

/// Upper bound on list lengths when decoding (authenticated data, bounded anyway).
const MAX_ITEMS: usize = 1 << 16;

impl KeyState {
    pub(crate) fn current_signed(&self) -> Option<Rotating> {
        self.signed.iter().copied().find(|r| r.retired_ms == 0)
    }

    pub(crate) fn current_last_resort(&self) -> Option<Rotating> {
        self.last_resort.iter().copied().find(|r| r.retired_ms == 0)
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut o = vec![1u8];
        for v in [self.next_prekey_id, self.next_kyber_id, self.next_signed_id] {
            o.extend_from_slice(&v.to_be_bytes());
        }
        for list in [&self.signed, &self.last_resort] {
            o.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for r in list {
                o.extend_from_slice(&r.id.to_be_bytes());
                o.extend_from_slice(&r.created_ms.to_be_bytes());
                o.extend_from_slice(&r.retired_ms.to_be_bytes());
            }
        }
        for list in [&self.one_time_ec, &self.one_time_kyber] {
            o.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for id in list {
                o.extend_from_slice(&id.to_be_bytes());
            }
        }
        o
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self, VaultError> {
        let bad = VaultError::Corrupt("key state");
        let mut r = b;
        let mut take = |n: usize| -> Result<&[u8], VaultError> {
            if r.len() < n {
                return Err(VaultError::Corrupt("key state"));
            }
            let (h, t) = r.split_at(n);
            r = t;
            Ok(h)
        };
        if take(1)? != [1] {
            return Err(bad);
        }
        let u32_ = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
        let u64_ = |s: &[u8]| {
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            u64::from_be_bytes(a)
        };
        let mut st = KeyState {
            next_prekey_id: u32_(take(4)?),
            next_kyber_id: u32_(take(4)?),
            next_signed_id: u32_(take(4)?),
            ..Default::default()
        };
        for which in 0..2 {
            let n = u32_(take(4)?) as usize;
            if n > MAX_ITEMS {
                return Err(VaultError::Corrupt("key state"));
            }
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(Rotating {
                    id: u32_(take(4)?),
                    created_ms: u64_(take(8)?),
                    retired_ms: u64_(take(8)?),
                });
            }
            if which == 0 {
                st.signed = list;
            } else {
                st.last_resort = list;
            }
        }
        for which in 0..2 {
            let n = u32_(take(4)?) as usize;
            if n > MAX_ITEMS {
                return Err(VaultError::Corrupt("key state"));
            }
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(u32_(take(4)?));
            }
            if which == 0 {
                st.one_time_ec = list;
            } else {
                st.one_time_kyber = list;
            }
        }
        if !r.is_empty() {
            return Err(VaultError::Corrupt("key state"));
        }
        Ok(st)
    }

    pub(crate) fn load(tx: &Tx<'_>) -> Result<Self, VaultError> {
        let v = tx
            .get(Table::Meta, KEYSTATE)?
            .ok_or(VaultError::NotInitialised)?;
        Self::decode(&v)
    }

    pub(crate) fn save(&self, tx: &Tx<'_>) -> Result<(), VaultError> {
        tx.put(Table::Meta, KEYSTATE, &self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_state_round_trips() {
        let st = KeyState {
            next_prekey_id: 5,
            next_kyber_id: 9,
            next_signed_id: 2,
            signed: vec![Rotating {
                id: 1,
                created_ms: 10,
                retired_ms: 0,
            }],
            last_resort: vec![Rotating {
                id: 1,
                created_ms: 10,
                retired_ms: 20,
            }],
            one_time_ec: vec![1, 2, 3],
            one_time_kyber: vec![4],
        };
        assert_eq!(KeyState::decode(&st.encode()).unwrap(), st);
        let enc = st.encode();
        assert!(KeyState::decode(&enc[..enc.len() - 1]).is_err());
    }
}
