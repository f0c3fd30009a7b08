//! The test vectors in `protocol-spec/IDENTITY.md` are exactly what this crate produces
//! and accepts, so the spec and the code cannot drift apart.
//!
//! To print fresh vectors (after a deliberate format change): `POSTERN_PRINT_VECTORS=1
//! cargo test -p postern-identity --test spec_vectors -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;

use fixtures::*;
use postern_identity::encoding::context;
use postern_identity::secret_file::{self, KdfParams};
use postern_identity::*;

const SPEC: &str = include_str!("../../../protocol-spec/IDENTITY.md");

const SECRET_PASSPHRASE: &[u8] = b"correct horse battery staple";
const SECRET_PLAINTEXT: &[u8] = b"postern secret";

fn secret_file_vector() -> Vec<u8> {
    secret_file::seal_with(
        SECRET_PLAINTEXT,
        SECRET_PASSPHRASE,
        KdfParams::INSECURE_FAST,
        [0x55; 16],
        [0x66; 24],
    )
    .unwrap()
}

fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("org-key", org_root().org_key().to_bytes().to_vec()),
        ("member-certificate", member_cert().encode()),
        ("org-descriptor", descriptor().encode()),
        ("revocation-list", revocations().encode()),
        ("enrollment-request", request().encode()),
        ("enrollment-bundle", bundle().encode()),
        ("secret-file", secret_file_vector()),
    ]
}

/// The hex of the fenced block after `<!-- vector: NAME -->`.
fn spec_vector(name: &str) -> Vec<u8> {
    let marker = format!("<!-- vector: {name} -->");
    let start = SPEC
        .find(&marker)
        .unwrap_or_else(|| panic!("IDENTITY.md has no vector {name}"));
    let rest = &SPEC[start + marker.len()..];
    let open = rest
        .find("```hex\n")
        .expect("a ```hex block follows the marker")
        + 7;
    let close = rest[open..].find("```").expect("closed block") + open;
    let hex_text: String = rest[open..close]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    hex::decode(hex_text).unwrap_or_else(|e| panic!("vector {name}: {e}"))
}

#[test]
fn spec_vectors_match_the_code() {
    if std::env::var_os("POSTERN_PRINT_VECTORS").is_some() {
        for (name, bytes) in vectors() {
            println!("<!-- vector: {name} -->\n```hex");
            for chunk in hex::encode(&bytes).as_bytes().chunks(64) {
                println!("{}", std::str::from_utf8(chunk).unwrap());
            }
            println!("```\n");
        }
    }
    for (name, bytes) in vectors() {
        assert_eq!(
            hex::encode(spec_vector(name)),
            hex::encode(&bytes),
            "vector {name} in protocol-spec/IDENTITY.md differs from the code"
        );
    }
}

#[test]
fn spec_vectors_decode_and_verify() {
    let org = OrgKey::from_bytes(spec_vector("org-key").try_into().unwrap()).unwrap();
    assert!(
        SPEC.contains(&org.to_string()),
        "the org key's text form is in the spec"
    );
    let cert = MemberCertificate::decode(&spec_vector("member-certificate")).unwrap();
    let rl = RevocationList::decode(&spec_vector("revocation-list")).unwrap();
    assert_eq!(
        verify_member(&cert, &org, &rl, NOT_BEFORE),
        Err(TrustError::Revoked { serial: SERIAL })
    );
    let d = OrgDescriptor::decode(&spec_vector("org-descriptor")).unwrap();
    assert_eq!(d.body().org, org);
    let req = EnrollmentRequest::decode(&spec_vector("enrollment-request")).unwrap();
    let bundle = EnrollmentBundle::decode(&spec_vector("enrollment-bundle")).unwrap();
    assert_eq!(bundle.verify_for(&org, &req, NOT_BEFORE), Ok(()));
    let plain = secret_file::open(&spec_vector("secret-file"), SECRET_PASSPHRASE).unwrap();
    assert_eq!(plain.as_slice(), SECRET_PLAINTEXT);
}

#[test]
fn spec_lists_every_context_string() {
    for ctx in context::ALL {
        let text = std::str::from_utf8(&ctx[..ctx.len() - 1]).unwrap();
        let shown = format!("`{text}\\0`");
        assert!(
            SPEC.contains(&shown),
            "IDENTITY.md lacks the context {shown}"
        );
    }
}
