//! Gridsync end-to-end tests: one test binary, one module per area.
//!
//! Most tests start real `gridsync-server` processes on loopback ports;
//! PostgreSQL tests read `GRIDSYNC_TEST_POSTGRES_URL` and are skipped
//! (saying so) without it.

#![allow(clippy::unwrap_used)]

mod backlog;
mod bench;
mod browser;
mod bundle;
mod disputes;
mod evening;
mod faults;
mod hostile;
mod limits;
mod phone;
mod photo_owners;
mod photos;
mod postgres;
#[cfg(target_os = "linux")]
mod powercut;
mod problems;
mod relay_limits;
mod revoke;
mod sign_out;
mod signatures;
mod simulation;
mod starve;
mod web_abuse;
mod web_walks;
