//! The disk check /healthz and photo uploads make on SQLite.

use super::{StoreError, StoreResult};

/// `DiskFull` if the file system holding `dir` has less than `min_free`
/// bytes free: a full disk fails writes that /healthz must not call healthy.
pub fn check_free_space(dir: &std::path::Path, min_free: u64) -> StoreResult<()> {
    let dir = if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { dir };
    let st = rustix::fs::statvfs(dir).map_err(|e| StoreError::Open(format!("cannot read free space: {e}")))?;
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    if free < min_free {
        return Err(StoreError::DiskFull { free_bytes: free });
    }
    Ok(())
}
