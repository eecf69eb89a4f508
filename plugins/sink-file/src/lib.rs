//! `sink-file`: writes events to files in the directory the host grants
//! with `[capabilities.files]` (preopened as `/data`): JSON lines (the
//! host's event shape) or CSV, rotated by size (`max_file_bytes`) and age
//! (`rotate_every`), the newest `max_files` kept. Seed 002's CSV/JSON export.
//!
//! Every delivery is written and synced (`fsync`) before it returns `Ok`, so
//! a delivered batch is on disk. A write error (disk full, the directory
//! over the host's `max_bytes`, ...) is `retryable`: the host keeps the
//! batch and retries it; an event that cannot be encoded is `permanent`.
//! A retried batch may leave some events twice: readers deduplicate on `id`.
//! Age rotation happens at the next delivery after the age is reached.
//!
//! # Layout
//!
//! - [`config`]: the `[config]` table and its validation.
//! - [`encode`]: the line of one event, the file names (pure).
//! - [`writer`]: the files, rotation and retention (plain `std::fs`).

pub mod config;
pub mod encode;
pub mod writer;

use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The plugin.
pub struct FileSink {
    writer: writer::Writer,
}

impl Sink for FileSink {
    fn init() -> Result<Self, Error> {
        let settings = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        let writer = writer::Writer::new(settings).map_err(Error::new)?;
        let s = writer.settings();
        wasmon_sdk::info!(
            "writing {} to {}/{}-*.{} (max_file_bytes {}, max_files {})",
            s.events,
            s.dir,
            s.prefix,
            s.format.extension(),
            s.max_file_bytes,
            s.max_files
        );
        Ok(FileSink { writer })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        let filter = &self.writer.settings().events;
        let events: Vec<&Event> = batch.iter().filter(|e| filter.accepts(e)).collect();
        self.writer
            .write(&events, wasmon_sdk::now_ms())
            .map_err(|e| match e {
                writer::WriteError::Io(why) => DeliveryError::Retryable(why),
                writer::WriteError::Encode(why) => DeliveryError::Permanent(why),
            })
    }
}

wasmon_sdk::export_sink!(FileSink);
