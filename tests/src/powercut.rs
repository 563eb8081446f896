//! Power cuts: a process that loses power keeps only what it fsynced.
//!
//! SIGKILL alone keeps the page cache, so it cannot show a missing fsync.
//! [`Powercut`] builds the `LD_PRELOAD` shim in `tests/powercut/powercut.c`
//! (with the system's `cc`, at test time, into a temporary directory). A
//! process started with [`Powercut::env`] keeps, next to every file it
//! writes under the directory, a disk image holding what it had fsynced.
//! After the process was SIGKILLed, [`Powercut::cut`] puts the images back:
//! every write that was not synced is lost, as after a power cut.
//!
//! Linux with glibc only (`LD_PRELOAD`, `/proc/self/fd`). This file is also
//! compiled into `client-core/tests/core/powercut.rs` (by `#[path]`), so it uses
//! the standard library and `tempfile` only.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const SHIM_SOURCE: &str = include_str!("../powercut/powercut.c");

/// The shim, built for one directory of files to cut the power of.
#[derive(Debug)]
pub struct Powercut {
    /// The directory whose files lose power (canonical).
    dir: PathBuf,
    /// Holds `libpowercut.so` and `images/`.
    work: tempfile::TempDir,
}

/// What a cut did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutReport {
    /// Files put back to their last synced state.
    pub files: usize,
    /// Bytes that had not been synced and were lost (bytes that differed,
    /// plus the difference in length).
    pub bytes_lost: u64,
}

impl Powercut {
    /// Build the shim for the files under `dir` (which must exist).
    pub fn new(dir: &Path) -> io::Result<Powercut> {
        let work = tempfile::Builder::new().prefix("powercut").tempdir()?;
        std::fs::create_dir(work.path().join("images"))?;
        let source = work.path().join("powercut.c");
        std::fs::write(&source, SHIM_SOURCE)?;
        let out = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
            .arg(work.path().join("libpowercut.so"))
            .arg(&source)
            .args(["-ldl", "-lpthread"])
            .output()
            .map_err(|e| io::Error::other(format!("cannot run cc to build the power-cut shim: {e}")))?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "cc failed to build the power-cut shim: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(Powercut { dir: dir.canonicalize()?, work })
    }

    /// Environment for a process whose power can be cut.
    pub fn env(&self) -> Vec<(String, OsString)> {
        vec![
            ("LD_PRELOAD".into(), self.work.path().join("libpowercut.so").into()),
            ("POWERCUT_DIR".into(), self.dir.clone().into()),
            ("POWERCUT_IMAGES".into(), self.images().into()),
        ]
    }

    /// Environment for a process on a disk that ignores fsync (nothing it
    /// writes under the directory survives a cut), to show that a check
    /// does notice lost writes.
    pub fn env_ignoring_fsync(&self) -> Vec<(String, OsString)> {
        let mut env = self.env();
        env.push(("POWERCUT_IGNORE_FSYNC".into(), "1".into()));
        env
    }

    fn images(&self) -> PathBuf {
        self.work.path().join("images")
    }

    /// Cut the power of a process started with [`Powercut::env`], after it
    /// was killed (SIGKILL) and reaped: put every file it opened under the
    /// directory back to what it last fsynced. Fails if a file there (other
    /// than SQLite's `-shm` WAL index, which the shim leaves alone) has no
    /// image: the shim did not see it opened, so it cannot say what was
    /// durable. The images are removed; a process started afterwards makes
    /// new ones.
    pub fn cut(&self) -> io::Result<CutReport> {
        let mut report = CutReport { files: 0, bytes_lost: 0 };
        let mut files = Vec::new();
        list_files(&self.dir, &mut files)?;
        for file in files {
            if file.to_string_lossy().ends_with("-shm") {
                continue;
            }
            let meta = std::fs::metadata(&file)?;
            let image = self.images().join(format!("{}-{}", meta.dev(), meta.ino()));
            let durable = std::fs::read(&image).map_err(|e| {
                io::Error::other(format!("{}: no disk image ({e}); was the shim loaded?", file.display()))
            })?;
            let current = std::fs::read(&file)?;
            let differing = durable.iter().zip(&current).filter(|(a, b)| a != b).count();
            report.bytes_lost += (differing + durable.len().abs_diff(current.len())) as u64;
            report.files += 1;
            if durable != current {
                // Truncates and rewrites in place: the file keeps its inode.
                std::fs::write(&file, &durable)?;
            }
            std::fs::remove_file(&image)?;
        }
        for stale in std::fs::read_dir(self.images())? {
            // Images of files removed since (renamed away): gone anyway.
            std::fs::remove_file(stale?.path())?;
        }
        Ok(report)
    }
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}
