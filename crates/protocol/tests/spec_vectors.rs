//! SPEC.md and the code agree: every test vector in the code appears in the spec with the
//! same bytes (and the spec has no vector the code lacks), every error code has its row,
//! and every vector decodes back to a message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use postern_protocol::error::ErrorCode;
use postern_protocol::frame::{decode_push, decode_request, decode_response, split_frame};
use postern_protocol::vectors::{self, error_row, parse_spec_lines};

fn spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../protocol-spec/SPEC.md");
    std::fs::read_to_string(path).expect("protocol-spec/SPEC.md")
}

/// `<!-- vector: NAME -->` followed by a ```hex block.
fn spec_vectors(spec: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut lines = spec.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- vector: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(lines.next().map(str::trim), Some("```hex"), "{name}");
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        let bytes = parse_spec_lines(body).unwrap_or_else(|| panic!("bad hex in {name}"));
        assert!(out.insert(name.to_owned(), bytes).is_none(), "{name} twice");
    }
    out
}

#[test]
fn spec_vectors_match_the_code() {
    let spec = spec();
    let in_spec = spec_vectors(&spec);
    let in_code = vectors::all().unwrap();
    for v in &in_code {
        let got = in_spec
            .get(v.name)
            .unwrap_or_else(|| panic!("SPEC.md lacks vector {}", v.name));
        assert_eq!(
            got, &v.frame,
            "SPEC.md vector {} differs from the code; regenerate with \
             `cargo run -p postern-protocol --example spec-vectors`",
            v.name
        );
    }
    assert_eq!(
        in_spec.len(),
        in_code.len(),
        "SPEC.md has vectors the code lacks"
    );
}

#[test]
fn spec_vectors_decode() {
    for v in vectors::all().unwrap() {
        if !["request-", "response-", "push-"]
            .iter()
            .any(|p| v.name.starts_with(p))
        {
            // Signed bytes, not a frame.
            continue;
        }
        let body = split_frame(&v.frame).unwrap();
        let ok = if v.name.starts_with("request-") {
            decode_request(body).is_ok()
        } else if v.name.starts_with("response-") {
            decode_response(body).is_ok()
        } else {
            decode_push(body).is_ok()
        };
        assert!(ok, "{} does not decode", v.name);
    }
}

#[test]
fn spec_lists_every_error_code() {
    let spec = spec();
    for code in ErrorCode::ALL {
        let row = error_row(*code);
        assert!(spec.contains(&row), "SPEC.md §5 lacks the row {row}");
    }
}
