//! Logging through the host: lines land in the host's log tagged with the plugin's name.
//!
//! ```ignore
//! wasmon_sdk::info!("probing {} targets", targets.len());
//! ```

use crate::bindings::wasmon::plugin::host;
pub use crate::bindings::wasmon::plugin::host::Level;

/// Writes one line at `level`.
pub fn write(level: Level, message: &str) {
    host::log(level, message);
}

/// Logs at info level, `format!`-style.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, &format!($($arg)*)) };
}

/// Logs at warn level, `format!`-style.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, &format!($($arg)*)) };
}

/// Logs at error level, `format!`-style.
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, &format!($($arg)*)) };
}

/// Logs at debug level, `format!`-style.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, &format!($($arg)*)) };
}
