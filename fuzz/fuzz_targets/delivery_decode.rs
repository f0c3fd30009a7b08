//! Fuzzes what a member's client parses from the bodies of delivery messages, which come
//! from peers: delivery events, coordinator secrets and coordinator lists, dispatched on
//! their prefixes as `postern::delivery` does, then held events through a delivery book
//! (insert, derive with and without a secret, list, purge). None may panic.
//!
//! Input: the whole input as one message body, and the same input as a sequence of
//! bodies, each `u16 big-endian length ‖ body`, applied in order to one book.
#![no_main]

use libfuzzer_sys::fuzz_target;
use postern::delivery::{
    BUNDLE_BODY_PREFIX, MAX_BUNDLE, MAX_COORDINATORS, MEMBERS_BODY_PREFIX, SECRET_BODY_PREFIX,
    decode_bundle, decode_coordinator_list,
};
use postern_deliveries::{CoordinatorSecret, DeliveryBook, DeliveryEvent, Handle, Role};

/// Longest sequence of bodies applied to one book per input.
const MAX_BODIES: usize = 64;
/// "Now" for purging, past the seeds' events.
const NOW: u64 = 1_800_000_000;

/// Applies one message body to `book` as the client does.
fn apply(book: &mut DeliveryBook, body: &[u8]) {
    if let Some(rest) = body.strip_prefix(BUNDLE_BODY_PREFIX) {
        if let Ok(parts) = decode_bundle(rest) {
            assert!((2..=MAX_BUNDLE).contains(&parts.len()));
            for part in parts {
                assert!(!part.starts_with(BUNDLE_BODY_PREFIX));
                apply(book, &part);
            }
        }
        return;
    }
    if let Some(rest) = body.strip_prefix(SECRET_BODY_PREFIX) {
        if let Ok(secret) = CoordinatorSecret::decode(rest) {
            book.add_secret(secret);
        }
        return;
    }
    if let Some(rest) = body.strip_prefix(MEMBERS_BODY_PREFIX) {
        if let Ok((_, handles)) = decode_coordinator_list(rest) {
            assert!(handles.len() <= MAX_COORDINATORS);
        }
        return;
    }
    // The sender is authenticated by the e2e layer; here it is whoever the event names,
    // so that the event gets past the author check into the log.
    if let Ok(event) = DeliveryEvent::decode(body) {
        let _ = book.receive(body, &event.author, event.role);
        // Once more as another sender: refused as an author mismatch.
        if let Ok(other) = Handle::new("fuzz-other") {
            let _ = book.receive(body, &other, Role::Courier);
        }
    }
}

fn exercise(book: &mut DeliveryBook, viewer: &Handle) {
    for role in [Role::Admin, Role::Coordinator, Role::Courier] {
        for state in book.list_for(viewer, role) {
            let _ = state.refusals_due();
            let _ = state.verified_claim();
            let _ = state.visible_to(viewer, role);
        }
    }
    let _ = book.purge_closed(NOW, 30);
}

fuzz_target!(|data: &[u8]| {
    let Ok(viewer) = Handle::new("courier-a") else {
        return;
    };
    let mut book = DeliveryBook::new();
    apply(&mut book, data);
    exercise(&mut book, &viewer);

    let mut book = DeliveryBook::new();
    let mut rest = data;
    for _ in 0..MAX_BODIES {
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len));
        if tail.len() < len {
            break;
        }
        let (body, tail) = tail.split_at(len);
        apply(&mut book, body);
        rest = tail;
    }
    exercise(&mut book, &viewer);
});
