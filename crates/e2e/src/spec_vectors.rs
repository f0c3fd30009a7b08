//! Checks the test vectors in `protocol-spec/E2E.md` against the code. Vectors are
//! fenced blocks of `key: value` lines starting with `vector: <name>`; every key this
//! file computes must be present and equal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use crate::plaintext::{ContentType, MessageId, Plaintext};
use crate::vault::{KdfParams, Table};

type Vectors = BTreeMap<String, BTreeMap<String, String>>;

fn seq(start: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| start.wrapping_add(i as u8)).collect()
}

fn compute() -> Vectors {
    let mut v = Vectors::new();
    let mut put = |name: &str, kv: Vec<(&str, String)>| {
        v.insert(
            name.to_owned(),
            kv.into_iter().map(|(k, x)| (k.to_owned(), x)).collect(),
        );
    };
    let id: [u8; 16] = seq(0, 16).try_into().unwrap();
    let text = Plaintext {
        id: MessageId(id),
        content_type: ContentType::Text,
        sent_at_ms: 1_700_000_000_000,
        expires_at_ms: 1_700_086_400_000,
        body: b"hello".to_vec(),
    };
    put(
        "plaintext-text",
        vec![
            ("id", hex::encode(id)),
            ("content_type", "1".into()),
            ("sent_at_ms", text.sent_at_ms.to_string()),
            ("expires_at_ms", text.expires_at_ms.to_string()),
            ("body_utf8", "hello".into()),
            ("encoded", hex::encode(text.encode().unwrap())),
        ],
    );
    let event = Plaintext {
        id: MessageId([0xee; 16]),
        content_type: ContentType::DeliveryEvent,
        sent_at_ms: 1,
        expires_at_ms: 2,
        body: vec![0x42; 218],
    };
    put(
        "plaintext-delivery-event-two-blocks",
        vec![
            ("id", hex::encode([0xee; 16])),
            ("content_type", "2".into()),
            ("sent_at_ms", "1".into()),
            ("expires_at_ms", "2".into()),
            ("body", "42 repeated 218 times".into()),
            ("encoded_len", event.encode().unwrap().len().to_string()),
            ("encoded", hex::encode(event.encode().unwrap())),
        ],
    );
    let salt: [u8; 32] = seq(1, 32).try_into().unwrap();
    let params = KdfParams::insecure_for_tests();
    let (header, keys) =
        crate::vault::header_for_vectors(b"postern test vector", params, salt).unwrap();
    put(
        "vault-header",
        vec![
            ("passphrase_utf8", "postern test vector".into()),
            ("salt", hex::encode(salt)),
            ("m_cost_kib", params.m_cost_kib.to_string()),
            ("t_cost", params.t_cost.to_string()),
            ("p_cost", params.p_cost.to_string()),
            ("header", hex::encode(header)),
            ("value_key", hex::encode(keys.value)),
            ("blind_key", hex::encode(keys.blind)),
        ],
    );
    let blinded = crate::vault::blind_for_vectors(&keys, Table::App, b"contact");
    let nonce: [u8; 24] = seq(0x40, 24).try_into().unwrap();
    let layout = crate::vault::value_layout(Table::App, b"contact", b"value").unwrap();
    let sealed = crate::vault::seal_with_nonce(&keys, &layout, &blinded, nonce).unwrap();
    put(
        "vault-record",
        vec![
            ("table", "10".into()),
            ("key_utf8", "contact".into()),
            ("value_utf8", "value".into()),
            ("blinded_key", hex::encode(blinded)),
            ("nonce", hex::encode(nonce)),
            ("layout", hex::encode(layout.as_slice())),
            ("stored", hex::encode(sealed)),
        ],
    );
    put(
        "message-key",
        vec![
            ("sender_utf8", "bob".into()),
            ("id", hex::encode(id)),
            (
                "key",
                hex::encode(crate::vault::message_key("bob", &MessageId(id))),
            ),
        ],
    );
    v
}

fn parse(doc: &str) -> Vectors {
    let mut out = Vectors::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        let line = line.trim();
        if line.starts_with("```") || line.is_empty() {
            current = None;
            continue;
        }
        let Some((k, val)) = line.split_once(": ") else {
            continue;
        };
        if k == "vector" {
            current = Some(val.to_owned());
            out.entry(val.to_owned()).or_default();
        } else if let Some(name) = &current {
            out.get_mut(name)
                .unwrap()
                .insert(k.to_owned(), val.to_owned());
        }
    }
    out
}

fn spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../protocol-spec/E2E.md");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn e2e_md_vectors_match_the_code() {
    let doc = parse(&spec());
    let computed = compute();
    for (name, fields) in &computed {
        let written = doc
            .get(name)
            .unwrap_or_else(|| panic!("vector {name} missing from E2E.md"));
        for (k, v) in fields {
            assert_eq!(written.get(k), Some(v), "vector {name}, field {k}");
        }
    }
    // And the written encodings decode back to the written fields.
    let enc = hex::decode(&doc["plaintext-text"]["encoded"]).unwrap();
    let p = Plaintext::decode(&enc).unwrap();
    assert_eq!(p.body, b"hello");
    assert!(Plaintext::decode(&enc[..enc.len() - 1]).is_err());
}

/// Prints the vectors in the document's format: `cargo test -p postern-e2e
/// print_e2e_vectors -- --ignored --nocapture`.
#[test]
#[ignore = "prints the vectors for protocol-spec/E2E.md"]
fn print_e2e_vectors() {
    for (name, fields) in compute() {
        println!("```text\nvector: {name}");
        for (k, v) in fields {
            println!("{k}: {v}");
        }
        println!("```\n");
    }
}
