//! The `files` capability: one host directory the plugin may read and
//! write through plain WASI filesystem calls, preopened in the guest as
//! [`GUEST_DIR`] (`/data`). Nothing else of the host's filesystem exists for
//! the plugin: wasmtime-wasi resolves every path under the preopen with
//! cap-std, so `..`, absolute paths and symlinks leading outside fail
//! (`tests/it/sink_file.rs` proves it with a hostile guest).
//!
//! ```toml
//! [capabilities.files]
//! dir = "/var/lib/wasmon/export"   # relative: against the host's working directory
//! max_bytes = "100MiB"             # default
//! ```
//!
//! `max_bytes` bounds what the directory holds: it is measured (a walk of
//! the tree, symlinks not followed) after each call and when an instance is
//! made. Over the cap, the call that ends is a `capability` fault ("files:
//! /data holds N bytes, over max_bytes M") with a violation, so the
//! instance is discarded; one made while the directory is over sees it
//! read-only (writes and deletes fail) and its calls fault the same way
//! until the directory is back under the cap (an operator deletes files or
//! raises the cap). A plugin can overshoot by what one call writes, never
//! more. The bytes held are exported as `wasmon_plugin_files_bytes{plugin}`.

use super::{Capability, KeyError, Services};
use crate::units::ByteSize;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Where the directory appears in the guest.
pub const GUEST_DIR: &str = "/data";
/// Default cap on the bytes the directory holds.
const MAX_BYTES: ByteSize = ByteSize(100 * 1024 * 1024);
/// Most entries one measurement walks; past it the directory counts as full.
const MAX_ENTRIES: usize = 100_000;

/// `[capabilities.files]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The host directory, created when missing. A relative path is
    /// resolved against the host's working directory (like
    /// `storage.data_dir`).
    dir: PathBuf,
    /// Most bytes the directory may hold (default 100MiB).
    max_bytes: Option<ByteSize>,
}

/// What the `files` capability grants.
#[derive(Debug, Clone, Serialize)]
pub struct FilesGrant {
    /// The host directory, absolute.
    pub dir: PathBuf,
    /// Where the plugin sees it.
    pub guest_dir: &'static str,
    /// Most bytes it may hold.
    #[serde(serialize_with = "crate::plugins::manifest::display")]
    pub max_bytes: ByteSize,
}

/// The `files` capability.
pub struct Files;

impl Capability for Files {
    const NAME: &'static str = "files";
    type Section = Section;
    type Grant = FilesGrant;
    type Shared = ();
    type State = Option<Quota>;

    fn grant(section: Section) -> Result<FilesGrant, KeyError> {
        let max_bytes = section.max_bytes.unwrap_or(MAX_BYTES);
        if max_bytes.0 == 0 {
            return Err(KeyError::new("max_bytes", "must be greater than zero"));
        }
        if section.dir.as_os_str().is_empty() {
            return Err(KeyError::new("dir", "must not be empty"));
        }
        let dir = std::path::absolute(&section.dir)
            .map_err(|e| KeyError::new("dir", format!("{}: {e}", section.dir.display())))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| KeyError::new("dir", format!("cannot create {}: {e}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(|e| KeyError::new("dir", format!("{}: {e}", dir.display())))?;
        Ok(FilesGrant {
            dir,
            guest_dir: GUEST_DIR,
            max_bytes,
        })
    }

    fn shared() -> anyhow::Result<()> {
        Ok(())
    }

    fn state(
        plugin: &Arc<str>,
        grant: Option<&FilesGrant>,
        _shared: &(),
        services: &Services<'_>,
    ) -> Option<Quota> {
        let grant = grant?;
        let telemetry = services.telemetry;
        Some(Quota(Arc::new(QuotaInner {
            plugin: plugin.clone(),
            grant: grant.clone(),
            held: telemetry.plugin_files_bytes.with_label_values(&[&**plugin]),
            denied: telemetry
                .plugin_capability_denied
                .with_label_values(&[&**plugin, "files"]),
        })))
    }
}

/// The cap on one generation's directory, and its metrics.
#[derive(Clone)]
pub struct Quota(Arc<QuotaInner>);

impl std::fmt::Debug for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quota")
            .field("dir", &self.0.grant.dir)
            .field("max_bytes", &self.0.grant.max_bytes)
            .finish()
    }
}

