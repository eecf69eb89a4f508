//! A plugin's key-value state: owned by its slot in the registry, not by an
//! instance, so it survives hot reloads and restarts after a fault.

use parking_lot::Mutex;
use std::collections::BTreeMap;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 256;

/// The state of one plugin, bounded by a quota on keys plus values.
#[derive(Debug, Default)]
pub struct KvState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<String, Vec<u8>>,
    bytes: usize,
}

impl KvState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.inner.lock().entries.get(key).cloned()
    }

    /// Sets `key`, unless that would take the state past `quota` bytes.
    pub fn set(&self, key: &str, value: Vec<u8>, quota: usize) -> Result<(), String> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(format!(
                "state key must be 1 to {MAX_KEY_LEN} bytes, got {}",
                key.len()
            ));
        }
        let mut inner = self.inner.lock();
        let old = inner.entries.get(key).map_or(0, |v| key.len() + v.len());
        let new = key.len() + value.len();
        let total = inner.bytes - old + new;
        if total > quota {
            return Err(format!(
                "state quota of {quota} bytes exceeded: setting {key:?} would hold {total}"
            ));
        }
        inner.bytes = total;
        inner.entries.insert(key.to_string(), value);
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        let mut inner = self.inner.lock();
        if let Some(v) = inner.entries.remove(key) {
            inner.bytes -= key.len() + v.len();
        }
    }

    /// Every entry, sorted by key.
    pub fn entries(&self) -> Vec<(String, Vec<u8>)> {
        self.inner
            .lock()
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.inner.lock().entries.keys().cloned().collect()
    }

    /// Bytes held (keys plus values).
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_counts_keys_and_values_and_replacements() {
        let s = KvState::new();
        s.set("a", vec![0; 10], 20).unwrap();
        assert_eq!(s.bytes(), 11);
        s.set("a", vec![0; 19], 20).unwrap();
        assert_eq!(s.bytes(), 20);
        assert!(s.set("b", vec![], 20).is_err());
        s.delete("a");
        assert_eq!(s.bytes(), 0);
        assert!(s.set("", vec![], 20).is_err());
        assert!(s.set(&"k".repeat(MAX_KEY_LEN + 1), vec![], 10_000).is_err());
        s.set("b", vec![1], 20).unwrap();
        assert_eq!(s.keys(), vec!["b".to_string()]);
        assert_eq!(s.get("b"), Some(vec![1]));
    }
}
