//! The server's time: one [`Clock`] in the application state, which every
//! handler and page reads, and [`now_ms`] for the commands that run
//! without one (the CLI, background work).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The server's clock: the system clock, or a fixed time tests set. It
/// decides what only the server may decide (when a report was submitted).
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that says `ms` until [`Clock::set`] moves it.
    pub fn fixed(ms: i64) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(ms))))
    }

    /// Move a fixed clock (no effect on the system clock).
    pub fn set(&self, ms: i64) {
        if let Some(c) = &self.0 {
            c.store(ms, Ordering::SeqCst);
        }
    }

    /// Now, ms since the Unix epoch.
    pub fn now(&self) -> i64 {
        match &self.0 {
            Some(c) => c.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }
}
