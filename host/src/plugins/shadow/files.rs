//! Promote and rollback, done on the plugin directory's files so they
//! survive a restart, then loaded by the normal reload path:
//!
//! - promote: `NAME.wasm`/`NAME.toml` are copied to `NAME.prev.wasm`/
//!   `NAME.prev.toml` (the one step of history; an absent manifest is
//!   remembered as an absent `NAME.prev.toml`), then `NAME.shadow.wasm`/
//!   `NAME.shadow.toml` are renamed over `NAME.wasm`/`NAME.toml` (what the
//!   shadow did not have of its own stays), and the rule reloads;
//! - rollback: `NAME.prev.*` and `NAME.*` swap places (a second rollback
//!   undoes the first), and the rule reloads.
//!
//! `NAME.wasm` exists at every moment (files are replaced by rename, never
//! removed first), so the watcher never sees the rule vanish. Every write
//! goes to a dot-named file first (the watcher ignores those).

use super::super::registry::{Inner, Plugins};
use super::super::reload::LoadOutcome;
use super::{ShadowError, shadow_paths};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Removes `path`; absent is fine. Whether it was there.
pub(super) fn remove_if_present(path: &Path) -> Result<bool, String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
    }
}

/// A dot-named sibling of `path`: `.FILE.SUFFIX`.
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

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot rename {} to {}: {e}", from.display(), to.display()))
}

