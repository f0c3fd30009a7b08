//! Property tests: decoders never panic on arbitrary bytes; encodings round-trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use fixtures::*;
use postern_identity::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = MemberCertificate::decode(&bytes);
        let _ = OrgDescriptor::decode(&bytes);
        let _ = RevocationList::decode(&bytes);
        let _ = EnrollmentRequest::decode(&bytes);
        let _ = EnrollmentBundle::decode(&bytes);
        let _ = EnrollmentBundle::open(&bytes, &bundle_secret());
        let _ = secret_file::open(&bytes, b"pw");
        let _ = String::from_utf8_lossy(&bytes).parse::<OrgKey>();
        let _ = String::from_utf8_lossy(&bytes).parse::<RelayAddress>();
    }

    #[test]
    fn decoders_never_panic_on_mutated_valid_objects(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let (kind, mut bytes) = all_signed().swap_remove(which);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let len = cut.index(bytes.len() + 1);
        let _ = decode_as(kind, &bytes[..len]);
    }

    #[test]
    fn member_certificates_round_trip(
        handle in "[a-z0-9][a-z0-9._-]{1,31}",
        role in 0usize..3,
        serial in any::<u64>(),
        not_before in any::<u64>(),
        span in 1u64..=u64::MAX,
        key in any::<[u8; 32]>(),
    ) {
        let root = org_root();
        let mut sk = [5u8; 33];
        sk[1..].copy_from_slice(&key);
        let cert = root.issue_member_certificate(
            Handle::new(&handle).unwrap(),
            Role::ALL[role],
            SignalPublicKey::from_bytes(&sk).unwrap(),
            device().public_key(),
            not_before,
            not_before.saturating_add(span),
            serial,
        );
        if not_before == u64::MAX {
            prop_assert!(cert.is_err(), "an empty validity window is refused");
        } else {
            let cert = cert.unwrap();
            prop_assert_eq!(MemberCertificate::decode(&cert.encode()).unwrap(), cert);
        }
    }

    #[test]
    fn revocation_lists_round_trip(version in any::<u64>(), serials in proptest::collection::vec(any::<u64>(), 0..200)) {
        let rl = revocations_of(&org_root(), version, serials.clone());
        let back = RevocationList::decode(&rl.encode()).unwrap();
        for s in &serials {
            prop_assert!(back.is_revoked(*s));
        }
        prop_assert_eq!(back, rl);
    }

    #[test]
    fn relay_addresses_round_trip(pin in any::<[u8; 32]>(), host in "[a-z0-9][a-z0-9.-]{0,40}", port in 1u16..) {
        let a = RelayAddress::new(pin, &host, port).unwrap();
        prop_assert_eq!(a.to_string().parse::<RelayAddress>().unwrap(), a);
    }
}
