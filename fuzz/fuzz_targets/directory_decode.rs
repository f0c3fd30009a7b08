//! Fuzzes the client's parsers of directory blobs, which come from the relay: the sealed
//! entry and one-time prekey as fetched (`FetchEntry` / `FetchPrekeys` responses), and
//! what they hold once opened (entry structure, member certificate, signed prekeys). The
//! fuzzer cannot forge the AEAD tag, so each input is also sealed here under the fixed
//! directory key and fed back in: that reaches everything behind `open`. None may panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use postern::directory::{
    BlobKind, EntryContent, NONCE_LEN, lookup_key, open, open_one_time, seal_with_nonce,
    verify_entry,
};
use postern_identity::{DirectoryKey, OrgKey, OrgRoot, RevocationList};

/// Handle the seeds' entries are sealed for (`protocol-spec/CLIENT.md` §7).
const HANDLE: &str = "alice";
/// Inside the seed certificates' validity (1 700 000 000 ..< 1 707 776 000).
const NOW: u64 = 1_703_000_000;

/// The spec's directory key (CLIENT.md §7): 32 × 0x44.
static DIRECTORY_KEY: LazyLock<DirectoryKey> =
    LazyLock::new(|| DirectoryKey::from_bytes(&[0x44; 32]));
/// The spec's org (IDENTITY.md §8: root seed 00 01 … 1f).
static ORG: LazyLock<OrgKey> = LazyLock::new(|| {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    OrgRoot::from_seed(&seed).org_key()
});
/// The spec's revocation list of that org (version 3, revokes 5 and 0123456789abcdef).
static REVOCATIONS: LazyLock<RevocationList> = LazyLock::new(|| {
    RevocationList::decode(include_bytes!("../seeds/identity_decode/revocation-list"))
        .expect("the spec's revocation list decodes")
});

fuzz_target!(|data: &[u8]| {
    let key = &*DIRECTORY_KEY;
    // As the relay hands it over: a sealed blob.
    let _ = verify_entry(key, &ORG, &REVOCATIONS, HANDLE, data, NOW);
    let _ = open_one_time(key, HANDLE, data);
    let lookup = lookup_key(key, HANDLE);
    let _ = open(key, &lookup, BlobKind::Entry, data);
    // As the plaintext inside a sealed blob.
    let _ = EntryContent::decode(data);
    let nonce = [0x55; NONCE_LEN];
    if let Ok(sealed) = seal_with_nonce(key, &lookup, BlobKind::Entry, data, nonce) {
        let _ = verify_entry(key, &ORG, &REVOCATIONS, HANDLE, &sealed, NOW);
    }
    if let Ok(sealed) = seal_with_nonce(key, &lookup, BlobKind::OneTime, data, nonce) {
        let _ = open_one_time(key, HANDLE, &sealed);
    }
});
