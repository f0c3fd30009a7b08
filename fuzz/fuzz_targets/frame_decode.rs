//! Fuzzes everything that parses bytes from the network in postern-protocol: whole
//! frames, the streaming decoder, request/response/push bodies and padding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern_protocol::frame::{self, FrameDecoder};
use postern_protocol::padding;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = frame::split_frame(data) {
        let _ = frame::decode_request(body);
    }
    let _ = frame::decode_request(data);
    let _ = frame::decode_response(data);
    let _ = frame::decode_push(data);
    let _ = padding::unpad(data);
    // Round trip: anything that decodes re-encodes to something that decodes the same.
    if let Ok(req) = frame::decode_request(data) {
        let again = frame::encode_body(&req).expect("decoded request re-encodes");
        assert_eq!(frame::decode_request(&again).expect("re-decodes"), req);
    }
    let mut d = FrameDecoder::new();
    for chunk in data.chunks(7) {
        d.push(chunk);
        while let Ok(Some(body)) = d.next_body() {
            let _ = frame::decode_push(&body);
        }
    }
});
