//! The JSON a webhook receives, and what its answer means for the batch: pure
//! functions, unit-tested natively.
//!
//! One POST per batch, an envelope in the spirit of Alertmanager's webhook:
//!
//! ```json
//! {
//!   "version": "1",
//!   "source": "wasmon",
//!   "receiver": "webhook",
//!   "events": [{
//!     "id": "0190...", "time": "2024-05-01T12:00:00.000Z", "time_ms": 1714564800000,
//!     "type": "alert.firing", "source": "rule", "severity": "critical", "status": "ALERT",
//!     "service": null, "component": null, "detail": null, "attributes": {},
//!     "alert": {
//!       "rule": "threshold", "name": "disk_usage", "labels": {"mountpoint": "/"},
//!       "severity": "critical", "state": "firing",
//!       "summary": "disk usage 0.93 >= alert 0.9 on /", "value": 0.93,
//!       "active_since": "2024-05-01T11:59:30.000Z", "active_since_ms": 1714564770000
//!     }
//!   }]
//! }
//! ```
//!
//! The body depends only on the batch, so a retried batch is sent byte for
//! byte the same; receivers deduplicate on the event `id`.

use serde::Serialize;
use wasmon_sdk::Event;
use wasmon_sdk::event_json::Readable;

/// The envelope's format version.
pub const VERSION: &str = "1";

/// The body of one POST.
#[derive(Serialize)]
pub struct Envelope<'a> {
    /// Format version of this envelope.
    pub version: &'static str,
    /// The installation, from `[config] source`.
    pub source: &'a str,
    /// The sink plugin's name.
    pub receiver: &'a str,
    /// The events, in delivery order.
    pub events: Vec<Readable<'a>>,
}

