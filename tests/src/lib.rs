//! Support for Gridsync's end-to-end tests: real `gridsync-server`
//! processes on loopback, simulated phones running the real client core and
//! HTTP transport, a fault-injecting proxy, and record factories.
//!
//! # Layout
//!
//! - [`server`]: start, kill (SIGKILL) and restart server processes.
//! - [`device`]: a simulated phone.
//! - [`proxy`]: a TCP proxy that cuts requests and loses responses.
//! - [`powercut`]: an `LD_PRELOAD` shim that cuts a process's power (writes
//!   not fsynced are lost).
//! - [`records`]: records of every kind, as a grid manager makes them.
//! - [`hostile`]: crafted changes and raw requests, as a hostile phone sends them.
//! - [`http1`]: a bare HTTP/1.1 client for loopback tests.
//! - [`bench_smoke`]: the bench command's smoke run, checked.

pub mod bed;
pub mod bench_smoke;
pub mod device;
pub mod hostile;
pub mod http1;
pub mod powercut;
pub mod proxy;
pub mod records;
pub mod server;
