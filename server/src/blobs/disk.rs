//! Blobs as files: `<dir>/<first two hex digits>/<hash>` once complete,
//! `<hash>.part` while the upload runs. Each chunk is written and synced to
//! disk before it is acknowledged; a complete blob is renamed into place
//! (and the directory synced), so a crash leaves either the part file with
//! every acknowledged byte or the whole blob.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{BlobError, BlobInfo, BlobResult, BlobStore, Progress, new_part, sha256_hex};

/// Files under one directory.
pub struct DiskBlobStore {
    dir: PathBuf,
    /// One append at a time (a county server: appends are rare and short).
    write: Mutex<()>,
}

impl DiskBlobStore {
    /// Blobs under `dir` (made when the first blob arrives).
    pub fn new(dir: impl Into<PathBuf>) -> DiskBlobStore {
        DiskBlobStore { dir: dir.into(), write: Mutex::new(()) }
    }

    fn shard(&self, hash: &str) -> PathBuf {
        self.dir.join(hash.get(..2).unwrap_or("00"))
    }

    fn done_path(&self, hash: &str) -> PathBuf {
        self.shard(hash).join(hash)
    }

    fn part_path(&self, hash: &str) -> PathBuf {
        self.shard(hash).join(format!("{hash}.part"))
    }
}

fn len_of(p: &Path) -> BlobResult<Option<u64>> {
    match fs::metadata(p) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn sync_dir(p: &Path) -> BlobResult<()> {
    File::open(p)?.sync_all()?;
    Ok(())
}

fn mtime_ms(m: &fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl BlobStore for DiskBlobStore {
    fn progress(&self, hash: &str) -> BlobResult<Option<Progress>> {
        if let Some(n) = len_of(&self.done_path(hash))? {
            return Ok(Some(Progress { received: n, complete: true }));
        }
        Ok(len_of(&self.part_path(hash))?.map(|n| Progress { received: n, complete: false }))
    }

    fn append(&self, hash: &str, size: u64, offset: u64, bytes: &[u8]) -> BlobResult<Progress> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = len_of(&self.done_path(hash))? {
            return Ok(Progress { received: n, complete: true });
        }
        let part = self.part_path(hash);
        let received = len_of(&part)?.unwrap_or(0);
        let fresh = new_part(size, received, offset, bytes)?;
        if !fresh.is_empty() || received == 0 {
            let shard = self.shard(hash);
            let new_shard = !shard.exists();
            fs::create_dir_all(&shard)?;
            if new_shard {
                sync_dir(&self.dir)?;
            }
            let mut f = OpenOptions::new().create(true).append(true).open(&part)?;
            f.write_all(fresh)?;
            f.sync_data()?;
            if received == 0 {
                sync_dir(&shard)?;
            }
        }
        let received = received + fresh.len() as u64;
        if received < size {
            return Ok(Progress { received, complete: false });
        }
        let mut all = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        File::open(&part)?.read_to_end(&mut all)?;
        if sha256_hex(&all) != hash {
            fs::remove_file(&part)?;
            return Err(BlobError::HashMismatch(hash.to_owned()));
        }
        fs::rename(&part, self.done_path(hash))?;
        sync_dir(&self.shard(hash))?;
        Ok(Progress { received, complete: true })
    }

    fn get(&self, hash: &str) -> BlobResult<Option<Vec<u8>>> {
        match fs::read(self.done_path(hash)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn delete(&self, hash: &str) -> BlobResult<bool> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut any = false;
        for p in [self.done_path(hash), self.part_path(hash)] {
            match fs::remove_file(&p) {
                Ok(()) => any = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(any)
    }

    fn list(&self) -> BlobResult<Vec<BlobInfo>> {
        let mut out = Vec::new();
        let shards = match fs::read_dir(&self.dir) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for shard in shards {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(shard.path())? {
                let f = f?;
                let name = f.file_name().to_string_lossy().into_owned();
                let (hash, complete) = match name.strip_suffix(".part") {
                    Some(h) => (h.to_owned(), false),
                    None => (name, true),
                };
                if !gridsync_core::model::valid_hash(&hash) {
                    continue;
                }
                let m = f.metadata()?;
                out.push(BlobInfo { hash, received: m.len(), complete, written_at: mtime_ms(&m) });
            }
        }
        out.sort_by(|a, b| a.hash.cmp(&b.hash));
        Ok(out)
    }
}
