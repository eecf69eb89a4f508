//! The durable event log: where an event goes after it is accepted, until
//! every sink has it.
//!
//! Every event bound for sinks (alert changes, service transitions, ingested
//! events) is appended once to the [`EventLog`]; each sink reads from its own
//! cursor and advances it only when `deliver` succeeds (or fails permanently,
//! which dead-letters the batch). A sink's cursor belongs to its name, not to
//! an instance, so a hot reload or a restart resumes where the previous
//! version stopped.
//!
//! On disk (`storage.data_dir/events/`): append-only segment files of
//! CRC-checked records ([`record`]), written by one thread with group commit
//! ([`writer`]), repaired and read back at start ([`recovery`]), deleted
//! whole by [`retention`]; the sinks' cursors in `cursors.json`
//! ([`cursors`]); idempotency keys rebuilt from the records ([`keys`]).
//! Recent events are served from memory, older ones from the segments
//! ([`segments`]). Batches a sink failed permanently wait in
//! [`dead_letters`] for a replay.
//!
//! After a `2xx`: ingest (`crate::ingest`) has awaited
//! [`EventLog::append_durable`]; each sink's loop,
//! `plugins/driver/sink.rs`, reads its batch from here, calls `deliver`, and
//! acks, retries or dead-letters it.

mod cursors;
mod dead_letters;
mod keys;
mod log;
mod record;
mod recovery;
mod retention;
mod segments;
mod writer;

pub use dead_letters::{DeadLetter, DeadLetters};
pub use log::{AppendError, EventLog, LogMetrics};

#[cfg(test)]
mod tests;
