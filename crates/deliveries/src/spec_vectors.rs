//! Checks the test vectors in `protocol-spec/DELIVERIES.md` against the code. Vectors
//! are fenced blocks of `key: value` lines starting with `vector: <name>`; every key this
//! file computes must be present and equal, and every vector in the file must be
//! computed here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use crate::*;

type Vectors = BTreeMap<String, BTreeMap<String, String>>;

fn seq(start: u8) -> [u8; 16] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn compute() -> Vectors {
    let mut v = Vectors::new();
    let mut put = |name: &str, kv: Vec<(&str, String)>| {
        v.insert(
            name.to_owned(),
            kv.into_iter().map(|(k, x)| (k.to_owned(), x)).collect(),
        );
    };
    let delivery = DeliveryId(seq(0x00));
    let usd = Currency::new("USD").unwrap();
    let created = DeliveryEvent {
        delivery,
        id: EventId(seq(0x10)),
        clock: 1,
        at: 1_800_000_000,
        author: Handle::new("coord-1").unwrap(),
        role: Role::Coordinator,
        kind: EventKind::Created {
            family: FamilyRef::new("F-1042").unwrap(),
            amount: Amount::parse("1500.50", usd).unwrap(),
            deadline: 1_800_086_400,
        },
    };
    put(
        "event-created",
        vec![
            ("delivery_id", delivery.to_string()),
            ("event_id", created.id.to_string()),
            ("clock", "1".into()),
            ("at", "1800000000".into()),
            ("author", "coord-1".into()),
            ("role", "coordinator".into()),
            ("family", "F-1042".into()),
            ("amount", "1500.50 USD".into()),
            ("amount_minor", "150050".into()),
            ("deadline", "1800086400".into()),
            ("encoded", hex::encode(created.encode())),
        ],
    );

    let values: Vec<u8> = b"482109375512340".iter().map(|b| b - b'0').collect();
    let check = damm_check_digit(&values);
    let code = HandoffCode::parse(&format!("482109375512340{check}")).unwrap();
    put(
        "handoff-code",
        vec![
            ("random_digits", "482109375512340".into()),
            ("check_digit", char::from(code.digits()[15]).to_string()),
            ("shown", code.display_grouped()),
            (
                "entropy_bits",
                format!("{:.1}", handoff_code_entropy_bits()),
            ),
        ],
    );

    let salt: [u8; 32] = std::array::from_fn(|i| 0x20 + i as u8);
    let secret = CoordinatorSecret::commit_with_salt(delivery, salt, &code);
    put(
        "handoff-commitment",
        vec![
            ("delivery_id_hex", hex::encode(delivery.as_bytes())),
            ("salt", hex::encode(salt)),
            (
                "code_digits",
                String::from_utf8(code.digits().to_vec()).unwrap(),
            ),
            ("commitment", hex::encode(secret.commitment())),
            ("secret_encoded", hex::encode(&*secret.encode())),
        ],
    );

    let handed_off = DeliveryEvent {
        delivery,
        id: EventId(seq(0x40)),
        clock: 5,
        at: 1_800_003_600,
        author: Handle::new("courier-a").unwrap(),
        role: Role::Courier,
        kind: EventKind::HandedOff { code: code.clone() },
    };
    put(
        "event-handed-off",
        vec![
            ("delivery_id", delivery.to_string()),
            ("event_id", handed_off.id.to_string()),
            ("clock", "5".into()),
            ("at", "1800003600".into()),
            ("author", "courier-a".into()),
            ("role", "courier".into()),
            ("code", code.display_grouped()),
            ("encoded", hex::encode(handed_off.encode())),
        ],
    );

    let confirmed = DeliveryEvent {
        delivery,
        id: EventId(seq(0x50)),
        clock: 6,
        at: 1_800_003_700,
        author: Handle::new("coord-1").unwrap(),
        role: Role::Coordinator,
        kind: EventKind::Confirmed {
            claim: handed_off.id,
        },
    };
    put(
        "event-confirmed",
        vec![
            ("delivery_id", delivery.to_string()),
            ("event_id", confirmed.id.to_string()),
            ("clock", "6".into()),
            ("at", "1800003700".into()),
            ("author", "coord-1".into()),
            ("role", "coordinator".into()),
            ("claim", handed_off.id.to_string()),
            ("encoded", hex::encode(confirmed.encode())),
        ],
    );

    let krw = Currency::new("KRW").unwrap();
    put(
        "amounts",
        vec![
            (
                "usd_1500.50",
                Amount::parse("1500.50", usd).unwrap().minor().to_string(),
            ),
            (
                "usd_0.05",
                Amount::parse("0.05", usd).unwrap().minor().to_string(),
            ),
            (
                "krw_300000",
                Amount::parse("300000", krw).unwrap().minor().to_string(),
            ),
        ],
    );
    v
}

fn parse_spec(text: &str) -> Vectors {
    let mut out = Vectors::new();
    let mut current: Option<(String, BTreeMap<String, String>)> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("```") {
            if let Some((name, kv)) = current.take() {
                out.insert(name, kv);
            }
            continue;
        }
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        if key == "vector" {
            current = Some((value.to_owned(), BTreeMap::new()));
        } else if let Some((_, kv)) = current.as_mut() {
            kv.insert(key.to_owned(), value.to_owned());
        }
    }
    out
}

#[test]
fn deliveries_md_vectors_match_the_code() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../protocol-spec/DELIVERIES.md"
    );
    let spec = parse_spec(&std::fs::read_to_string(path).unwrap());
    let computed = compute();
    if std::env::var_os("PRINT_VECTORS").is_some() {
        for (name, kv) in &computed {
            println!("```text\nvector: {name}");
            for (k, x) in kv {
                println!("{k}: {x}");
            }
            println!("```\n");
        }
    }
    assert_eq!(
        spec.keys().collect::<Vec<_>>(),
        computed.keys().collect::<Vec<_>>(),
        "vector names in DELIVERIES.md"
    );
    for (name, kv) in &computed {
        for (k, x) in kv {
            assert_eq!(spec[name].get(k), Some(x), "vector {name}, key {k}");
        }
    }
    // The encoded vectors also decode to what they claim.
    for name in ["event-created", "event-handed-off", "event-confirmed"] {
        let bytes = hex::decode(&spec[name]["encoded"]).unwrap();
        let ev = DeliveryEvent::decode(&bytes).unwrap();
        assert_eq!(ev.delivery.to_string(), spec[name]["delivery_id"]);
        assert_eq!(ev.clock.to_string(), spec[name]["clock"]);
    }
}
