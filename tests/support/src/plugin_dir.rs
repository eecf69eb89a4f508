//! A plugin directory that tests change while a host watches it: every write is
//! atomic (a dot-named temporary file, then `rename`), so the watcher never sees
//! a half-written component or manifest.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A plugin directory: `NAME.wasm` plus optional `NAME.toml`.
#[derive(Debug, Clone)]
pub struct PluginDir {
    path: PathBuf,
}

impl PluginDir {
    /// Uses (and creates) the directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> PluginDir {
        let path = path.into();
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create plugin dir {}: {e}", path.display()));
        PluginDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where plugin `name`'s component lives.
    pub fn wasm_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.wasm"))
    }

    /// Where plugin `name`'s manifest lives.
    pub fn manifest_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.toml"))
    }

    /// Installs the component at `wasm` (e.g. `guests::GUEST_COUNTER`) as
    /// plugin `name`, replacing any previous version atomically.
    pub fn install(&self, name: &str, wasm: impl AsRef<Path>) {
        let wasm = wasm.as_ref();
        let bytes = std::fs::read(wasm)
            .unwrap_or_else(|e| panic!("cannot read component {}: {e}", wasm.display()));
        self.install_bytes(name, &bytes);
    }

    /// Installs `bytes` as plugin `name`'s component, atomically.
    pub fn install_bytes(&self, name: &str, bytes: &[u8]) {
        self.write_atomically(&self.wasm_path(name), bytes);
    }

    /// Installs garbage as plugin `name`: a file the host must refuse to load.
    pub fn install_corrupt(&self, name: &str) {
        self.install_bytes(name, b"\0asm this is not a WebAssembly component\n");
    }

    /// Writes plugin `name`'s manifest, atomically.
    pub fn write_manifest(&self, name: &str, toml: &str) {
        self.write_atomically(&self.manifest_path(name), toml.as_bytes());
    }

    /// Removes plugin `name`'s manifest (no error if there is none).
    pub fn remove_manifest(&self, name: &str) {
        remove_if_present(&self.manifest_path(name));
    }

    /// Removes plugin `name`'s component (no error if there is none); its manifest stays.
    pub fn remove(&self, name: &str) {
        remove_if_present(&self.wasm_path(name));
    }

    fn write_atomically(&self, dest: &Path, bytes: &[u8]) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let file_name = dest.file_name().unwrap().to_string_lossy();
        let temp = self.path.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&temp, bytes)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", temp.display()));
        std::fs::rename(&temp, dest).unwrap_or_else(|e| {
            panic!(
                "cannot rename {} to {}: {e}",
                temp.display(),
                dest.display()
            )
        });
    }
}

fn remove_if_present(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_atomic_and_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let plugins = PluginDir::new(dir.path().join("plugins.d"));
        plugins.install_bytes("a", b"one");
        plugins.install_bytes("a", b"two");
        plugins.write_manifest("a", "interval = \"1s\"\n");
        plugins.install_corrupt("b");
        let mut names: Vec<_> = std::fs::read_dir(plugins.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.toml", "a.wasm", "b.wasm"]);
        assert_eq!(std::fs::read(plugins.wasm_path("a")).unwrap(), b"two");
        plugins.remove("a");
        plugins.remove_manifest("a");
        plugins.remove("never-there");
        assert!(!plugins.wasm_path("a").exists() && !plugins.manifest_path("a").exists());
    }
}
