//! A small key-value state kept by the host for this plugin. It survives hot
//! reloads and restarts after a crash, so a new version continues where the old
//! one stopped.

use crate::Error;
use crate::bindings::wasmon::plugin::host;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads raw bytes.
pub fn get(key: &str) -> Option<Vec<u8>> {
    host::state_get(key)
}

/// Writes raw bytes; fails when over the host's quota.
pub fn set(key: &str, value: &[u8]) -> Result<(), Error> {
    host::state_set(key, value)
}

/// Removes a key.
pub fn delete(key: &str) {
    host::state_delete(key)
}

/// Every key.
pub fn keys() -> Vec<String> {
    host::state_keys()
}

/// Reads a JSON value; `None` when absent or not a `T`.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Writes a JSON value.
pub fn set_json<T: Serialize>(key: &str, value: &T) -> Result<(), Error> {
    set(key, &serde_json::to_vec(value)?)
}
