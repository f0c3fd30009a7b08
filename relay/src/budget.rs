//! Budgets for connections that carry no identity: token buckets keyed by a source
//! address prefix, a queue (its sender id) or a directory entry. They live only in memory,
//! hold nothing but a count and a time per key, and forget a key once its bucket is full
//! again; nothing here is logged or stored.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most keys one table holds. When it is full, keys whose bucket has refilled are
/// forgotten; if none has, a new key is refused (fail closed) until one has.
pub(crate) const MAX_KEYS: usize = 65_536;

/// Token buckets, one per key, all with the same rate and burst.
#[derive(Debug)]
pub(crate) struct Buckets<K> {
    /// Tokens added per second.
    per_sec: f64,
    /// Bucket size (a new key starts full).
    burst: f64,
    /// Most keys held.
    max_keys: usize,
    /// Tokens and last refill, per key.
    map: Mutex<HashMap<K, (f64, Instant)>>,
    /// When a full table was last swept for refilled keys: at most once a second, so a
    /// flood of new keys does not make every request scan the whole table.
    swept: Mutex<Option<Instant>>,
}

/// Least time between two sweeps of a full table.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl<K: Hash + Eq + Copy> Buckets<K> {
    /// `per_sec` tokens a second per key, at most `burst` at once (at least 1).
    fn with_rate(per_sec: f64, burst: u32) -> Self {
        Self {
            per_sec,
            burst: f64::from(burst.max(1)),
            max_keys: MAX_KEYS,
            map: Mutex::new(HashMap::new()),
            swept: Mutex::new(None),
        }
    }

    /// `per_hour` tokens an hour per key, at most `burst` at once (at least 1).
    pub(crate) fn per_hour(per_hour: u32, burst: u32) -> Self {
        Self::with_rate(f64::from(per_hour) / 3600.0, burst)
    }

    /// `per_day` tokens a day per key, at most `burst` at once (at least 1).
    pub(crate) fn per_day(per_day: u32, burst: u32) -> Self {
        Self::with_rate(f64::from(per_day) / 86_400.0, burst)
    }

    /// Whether `key` has a token at `now` (nothing is taken; a key not held has).
    pub(crate) fn has_token(&self, key: &K, now: Instant) -> bool {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).is_none_or(|v| self.refilled(*v, now) >= 1.0)
    }

    /// Forgets keys whose bucket is full again, unless that was done within the last
    /// second; whether there is room for a new key afterwards.
    fn make_room(&self, map: &mut HashMap<K, (f64, Instant)>, now: Instant) -> bool {
        let mut swept = self.swept.lock().unwrap_or_else(|p| p.into_inner());
        if swept.is_none_or(|t| now.saturating_duration_since(t) >= SWEEP_EVERY) {
            map.retain(|_, v| self.refilled(*v, now) < self.burst);
            *swept = Some(now);
        }
        map.len() < self.max_keys
    }

    /// `per_minute` tokens a minute per key, at most `burst` at once (at least 1).
    pub(crate) fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self::per_hour(per_minute.saturating_mul(60), burst)
    }

    #[cfg(test)]
    fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys;
        self
    }

    fn refilled(&self, (tokens, last): (f64, Instant), now: Instant) -> f64 {
        let secs = now.saturating_duration_since(last).as_secs_f64();
        (tokens + secs * self.per_sec).min(self.burst)
    }

    /// Takes one token of `key` at `now`; false (and nothing taken) if it has none.
    pub(crate) fn take(&self, key: K, now: Instant) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if !map.contains_key(&key) && map.len() >= self.max_keys && !self.make_room(&mut map, now) {
            return false;
        }
        let entry = map.entry(key).or_insert((self.burst, now));
        let tokens = self.refilled(*entry, now);
        if tokens < 1.0 {
            *entry = (tokens, now.max(entry.1));
            return false;
        }
        *entry = (tokens - 1.0, now.max(entry.1));
        true
    }
}

/// Live things (connections) counted per key, at most `max` per key.
#[derive(Debug)]
pub(crate) struct Caps<K: Hash + Eq> {
    max: u32,
    counts: Mutex<HashMap<K, u32>>,
}

/// One counted thing's place in [`Caps`], given back when dropped.
#[derive(Debug)]
pub(crate) struct CapSlot<K: Hash + Eq + Copy> {
    of: std::sync::Arc<Caps<K>>,
    key: K,
}

impl<K: Hash + Eq + Copy> Caps<K> {
    /// At most `max` per key.
    pub(crate) fn new(max: u32) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            max,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more under `key`, or `None` if it has its maximum.
    pub(crate) fn take(self: &std::sync::Arc<Self>, key: K) -> Option<CapSlot<K>> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(CapSlot {
            of: self.clone(),
            key,
        })
    }
}

impl<K: Hash + Eq + Copy> Drop for CapSlot<K> {
    fn drop(&mut self) {
        let mut counts = self.of.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The budget key of a source address: an IPv4 address as it is, an IPv6 address by its
/// /64 (one subscriber's usual allocation, so one host cannot escape its budget by
/// rotating addresses inside it); an IPv4-mapped IPv6 address as the IPv4 address.
pub(crate) fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_key_gets_its_burst_then_its_rate() {
        let b = Buckets::per_minute(60, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| b.take(1u8, t0)));
        assert!(!b.take(1u8, t0));
        // Other keys are not affected.
        assert!(b.take(2u8, t0));
        // One token a second.
        assert!(!b.take(1u8, t0 + Duration::from_millis(900)));
        assert!(b.take(1u8, t0 + Duration::from_millis(1000)));
        assert!(!b.take(1u8, t0 + Duration::from_millis(1100)));
        // Never more than the burst, however long it waited.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| b.take(1u8, later)));
        assert!(!b.take(1u8, later));
    }

    #[test]
    fn a_full_table_forgets_refilled_keys_and_otherwise_fails_closed() {
        let b = Buckets::per_minute(60, 1).with_max_keys(2);
        let t0 = Instant::now();
        assert!(b.take(1u8, t0));
        assert!(b.take(2u8, t0));
        // Full, and neither key has refilled: a third is refused, the first still limited.
        assert!(!b.take(3u8, t0));
        assert!(!b.take(1u8, t0));
        // Once they have refilled they are forgotten and the new key fits.
        assert!(b.take(3u8, t0 + Duration::from_secs(2)));
    }

    #[test]
    fn a_full_table_is_swept_at_most_once_a_second() {
        // One token every 10 s.
        let b = Buckets::per_minute(6, 1).with_max_keys(2);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(b.take(1u8, t0));
        assert!(b.take(2u8, t0));
        // Swept at 9.9 s: nothing has refilled, so a new key is refused.
        assert!(!b.take(3u8, at(9_900)));
        // Both have refilled at 10.5 s, but the table was swept 0.6 s ago.
        assert!(!b.take(4u8, at(10_500)));
        assert!(b.take(4u8, at(10_900)));
    }

    #[test]
    fn peeking_takes_nothing_and_a_day_budget_refills_over_a_day() {
        let b = Buckets::per_day(24, 2);
        let t0 = Instant::now();
        assert!(b.has_token(&1u8, t0));
        assert!(b.take(1u8, t0) && b.take(1u8, t0));
        assert!(!b.has_token(&1u8, t0));
        assert!(!b.has_token(&1u8, t0 + Duration::from_secs(3599)));
        assert!(b.has_token(&1u8, t0 + Duration::from_secs(3600)));
        assert!(b.has_token(&1u8, t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn ipv6_addresses_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(address_key(v4), v4);
    }
}
