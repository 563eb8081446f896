//! Blobs as files: `<dir>/<first two hex digits>/<hash>` once complete,
//! `<hash>.<upload key>.part` while an uploader's upload runs (each
//! uploader has a file of its own; `<hash>.part` is an upload begun before
//! uploads were kept apart, which is collected like any abandoned one).
//! Each chunk is written and synced to disk before it is acknowledged; a
//! complete upload is renamed into place (and the directory synced), so a
//! crash leaves either the part file with every acknowledged byte or the
//! whole blob.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{BlobError, BlobInfo, BlobResult, BlobStore, Progress, new_part, sha256_hex, upload_key};

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

    /// The part file of the upload with key `key` (empty: the shared part
    /// file of a store from before uploads were kept apart).
    fn part_path(&self, hash: &str, key: &str) -> PathBuf {
        if key.is_empty() {
            self.shard(hash).join(format!("{hash}.part"))
        } else {
            self.shard(hash).join(format!("{hash}.{key}.part"))
        }
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

fn remove(p: &Path) -> BlobResult<bool> {
    match fs::remove_file(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl BlobStore for DiskBlobStore {
    fn complete(&self, hash: &str) -> BlobResult<Option<u64>> {
        len_of(&self.done_path(hash))
    }

    fn progress(&self, hash: &str, uploader: &str) -> BlobResult<Option<Progress>> {
        Ok(len_of(&self.part_path(hash, &upload_key(uploader)))?.map(|n| Progress { received: n, complete: false }))
    }

    fn append(&self, hash: &str, uploader: &str, size: u64, offset: u64, bytes: &[u8]) -> BlobResult<Progress> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let part = self.part_path(hash, &upload_key(uploader));
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
        if len_of(&self.done_path(hash))?.is_some() {
            // Another upload made the blob first: the bytes are the same.
            fs::remove_file(&part)?;
        } else {
            fs::rename(&part, self.done_path(hash))?;
        }
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
        let mut any = remove(&self.done_path(hash))?;
        let uploads: Vec<String> = self
            .list_shard(&self.shard(hash))?
            .into_iter()
            .filter(|b| b.hash == hash)
            .filter_map(|b| b.upload)
            .collect();
        for key in uploads {
            any |= remove(&self.part_path(hash, &key))?;
        }
        Ok(any)
    }

    fn delete_upload(&self, hash: &str, upload: &str) -> BlobResult<bool> {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        remove(&self.part_path(hash, upload))
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
            if shard.file_type()?.is_dir() {
                out.extend(self.list_shard(&shard.path())?);
            }
        }
        out.sort_by(|a, b| (&a.hash, &a.upload).cmp(&(&b.hash, &b.upload)));
        Ok(out)
    }
}

impl DiskBlobStore {
    /// The blobs and uploads in one shard directory.
    fn list_shard(&self, shard: &Path) -> BlobResult<Vec<BlobInfo>> {
        let mut out = Vec::new();
        let files = match fs::read_dir(shard) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e.into()),
        };
        for f in files {
            let f = f?;
            let name = f.file_name().to_string_lossy().into_owned();
            let (hash, upload) = match name.strip_suffix(".part") {
                Some(rest) => match rest.split_once('.') {
                    Some((h, key)) => (h.to_owned(), Some(key.to_owned())),
                    None => (rest.to_owned(), Some(String::new())),
                },
                None => (name, None),
            };
            let well_formed = upload
                .as_deref()
                .is_none_or(|k| k.is_empty() || (k.len() == 32 && k.bytes().all(|b| b.is_ascii_hexdigit())));
            if !gridsync_core::model::valid_hash(&hash) || !well_formed {
                continue;
            }
            let m = f.metadata()?;
            let complete = upload.is_none();
            out.push(BlobInfo { hash, upload, received: m.len(), complete, written_at: mtime_ms(&m) });
        }
        Ok(out)
    }
}
