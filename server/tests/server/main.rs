//! The server's in-process tests, in one binary (one link on two cores):
//! the phone API over `actix_web::test` (`api`) and the supervision reports
//! with the figures' consistency suite (`reports`).

#![allow(clippy::unwrap_used)]

mod support;

mod api;
mod docs;
mod reports;
