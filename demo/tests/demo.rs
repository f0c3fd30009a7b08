//! `postern-demo` as a newcomer runs it: the real binary, start to end.
#![allow(missing_docs, clippy::unwrap_used)]

use std::process::Command;

#[test]
fn demo_runs_a_delivery_to_the_end() {
    let o = Command::new(env!("CARGO_BIN_EXE_postern-demo"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("FINAL: delivery"), "{out}");
    assert!(
        out.contains("confirmed (wrong codes: 1, flagged: false); coordinator and courier agree"),
        "{out}"
    );
    assert!(out.contains("insecure fast key derivation"), "{out}");
    assert!(out.contains("padded bucket"), "{out}");
    assert!(out.contains("Removed"), "{out}");
}
