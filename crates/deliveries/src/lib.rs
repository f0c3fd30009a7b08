//! The courier-delivery domain: delivery events, the state machine that derives a
//! delivery's state from them, and hand-off proofs.
//!
//! **Not implemented yet** (issue "The `postern` client, courier deliveries"). Nothing
//! here pretends to work.

#![forbid(unsafe_code)]
