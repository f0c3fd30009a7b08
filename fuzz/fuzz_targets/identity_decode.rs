//! Fuzzes the decoders of every identity object: certificates, descriptors, revocation
//! lists, enrollment requests and bundles (plain and sealed), secret files and the text
//! forms. None may panic, and whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_identity::{
    BundleSecret, EnrollmentBundle, EnrollmentRequest, MemberCertificate, OrgDescriptor, OrgKey,
    RelayAddress, RevocationList, secret_file,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = MemberCertificate::decode(data) {
        assert_eq!(cert.encode(), data);
    }
    if let Ok(descriptor) = OrgDescriptor::decode(data) {
        assert_eq!(descriptor.encode(), data);
    }
    if let Ok(list) = RevocationList::decode(data) {
        assert_eq!(list.encode(), data);
    }
    if let Ok(request) = EnrollmentRequest::decode(data) {
        assert_eq!(request.encode(), data);
    }
    if let Ok(bundle) = EnrollmentBundle::decode(data) {
        assert_eq!(bundle.encode(), data);
    }
    let _ = EnrollmentBundle::open(data, &BundleSecret::from_bytes(&[0x33; 32]));
    let _ = secret_file::params_of(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<OrgKey>();
        let _ = text.parse::<RelayAddress>();
    }
});
