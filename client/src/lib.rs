//! wasmon's client SDK: report jobs and sub-jobs to wasmon (seed 002's
//! monitoring SDK, in Rust).
//!
//! ```no_run
//! use wasmon_client::{AppRef, Emitter, Monitored};
//!
//! let emitter = Emitter::new("http://localhost:9400")?;
//! let app = AppRef::new("my-app", "1.0.0");
//! let job = Monitored::job(&emitter, "site1", &app).business_key("daily-batch").start();
//! for part in ["a", "b"] {
//!     let sub = job.subjob().sub_key(part).start();
//!     // ... work ...
//!     sub.progress(1.0);
//! } // each sub-job reports `finished` (succeeded) when dropped
//! drop(job);
//! emitter.flush(std::time::Duration::from_secs(5))?;
//! # Ok::<(), wasmon_client::Error>(())
//! ```
//!
//! # Layout
//!
//! - [`event`]: the job event as the sidecar API takes it (`idempotency_key`,
//!   `site_id`, `app`, `entity`, `event`).
//! - [`Emitter`]: a background thread that batches events to
//!   `POST /v1/events/batch`, retries with capped exponential backoff and
//!   jitter, and keeps a bounded buffer (the oldest events go first, counted).
//! - [`Monitored`]: a guard that reports `started` when created, `progress`
//!   on demand, and `finished` when it ends, with duration, CPU time and peak
//!   memory; `failed` if it ends by [`Monitored::fail`] or while panicking.

pub mod emitter;
pub mod event;
pub mod monitored;
mod usage;

pub use emitter::{Emitter, EmitterBuilder, Stats};
pub use event::{AppRef, EntityRef, JobEvent};
pub use monitored::{Monitored, MonitoredBuilder};

/// What can go wrong talking to wasmon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL is not an `http://` (or, with the `tls` feature, `https://`) URL.
    #[error("invalid wasmon URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// `flush` gave up before every buffered event was delivered.
    #[error("{pending} events still pending after {waited:?}")]
    FlushTimeout {
        /// Events not delivered yet.
        pending: usize,
        /// How long `flush` waited.
        waited: std::time::Duration,
    },
    /// The emitter's thread could not be started.
    #[error("failed to start the emitter thread: {0}")]
    Thread(#[from] std::io::Error),
}
