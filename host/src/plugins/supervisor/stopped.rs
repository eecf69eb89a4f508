//! The plugins an operator stopped, persisted in `stopped.json` under the
//! data directory (written atomically), so they stay stopped across restarts.

use anyhow::Context;
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The names of stopped plugins, persisted in `stopped.json` under the data
/// directory.
pub(crate) struct StoppedSet {
    path: Option<PathBuf>,
    names: Mutex<BTreeSet<String>>,
}

impl StoppedSet {
    /// Reads the set from `data_dir` (empty when there is none yet).
    pub(crate) fn load(data_dir: Option<&std::path::Path>) -> anyhow::Result<StoppedSet> {
        let path = data_dir.map(|d| d.join("stopped.json"));
        let names = match &path {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .with_context(|| format!("invalid stopped-plugin list {}", path.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeSet::new(),
                Err(e) => {
                    return Err(anyhow::Error::from(e))
                        .with_context(|| format!("cannot read {}", path.display()));
                }
            },
            None => BTreeSet::new(),
        };
        if !names.is_empty() {
            tracing::info!(plugins = ?names, "plugins stopped by an operator stay stopped");
        }
        Ok(StoppedSet {
            path,
            names: Mutex::new(names),
        })
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.names.lock().contains(name)
    }

    /// Adds or removes `name`, and writes the set (atomically: a temporary
    /// file renamed over the old one).
    pub(super) fn set(&self, name: &str, stopped: bool) -> anyhow::Result<()> {
        let mut names = self.names.lock();
        let changed = if stopped {
            names.insert(name.to_string())
        } else {
            names.remove(name)
        };
        let Some(path) = self.path.as_ref().filter(|_| changed) else {
            return Ok(());
        };
        let text = serde_json::to_vec_pretty(&*names).context("cannot encode the stopped set")?;
        let tmp = path.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().with_context(|| format!("cannot write {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopped_set_persists() {
        let dir = std::env::temp_dir().join(format!("wasmon-stopped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let set = StoppedSet::load(Some(&dir)).unwrap();
        set.set("a", true).unwrap();
        set.set("b", true).unwrap();
        set.set("a", false).unwrap();
        let again = StoppedSet::load(Some(&dir)).unwrap();
        assert!(again.contains("b") && !again.contains("a"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
