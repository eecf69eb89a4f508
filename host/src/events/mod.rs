//! Delivery of events to sink plugins: one event log, a cursor per sink.
//!
//! Every event bound for sinks (alert changes, service transitions, ingested
//! events) is appended once to the [`EventLog`]; each sink reads from its own
//! cursor and advances it only when `deliver` succeeds (or fails permanently,
//! which dead-letters the batch). A sink's cursor belongs to its name, not to
//! an instance, so a hot reload or a restart after a fault resumes where the
//! previous version stopped: nothing is lost while a sink is swapped or down,
//! within the log's retention.
//!
//! This log keeps events in memory, bounded by count; what falls off before
//! every sink read it is counted (`wasmon_event_log_dropped_total`).

mod log;

pub use log::EventLog;
