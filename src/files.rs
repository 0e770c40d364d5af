//! The one place that writes output files: whole or not at all.
//!
//! Each file is first written to a temporary file in its target's folder ([`Staged`]); only
//! when every file of a group is complete are they renamed over their targets ([`commit`]). A
//! reader never sees half a file, and an error (a full disk, a file-size limit, an unwritable
//! folder) leaves every target as it was: a dropped [`Staged`] removes its temporary file. A
//! large output is streamed into its temporary file with a [`StagedWriter`].

use crate::error::{Error, Result};
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

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
    pub fn create(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let name = path
            .file_name()
            .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let file = fs::File::create(&tmp).map_err(|e| Error::io(path, e))?;
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

/// Renames every staged file over its target. All were complete before the first rename; a
/// rename that fails leaves the rest unrenamed and removed.
pub fn commit(files: Vec<Staged>) -> Result<()> {
    for mut f in files {
        fs::rename(&f.tmp, &f.target).map_err(|e| Error::io(&f.target, e))?;
        f.committed = true;
    }
    Ok(())
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
        let _ = fs::remove_dir_all(&dir);
    }
}
