//! Postern trust: org root, org descriptor, member certificates, revocation lists.
//!
//! **Not implemented yet** (issue "Trust: org root, member certificates, revocation").

#![forbid(unsafe_code)]
