//! The core's integration tests, in one binary (one link on two cores):
//! merging and convergence, the phone store, crash and power-cut safety,
//! the encrypted store and the judge's shortcut for new records.

// `allow-unwrap-in-tests` covers `#[test]` functions only, not the helpers
// of a test crate; a failed unwrap in a helper is a failed test all the same.
#![allow(clippy::unwrap_used)]

mod common;
mod convergence;
mod crash;
mod encrypted;
mod first_change;
mod powercut;
mod store;
