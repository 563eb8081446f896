//! Sync bundles: a file carrying what the server has not acknowledged, for
//! a phone with no network. Another device imports it (it then holds the
//! records), or the township office imports it into the server with
//! `gridsync-server import-bundle`. Importing twice is harmless: changes are
//! identified by hash.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::protocol::DocChanges;
pub use crate::protocol::{Bundle, ImportReport};
use crate::store::Store;

impl Store {
    /// A bundle of everything in the outbox.
    pub fn export_bundle(&self) -> Result<Bundle> {
        let (device_id, user_id, cursor) = match self.enrollment()? {
            Some(e) => (e.device_id, e.user_id, self.read_cursor(super::CURSOR_KEY)?.unwrap_or_default()),
            None => (String::new(), String::new(), Vec::new()),
        };
        let mut by_doc: BTreeMap<Uuid, Vec<Vec<u8>>> = BTreeMap::new();
        for e in self.outbox(usize::MAX)? {
            by_doc.entry(e.doc_id).or_default().push(e.change);
        }
        Ok(Bundle {
            device_id,
            user_id,
            created_at: chrono::Utc::now().timestamp_millis(),
            cursor,
            docs: by_doc.into_iter().map(|(d, changes)| DocChanges { doc: *d.as_bytes(), changes }).collect(),
        })
    }

    /// Merge a bundle from another device into this store.
    pub fn import_bundle(&mut self, bundle: &Bundle) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        self.transaction(|tx| {
            for d in &bundle.docs {
                let doc = Uuid::from_bytes(d.doc);
                tx.apply_remote(doc, &d.changes)?;
                report.records += 1;
                report.changes += d.changes.len() as u64;
            }
            Ok(())
        })?;
        Ok(report)
    }
}

impl From<postcard::Error> for CoreError {
    fn from(e: postcard::Error) -> Self {
        CoreError::Protocol(e.to_string())
    }
}