struct QuotaInner {
    plugin: Arc<str>,
    grant: FilesGrant,
    /// `wasmon_plugin_files_bytes{plugin}`.
    held: prometheus::IntGauge,
    /// `wasmon_plugin_capability_denied_total{plugin, capability="files"}`.
    denied: prometheus::IntCounter,
}

impl Quota {
    /// Preopens the directory in a new instance's WASI context: read-write,
    /// or read-only while it holds more than the cap. A directory that
    /// cannot be opened is left out (every path then fails in the guest)
    /// and logged.
    pub fn preopen(&self, wasi: &mut WasiCtxBuilder) {
        let inner = &self.0;
        let perms = match self.check() {
            Ok(()) => FsPerms::ReadWrite,
            Err(_) => {
                tracing::warn!(plugin = %inner.plugin, "files: the directory is read-only to this instance");
                FsPerms::ReadOnly
            }
        };
        if let Err(error) = wasi.preopened_dir(&inner.grant.dir, GUEST_DIR, perms) {
            tracing::error!(plugin = %inner.plugin, dir = %inner.grant.dir.display(), %error, "files: cannot open the directory");
        }
    }

    /// Measures the directory; over the cap, why (a violation), counted
    /// and logged.
    pub fn check(&self) -> Result<(), String> {
        let result = self.measure();
        if let Err(why) = &result {
            self.0.denied.inc();
            tracing::warn!(plugin = %self.0.plugin, capability = "files", reason = %why, "capability denied");
        }
        result
    }

    fn measure(&self) -> Result<(), String> {
        let inner = &self.0;
        let max = inner.grant.max_bytes.0;
        let held = match measure(&inner.grant.dir) {
            Ok(held) => held,
            Err(e) => return Err(format!("cannot measure {GUEST_DIR}: {e}")),
        };
        inner.held.set(i64::try_from(held).unwrap_or(i64::MAX));
        if held > max {
            return Err(format!(
                "{GUEST_DIR} holds {held} bytes, over max_bytes {} ({max} bytes); delete files or raise the cap",
                inner.grant.max_bytes
            ));
        }
        Ok(())
    }
}

/// The bytes a directory tree holds: every entry's own size (a symlink's,
/// not its target's), walking at most [`MAX_ENTRIES`] entries.
fn measure(root: &Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut entries = 0usize;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            entries += 1;
            if entries > MAX_ENTRIES {
                return Err(std::io::Error::other(format!(
                    "more than {MAX_ENTRIES} entries"
                )));
            }
            // `DirEntry::metadata` does not follow symlinks and stats the
            // name relative to the open directory (no path built per entry).
            // A file removed while we walk is simply not counted.
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            total = total.saturating_add(meta.len());
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system's temporary one.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path =
                std::env::temp_dir().join(format!("wasmon-files-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn measure_counts_files_not_symlink_targets() {
        let dir = TempDir::new("measure");
        std::fs::write(dir.path().join("a"), vec![0u8; 1000]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), vec![0u8; 500]).unwrap();
        let outside = TempDir::new("measure-outside");
        std::fs::write(outside.path().join("big"), vec![0u8; 100_000]).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let held = measure(dir.path()).unwrap();
        assert!((1500..10_000).contains(&held), "{held}");
    }

    #[test]
    fn grant_resolves_and_validates() {
        let dir = TempDir::new("grant");
        let grant = Files::grant(Section {
            dir: dir.path().join("new/sub"),
            max_bytes: None,
        })
        .unwrap();
        assert!(grant.dir.is_dir() && grant.dir.is_absolute());
        assert_eq!(grant.max_bytes, MAX_BYTES);
        let err = Files::grant(Section {
            dir: dir.path().into(),
            max_bytes: Some(ByteSize(0)),
        })
        .unwrap_err();
        assert_eq!(err.key, "max_bytes");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = Files::grant(Section {
            dir: file,
            max_bytes: None,
        })
        .unwrap_err();
        assert_eq!(err.key, "dir");
    }
}
