//! End-to-end tests for Postern live in `tests/tests/`: a relay and many clients over
//! real QUIC on loopback, simulating couriers. This library is empty on purpose.

#![forbid(unsafe_code)]
