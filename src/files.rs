//! The one place that writes output files: whole or not at all.
//!
//! Each file is written to a temporary file in the same folder and renamed over the target, so
//! a reader never sees half a file, and an error (a full disk, a file-size limit) leaves the
//! previous contents in place. A group of files (a chart beside its table) is written the same
//! way: every temporary file first, the renames only once all of them are complete; if one fails,
//! the temporaries are removed and no target changes.

use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all(&[(path.to_path_buf(), bytes.to_vec())])
}

/// Writes every `(path, bytes)` pair, all or none (see the module docs).
pub fn write_all(files: &[(PathBuf, Vec<u8>)]) -> Result<()> {
    let mut staged: Vec<(PathBuf, &Path)> = Vec::with_capacity(files.len());
    let cleanup = |staged: &[(PathBuf, &Path)]| {
        for (tmp, _) in staged {
            let _ = fs::remove_file(tmp);
        }
    };
    for (path, bytes) in files {
        match stage(path, bytes) {
            Ok(tmp) => staged.push((tmp, path)),
            Err(e) => {
                cleanup(&staged);
                return Err(e);
            }
        }
    }
    for (i, (tmp, path)) in staged.iter().enumerate() {
        if let Err(e) = fs::rename(tmp, path) {
            cleanup(&staged[i..]);
            return Err(Error::io(path, e));
        }
    }
    Ok(())
}

/// Writes `bytes` to a fresh temporary file beside `path` and flushes it to disk.
fn stage(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let name = path
        .file_name()
        .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(tmp)
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
        let _ = fs::remove_dir_all(&dir);
    }
}
