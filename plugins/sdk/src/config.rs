//! The plugin's own configuration: the `[config]` table of its manifest.

use crate::Error;
use crate::bindings::wasmon::plugin::host;
use serde::de::DeserializeOwned;

/// The whole `[config]` table, deserialised into `T`.
///
/// ```ignore
/// #[derive(serde::Deserialize)]
/// struct Config { targets: Vec<String>, #[serde(default)] timeout_ms: Option<u32> }
/// let config: Config = wasmon_sdk::config::get()?;
/// ```
pub fn get<T: DeserializeOwned>() -> Result<T, Error> {
    serde_json::from_str(&host::config_json())
        .map_err(|e| Error::new(format!("invalid [config]: {e}")))
}

/// The `[config]` table as raw JSON text.
pub fn json() -> String {
    host::config_json()
}

/// One top-level key: strings as they are, other values as JSON.
pub fn value(key: &str) -> Option<String> {
    host::config_get(key)
}

/// The plugin's name, as the host knows it.
pub fn plugin_name() -> String {
    host::plugin_name()
}
