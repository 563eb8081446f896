//! Prometheus counters, written in the text exposition format by hand: a
//! handful of atomics do not justify a metrics framework.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Server counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sync requests answered 200.
    pub sync_requests: AtomicU64,
    /// Sync requests refused (4xx).
    pub sync_refused: AtomicU64,
    /// Changes newly stored.
    pub changes_stored: AtomicU64,
    /// Changes received that were already stored.
    pub changes_duplicate: AtomicU64,
    /// Records rejected.
    pub docs_rejected: AtomicU64,
    /// Changes refused (each judged on its own).
    pub changes_refused: AtomicU64,
    /// Records phones reported they had to set aside (could not apply).
    pub phone_set_aside: AtomicU64,
    /// Changes sent to devices.
    pub changes_sent: AtomicU64,
    /// Request body bytes received on /v1/sync.
    pub bytes_in: AtomicU64,
    /// Response body bytes sent on /v1/sync.
    pub bytes_out: AtomicU64,
    /// Sum of sync handling time, microseconds.
    pub sync_micros: AtomicU64,
    /// Enrollments completed.
    pub enrollments: AtomicU64,
    /// 5xx answers by (status, reason code).
    pub errors: Mutex<BTreeMap<(u16, String), u64>>,
}

impl Metrics {
    /// Add to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Count a 5xx answer with its reason code.
    pub fn count_error(&self, status: u16, code: &str) {
        // Reason codes are the server's own short ASCII names; keep the
        // label set bounded even if one were not.
        let code: String = code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
        let mut m = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((status, code)).or_insert(0) += 1;
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &AtomicU64); 12] = [
            ("gridsync_sync_requests_total", "Sync requests answered", &self.sync_requests),
            ("gridsync_sync_refused_total", "Sync requests refused with 4xx", &self.sync_refused),
            ("gridsync_changes_stored_total", "Changes newly stored", &self.changes_stored),
            ("gridsync_changes_duplicate_total", "Changes received again and ignored", &self.changes_duplicate),
            ("gridsync_docs_rejected_total", "Records with at least one refused change", &self.docs_rejected),
            ("gridsync_changes_refused_total", "Changes refused by the per-change rules", &self.changes_refused),
            (
                "gridsync_phone_records_set_aside_total",
                "Records phones reported they could not apply and set aside",
                &self.phone_set_aside,
            ),
            ("gridsync_changes_sent_total", "Changes sent to devices", &self.changes_sent),
            ("gridsync_sync_bytes_in_total", "Sync request body bytes", &self.bytes_in),
            ("gridsync_sync_bytes_out_total", "Sync response body bytes", &self.bytes_out),
            ("gridsync_sync_seconds_total", "Time spent handling sync requests", &self.sync_micros),
            ("gridsync_enrollments_total", "Devices enrolled", &self.enrollments),
        ];
        let mut out = String::new();
        for (name, help, c) in rows {
            let v = c.load(Ordering::Relaxed);
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
            if name == "gridsync_sync_seconds_total" {
                out.push_str(&format!("{name} {}\n", v as f64 / 1e6));
            } else {
                out.push_str(&format!("{name} {v}\n"));
            }
        }
        out.push_str("# HELP gridsync_http_errors_total Server error answers (5xx) by status and reason\n");
        out.push_str("# TYPE gridsync_http_errors_total counter\n");
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        for ((status, code), n) in errors.iter() {
            out.push_str(&format!("gridsync_http_errors_total{{status=\"{status}\",error=\"{code}\"}} {n}\n"));
        }
        out
    }
}
