//! Decoding hostile bytes never allocates more than the frame limit. This file is its own
//! test binary with a counting global allocator and a single test, so nothing else
//! allocates while it measures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;

use postern_protocol::frame::{decode_push, decode_request, decode_response};
use postern_protocol::limits::MAX_FRAME_LEN;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Inputs that claim huge lengths and counts: varints with the high bits set.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        proptest::collection::vec(
            prop_oneof![Just(0xffu8), Just(0x80), Just(0x0f), any::<u8>()],
            0..64
        ),
        (0u8..16, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(v, rest)| {
            let mut b = vec![v, 0xff, 0xff, 0xff, 0x0f];
            b.extend(rest);
            b
        }),
    ]
}

#[test]
fn decoding_never_allocates_past_the_frame_limit() {
    let mut runner = TestRunner::new(Config::with_cases(4000));
    let worst = std::cell::Cell::new(0usize);
    runner
        .run(&hostile(), |input| {
            for decode in [
                |b: &[u8]| drop(decode_request(b)),
                |b: &[u8]| drop(decode_response(b)),
                |b: &[u8]| drop(decode_push(b)),
            ] {
                let region = Region::new(GLOBAL);
                decode(&input);
                let stats = region.change();
                worst.set(worst.get().max(stats.bytes_allocated));
                prop_assert!(
                    stats.bytes_allocated <= MAX_FRAME_LEN,
                    "{} bytes allocated decoding {} input bytes",
                    stats.bytes_allocated,
                    input.len()
                );
            }
            Ok(())
        })
        .unwrap();
    println!(
        "worst allocation while decoding hostile input: {} bytes",
        worst.get()
    );
}
