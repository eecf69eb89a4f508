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
use serde::ser::{SerializeMap, Serializer};
use wasmon_sdk::http::{HttpError, Response};
use wasmon_sdk::{AlertChange, DeliveryError, Event, Label};

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
    pub events: Vec<EventJson<'a>>,
}

/// One event.
#[derive(Serialize)]
pub struct EventJson<'a> {
    id: &'a str,
    time: String,
    time_ms: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    source: &'a str,
    severity: &'static str,
    /// The seed's status word: OK, WARNING or ALERT.
    status: &'static str,
    service: Option<&'a str>,
    component: Option<&'a str>,
    detail: Option<&'a str>,
    #[serde(serialize_with = "labels_as_map")]
    attributes: &'a [Label],
    alert: Option<AlertJson<'a>>,
}

/// The alert change carried by an `alert.*` event.
#[derive(Serialize)]
pub struct AlertJson<'a> {
    rule: &'a str,
    name: &'a str,
    #[serde(serialize_with = "labels_as_map")]
    labels: &'a [Label],
    severity: &'static str,
    state: &'static str,
    summary: &'a str,
    value: Option<f64>,
    active_since: String,
    active_since_ms: u64,
}

impl<'a> EventJson<'a> {
    /// An event as the receiver sees it.
    pub fn new(event: &'a Event) -> Self {
        EventJson {
            id: &event.id,
            time: rfc3339(event.time_ms),
            time_ms: event.time_ms,
            event_type: &event.event_type,
            source: &event.source,
            severity: event.severity.as_str(),
            status: event.severity.status(),
            service: event.service.as_deref(),
            component: event.component.as_deref(),
            detail: event.detail.as_deref(),
            attributes: &event.attributes,
            alert: event.alert.as_ref().map(AlertJson::new),
        }
    }
}

impl<'a> AlertJson<'a> {
    fn new(alert: &'a AlertChange) -> Self {
        AlertJson {
            rule: &alert.rule,
            name: &alert.name,
            labels: &alert.labels,
            severity: alert.severity.as_str(),
            state: alert.state.as_str(),
            summary: &alert.summary,
            // JSON has no NaN or infinity.
            value: alert.value.filter(|v| v.is_finite()),
            active_since: rfc3339(alert.active_since_ms),
            active_since_ms: alert.active_since_ms,
        }
    }
}

/// Labels as a JSON object, in their order.
fn labels_as_map<S: Serializer>(labels: &&[Label], serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(labels.len()))?;
    for label in labels.iter() {
        map.serialize_entry(&label.name, &label.value)?;
    }
    map.end()
}

/// The body for the events of `batch` whose type matches `patterns` (all when
/// empty); `None` when no event is left to send.
pub fn body(
    batch: &[Event],
    patterns: &[String],
    source: &str,
    receiver: &str,
) -> Result<Option<Vec<u8>>, serde_json::Error> {
    let events: Vec<EventJson<'_>> = batch
        .iter()
        .filter(|e| patterns.is_empty() || wasmon_sdk::glob::matches_any(patterns, &e.event_type))
        .map(EventJson::new)
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

/// What the receiver's answer means for the batch: 2xx delivered; 408, 429,
/// 5xx, timeouts and transport errors retried; other statuses dead-lettered.
///
/// A host that does not grant the URL, or rejects the request, is retried
/// too: both are configuration the operator fixes with a manifest change,
/// which reloads the sink, and the waiting events then go through instead of
/// having been dead-lettered meanwhile.
pub fn outcome(url: &str, answer: Result<Response, HttpError>) -> Result<(), DeliveryError> {
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            return Err(DeliveryError::Retryable(match error {
                HttpError::Timeout => format!("{url}: no response within the timeout"),
                HttpError::Transport(detail) => format!("{url}: {detail}"),
                HttpError::NotGranted(detail) => format!(
                    "{url}: not granted ({detail}); allow-list its host in [capabilities.http] allow"
                ),
                HttpError::InvalidRequest(detail) => format!("{url}: invalid request: {detail}"),
                // The receiver answered, at length; it may have taken the batch,
                // and duplicates are allowed where losses are not.
                HttpError::TooLarge(cap) => {
                    format!("{url}: response over the manifest's cap of {cap} bytes")
                }
            }));
        }
    };
    let status = response.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = format!("{url}: HTTP {status}{}", snippet(&response.body));
    if status == 408 || status == 429 || (500..600).contains(&status) {
        Err(DeliveryError::Retryable(message))
    } else {
        Err(DeliveryError::Permanent(message))
    }
}

/// `: <first line of the body>`, short, or nothing for an empty body.
fn snippet(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        None => String::new(),
        Some(line) if line.len() <= MAX => format!(": {line}"),
        Some(line) => {
            let mut end = MAX;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            format!(": {}...", &line[..end])
        }
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds:
/// `2024-05-01T12:00:00.000Z`.
pub fn rfc3339(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmon_sdk::{AlertState, Severity};

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
            Err(DeliveryError::Retryable(m)) if m.contains("allow-list")
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

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
    }
}
