//! S3-compatible object storage (MinIO, AWS S3, ...) through the host, at
//! the endpoint the manifest names. The host signs every request with
//! credentials from its environment: the plugin never sees them.
//!
//! ```toml
//! [capabilities.storage]
//! endpoint = "http://127.0.0.1:9000"     # or endpoint_env = "MONITORING_MINIO_ENDPOINT"
//! access_key_env = "MONITORING_MINIO_ACCESS_KEY"
//! secret_key_env = "MONITORING_MINIO_SECRET_KEY"
//! buckets = ["images", "results"]         # optional allow-list
//! max_objects = 100000
//! timeout = "5s"
//! ```
//!
//! ```ignore
//! let latency_us = wasmon_sdk::storage::health()?;
//! for bucket in wasmon_sdk::storage::buckets()? {
//!     let usage = wasmon_sdk::storage::bucket_stats(&bucket.name, None)?;
//!     // usage.objects, usage.bytes, usage.truncated
//! }
//! ```

use crate::bindings::wasmon::plugin::storage as wit;

pub use wit::{Bucket, BucketUsage, ObjectInfo, StorageError};

/// Checks the endpoint answers a signed request; the round trip in microseconds.
pub fn health() -> Result<u64, StorageError> {
    wit::health()
}

/// The buckets the manifest lets the plugin see.
pub fn buckets() -> Result<Vec<Bucket>, StorageError> {
    wit::buckets()
}

/// A bucket's object count and bytes (under `prefix`, when given), counted
/// up to the manifest's `max_objects` (`truncated` past it).
pub fn bucket_stats(bucket: &str, prefix: Option<&str>) -> Result<BucketUsage, StorageError> {
    wit::bucket_stats(bucket, prefix)
}

/// One object's metadata.
pub fn head(bucket: &str, key: &str) -> Result<ObjectInfo, StorageError> {
    wit::head(bucket, key)
}

impl StorageError {
    /// The error's text, whatever its kind.
    pub fn message(&self) -> String {
        match self {
            StorageError::NotGranted(m)
            | StorageError::Connection(m)
            | StorageError::Auth(m)
            | StorageError::NotFound(m)
            | StorageError::Server(m) => m.clone(),
            StorageError::TooLarge(max) => {
                format!("storage: an answer exceeded {max} bytes (max_response_bytes)")
            }
        }
    }
}

impl From<StorageError> for crate::Error {
    fn from(error: StorageError) -> Self {
        crate::Error::new(error.message())
    }
}
