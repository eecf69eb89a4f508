//! A raw body of any event shape, for transports that carry no route (AMQP
//! messages): a batch (a JSON array, or `{"events": [...]}`) goes through
//! [`payload::batch`], anything else through [`payload::any_event`], so it
//! is validated exactly as on the HTTP routes, with the same limits and errors.

use super::payload::{self, IngestError, Limits, Parsed};
use super::{Ingest, Receipt};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Parses `body` as one event (either shape) or a batch.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Vec<Parsed>, IngestError> {
    if is_batch(body) {
        payload::batch(body, limits)
    } else {
        payload::any_event(body, limits).map(|parsed| vec![parsed])
    }
}

/// Whether `body` looks like a batch: an array, or an object with `events`
/// and neither `event_type` (seed 000) nor `event` (seed 002). What does not
/// parse is left to the event parser, whose errors say why.
fn is_batch(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Peek {
        events: Option<IgnoredAny>,
        event_type: Option<IgnoredAny>,
        event: Option<IgnoredAny>,
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => true,
        Some(b'{') => serde_json::from_slice::<Peek>(body)
            .is_ok_and(|p| p.events.is_some() && p.event_type.is_none() && p.event.is_none()),
        _ => false,
    }
}

impl Ingest {
    /// Parses and records a raw body (see [`parse`]), all or nothing.
    pub fn record_message(&self, body: &[u8]) -> Result<Receipt, IngestError> {
        let parsed = parse(body, self.limits())?;
        self.record(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_depth: 8,
            max_batch: 2,
            max_detail_bytes: 100,
            max_event_bytes: 1000,
        }
    }

    #[test]
    fn every_shape_is_recognised() {
        let l = limits();
        let simple = br#"{"service":"a","event_type":"task.done"}"#;
        assert_eq!(parse(simple, &l).unwrap().len(), 1);
        let job = br#"{"idempotency_key":"k","site_id":"s","app":{"app_id":"x","name":"n","version":"1"},"entity":{"type":"job","id":"1"},"event":{"kind":"job.started","at":"2024-01-01T00:00:00Z"}}"#;
        assert_eq!(parse(job, &l).unwrap().len(), 1);
        let array = br#"[{"service":"a","event_type":"x"},{"service":"b","event_type":"y"}]"#;
        assert_eq!(parse(array, &l).unwrap().len(), 2);
        let wrapped = br#" {"events":[{"service":"a","event_type":"x"}]}"#;
        assert_eq!(parse(wrapped, &l).unwrap().len(), 1);
    }

    #[test]
    fn errors_are_the_http_routes_errors() {
        let l = limits();
        let e = parse(b"{not json", &l).unwrap_err();
        assert_eq!(e.reason(), "malformed");
        let e = parse(br#"{"service":"a","service":"b","event_type":"x"}"#, &l).unwrap_err();
        assert_eq!(e.reason(), "malformed");
        let e = parse(br#"{"service":"a"}"#, &l).unwrap_err();
        assert_eq!(e.reason(), "invalid");
        let three = br#"[{"service":"a","event_type":"x"},{"service":"a","event_type":"x"},{"service":"a","event_type":"x"}]"#;
        assert_eq!(parse(three, &l).unwrap_err().reason(), "batch_too_large");
        assert_eq!(parse(b"\xff", &l).unwrap_err().reason(), "malformed");
    }
}
