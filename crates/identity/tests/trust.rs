//! Trust objects: every bad input of the trust issue, each refused with a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use fixtures::*;
use postern_identity::descriptor::OrgDescriptorBody;
use postern_identity::encoding::{BoundedVec, SIGNATURE_LEN, SignedBody, context};
use postern_identity::*;

#[test]
fn every_signed_object_round_trips() {
    for (kind, bytes) in all_signed() {
        decode_as(kind, &bytes).unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
    assert_eq!(
        MemberCertificate::decode(&member_cert().encode()).unwrap(),
        member_cert()
    );
    assert_eq!(
        OrgDescriptor::decode(&descriptor().encode()).unwrap(),
        descriptor()
    );
    assert_eq!(
        RevocationList::decode(&revocations().encode()).unwrap(),
        revocations()
    );
    assert_eq!(
        EnrollmentRequest::decode(&request().encode()).unwrap(),
        request()
    );
    assert_eq!(
        EnrollmentBundle::decode(&bundle().encode()).unwrap(),
        bundle()
    );
}

#[test]
fn tampering_with_any_bit_of_any_signed_object_is_refused() {
    for (kind, bytes) in all_signed() {
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(
                    decode_as(kind, &bad).is_err(),
                    "{kind}: flipping bit {bit:#x} of byte {i} was accepted"
                );
            }
        }
    }
}

#[test]
fn tampering_with_the_body_is_a_bad_signature_when_the_fields_still_parse() {
    // Flip a byte inside the serial: fields still parse, the signature does not verify.
    let mut bytes = member_cert().encode();
    bytes[32] ^= 0x01;
    assert_eq!(
        MemberCertificate::decode(&bytes),
        Err(TrustError::BadSignature {
            object: "member certificate"
        })
    );
    let mut bytes = member_cert().encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assert_eq!(
        MemberCertificate::decode(&bytes),
        Err(TrustError::BadSignature {
            object: "member certificate"
        })
    );
}

