//! Export: everything that turns the store and the self-metrics into what
//! outside readers consume.
//!
//! Invariant: only this module knows the Prometheus text format. The store holds
//! an opaque per-series [`ExportCache`](crate::store::ExportCache) slot that
//! [`prometheus`] fills with each series' rendered `name{labels} ` prefix.

pub mod prometheus;
