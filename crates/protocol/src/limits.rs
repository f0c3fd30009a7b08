//! Protocol limits. Every length that comes off the network is checked against one of
//! these before anything is allocated for it.

/// Largest frame body in bytes (the 4-byte length prefix not included). A length prefix
/// above this is refused before the body is read.
pub const MAX_FRAME_LEN: usize = 256 * 1024;

/// Envelope body buckets in bytes: every envelope body is padded to exactly one of these.
pub const PADDING_BUCKETS: [usize; 4] = [1024, 4 * 1024, 16 * 1024, 64 * 1024];

/// Largest envelope body (the largest bucket).
pub const MAX_ENVELOPE_BODY: usize = PADDING_BUCKETS[PADDING_BUCKETS.len() - 1];

/// Largest content that fits the largest bucket (one byte goes to the padding marker).
pub const MAX_PADDED_CONTENT: usize = MAX_ENVELOPE_BODY - 1;

/// Most protocol versions a client may offer in `Hello`.
pub const MAX_OFFERED_VERSIONS: usize = 8;

/// Largest encoded member certificate presented in `Authenticate`.
pub const MAX_CERTIFICATE_LEN: usize = 4 * 1024;

/// Largest sealed directory entry (certificate, sender mailbox id, signed and Kyber prekeys).
pub const MAX_DIRECTORY_ENTRY_LEN: usize = 16 * 1024;

/// Largest sealed one-time prekey (an EC and a Kyber one-time prekey).
pub const MAX_ONE_TIME_PREKEY_LEN: usize = 2 * 1024;

/// Most one-time prekeys in one `PublishPrekeys`.
pub const MAX_ONE_TIME_PREKEYS_PER_PUBLISH: usize = 100;

/// Most envelope ids in one `Ack`.
pub const MAX_ACK_IDS: usize = 256;

/// Most envelopes in one `Envelopes` response (the frame limit may bind first).
pub const MAX_FETCH_ENVELOPES: usize = 64;

/// Largest encoded revocation list.
pub const MAX_REVOCATION_LIST_LEN: usize = 64 * 1024;

/// Length of a TLS keying-material export used to bind signatures to one connection.
pub const EXPORTER_LEN: usize = 32;