#[test]
fn truncated_encodings_are_refused_at_every_length() {
    for (kind, bytes) in all_signed() {
        for len in 0..bytes.len() {
            assert!(
                decode_as(kind, &bytes[..len]).is_err(),
                "{kind} cut to {len}"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_refused() {
    for (kind, bytes) in all_signed() {
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_as(kind, &long).is_err(), "{kind}");
    }
}

#[test]
fn oversized_encodings_are_refused_before_decoding() {
    let huge = vec![0u8; 1 << 21];
    for (kind, _) in all_signed() {
        assert!(
            matches!(decode_as(kind, &huge), Err(TrustError::TooLarge { .. })),
            "{kind}"
        );
    }
    let too_long = vec![0u8; <MemberCertificateBody as SignedBody>::MAX_ENCODED_LEN + 1];
    assert!(matches!(
        MemberCertificate::decode(&too_long),
        Err(TrustError::TooLarge { max: 512, .. })
    ));
}

#[test]
fn a_length_prefix_above_the_bound_is_refused_without_allocating() {
    // A revocation list claiming u32::MAX serials in a short input.
    let org = org_root().org_key().to_bytes();
    let mut bytes = org.to_vec();
    bytes.push(1); // version
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // count = u32::MAX
    bytes.extend_from_slice(&[0u8; SIGNATURE_LEN]);
    assert!(matches!(
        RevocationList::decode(&bytes),
        Err(TrustError::Malformed { .. })
    ));
}

#[test]
fn non_canonical_encodings_are_refused() {
    // Version 2 written as an over-long varint (0x82 0x00) in a descriptor.
    let d = descriptor();
    let bytes = d.encode();
    let mut bad = bytes[..32].to_vec();
    assert_eq!(bytes[32], 2);
    bad.extend_from_slice(&[0x82, 0x00]);
    bad.extend_from_slice(&bytes[33..]);
    assert!(OrgDescriptor::decode(&bad).is_err());
}

#[test]
fn a_signature_for_one_object_type_never_verifies_as_another() {
    let device = device();
    let message = b"the same body bytes";
    for (i, ctx) in context::ALL.iter().enumerate() {
        let sig = device.sign(ctx, message);
        for (j, other) in context::ALL.iter().enumerate() {
            assert_eq!(
                device.public_key().verify(other, message, &sig),
                i == j,
                "context {i} vs {j}"
            );
        }
    }
    // Contexts are distinct, NUL-terminated and none is a prefix of another.
    for (i, a) in context::ALL.iter().enumerate() {
        assert_eq!(a.last(), Some(&0));
        assert_eq!(a.iter().filter(|&&b| b == 0).count(), 1);
        for (j, b) in context::ALL.iter().enumerate() {
            if i != j {
                assert!(!b.starts_with(a));
            }
        }
    }
}

#[test]
fn an_org_signature_moved_onto_another_object_type_is_refused() {
    // A revocation list whose body happens to be the prefix the org signed as a
    // descriptor: signing the same bytes under the descriptor context and presenting them
    // as a revocation list must fail the signature check.
    let root = org_root();
    let rl = revocations();
    let rl_bytes = rl.encode();
    let body = &rl_bytes[..rl_bytes.len() - SIGNATURE_LEN];
    for ctx in context::ALL {
        if ctx == context::REVOCATION_LIST {
            continue;
        }
        let sig = DeviceKeyPair::from_seed(&root.seed()).sign(ctx, body);
        let forged = [body, sig.as_slice()].concat();
        assert_eq!(
            RevocationList::decode(&forged),
            Err(TrustError::BadSignature {
                object: "revocation list"
            }),
            "{}",
            String::from_utf8_lossy(ctx)
        );
    }
    // And a member certificate's own bytes never decode as any other type.
    let cert = member_cert().encode();
    for (kind, _) in all_signed() {
        if kind != "member certificate" {
            assert!(decode_as(kind, &cert).is_err(), "{kind}");
        }
    }
}

#[test]
fn a_certificate_from_another_org_is_wrong_org() {
    let ours = org_root().org_key();
    let theirs = other_org_root();
    let cert = member_cert_of(&theirs);
    let now = NOT_BEFORE + 10;
    assert!(matches!(
        verify_member(&cert, &ours, &empty_revocations(), now),
        Err(TrustError::WrongOrg { expected, found, .. }) if expected == ours && found == theirs.org_key()
    ));
    // A revocation list from another org is not accepted in place of ours.
    let their_rl = revocations_of(&theirs, 9, vec![]);
    assert!(matches!(
        verify_member(&member_cert(), &ours, &their_rl, now),
        Err(TrustError::WrongOrg {
            object: "revocation list",
            ..
        })
    ));
}

#[test]
fn validity_boundaries_are_exact() {
    let org = org_root().org_key();
    let rl = empty_revocations();
    let cert = member_cert();
    assert_eq!(
        verify_member(&cert, &org, &rl, NOT_BEFORE - 1),
        Err(TrustError::NotYetValid {
            not_before: NOT_BEFORE,
            now: NOT_BEFORE - 1
        })
    );
    assert_eq!(verify_member(&cert, &org, &rl, NOT_BEFORE), Ok(()));
    assert_eq!(verify_member(&cert, &org, &rl, NOT_AFTER - 1), Ok(()));
    assert_eq!(
        verify_member(&cert, &org, &rl, NOT_AFTER),
        Err(TrustError::Expired {
            not_after: NOT_AFTER,
            now: NOT_AFTER
        })
    );
    assert_eq!(
        certificate_status(&cert, &rl, NOT_AFTER),
        CertificateStatus::Expired
    );
}

#[test]
fn an_empty_validity_window_cannot_be_issued() {
    let root = org_root();
    let r = root.issue_member_certificate(
        Handle::new("abc").unwrap(),
        Role::Admin,
        signal_key(1),
        device().public_key(),
        10,
        10,
        1,
    );
    assert!(matches!(r, Err(TrustError::Malformed { .. })));
}

#[test]
fn a_revoked_certificate_is_refused() {
    let org = org_root().org_key();
    assert_eq!(
        verify_member(&member_cert(), &org, &revocations(), NOT_BEFORE),
        Err(TrustError::Revoked { serial: SERIAL })
    );
    assert_eq!(
        certificate_status(&member_cert(), &revocations(), NOT_BEFORE),
        CertificateStatus::Revoked
    );
}

#[test]
fn roles_are_enforced() {
    let org = org_root().org_key();
    let rl = empty_revocations();
    assert_eq!(
        verify_member_in_role(&member_cert(), &org, &rl, NOT_BEFORE, &[Role::Courier]),
        Ok(())
    );
    assert_eq!(
        verify_member_in_role(
            &member_cert(),
            &org,
            &rl,
            NOT_BEFORE,
            &[Role::Admin, Role::Coordinator]
        ),
        Err(TrustError::RoleNotAllowed {
            role: Role::Courier
        })
    );
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
    }
    assert!("boss".parse::<Role>().is_err());
}

#[test]
fn an_older_revocation_list_is_stale() {
    let root = org_root();
    let org = root.org_key();
    let v3 = revocations_of(&root, 3, vec![1]);
    let v2 = revocations_of(&root, 2, vec![]);
    let v4 = revocations_of(&root, 4, vec![1, 2]);
    assert_eq!(RevocationList::accept_update(None, &v2, &org), Ok(true));
    assert_eq!(
        RevocationList::accept_update(Some(&v3), &v2, &org),
        Err(TrustError::StaleRevocationList {
            held: 3,
            offered: 2
        })
    );
    assert_eq!(
        RevocationList::accept_update(Some(&v3), &v3, &org),
        Ok(false)
    );
    assert_eq!(
        RevocationList::accept_update(Some(&v3), &v4, &org),
        Ok(true)
    );
    let fork = revocations_of(&root, 3, vec![7]);
    assert_eq!(
        RevocationList::accept_update(Some(&v3), &fork, &org),
        Err(TrustError::ConflictingRevocationList { version: 3 })
    );
    let theirs = revocations_of(&other_org_root(), 9, vec![]);
    assert!(matches!(
        RevocationList::accept_update(Some(&v3), &theirs, &org),
        Err(TrustError::WrongOrg { .. })
    ));
}

#[test]
fn unsorted_revocation_serials_are_malformed() {
    // Sign an unsorted list directly through serde to bypass RevocationListBody::new.
    let root = org_root();
    let body = RevocationListBody {
        org: root.org_key(),
        version: 1,
        revoked: BoundedVec::new(vec![5, 3]).unwrap(),
    };
    assert!(matches!(
        root.sign_revocations(body),
        Err(TrustError::Malformed { .. })
    ));
}

#[test]
fn an_enrollment_request_with_a_failed_proof_of_possession_is_refused() {
    let req = request();
    let bytes = req.encode();
    let body = &bytes[..bytes.len() - SIGNATURE_LEN];
    // Signed by a key other than the device key it names.
    let impostor = DeviceKeyPair::from_seed(&[0x07; 32]);
    let sig = impostor.sign(context::ENROLLMENT_REQUEST, body);
    assert_eq!(
        EnrollmentRequest::decode(&[body, sig.as_slice()].concat()),
        Err(TrustError::BadProofOfPossession)
    );
    // The device key swapped for another after signing.
    let mut swapped = req.body().clone();
    swapped.device_key = impostor.public_key();
    let swapped_body = postcard::to_allocvec(&swapped).unwrap();
    let sig: [u8; 64] = bytes[bytes.len() - SIGNATURE_LEN..].try_into().unwrap();
    assert_eq!(
        EnrollmentRequest::decode(&[swapped_body.as_slice(), sig.as_slice()].concat()),
        Err(TrustError::BadProofOfPossession)
    );
    // Right key, wrong context (e.g. a relay-admission signature replayed).
    let sig = device().sign(b"postern/1 relay-admission\0", body);
    assert_eq!(
        EnrollmentRequest::decode(&[body, sig.as_slice()].concat()),
        Err(TrustError::BadProofOfPossession)
    );
}

#[test]
fn handles_are_restricted() {
    for ok in ["ab", "courier-7", "c.o_o-r", "0x", &"a".repeat(32)] {
        assert!(Handle::new(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "a",
        "Kim",
        "-ab",
        ".ab",
        "a b",
        "김정",
        "a/b",
        &"a".repeat(33),
    ] {
        assert!(Handle::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn signal_keys_need_33_bytes_and_the_djb_type_byte() {
    assert!(SignalPublicKey::from_bytes(&[5; 33]).is_ok());
    assert!(SignalPublicKey::from_bytes(&[5; 32]).is_err());
    assert!(SignalPublicKey::from_bytes(&[6; 33]).is_err());
}

#[test]
fn org_keys_have_a_text_form() {
    let org = org_root().org_key();
    let text = org.to_string();
    assert!(text.starts_with("postern-org:"));
    assert_eq!(text.len(), "postern-org:".len() + 52);
    assert_eq!(text.parse::<OrgKey>(), Ok(org));
    assert!(
        text.to_uppercase()
            .replace("POSTERN-ORG:", "postern-org:")
            .parse::<OrgKey>()
            .is_ok()
    );
    assert!(text[..text.len() - 1].parse::<OrgKey>().is_err());
    assert!(text.replace("postern-org:", "").parse::<OrgKey>().is_err());
    // The identity point is a weak (small-order) key and is refused.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(OrgKey::from_bytes(identity).is_err());
}

#[test]
fn secrets_do_not_print() {
    let root = org_root();
    let dbg = format!("{root:?}");
    assert!(dbg.contains("redacted"));
    assert!(!dbg.contains(&hex::encode(root.seed().as_slice())));
    assert_eq!(
        format!("{:?}", DirectoryKey::from_bytes(&[0x44; 32])),
        "DirectoryKey(redacted)"
    );
    assert_eq!(format!("{:?}", bundle_secret()), "BundleSecret(redacted)");
    assert!(format!("{:?}", device()).contains("redacted"));
}

#[test]
fn descriptor_policy_and_relays_are_checked() {
    let root = org_root();
    let mk = |policy: Policy, relays: Vec<RelayAddress>| {
        root.sign_descriptor(OrgDescriptorBody {
            org: root.org_key(),
            version: 1,
            relays: BoundedVec::new(relays).unwrap(),
            sealed_sender_trust_root: signal_key(0x22),
            policy,
        })
    };
    assert!(mk(Policy::default(), vec![relay()]).is_ok());
    assert!(mk(Policy::default(), vec![relay(), relay()]).is_err());
    let max = Policy::default().max_ttl_secs;
    let too_long_default = Policy {
        default_ttl_secs: max + 1,
        ..Policy::default()
    };
    assert!(mk(too_long_default, vec![]).is_err());
    let no_retention = Policy {
        retention_days: 0,
        ..Policy::default()
    };
    assert!(mk(no_retention, vec![]).is_err());
}

#[test]
fn a_sealed_bundle_opens_only_for_the_requesting_device() {
    let org = org_root().org_key();
    let req = request();
    let sealed = bundle().seal(&req).unwrap();
    let opened = EnrollmentBundle::open(&sealed, &bundle_secret()).unwrap();
    assert_eq!(opened, bundle());
    assert_eq!(opened.verify_for(&org, &req, NOT_BEFORE), Ok(()));
    assert_eq!(
        opened.body().directory_key.as_bytes(),
        &[0x44; 32],
        "directory key travels"
    );
    // Another device's secret cannot open it.
    assert_eq!(
        EnrollmentBundle::open(&sealed, &BundleSecret::from_bytes(&[0x34; 32])),
        Err(TrustError::BundleNotForThisDevice)
    );
    // Any altered byte fails.
    for i in 0..sealed.len() {
        let mut bad = sealed.clone();
        bad[i] ^= 0x01;
        assert!(
            EnrollmentBundle::open(&bad, &bundle_secret()).is_err(),
            "byte {i}"
        );
    }
    for len in 0..sealed.len() {
        assert!(EnrollmentBundle::open(&sealed[..len], &bundle_secret()).is_err());
    }
    // Verified against another org, or another request, it is refused.
    assert!(matches!(
        opened.verify_for(&other_org_root().org_key(), &req, NOT_BEFORE),
        Err(TrustError::WrongOrg { .. })
    ));
    let (other_req, _) = EnrollmentRequest::create(
        Handle::new("courier-7").unwrap(),
        signal_key(0x11),
        &device(),
    )
    .unwrap();
    assert!(matches!(
        opened.verify_for(&org, &other_req, NOT_BEFORE),
        Err(TrustError::BundleMismatch { .. })
    ));
    assert!(matches!(
        bundle().seal(&other_req),
        Err(TrustError::BundleMismatch { .. })
    ));
}

#[test]
fn a_bundle_mixing_orgs_is_refused() {
    let root = org_root();
    let body = postern_identity::enrollment::bundle_body(
        root.org_key(),
        &request(),
        member_cert_of(&other_org_root()),
        b"x".to_vec(),
        descriptor(),
        empty_revocations(),
        DirectoryKey::generate(),
    )
    .unwrap();
    assert!(matches!(
        root.sign_bundle(body),
        Err(TrustError::Malformed { .. })
    ));
}
