//! Property tests: every message round-trips through its frame; arbitrary and mutated
//! bytes never panic the decoders; bounds are enforced by the decoders themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use postern_protocol::frame::{
    self, FrameDecoder, decode_push, decode_request, decode_response, encode_frame,
};
use postern_protocol::limits::{MAX_ACK_IDS, MAX_FRAME_LEN};
use postern_protocol::{DecodeError, Request};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_request_round_trips(r in request()) {
        let f = encode_frame(&r).unwrap();
        prop_assert_eq!(decode_request(frame::split_frame(&f).unwrap()).unwrap(), r);
    }

    #[test]
    fn every_response_round_trips(r in response()) {
        let f = encode_frame(&r).unwrap();
        prop_assert_eq!(decode_response(frame::split_frame(&f).unwrap()).unwrap(), r);
    }

    #[test]
    fn every_push_round_trips(p in push()) {
        let f = encode_frame(&p).unwrap();
        prop_assert_eq!(decode_push(frame::split_frame(&f).unwrap()).unwrap(), p);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(b in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode_request(&b);
        let _ = decode_response(&b);
        let _ = decode_push(&b);
        let _ = frame::split_frame(&b);
        let mut d = FrameDecoder::new();
        d.push(&b);
        while let Ok(Some(_)) = d.next_body() {}
    }

    #[test]
    fn mutated_frames_never_panic_and_never_decode_to_garbage_silently(
        r in request(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let body = frame::encode_body(&r).unwrap();
        let mut bad = body.clone();
        let i = at.index(bad.len());
        bad[i] ^= 1 << bit;
        // A flipped bit either fails to decode or decodes to some other valid request
        // (e.g. a changed id byte); it never panics and never returns the original.
        if let Ok(other) = decode_request(&bad) {
            prop_assert_ne!(other, r);
        }
    }

    #[test]
    fn truncated_frames_are_refused(r in request(), cut in any::<prop::sample::Index>()) {
        let f = encode_frame(&r).unwrap();
        let n = cut.index(f.len());
        let err = frame::split_frame(&f[..n]).unwrap_err();
        prop_assert!(matches!(err, DecodeError::Truncated { .. }), "{err:?}");
        // A truncated body is malformed, never a shorter valid message.
        let body = &f[4..];
        if n > 4 {
            prop_assert!(decode_request(&body[..n - 4]).is_err());
        }
    }

    #[test]
    fn the_streaming_decoder_splits_any_chunking(
        msgs in proptest::collection::vec(push(), 1..6),
        chunk in 1usize..700,
    ) {
        let wire: Vec<u8> = msgs.iter().flat_map(|m| encode_frame(m).unwrap()).collect();
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for c in wire.chunks(chunk) {
            d.push(c);
            while let Some(body) = d.next_body().unwrap() {
                got.push(decode_push(&body).unwrap());
            }
        }
        d.finish().unwrap();
        prop_assert_eq!(got, msgs);
    }
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut body = frame::encode_body(&Request::Subscribe).unwrap();
    body.push(0);
    assert_eq!(
        decode_request(&body),
        Err(DecodeError::Malformed { what: "request" })
    );
}

#[test]
fn oversized_header_is_refused_before_the_body_arrives() {
    let mut d = FrameDecoder::new();
    d.push(&((MAX_FRAME_LEN as u32) + 1).to_be_bytes());
    assert!(matches!(
        d.next_body(),
        Err(DecodeError::FrameTooLarge { .. })
    ));
    assert!(matches!(
        frame::body_len(u32::MAX.to_be_bytes()),
        Err(DecodeError::FrameTooLarge { .. })
    ));
}

#[test]
fn exact_limit_frame_is_accepted_by_the_header_check() {
    assert_eq!(
        frame::body_len((MAX_FRAME_LEN as u32).to_be_bytes()),
        Ok(MAX_FRAME_LEN)
    );
}

#[test]
fn a_count_above_a_bound_is_refused_even_if_the_bytes_are_there() {
    // Ack with MAX_ACK_IDS + 1 ids, hand-encoded: variant 9, varint count, 32-byte ids.
    let n = MAX_ACK_IDS + 1;
    let mut body = vec![9u8];
    let mut count = n as u32;
    loop {
        let b = (count & 0x7f) as u8;
        count >>= 7;
        if count == 0 {
            body.push(b);
            break;
        }
        body.push(b | 0x80);
    }
    body.extend(std::iter::repeat_n(0xab, 32 * n));
    assert!(decode_request(&body).is_err());
    // and exactly MAX_ACK_IDS decodes
    let ok = Request::Ack(postern_protocol::message::Ack {
        ids: postern_protocol::BoundedVec::new(vec![
            postern_protocol::EnvelopeId([0xab; 32]);
            MAX_ACK_IDS
        ])
        .unwrap(),
    });
    let enc = frame::encode_body(&ok).unwrap();
    assert_eq!(decode_request(&enc).unwrap(), ok);
}

#[test]
fn an_envelope_body_above_the_largest_bucket_is_refused() {
    // Send with a 65537-byte body, hand-encoded.
    let mut body = vec![6u8];
    body.extend([0x22; 32]); // to
    body.push(60); // ttl varint
    let len = 65537u32;
    body.extend([
        (len & 0x7f) as u8 | 0x80,
        ((len >> 7) & 0x7f) as u8 | 0x80,
        (len >> 14) as u8,
    ]);
    body.extend(std::iter::repeat_n(0u8, len as usize));
    assert_eq!(
        decode_request(&body),
        Err(DecodeError::Malformed { what: "request" })
    );
}

#[test]
fn varints_must_be_canonical_and_bools_zero_or_one() {
    // `Ping { nonce: 0 }` is `0c 00` (variant 12, varint 0). The same zero spelled with a
    // continuation byte, `80 00`, is not the canonical encoding.
    assert_eq!(
        decode_request(&[0x0c, 0x00]).unwrap(),
        Request::Ping(postern_protocol::message::Ping { nonce: 0 })
    );
    let overlong = decode_request(&[0x0c, 0x80, 0x00]);
    assert!(
        matches!(overlong, Err(DecodeError::Malformed { .. })),
        "an overlong varint is refused: {overlong:?}"
    );
    // A variant index spelled overlong.
    assert!(decode_request(&[0x8c, 0x00, 0x00]).is_err());
    // A u64 varint longer than ten bytes.
    let mut long = vec![0x0c];
    long.extend([0xff; 10]);
    long.push(0x01);
    assert!(decode_request(&long).is_err());
    // A bool other than 00 or 01 (`Envelopes.more`).
    let ok = postern_protocol::frame::decode_response(&[0x09, 0x00, 0x01]);
    assert!(ok.is_ok(), "{ok:?}");
    assert!(postern_protocol::frame::decode_response(&[0x09, 0x00, 0x02]).is_err());
}
