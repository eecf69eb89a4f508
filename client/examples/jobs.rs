//! Reports a parent job with three sub-jobs to wasmon, one of which fails:
//!
//! ```sh
//! cargo run -p wasmon-client --example jobs -- http://localhost:9400
//! ```
//!
//! The URL comes from the first argument, else `SIDECAR_URL` (seed 002's
//! variable), else `http://localhost:9400`; the site from `SITE_ID` (`site1`);
//! a token for `ingest.token` from `MONITOR_INGEST_TOKEN`. It prints one JSON
//! line with the ids it reported, then the emitter's counters.

use std::time::Duration;
use wasmon_client::{AppRef, Emitter, Monitored};

#[derive(Debug)]
struct ChecksumMismatch {
    part: String,
}

impl std::fmt::Display for ChecksumMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "checksum mismatch in part {}", self.part)
    }
}

impl std::error::Error for ChecksumMismatch {}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SIDECAR_URL").ok())
        .unwrap_or_else(|| "http://localhost:9400".into());
    let site = std::env::var("SITE_ID").unwrap_or_else(|_| "site1".into());
    let mut builder = Emitter::builder(&url).batch_size(50);
    if let Ok(token) = std::env::var("MONITOR_INGEST_TOKEN") {
        builder = builder.token(token);
    }
    let emitter = builder.build()?;
    let app = AppRef::new("example-etl", env!("CARGO_PKG_VERSION"));

    let job = Monitored::job(&emitter, &site, &app)
        .business_key("daily-batch")
        .metadata("trigger", "example")
        .start();
    let mut children = Vec::new();
    for (i, part) in ["extract", "transform", "load"].into_iter().enumerate() {
        let sub = job.subjob().sub_key(part).start();
        children.push(sub.id().to_string());
        let mut acc = 0u64;
        for step in 1..=4u64 {
            for n in 0..200_000u64 {
                acc = acc.wrapping_mul(6364136223846793005).wrapping_add(n ^ step);
            }
            sub.progress(step as f64 / 4.0);
        }
        std::hint::black_box(acc);
        job.progress((i + 1) as f64 / 3.0);
        if part == "transform" {
            sub.fail(&ChecksumMismatch { part: part.into() });
        } else {
            sub.succeed();
        }
    }
    let parent = job.id().to_string();
    job.succeed();
    emitter.flush(Duration::from_secs(10))?;
    println!(
        "{}",
        serde_json::json!({ "parent": parent, "children": children, "app": app.name })
    );
    let stats = emitter.stats();
    eprintln!(
        "sent {} events ({} retries, {} dropped, {} rejected)",
        stats.sent, stats.retries, stats.dropped, stats.rejected
    );
    Ok(())
}
