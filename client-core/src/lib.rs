//! Gridsync's shared core, used by the phone (through `gridsync-ffi`) and by
//! the server.
//!
//! Every field record (patrol, hazard, visit, household ledger, dispute) is
//! one Automerge document. The core defines the domain model, how a record
//! maps onto its document and how concurrent edits merge, the sync wire
//! protocol, and (behind the `store` feature) the phone's SQLite store.
//!
//! # Layout
//!
//! - [`grid`]: the county tree ([`grid::GridPath`]) and roles.
//! - [`model`]: record kinds, fields, validation, Chinese labels, derived status.
//! - [`events`]: append-only histories, their causal order and conflicts.
//! - [`doc`]: [`doc::RecordDoc`], a record as an Automerge document.
//! - [`rules`]: who may change what, judged on one step of a record.
//! - [`judge`]: received changes judged one at a time against the state at their dependencies.
//! - [`protocol`]: sync wire messages and their binary encoding.
//! - [`reports`]: supervision figures (weekly summary, monthly figures, patrol coverage, backlog), pure.
//! - [`error`]: [`error::CoreError`], the one error type.
//! - [`store`] (feature `store`): the phone's SQLite store, outbox and cursor.
//! - [`sync`] (feature `store`): the sans-I/O sync engine over the store.
//! - [`transport`] (feature `store`; HTTP with feature `http`): what moves the engine's bytes.
//! - [`phone`] (feature `http`): the phone API an app and the e2e phones
//!   call; with feature `uniffi` its types cross to Kotlin and Swift.

pub mod doc;
pub mod error;
pub mod events;
pub mod grid;
pub mod judge;
pub mod model;
#[cfg(feature = "http")]
pub mod phone;
pub mod protocol;
pub mod reports;
pub mod rules;
pub mod signing;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "store")]
pub mod sync;
#[cfg(feature = "store")]
pub mod transport;

pub use error::{CoreError, FieldError, Result};

// The core's own UniFFI component: its types are the ones apps see.
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!("gridsync_core");
