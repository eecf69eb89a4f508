//! `{{name}}`: a wasmon sink.
//!
//! The host hands it the events it records (alert changes, services going
//! down or up, ingested events) in batches of the manifest's `batch_size`,
//! each batch once delivered for good. This sink counts the events of each
//! batch by type (those its `[config] events` patterns accept), writes one log
//! line per batch and keeps a running total in the plugin's state, which
//! survives hot reloads and restarts.
//!
//! Make it deliver somewhere real: send the batch with `wasmon_sdk::http`
//! (allow-list the target in `[capabilities.http]`) and map the answer with
//! `wasmon_sdk::sink::outcome`, so the host retries or dead-letters a batch.
//! The logic is the pure function [`count`], tested natively (`cargo test`).

use serde::Deserialize;
use std::collections::BTreeMap;
use wasmon_sdk::sink::EventFilter;
use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The state key holding the running total.
const TOTAL_KEY: &str = "delivered_total";

/// The manifest's `[config]` table.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Event-type patterns (`*` globs) to count; all events when empty.
    #[serde(default)]
    pub events: EventFilter,
}

/// The plugin: its filter and the running total.
pub struct Plugin {
    config: Config,
    total: u64,
}

impl Sink for Plugin {
    fn init() -> Result<Self, Error> {
        let config = wasmon_sdk::config::get::<Config>()?;
        let total = wasmon_sdk::state::get_json::<u64>(TOTAL_KEY).unwrap_or(0);
        wasmon_sdk::info!("counting {}, {total} so far", config.events);
        Ok(Plugin { config, total })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        let counts = count(&self.config.events, &batch);
        let delivered: u64 = counts.values().sum();
        if delivered == 0 {
            return Ok(());
        }
        let total = self.total + delivered;
        // A failed write is worth a retry: the host calls again with the same batch.
        wasmon_sdk::state::set_json(TOTAL_KEY, &total).map_err(|e| {
            DeliveryError::Retryable(format!("cannot save the total: {}", e.message))
        })?;
        self.total = total;
        wasmon_sdk::info!("{}; {total} in total", summary(&counts));
        Ok(())
    }
}

/// How many events of each type the filter accepts: pure, so it is tested natively.
pub fn count(filter: &EventFilter, batch: &[Event]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for event in batch.iter().filter(|e| filter.accepts(e)) {
        *counts.entry(event.event_type.clone()).or_insert(0) += 1;
    }
    counts
}

/// `3 events: alert.firing 2, service.down 1`.
pub fn summary(counts: &BTreeMap<String, u64>) -> String {
    let total: u64 = counts.values().sum();
    let parts: Vec<String> = counts.iter().map(|(t, n)| format!("{t} {n}")).collect();
    format!("{total} events: {}", parts.join(", "))
}

wasmon_sdk::export_sink!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmon_sdk::Severity;

    fn event(id: &str, event_type: &str) -> Event {
        Event {
            id: id.to_string(),
            time_ms: 1_700_000_000_000,
            event_type: event_type.to_string(),
            source: "ingest".to_string(),
            service: None,
            component: None,
            severity: Severity::Ok,
            detail: None,
            attributes: Vec::new(),
            alert: None,
        }
    }

    #[test]
    fn counts_accepted_events_by_type() {
        let batch = [
            event("1", "alert.firing"),
            event("2", "service.down"),
            event("3", "alert.firing"),
        ];
        let all = count(&EventFilter::default(), &batch);
        assert_eq!(summary(&all), "3 events: alert.firing 2, service.down 1");

        let config: Config = wasmon_sdk::config::from_json(r#"{"events": ["alert.*"]}"#).unwrap();
        let alerts = count(&config.events, &batch);
        assert_eq!(alerts.get("alert.firing"), Some(&2));
        assert_eq!(alerts.get("service.down"), None);
    }

    #[test]
    fn an_empty_pattern_is_refused() {
        let bad = wasmon_sdk::config::from_json::<Config>(r#"{"events": [""]}"#);
        assert!(bad.unwrap_err().message.contains("events"));
    }
}
