//! `collector-storage`: seed 001's `StorageCollector` as a plugin. Every
//! interval it asks the S3-compatible server (MinIO, AWS S3, ...) the
//! manifest's `[capabilities.storage]` names, through the host (which signs
//! the requests; this plugin never sees the credentials):
//!
//! - `storage_up`: 1 when the server answers a signed request, else 0 (the
//!   reason is logged once per distinct error, and nothing else is reported);
//! - `storage_health_latency_seconds`: that request's round trip;
//! - `storage_buckets`: the buckets visible (the manifest's `buckets`
//!   allow-list, when it has one);
//! - per bucket: `storage_bucket_objects{bucket}` and
//!   `storage_bucket_bytes{bucket}` (ListObjectsV2, counted up to the
//!   manifest's `max_objects`), `storage_bucket_truncated{bucket}` (1 when
//!   the counts stopped at that cap and are lower bounds);
//! - `storage_bucket_errors_total`: bucket listings that failed;
//! - per watched object (`watch = ["bucket/key"]`, HEAD):
//!   `storage_object_present{bucket,key}` (0 when missing),
//!   `storage_object_bytes{bucket,key}` and
//!   `storage_object_modified_timestamp_seconds{bucket,key}`.
//!
//! ```toml
//! [capabilities.storage]
//! endpoint_env = "MONITORING_MINIO_ENDPOINT"
//! access_key_env = "MONITORING_MINIO_ACCESS_KEY"
//! secret_key_env = "MONITORING_MINIO_SECRET_KEY"
//! [config]
//! buckets = ["images"]   # default: every bucket the server lists
//! objects = true         # count objects and bytes (one listing per bucket)
//! watch = ["backups/db.dump"]   # objects that must exist (HEAD each)
//! ```

use serde::Deserialize;
use wasmon_sdk::storage;
use wasmon_sdk::{Collector, Error, Sample};

/// `[config]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The buckets to count; default: every bucket `buckets()` lists.
    #[serde(default)]
    buckets: Option<Vec<String>>,
    /// Whether to count each bucket's objects and bytes.
    #[serde(default = "yes")]
    objects: bool,
    /// Objects to watch, `bucket/key` (a backup that must exist and stay fresh).
    #[serde(default)]
    watch: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The collector.
pub struct StorageCollector {
    config: Config,
    /// The last error logged, so a persisting one is logged once.
    last_error: Option<String>,
    /// Bucket listings that failed, ever.
    bucket_errors: u64,
}

impl Collector for StorageCollector {
    fn init() -> Result<Self, Error> {
        Ok(StorageCollector {
            config: wasmon_sdk::config::get()?,
            last_error: None,
            bucket_errors: 0,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let up = |v: f64| {
            Sample::gauge("storage_up", v).with_help(
                "Whether the object storage server answers a signed request (1) or not (0).",
            )
        };
        let latency_us = match storage::health() {
            Ok(latency) => latency,
            Err(e) => {
                self.report(e.message());
                return Ok(vec![up(0.0)]);
            }
        };
        let mut samples = vec![
            up(1.0),
            Sample::gauge("storage_health_latency_seconds", latency_us as f64 / 1e6)
                .with_help("Round trip of the object storage health check."),
        ];
        let names: Vec<String> = match &self.config.buckets {
            Some(names) => names.clone(),
            None => match storage::buckets() {
                Ok(buckets) => buckets.into_iter().map(|b| b.name).collect(),
                Err(e) => {
                    self.report(e.message());
                    return Ok(samples);
                }
            },
        };
        samples.push(
            Sample::gauge("storage_buckets", names.len() as f64)
                .with_help("Buckets visible to the collector."),
        );
        let mut failed = None;
        if self.config.objects {
            for name in &names {
                match storage::bucket_stats(name, None) {
                    Ok(usage) => samples.extend(bucket_samples(name, &usage)),
                    Err(e) => {
                        self.bucket_errors += 1;
                        failed = Some(e.message());
                    }
                }
            }
        }
        for path in &self.config.watch {
            match watched(path) {
                Ok(more) => samples.extend(more),
                Err(e) => failed = Some(e),
            }
        }
        samples.push(
            Sample::counter("storage_bucket_errors", self.bucket_errors as f64)
                .with_help("Bucket listings that failed."),
        );
        match failed {
            Some(error) => self.report(error),
            None => self.last_error = None,
        }
        Ok(samples)
    }
}

impl StorageCollector {
    /// Logs `error` unless it is the one logged last (numbers aside: an
    /// open breaker's "next attempt in 3s" changes every call).
    fn report(&mut self, error: String) {
        let shape: String = error.chars().filter(|c| !c.is_ascii_digit()).collect();
        if self.last_error.as_ref() != Some(&shape) {
            wasmon_sdk::warn!("{error}");
            self.last_error = Some(shape);
        }
    }
}

/// The samples of one watched object, `bucket/key`: present or not, and
/// when present its size and last change.
fn watched(path: &str) -> Result<Vec<Sample>, String> {
    let Some((bucket, key)) = path.split_once('/') else {
        return Err(format!("watch entry {path:?} is not bucket/key"));
    };
    let present = |v: f64| {
        Sample::gauge("storage_object_present", v)
            .with_label("bucket", bucket)
            .with_label("key", key)
            .with_help("Whether a watched object exists (1) or not (0).")
    };
    match storage::head(bucket, key) {
        Ok(info) => {
            let mut samples = vec![
                present(1.0),
                Sample::gauge("storage_object_bytes", info.size as f64)
                    .with_label("bucket", bucket)
                    .with_label("key", key)
                    .with_help("Size of a watched object."),
            ];
            if let Some(ms) = info.last_modified_ms {
                samples.push(
                    Sample::gauge("storage_object_modified_timestamp_seconds", ms as f64 / 1e3)
                        .with_label("bucket", bucket)
                        .with_label("key", key)
                        .with_help("When a watched object last changed (Unix time)."),
                );
            }
            Ok(samples)
        }
        Err(storage::StorageError::NotFound(_)) => Ok(vec![present(0.0)]),
        Err(e) => Err(e.message()),
    }
}

/// The samples of one bucket.
fn bucket_samples(name: &str, usage: &storage::BucketUsage) -> Vec<Sample> {
    vec![
        Sample::gauge("storage_bucket_objects", usage.objects as f64)
            .with_label("bucket", name)
            .with_help("Objects in the bucket (a lower bound when truncated)."),
        Sample::gauge("storage_bucket_bytes", usage.bytes as f64)
            .with_label("bucket", name)
            .with_help("Total size of the bucket's objects (a lower bound when truncated)."),
        Sample::gauge(
            "storage_bucket_truncated",
            if usage.truncated { 1.0 } else { 0.0 },
        )
        .with_label("bucket", name)
        .with_help("1 when counting stopped at the manifest's max_objects."),
    ]
}

wasmon_sdk::export_collector!(StorageCollector);
