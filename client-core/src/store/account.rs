//! The store's side of the account: forgetting an enrollment, re-keying
//! the file, and the directory of names fetched from the server.

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::Result;
use crate::protocol::{Directory, DirectoryEntry};

const DIRECTORY_VERSION: &str = "directory_version";
const DIRECTORY_FETCHED_AT: &str = "directory_fetched_at";

impl Store {
    /// Forget the enrollment (sign out, keeping the records): the device
    /// token, the user and the sync cursor go; records and unsynced changes
    /// stay for whoever signs in next as the same user.
    pub fn clear_enrollment(&mut self) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute_batch("DELETE FROM meta WHERE key IN ('enrollment', 'device_key'); DELETE FROM sync_cursor;")?;
        tx.commit()?;
        Ok(())
    }

    /// Encrypt the store with a new 256-bit key from now on (SQLCipher's
    /// `PRAGMA rekey`, which rewrites every page in one transaction: the
    /// file is readable with the old key until it returns, and only with
    /// the new one after).
    #[cfg(feature = "sqlcipher")]
    pub fn rekey(&mut self, key: &[u8; 32]) -> Result<()> {
        // WAL pages are written under the old key; fold them in first.
        self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        self.conn.execute_batch(&format!("PRAGMA rekey = \"x'{hex}'\";"))?;
        Ok(())
    }

    /// Replace the directory with `d`, noting when (`now`, ms).
    pub fn put_directory(&mut self, d: &Directory, now: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM directory", [])?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO directory (kind, id, name, role, grid) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (kind, entries) in [("grid", &d.grids), ("user", &d.users)] {
                for e in entries {
                    st.execute(params![kind, e.id, e.name, e.role, e.grid])?;
                }
            }
        }
        for (key, value) in [(DIRECTORY_VERSION, d.version.clone()), (DIRECTORY_FETCHED_AT, now.to_string())] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value.as_bytes()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Note that the directory was checked at `now` and had not changed.
    pub fn touch_directory(&mut self, now: i64) -> Result<()> {
        self.set_meta(DIRECTORY_FETCHED_AT, now.to_string().as_bytes())
    }

    /// The stored directory's version and when it was last checked (ms).
    pub fn directory_version(&self) -> Result<Option<(String, i64)>> {
        let text =
            |key| -> Result<Option<String>> { Ok(self.meta(key)?.map(|b| String::from_utf8_lossy(&b).into_owned())) };
        let (Some(v), Some(at)) = (text(DIRECTORY_VERSION)?, text(DIRECTORY_FETCHED_AT)?) else {
            return Ok(None);
        };
        Ok(Some((v, at.parse().unwrap_or(0))))
    }

    /// The name of grid node `path`, if the directory has it.
    pub fn grid_name(&self, path: &str) -> Result<Option<String>> {
        self.directory_name("grid", path)
    }

    /// The display name of user `id`, if the directory has them.
    pub fn user_name(&self, id: &str) -> Result<Option<String>> {
        self.directory_name("user", id)
    }

    fn directory_name(&self, kind: &str, id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT name FROM directory WHERE kind = ?1 AND id = ?2")?
            .query_row(params![kind, id], |r| r.get(0))
            .optional()?)
    }

    /// Every directory entry of `kind` (`grid` or `user`), by id.
    pub fn directory(&self, kind: &str) -> Result<Vec<DirectoryEntry>> {
        let mut st =
            self.conn.prepare_cached("SELECT id, name, role, grid FROM directory WHERE kind = ?1 ORDER BY id")?;
        let rows = st.query_map([kind], |r| {
            Ok(DirectoryEntry { id: r.get(0)?, name: r.get(1)?, role: r.get(2)?, grid: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}