/// Keeps what `path` holds at `at` (a hard link, else a copy), for `path`
/// to be replaced by a rename next; nothing when `path` is absent.
fn keep(path: &Path, at: &Path) -> Result<(), String> {
    remove_if_present(at)?;
    if path.exists() {
        std::fs::hard_link(path, at)
            .or_else(|_| std::fs::copy(path, at).map(|_| ()))
            .map_err(|e| format!("cannot keep {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Copies `from` to `to` through a hidden temporary file and a rename.
fn copy_atomic(from: &Path, to: &Path) -> Result<(), String> {
    let temp = hidden(to, "copy");
    std::fs::copy(from, &temp)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), temp.display()))?;
    rename(&temp, to)
}

/// An upload's files, written beside their targets, put in place, and put
/// back when the shadow does not build.
pub(super) struct Staged {
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl Staged {
    pub(super) fn new(wasm: Option<(&Path, Vec<u8>)>, toml: Option<(&Path, String)>) -> Staged {
        let mut files = Vec::new();
        if let Some((path, bytes)) = wasm {
            files.push((path.to_path_buf(), Some(bytes)));
        }
        if let Some((path, text)) = toml {
            files.push((path.to_path_buf(), Some(text.into_bytes())));
        }
        Staged { files }
    }

    /// Writes each file (hidden), keeps a hidden copy of what it replaces,
    /// and renames it into place.
    pub(super) fn commit(&mut self) -> Result<(), String> {
        for (path, bytes) in &mut self.files {
            let path: &Path = path;
            let Some(content) = bytes.take() else {
                continue;
            };
            let new = hidden(path, "new");
            write_synced(&new, &content)?;
            keep(path, &hidden(path, "old"))?;
            rename(&new, path)?;
        }
        Ok(())
    }

    /// Puts back what [`commit`](Self::commit) replaced.
    pub(super) fn rollback(&self) -> Result<(), String> {
        for (path, _) in &self.files {
            let old = hidden(path, "old");
            if old.exists() {
                rename(&old, path)?;
            } else {
                remove_if_present(path)?;
            }
        }
        Ok(())
    }

    /// Forgets the copies of what was replaced.
    pub(super) fn finish(&self) {
        for (path, _) in &self.files {
            let _ = remove_if_present(&hidden(path, "old"));
        }
    }
}

/// The serving files of `name` and their `prev` siblings.
struct RuleFiles {
    wasm: PathBuf,
    toml: PathBuf,
    prev_wasm: PathBuf,
    prev_toml: PathBuf,
}

impl RuleFiles {
    fn of(dir: &Path, name: &str) -> RuleFiles {
        RuleFiles {
            wasm: dir.join(format!("{name}.wasm")),
            toml: dir.join(format!("{name}.toml")),
            prev_wasm: dir.join(format!("{name}.prev.wasm")),
            prev_toml: dir.join(format!("{name}.prev.toml")),
        }
    }
}

/// Swaps the contents of `a` and `b` (either may be absent) so that `a`
/// never disappears while it existed before.
fn swap(a: &Path, b: &Path) -> Result<(), String> {
    match (a.exists(), b.exists()) {
        (true, true) => {
            let temp = hidden(a, "swap");
            keep(a, &temp)?;
            rename(b, a)?;
            rename(&temp, b)
        }
        (false, true) => rename(b, a),
        (true, false) => rename(a, b),
        (false, false) => Ok(()),
    }
}

impl Plugins {
    /// Promotes rule `name`'s shadow: its files become the rule's, the
    /// rule's become `NAME.prev.*`, and the rule reloads through the normal
    /// path (state carries over, calls in flight finish).
    pub async fn promote_shadow(&self, name: &str) -> Result<LoadOutcome, ShadowError> {
        let name = name.to_string();
        self.on_runtime(move |inner| async move { inner.promote(&name).await })
            .await
            .map_err(|e| ShadowError::Internal(format!("the promote task failed: {e}")))?
    }

    /// Returns rule `name` to the version a promote (or the last rollback)
    /// replaced: `NAME.prev.*` and `NAME.*` swap, and the rule reloads.
    pub async fn rollback(&self, name: &str) -> Result<LoadOutcome, ShadowError> {
        let name = name.to_string();
        self.on_runtime(move |inner| async move { inner.rollback(&name).await })
            .await
            .map_err(|e| ShadowError::Internal(format!("the rollback task failed: {e}")))?
    }
}

impl Inner {
    async fn promote(self: &Arc<Self>, name: &str) -> Result<LoadOutcome, ShadowError> {
        let slot = self.rule_slot(name)?;
        let mut memo = slot.shadow.load_lock.lock().await;
        if slot.shadow.current.load().is_none() {
            return Err(ShadowError::NotFound(format!(
                "rule {name:?} has no shadow to promote"
            )));
        }
        let dir = &self.config.dir;
        let files = RuleFiles::of(dir, name);
        let (shadow_wasm, shadow_toml) = shadow_paths(dir, name);
        let internal = ShadowError::Internal;
        // One step of history: what serves now becomes `prev`.
        copy_atomic(&files.wasm, &files.prev_wasm).map_err(internal)?;
        if files.toml.exists() {
            copy_atomic(&files.toml, &files.prev_toml).map_err(internal)?;
        } else {
            remove_if_present(&files.prev_toml).map_err(internal)?;
        }
        if shadow_toml.exists() {
            rename(&shadow_toml, &files.toml).map_err(internal)?;
        }
        if shadow_wasm.exists() {
            rename(&shadow_wasm, &files.wasm).map_err(internal)?;
        }
        memo.inputs = None;
        self.discard_shadow(&slot, "promoted");
        drop(memo);
        tracing::info!(
            plugin = name,
            "shadow promoted; the previous version is kept as {name}.prev"
        );
        Ok(self.load(name, false).await)
    }

    async fn rollback(self: &Arc<Self>, name: &str) -> Result<LoadOutcome, ShadowError> {
        let slot = self.rule_slot(name)?;
        let _memo = slot.shadow.load_lock.lock().await;
        let files = RuleFiles::of(&self.config.dir, name);
        if !files.prev_wasm.exists() {
            return Err(ShadowError::Conflict(format!(
                "rule {name:?} has no previous version to roll back to ({name}.prev.wasm is written by a promote)"
            )));
        }
        let internal = ShadowError::Internal;
        swap(&files.toml, &files.prev_toml).map_err(internal)?;
        swap(&files.wasm, &files.prev_wasm).map_err(internal)?;
        drop(_memo);
        tracing::info!(plugin = name, "rolled back to the previous version");
        Ok(self.load(name, false).await)
    }
}
