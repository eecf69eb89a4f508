//! The sinks' cursors on disk: `cursors.json` in the log's directory, a map
//! from sink name to the next sequence number it has not acknowledged,
//! rewritten atomically (temporary file, fsync, rename, fsync of the
//! directory). The log writes it at most every [`FLUSH_EVERY`] while cursors
//! move, and at shutdown. A cursor on disk that lags the one in memory only
//! means redelivery after a crash, never loss: cursors only move forward
//! after a sink acknowledged.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// How often moving cursors are written, at most.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
const FILE: &str = "cursors.json";

/// Reads the cursors (none when there is no file; a damaged file is logged
/// and read as none, which redelivers what the log still holds).
pub fn load(dir: &Path) -> HashMap<String, u64> {
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
            tracing::warn!(path = %path.display(), %error, "sink cursors unreadable; sinks start from the oldest event kept");
            HashMap::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "sink cursors unreadable; sinks start from the oldest event kept");
            HashMap::new()
        }
    }
}

/// Writes the cursors atomically.
pub fn save(dir: &Path, cursors: &HashMap<String, u64>) -> Result<()> {
    let bytes = serde_json::to_vec(cursors).context("failed to encode the sink cursors")?;
    write_atomic(&dir.join(FILE), &dir.join(format!("{FILE}.tmp")), &bytes)
}

/// Replaces `path` with `bytes` atomically: written to `tmp`, synced,
/// renamed over `path`, and the directory synced.
pub fn write_atomic(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = std::fs::File::create(tmp)
        .with_context(|| format!("failed to create {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .with_context(|| format!("failed to write {}", tmp.display()))?;
    std::fs::rename(tmp, path).with_context(|| format!("failed to replace {}", path.display()))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// Makes a directory's entries (a new, renamed or deleted file) durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("failed to sync the directory {}", dir.display()))
}
