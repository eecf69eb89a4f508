//! A raw body of any event shape, for transports that carry no route (AMQP
//! messages): a batch (a JSON array, or `{"events": [...]}`) goes through
//! [`payload::batch`], anything else through [`payload::any_event`], so it
//! is validated exactly as on the HTTP routes, with the same limits and errors.
//!
//! One more shape exists only here: a **forwarded event**, an event in the
//! host's own JSON (what `GET /api/events` lists and `sink-amqp` publishes:
//! an object with `id`, `time_ms`, `event_type` and `source`). It keeps its
//! original `id`, `source`, severity, attributes and alert change, so a
//! central host fed by edge hosts' `sink-amqp` records each event under the
//! id the edge gave it (fan-in); its time becomes the time it is recorded.
//! One without an `idempotency_key` attribute gets `forwarded:ID`, so an
//! event the broker or the edge delivers twice is recorded once (within
//! `ingest.idempotency_window`).

use super::payload::{self, IngestError, Limits, Parsed};
use super::{IDEMPOTENCY_KEY, Ingest, Receipt, RecordError};
use crate::model::Event;
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Parses `body` as one event (either shape) or a batch.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Vec<Parsed>, IngestError> {
    match shape(body) {
        Shape::Forwarded => forwarded(body, limits).map(|parsed| vec![parsed]),
        Shape::Batch => payload::batch(body, limits),
        Shape::Event => payload::any_event(body, limits).map(|parsed| vec![parsed]),
    }
}

/// What a body looks like, from one peek at its top-level keys.
enum Shape {
    /// An object with `id`, `time_ms`, `event_type` and `source`: an event
    /// in the host's own shape.
    Forwarded,
    /// An array, or an object with `events` and neither `event_type` (seed
    /// 000) nor `event` (seed 002).
    Batch,
    /// Anything else, including what does not parse: left to the event
    /// parser, whose errors say why.
    Event,
}

fn shape(body: &[u8]) -> Shape {
    #[derive(Deserialize)]
    struct Peek {
        id: Option<IgnoredAny>,
        time_ms: Option<IgnoredAny>,
        event_type: Option<IgnoredAny>,
        source: Option<IgnoredAny>,
        events: Option<IgnoredAny>,
        event: Option<IgnoredAny>,
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Shape::Batch,
        Some(b'{') => match serde_json::from_slice::<Peek>(body) {
            Ok(p)
                if p.id.is_some()
                    && p.time_ms.is_some()
                    && p.event_type.is_some()
                    && p.source.is_some() =>
            {
                Shape::Forwarded
            }
            Ok(p) if p.events.is_some() && p.event_type.is_none() && p.event.is_none() => {
                Shape::Batch
            }
            _ => Shape::Event,
        },
        _ => Shape::Event,
    }
}

/// Most bytes of a forwarded event's id (a UUID is 36).
const MAX_ID_BYTES: usize = 64;

/// A forwarded event, checked like an ingested one: the same depth, size,
/// name and text limits; an id of letters, digits and `-_.:`.
fn forwarded(body: &[u8], limits: &Limits) -> Result<Parsed, IngestError> {
    let text = payload::check_json(body, limits.max_depth)?.trim();
    if text.len() > limits.max_event_bytes {
        return Err(IngestError::Invalid(format!(
            "event of {} bytes exceeds the limit of {} (ingest.max_event_bytes)",
            text.len(),
            limits.max_event_bytes
        )));
    }
    let mut event: Event = serde_json::from_str(text)
        .map_err(|e| IngestError::Invalid(format!("forwarded event: {e}")))?;
    let id_ok = !event.id.is_empty()
        && event.id.len() <= MAX_ID_BYTES
        && event
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !id_ok {
        return Err(IngestError::Invalid(format!(
            "id: {:?} is not an event id (1 to {MAX_ID_BYTES} letters, digits and - _ . :)",
            event.id.chars().take(MAX_ID_BYTES).collect::<String>()
        )));
    }
    payload::check_event_type(&event.event_type)?;
    payload::check_name("source", &event.source)?;
    if let Some(service) = &event.service {
        payload::check_name("service", service)?;
    }
    if let Some(component) = &event.component {
        payload::check_name("component", component)?;
    }
    if let Some(detail) = &event.detail {
        payload::check_text("detail", detail, limits.max_detail_bytes)?;
    }
    // A redelivered event is recorded once: its id is its idempotency key
    // unless the producer gave one (then that key already names it).
    if event.attributes.top_level_str(IDEMPOTENCY_KEY).is_none() {
        event.attributes.insert(
            IDEMPOTENCY_KEY,
            format!("{FORWARDED_KEY_PREFIX}{}", event.id),
        );
    }
    let outcome = payload::task_outcome(&event.event_type);
    Ok(Parsed { event, outcome })
}

/// What a forwarded event without an idempotency key gets as one: `forwarded:ID`.
const FORWARDED_KEY_PREFIX: &str = "forwarded:";

impl Ingest {
    /// Parses and records a raw body (see [`parse`]), all or nothing;
    /// resolves once it is durable.
    pub async fn record_message(&self, body: &[u8]) -> Result<Receipt, RecordError> {
        let parsed = parse(body, self.limits())?;
        self.record(parsed).await
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
    fn a_forwarded_event_keeps_its_id() {
        let l = Limits {
            max_event_bytes: 2000,
            ..limits()
        };
        let alert = br#"{"id":"0190-ab","time_ms":5,"event_type":"alert.firing","source":"rule","severity":"critical","alert":{"rule":"r","name":"n","labels":[["a","b"]],"severity":"critical","state":"firing","summary":"s","value":null,"active_since_ms":1}}"#;
        let parsed = parse(alert, &l).unwrap();
        assert_eq!(parsed[0].event.id, "0190-ab");
        assert_eq!(parsed[0].event.source, "rule");
        assert!(parsed[0].event.alert.is_some());
        let plain = br#"{"id":"e1","time_ms":5,"event_type":"task.done","source":"ingest","service":"api","attributes":{"k":"v"}}"#;
        let parsed = parse(plain, &l).unwrap();
        assert_eq!(parsed[0].event.id, "e1");
        assert_eq!(parsed[0].event.service.as_deref(), Some("api"));
        assert_eq!(
            parsed[0]
                .event
                .attributes
                .top_level_str("idempotency_key")
                .as_deref(),
            Some("forwarded:e1")
        );
        let bad_id = br#"{"id":"a b","time_ms":5,"event_type":"x","source":"ingest"}"#;
        assert!(parse(bad_id, &l).unwrap_err().to_string().contains("id:"));
        let bad_type = br#"{"id":"a","time_ms":5,"event_type":"a*","source":"ingest"}"#;
        assert_eq!(parse(bad_type, &l).unwrap_err().reason(), "invalid");
        let bad_severity =
            br#"{"id":"a","time_ms":5,"event_type":"x","source":"i","severity":"huge"}"#;
        assert_eq!(parse(bad_severity, &l).unwrap_err().reason(), "invalid");
        // Without `time_ms` and `source` it is a seed 000 event with a new id.
        let simple = br#"{"id":"mine","service":"a","event_type":"x"}"#;
        assert_ne!(parse(simple, &l).unwrap()[0].event.id, "mine");
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
