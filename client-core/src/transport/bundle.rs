//! Sync bundles: a file carrying what the server has not acknowledged, for
//! a phone with no network, every change signed by the device. Another
//! device imports it (it then holds the records), or the township office
//! imports it into the server with `gridsync-server import-bundle`.
//! Importing twice is harmless: changes are identified by hash.
//!
//! A relay bundle is the same bundle sealed to the server's key: another
//! phone carries it ([`Store::carry_relay`]) and hands it to the server at
//! its next sync without being able to read it.

use std::collections::BTreeMap;

use rusqlite::params;
use uuid::Uuid;

use crate::error::{CoreError, Result};
use crate::protocol::DocChanges;
pub use crate::protocol::{Bundle, ImportReport};
use crate::store::Store;

pub use crate::protocol::MAX_RELAY_BYTES;
/// Most relay bundles one phone carries at once.
pub const MAX_CARRIED: u64 = 200;

impl Store {
    /// A bundle of everything in the outbox, every change signed with the
    /// device's key.
    pub fn export_bundle(&mut self) -> Result<Bundle> {
        let (device, key) = self.signer()?;
        let e = self.enrollment()?.ok_or_else(|| CoreError::invalid("enrollment", "not_enrolled", "本机尚未注册"))?;
        let cursor = self.read_cursor(super::CURSOR_KEY)?.unwrap_or_default();
        let mut by_doc: BTreeMap<Uuid, Vec<crate::store::OutboxEntry>> = BTreeMap::new();
        for e in self.outbox(usize::MAX)? {
            by_doc.entry(e.doc_id).or_default().push(e);
        }
        let mut manifest = crate::signing::Manifest::new();
        for (d, entries) in &by_doc {
            manifest.push(d, &entries.iter().map(|e| e.hash).collect::<Vec<_>>());
        }
        // Whatever a phone writes, another phone and the server must read
        // (`DecodeLimits::PHONE_BUNDLE`, which the server's limits exceed).
        let limits = crate::protocol::DecodeLimits::PHONE_BUNDLE;
        let changes: usize = by_doc.values().map(Vec::len).sum();
        // The body's size from above: each change's bytes and length
        // prefix, each record's id and count, the ids and signature.
        let body: usize =
            by_doc.values().flatten().map(|e| e.change.len() + 5).sum::<usize>() + by_doc.len() * 21 + 1024;
        if changes > limits.max_changes || body > limits.max_inflated {
            return Err(CoreError::invalid(
                "bundle",
                "too_large",
                format!(
                    "待导出的修改超过{}条或{}MB，请联网同步",
                    limits.max_changes,
                    limits.max_inflated / (1024 * 1024)
                ),
            ));
        }
        Ok(Bundle {
            device_id: e.device_id,
            user_id: e.user_id,
            created_at: chrono::Utc::now().timestamp_millis(),
            cursor,
            docs: by_doc
                .into_iter()
                .map(|(d, entries)| DocChanges {
                    doc: *d.as_bytes(),
                    changes: entries.into_iter().map(|e| e.change).collect(),
                })
                .collect(),
            signature: key.sign_batch(&device, &manifest),
        })
    }

    /// The outbox as a relay bundle: signed, then sealed to the server's
    /// relay key, for another phone to carry.
    pub fn export_relay_bundle(&mut self) -> Result<Vec<u8>> {
        let server_key = self.enrollment()?.map(|e| e.server_key).unwrap_or_default();
        let Some(server_key) = crate::signing::from_hex(&server_key).filter(|k| !k.is_empty()) else {
            return Err(CoreError::invalid(
                "server_key",
                "server_key_unknown",
                "本机还不知道服务器的转交密钥：请先联网同步一次",
            ));
        };
        let plain = self.export_bundle()?.encode()?;
        let sealed = crate::signing::seal_to_server(&server_key, &plain)?;
        if sealed.len() > MAX_RELAY_BYTES {
            return Err(CoreError::invalid(
                "bundle",
                "too_large",
                format!("待转交的记录超过{}MB，请联网同步或导出同步文件", MAX_RELAY_BYTES / (1024 * 1024)),
            ));
        }
        Ok(sealed)
    }

    /// Keep a sealed relay bundle another device made, to hand to the
    /// server at the next sync. False if it is carried already.
    pub fn carry_relay(&mut self, sealed: &[u8], now: i64) -> Result<bool> {
        if !crate::signing::is_sealed(sealed) {
            return Err(CoreError::invalid("bundle", "not_a_relay_bundle", "这不是转交文件，或文件已损坏"));
        }
        if sealed.len() > MAX_RELAY_BYTES {
            return Err(CoreError::invalid("bundle", "too_large", "转交文件过大"));
        }
        let (count, _) = self.relay_backlog()?;
        if count >= MAX_CARRIED {
            return Err(CoreError::invalid(
                "bundle",
                "too_many",
                format!("本机已携带{MAX_CARRIED}份转交文件，请先联网同步交出"),
            ));
        }
        use sha2::Digest;
        let id = sha2::Sha256::digest(sealed).to_vec();
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO relay_outbox (id, bytes, received_at) VALUES (?1, ?2, ?3)",
            params![id, sealed, now],
        )?;
        Ok(n == 1)
    }

    /// The carried relay bundles, oldest first: (id, sealed bytes).
    pub fn carried_relays(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut st = self.conn().prepare_cached("SELECT id, bytes FROM relay_outbox ORDER BY received_at, id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Forget a carried bundle the server has answered for.
    pub fn relay_delivered(&mut self, id: &[u8]) -> Result<()> {
        self.conn().execute("DELETE FROM relay_outbox WHERE id = ?1", [id])?;
        Ok(())
    }

    /// How many relay bundles this phone carries, and their bytes.
    pub fn relay_backlog(&self) -> Result<(u64, u64)> {
        let (n, bytes): (i64, i64) =
            self.conn().query_row("SELECT count(*), coalesce(sum(length(bytes)), 0) FROM relay_outbox", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        Ok((n.max(0) as u64, bytes.max(0) as u64))
    }

    /// Read a bundle file's bytes as a phone must (the sync request's
    /// reader under [`DecodeLimits::PHONE_BUNDLE`]: a file is as untrusted
    /// as a request) and merge it into this store. `Invalid` on `bundle`
    /// with reason `too_many_changes`, `too_large` or `malformed` when it
    /// cannot be read, and then nothing of it is applied. Also returns the
    /// records it touched.
    pub fn import_bundle_bytes(&mut self, bytes: &[u8]) -> Result<(ImportReport, Vec<Uuid>)> {
        use crate::protocol::{DecodeError, DecodeLimits, decode_bundle};
        let bundle = decode_bundle(bytes, &DecodeLimits::PHONE_BUNDLE, &mut |_| true).map_err(|e| match e {
            DecodeError::TooManyChanges { limit } => {
                CoreError::invalid("bundle", "too_many_changes", format!("同步文件的修改超过{limit}条，无法导入"))
            }
            DecodeError::TooLarge { limit } => CoreError::invalid(
                "bundle",
                "too_large",
                format!("同步文件解压后超过{}MB，无法导入", limit / (1024 * 1024)),
            ),
            _ => CoreError::invalid("bundle", "malformed", "同步文件格式错误或已损坏"),
        })?;
        let report = self.import_bundle(&bundle)?;
        Ok((report, bundle.docs.iter().map(|d| Uuid::from_bytes(d.doc)).collect()))
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
