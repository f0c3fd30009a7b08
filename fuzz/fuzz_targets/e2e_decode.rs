//! Fuzzes the postern-e2e decoders of bytes that come from outside: prekey bundles, the
//! published prekeys of a directory entry, one-time prekeys and the message plaintext
//! structure. None may panic, and whatever decodes must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_e2e::{
    Plaintext, decode_bundle, decode_one_time_prekey, decode_public_prekeys, encode_bundle,
    encode_one_time_prekey, encode_public_prekeys,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = decode_bundle(data) {
        assert_eq!(
            encode_bundle(&bundle).expect("decoded bundle re-encodes"),
            data
        );
    }
    if let Ok(keys) = decode_public_prekeys(data) {
        assert_eq!(
            encode_public_prekeys(&keys).expect("decoded prekeys re-encode"),
            data
        );
    }
    if let Ok(key) = decode_one_time_prekey(data) {
        assert_eq!(
            encode_one_time_prekey(&key).expect("decoded prekey re-encodes"),
            data
        );
    }
    if let Ok(plaintext) = Plaintext::decode(data) {
        assert_eq!(
            plaintext.encode().expect("decoded plaintext re-encodes"),
            data
        );
    }
});