/// The body for the events of `batch` whose type matches `patterns` (all when
/// empty); `None` when no event is left to send.
pub fn body(
    batch: &[Event],
    patterns: &[String],
    source: &str,
    receiver: &str,
) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let events: Vec<Readable<'_>> = batch
        .iter()
        .filter(|e| patterns.is_empty() || wasmon_sdk::glob::matches_any(patterns, &e.event_type))
        .map(Readable::new)
        .collect();
    if events.is_empty() {
        return Ok(None);
    }
    serde_json::to_vec(&Envelope {
        version: VERSION,
        source,
        receiver,
        events,
    })
    .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmon_sdk::DeliveryError;
    use wasmon_sdk::http::{HttpError, Response};
    use wasmon_sdk::sink::outcome;
    use wasmon_sdk::{AlertChange, AlertState, Label, Severity};

    fn event(id: &str, event_type: &str) -> Event {
        Event {
            id: id.into(),
            time_ms: 1_714_564_800_123,
            event_type: event_type.into(),
            source: "ingest".into(),
            service: Some("api".into()),
            component: None,
            severity: Severity::Warning,
            detail: Some("slow".into()),
            attributes: vec![Label::new("region", "eu")],
            alert: None,
        }
    }

    fn alert_event() -> Event {
        Event {
            source: "rule".into(),
            severity: Severity::Critical,
            service: None,
            detail: None,
            attributes: Vec::new(),
            alert: Some(AlertChange {
                rule: "threshold".into(),
                name: "disk_usage".into(),
                labels: vec![Label::new("mountpoint", "/"), Label::new("plugin", "x")],
                severity: Severity::Critical,
                state: AlertState::Firing,
                summary: "disk usage 0.93 >= alert 0.9 on /".into(),
                value: Some(0.93),
                active_since_ms: 1_714_564_770_000,
            }),
            ..event("e2", "alert.firing")
        }
    }

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            elapsed_us: 10,
        }
    }

    #[test]
    fn envelope_shape() {
        let batch = [event("e1", "error"), alert_event()];
        let body = body(&batch, &[], "wasmon", "webhook").unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let expect = serde_json::json!({
            "version": "1",
            "source": "wasmon",
            "receiver": "webhook",
            "events": [
                {
                    "id": "e1", "time": "2024-05-01T12:00:00.123Z", "time_ms": 1_714_564_800_123u64,
                    "type": "error", "source": "ingest", "severity": "warning", "status": "WARNING",
                    "service": "api", "component": null, "detail": "slow",
                    "attributes": {"region": "eu"}, "alert": null
                },
                {
                    "id": "e2", "time": "2024-05-01T12:00:00.123Z", "time_ms": 1_714_564_800_123u64,
                    "type": "alert.firing", "source": "rule", "severity": "critical", "status": "ALERT",
                    "service": null, "component": null, "detail": null, "attributes": {},
                    "alert": {
                        "rule": "threshold", "name": "disk_usage",
                        "labels": {"mountpoint": "/", "plugin": "x"},
                        "severity": "critical", "state": "firing",
                        "summary": "disk usage 0.93 >= alert 0.9 on /", "value": 0.93,
                        "active_since": "2024-05-01T11:59:30.000Z",
                        "active_since_ms": 1_714_564_770_000u64
                    }
                }
            ]
        });
        assert_eq!(json, expect);
    }

    #[test]
    fn filter_by_event_type() {
        let batch = [
            event("e1", "error"),
            alert_event(),
            event("e3", "service.down"),
        ];
        let patterns = vec!["alert.*".to_string(), "service.*".to_string()];
        let body = body(&batch, &patterns, "s", "r").unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let ids: Vec<_> = json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["e2", "e3"]);
        assert_eq!(body_for_nothing(&patterns), None);
    }

    fn body_for_nothing(patterns: &[String]) -> Option<Vec<u8>> {
        body(&[event("e1", "error")], patterns, "s", "r").unwrap()
    }

    #[test]
    fn non_finite_values_become_null() {
        let mut e = alert_event();
        if let Some(a) = &mut e.alert {
            a.value = Some(f64::NAN);
        }
        let body = body(&[e], &[], "s", "r").unwrap().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["events"][0]["alert"]["value"], serde_json::Value::Null);
    }

    #[track_caller]
    fn check(answer: Result<Response, HttpError>, expect: Result<(), DeliveryError>) {
        assert_eq!(outcome("http://h/x", answer), expect);
    }

    #[test]
    fn answers_classify() {
        check(Ok(response(200, "")), Ok(()));
        check(Ok(response(204, "")), Ok(()));
        check(
            Ok(response(503, "maintenance\nmore")),
            Err(DeliveryError::Retryable(
                "http://h/x: HTTP 503: maintenance".into(),
            )),
        );
        check(
            Ok(response(429, "")),
            Err(DeliveryError::Retryable("http://h/x: HTTP 429".into())),
        );
        check(
            Ok(response(408, "")),
            Err(DeliveryError::Retryable("http://h/x: HTTP 408".into())),
        );
        check(
            Ok(response(400, "bad json")),
            Err(DeliveryError::Permanent(
                "http://h/x: HTTP 400: bad json".into(),
            )),
        );
        check(
            Ok(response(404, "")),
            Err(DeliveryError::Permanent("http://h/x: HTTP 404".into())),
        );
        check(
            Ok(response(301, "")),
            Err(DeliveryError::Permanent("http://h/x: HTTP 301".into())),
        );
        check(
            Err(HttpError::Timeout),
            Err(DeliveryError::Retryable(
                "http://h/x: no response within the timeout".into(),
            )),
        );
        check(
            Err(HttpError::Transport("connection refused".into())),
            Err(DeliveryError::Retryable(
                "http://h/x: connection refused".into(),
            )),
        );
        assert!(matches!(
            outcome("u", Err(HttpError::NotGranted("h".into()))),
            Err(DeliveryError::Permanent(m)) if m.contains("allow-list")
        ));
        assert!(matches!(
            outcome("u", Err(HttpError::TooLarge(10))),
            Err(DeliveryError::Retryable(_))
        ));
    }

    #[test]
    fn long_bodies_are_cut() {
        let long = "é".repeat(300);
        let Err(DeliveryError::Permanent(m)) = outcome("u", Ok(response(400, &long))) else {
            panic!("expected permanent");
        };
        assert!(m.ends_with("...") && m.len() < 220, "{m}");
    }
}
