//! An upload's files on disk: written to hidden temporary files in the
//! plugin directory and renamed into place, what they replace kept until the
//! load succeeded (or put back when it failed).

use std::path::{Path, PathBuf};

/// An upload's files: each written to a hidden temporary file in the
/// plugin directory and renamed into place, what it replaced kept (hidden)
/// until [`finish`](Staged::finish) or put back by
/// [`rollback`](Staged::rollback). Hidden files belong to no plugin, so
/// the watcher never loads them.
pub(super) struct Staged {
    /// Each target, with its content until committed.
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// The targets committed so far.
    done: usize,
}

impl Staged {
    pub(super) fn new(files: Vec<(PathBuf, Vec<u8>)>) -> Staged {
        Staged {
            files: files.into_iter().map(|(p, b)| (p, Some(b))).collect(),
            done: 0,
        }
    }

    pub(super) fn commit(&mut self) -> Result<(), String> {
        for (path, content) in &mut self.files {
            let Some(bytes) = content.take() else {
                continue;
            };
            let temp = hidden(path, "upload");
            let written = write_synced(&temp, &bytes);
            if let Err(e) = written {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
            if let Err(e) = keep(path, &hidden(path, "old")) {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
            // Counted before the rename: a failed rename has nothing to
            // undo but the kept copy, which rollback takes care of.
            self.done += 1;
            if let Err(e) = std::fs::rename(&temp, &*path) {
                let _ = std::fs::remove_file(&temp);
                return Err(format!(
                    "cannot rename {} to {}: {e}",
                    temp.display(),
                    path.display()
                ));
            }
        }
        sync_dir(self.files.first().map(|(p, _)| p.as_path()));
        Ok(())
    }

    /// Puts back what was replaced (removes what was new), newest first.
    pub(super) fn rollback(&self) -> Result<(), String> {
        for (path, _) in self.files[..self.done].iter().rev() {
            let old = hidden(path, "old");
            if old.exists() {
                std::fs::rename(&old, path)
                    .map_err(|e| format!("cannot put {} back: {e}", path.display()))?;
            } else {
                remove_if_present(path)?;
            }
        }
        Ok(())
    }

    /// Forgets the kept copies.
    pub(super) fn finish(&self) {
        for (path, _) in &self.files[..self.done] {
            let _ = remove_if_present(&hidden(path, "old"));
        }
    }
}

/// `.FILE.SUFFIX` beside `path`.
fn hidden(path: &Path, suffix: &str) -> PathBuf {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{file}.{suffix}"))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn remove_if_present(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// Keeps what `path` holds at `at` (a hard link, else a copy), for `path`
/// to be replaced by a rename next; nothing when `path` is absent.
fn keep(path: &Path, at: &Path) -> Result<(), String> {
    remove_if_present(at)?;
    if path.exists() {
        std::fs::hard_link(path, at)
            .or_else(|_| std::fs::copy(path, at).map(|_| ()))
            .map_err(|e| format!("cannot keep a copy of {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Makes the renames in `file`'s directory durable (best effort).
fn sync_dir(file: Option<&Path>) {
    if let Some(dir) = file.and_then(Path::parent)
        && let Ok(handle) = std::fs::File::open(dir)
    {
        let _ = handle.sync_all();
    }
}

/// Copies `files` (target, content) into place the same way an upload
/// does: hidden temporary file, fsync, rename, in order (manifest first);
/// on an error, what was already replaced is put back. For `wasmon plugin
/// install --to`.
pub fn install_files(files: Vec<(PathBuf, Vec<u8>)>) -> Result<(), String> {
    let mut staged = Staged::new(files);
    if let Err(error) = staged.commit() {
        return Err(match staged.rollback() {
            Ok(()) => error,
            Err(also) => format!("{error}; putting the old files back failed too: {also}"),
        });
    }
    staged.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_replace_in_order_and_roll_back() {
        let dir = std::env::temp_dir().join(format!("wasmon-upload-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let (toml, wasm) = (dir.join("p.toml"), dir.join("p.wasm"));
        std::fs::write(&wasm, b"old wasm").unwrap();
        let mut staged = Staged::new(vec![
            (toml.clone(), b"new toml".to_vec()),
            (wasm.clone(), b"new wasm".to_vec()),
        ]);
        staged.commit().unwrap();
        assert_eq!(std::fs::read(&toml).unwrap(), b"new toml");
        assert_eq!(std::fs::read(&wasm).unwrap(), b"new wasm");
        staged.rollback().unwrap();
        assert!(!toml.exists());
        assert_eq!(std::fs::read(&wasm).unwrap(), b"old wasm");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["p.wasm"]);

        install_files(vec![(wasm.clone(), b"newer".to_vec())]).unwrap();
        assert_eq!(std::fs::read(&wasm).unwrap(), b"newer");
        let left = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(left, 1, "no temporary or kept file remains");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
