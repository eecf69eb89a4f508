//! `[storage]`: where the host keeps what survives a restart, and how the
//! durable event log behaves (durability, retention, a full log).

use crate::units::{self, ByteSize};
use anyhow::{Result, bail};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The data directory and the durable event log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Where the host keeps what must survive a restart: the event log
    /// (`events/`), the sinks' cursors and the plugins an operator stopped.
    /// Created at start; relative to the working directory (`--data-dir`,
    /// `WASMON_STORAGE__DATA_DIR`; the systemd unit uses `/var/lib/wasmon`).
    pub data_dir: PathBuf,
    /// `fsync` (default): an event is acknowledged only once it is on disk
    /// (one `fdatasync` per batch of concurrent appends). `none`: once written
    /// to the operating system, not synced; a power loss or kernel crash may
    /// lose the last acknowledged events (a crash of the host alone does not).
    pub durability: Durability,
    /// Most bytes the event log's segments hold on disk.
    pub max_bytes: ByteSize,
    /// Segments whose newest event is older than this are deleted, read by
    /// every sink or not (what a sink had not read is counted as `retention`).
    #[serde(with = "units::duration")]
    pub max_age: Duration,
    /// What an append does when the log holds `max_bytes` and no segment
    /// can go: `reject` (default; ingest answers 503 with `Retry-After`) or
    /// `drop_oldest` (the oldest segment goes, counted as `full` per sink).
    pub when_full: WhenFull,
    /// Most events kept in memory to serve `/api/events` and sinks that keep
    /// up; older ones are read from the segments.
    pub memory_events: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            durability: Durability::Fsync,
            max_bytes: ByteSize(1 << 30),
            max_age: Duration::from_secs(7 * 24 * 3600),
            when_full: WhenFull::Reject,
            memory_events: 100_000,
        }
    }
}

impl StorageConfig {
    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<()> {
        if self.max_bytes.0 < 64 * 1024 {
            bail!("invalid value for `storage.max_bytes`: must be at least 64KiB");
        }
        if self.max_age.is_zero() {
            bail!("invalid value for `storage.max_age`: must be greater than zero");
        }
        if self.memory_events == 0 {
            bail!("invalid value for `storage.memory_events`: must be greater than zero");
        }
        Ok(())
    }
}

/// When an appended event counts as durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// On disk: written and `fdatasync`ed.
    Fsync,
    /// Written to the operating system, not synced.
    None,
}

/// What a full event log does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Refuse the append (ingest answers 503 with `Retry-After`).
    Reject,
    /// Delete the oldest segment, counting what sinks had not read.
    DropOldest,
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Durability, WhenFull};
    use std::path::Path;

    fn load(env: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::load(
            None,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn storage_keys_and_the_deprecated_server_data_dir() {
        let c = load(&[]).unwrap();
        assert_eq!(c.storage.data_dir, Path::new("data"));
        assert_eq!(c.storage.durability, Durability::Fsync);
        assert_eq!(c.storage.when_full, WhenFull::Reject);
        let c = load(&[("WASMON_SERVER__DATA_DIR", "/old")]).unwrap();
        assert_eq!(c.storage.data_dir, Path::new("/old"), "still read");
        let c = load(&[
            ("WASMON_SERVER__DATA_DIR", "/old"),
            ("WASMON_STORAGE__DATA_DIR", "/new"),
        ])
        .unwrap();
        assert_eq!(c.storage.data_dir, Path::new("/new"), "the new key wins");
        let c = load(&[
            ("WASMON_STORAGE__DURABILITY", "none"),
            ("WASMON_STORAGE__WHEN_FULL", "drop_oldest"),
            ("WASMON_STORAGE__MAX_AGE", "1h"),
        ])
        .unwrap();
        assert_eq!(c.storage.durability, Durability::None);
        assert_eq!(c.storage.when_full, WhenFull::DropOldest);
        let e = load(&[("WASMON_STORAGE__MAX_BYTES", "1KiB")]).unwrap_err();
        assert!(format!("{e:#}").contains("storage.max_bytes"), "{e:#}");
        let e = load(&[("WASMON_STORAGE__DURABILITY", "sometimes")]).unwrap_err();
        assert!(format!("{e:#}").contains("storage.durability"), "{e:#}");
    }
}
