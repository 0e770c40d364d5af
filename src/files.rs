//! The one place that writes output files: whole or not at all.
//!
//! Each file is first written to a temporary file in its target's folder ([`Staged`]); only
//! when every file of a group is complete are they renamed over their targets ([`commit`]). A
//! reader never sees half a file, and an error (a full disk, a file-size limit, an unwritable
//! folder) leaves every target as it was: a dropped [`Staged`] removes its temporary file. A
//! large output is streamed into its temporary file with a [`StagedWriter`]. Should a rename of
//! a group fail part-way, the targets already replaced get their old contents back from backups
//! (hard links, so a target never goes missing).

use crate::error::{Error, Result};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers this process's temporary and backup files: two files staged for one target (or two
/// threads) never share a name.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh hidden name beside `path`: `.NAME.PID.N.SUFFIX`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let dir = folder(path);
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(".{name}.{}.{n}.{suffix}", std::process::id()))
}

/// The folder `path` goes in.
fn folder(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A complete temporary file waiting to replace its target.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A temporary file being written; [`StagedWriter::finish`] makes it a [`Staged`].
#[derive(Debug)]
pub struct StagedWriter {
    file: BufWriter<fs::File>,
    staged: Staged,
}

impl StagedWriter {
    /// A temporary file beside `path`, creating the folders on the way.
    /// A target that is a folder is refused here, before any work is spent on its contents.
    pub fn create(path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::IsADirectory,
                    "is a folder; give a file name",
                ),
            ));
        }
        let dir = folder(path);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tmp = sibling(path, "tmp");
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(path, e))?;
        Ok(StagedWriter {
            file: BufWriter::new(file),
            staged: Staged {
                tmp,
                target: path.to_path_buf(),
                committed: false,
            },
        })
    }

    /// Appends `bytes`; an error names the target.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.staged.target, e))
    }

    /// Flushes the file to disk: it is complete and waits for [`commit`].
    pub fn finish(self) -> Result<Staged> {
        let StagedWriter { file, staged } = self;
        let target = staged.target.clone();
        let file = file
            .into_inner()
            .map_err(|e| Error::io(&target, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&target, e))?;
        Ok(staged)
    }
}

/// `bytes` as a complete temporary file beside `path`.
pub fn stage(path: &Path, bytes: &[u8]) -> Result<Staged> {
    let mut w = StagedWriter::create(path)?;
    w.write(bytes)?;
    w.finish()
}

/// Renames every staged file over its target, all or none: each existing target is first
/// hard-linked to a backup; should a rename fail, the targets already replaced are restored from
/// their backups (or removed, when they did not exist) and the error names the failed target.
pub fn commit(files: Vec<Staged>) -> Result<()> {
    // (target, its backup if it existed) for every file renamed so far.
    let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    let mut result = Ok(());
    for f in &files {
        let backup = if files.len() > 1 && f.target.exists() {
            let b = sibling(&f.target, "bak");
            if let Err(e) =
                fs::hard_link(&f.target, &b).or_else(|_| fs::copy(&f.target, &b).map(|_| ()))
            {
                result = Err(Error::io(&f.target, e));
                break;
            }
            Some(b)
        } else {
            None
        };
        if let Err(e) = fs::rename(&f.tmp, &f.target) {
            if let Some(b) = backup {
                let _ = fs::remove_file(b);
            }
            result = Err(Error::io(&f.target, e));
            break;
        }
        done.push((f.target.clone(), backup));
    }
    let mut files = files;
    if result.is_ok() {
        files.iter_mut().for_each(|f| f.committed = true);
    }
    drop(files);
    for (target, backup) in done {
        match (&result, backup) {
            (Ok(()), Some(b)) => {
                let _ = fs::remove_file(b);
            }
            (Err(_), Some(b)) => {
                let _ = fs::rename(b, &target);
            }
            (Err(_), None) => {
                let _ = fs::remove_file(&target);
            }
            (Ok(()), None) => {}
        }
    }
    result
}

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    commit(vec![stage(path, bytes)?])
}

/// Writes every `(path, bytes)` pair, all or none (see the module docs).
pub fn write_all(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let staged = files
        .iter()
        .map(|(p, b)| stage(p, b))
        .collect::<Result<Vec<_>>>()?;
    commit(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_group_changes_nothing() {
        let dir = std::env::temp_dir().join(format!("roofline-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.txt");
        fs::write(&a, "old").unwrap();
        // The second target's folder is a file: staging it fails, so `a` keeps its contents.
        fs::write(dir.join("blocker"), "").unwrap();
        let b = dir.join("blocker").join("b.txt");
        let r = write_all(&[(a.clone(), b"new".to_vec()), (b, b"x".to_vec())]);
        assert!(r.is_err());
        assert_eq!(fs::read_to_string(&a).unwrap(), "old");
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        write(&a, b"new").unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "new");
        // A streamed file abandoned half-way leaves nothing behind.
        let mut w = StagedWriter::create(&dir.join("c.csv")).unwrap();
        w.write(b"half").unwrap();
        drop(w);
        assert!(!dir.join("c.csv").exists());
        // A folder target is refused before anything is written.
        assert!(StagedWriter::create(&dir).is_err());
        // A rename failing part-way restores the targets already replaced: `d` becomes a
        // non-empty folder after staging, so renaming over it fails after `a` was replaced.
        let d = dir.join("d.txt");
        let group = vec![stage(&a, b"newer").unwrap(), stage(&d, b"x").unwrap()];
        fs::create_dir_all(d.join("inside")).unwrap();
        assert!(commit(group).is_err());
        assert_eq!(fs::read_to_string(&a).unwrap(), "new");
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.ends_with(".tmp") && !n.ends_with(".bak")),
            "{names:?}"
        );
        // Two files staged for one target do not share a temporary file.
        let (x, y) = (stage(&a, b"1").unwrap(), stage(&a, b"2").unwrap());
        commit(vec![x]).unwrap();
        commit(vec![y]).unwrap();
        assert_eq!(fs::read_to_string(&a).unwrap(), "2");
        let _ = fs::remove_dir_all(&dir);
    }
}
