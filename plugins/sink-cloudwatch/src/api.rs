//! The two CloudWatch APIs the sink speaks, as pure functions of plain data
//! (unit-tested natively): `PutMetricData` in the Query protocol (form
//! encoded, the protocol every CloudWatch and emulator speaks) and
//! `PutLogEvents`/`CreateLogStream` in the JSON 1.1 protocol; and what an
//! answer means for the batch.
//!
//! | answer | result |
//! |---|---|
//! | 2xx | done |
//! | 5xx, 429, timeout, transport error | `retryable` |
//! | 400 with a throttling code (`Throttling`, `ThrottlingException`, `RequestLimitExceeded`, `ServiceUnavailable`, ...) | `retryable`: AWS throttles with 400 |
//! | any other 4xx (`InvalidParameterValue`, `ResourceNotFoundException`, `AccessDenied`, a bad signature, ...) | `permanent`: the host dead-letters the batch |

use std::collections::BTreeMap;
use wasmon_sdk::http::{HttpError, Response};
use wasmon_sdk::{DeliveryError, Event};

/// Most data points of one `PutMetricData` call (the API's limit).
pub const MAX_DATUMS: usize = 1000;
/// Most events of one `PutLogEvents` call (the API's limit).
pub const MAX_LOG_EVENTS: usize = 10_000;
/// Most bytes of one `PutLogEvents` call: messages plus 26 bytes each (the API's limit is 1 MiB).
pub const MAX_LOG_BYTES: usize = 1_048_576;
/// Most bytes of one log message (the API's limit is 256 KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 - 26;

/// 400 codes that mean "later", not "never".
const RETRYABLE_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// One CloudWatch data point.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// `Events` or `AlertValue`.
    pub name: &'static str,
    /// Dimension name and value pairs.
    pub dimensions: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
    /// `Count` or `None`.
    pub unit: &'static str,
    /// Unix milliseconds.
    pub time_ms: u64,
}

/// The data points of `events`: per event type and severity, `Events` =
/// how many the batch holds (at the newest one's time); per alert change
/// with a finite value, `AlertValue` = that value (dimensions `Rule`,
/// `Alert`, `State`).
pub fn datums(events: &[&Event]) -> Vec<Datum> {
    let mut counts: BTreeMap<(&str, &'static str), (u64, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    for event in events {
        let entry = counts
            .entry((event.event_type.as_str(), event.severity.as_str()))
            .or_insert((0, 0));
        entry.0 += 1;
        entry.1 = entry.1.max(event.time_ms);
        if let Some(alert) = &event.alert
            && let Some(value) = alert.value.filter(|v| v.is_finite())
        {
            out.push(Datum {
                name: "AlertValue",
                dimensions: vec![
                    ("Rule", alert.rule.clone()),
                    ("Alert", alert.name.clone()),
                    ("State", alert.state.as_str().to_string()),
                ],
                value,
                unit: "None",
                time_ms: event.time_ms,
            });
        }
    }
    let mut datums: Vec<Datum> = counts
        .into_iter()
        .map(|((event_type, severity), (count, time_ms))| Datum {
            name: "Events",
            dimensions: vec![
                ("EventType", event_type.to_string()),
                ("Severity", severity.to_string()),
            ],
            value: count as f64,
            unit: "Count",
            time_ms,
        })
        .collect();
    datums.append(&mut out);
    datums
}

/// The form body of one `PutMetricData` call (Query protocol).
pub fn put_metric_data(namespace: &str, datums: &[Datum]) -> String {
    let mut form = Form::default();
    form.add("Action", "PutMetricData");
    form.add("Version", "2010-08-01");
    form.add("Namespace", namespace);
    for (i, datum) in datums.iter().enumerate() {
        let p = format!("MetricData.member.{}", i + 1);
        form.add(&format!("{p}.MetricName"), datum.name);
        form.add(&format!("{p}.Value"), &datum.value.to_string());
        form.add(&format!("{p}.Unit"), datum.unit);
        form.add(
            &format!("{p}.Timestamp"),
            &wasmon_sdk::sink::rfc3339(datum.time_ms),
        );
        for (j, (name, value)) in datum.dimensions.iter().enumerate() {
            let d = format!("{p}.Dimensions.member.{}", j + 1);
            form.add(&format!("{d}.Name"), name);
            form.add(&format!("{d}.Value"), value);
        }
    }
    form.0
}

/// `application/x-www-form-urlencoded`, built pair by pair.
#[derive(Default)]
struct Form(String);

impl Form {
    fn add(&mut self, name: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        encode_into(&mut self.0, name);
        self.0.push('=');
        encode_into(&mut self.0, value);
    }
}

/// Percent-encodes all but the unreserved characters.
fn encode_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// One log line: the event's time and its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Unix milliseconds.
    pub time_ms: u64,
    /// The event in the host's JSON (cut at [`MAX_MESSAGE_BYTES`]).
    pub message: String,
}

/// The log lines of `events`, in time order (PutLogEvents needs it).
pub fn lines(events: &[&Event]) -> Vec<Line> {
    let mut lines: Vec<Line> = events
        .iter()
        .map(|event| {
            let mut message = wasmon_sdk::event_json::to_vec(event)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .unwrap_or_else(|e| {
                    format!("{{\"id\":{:?},\"error\":{:?}}}", event.id, e.to_string())
                });
            if message.len() > MAX_MESSAGE_BYTES {
                let mut end = MAX_MESSAGE_BYTES;
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                message.truncate(end);
            }
            Line {
                time_ms: event.time_ms,
                message,
            }
        })
        .collect();
    lines.sort_by_key(|l| l.time_ms);
    lines
}

/// `lines` cut into PutLogEvents calls within the API's count and size limits.
pub fn chunks(lines: &[Line]) -> Vec<&[Line]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        let size = line.message.len() + 26;
        if i > start && (i - start >= MAX_LOG_EVENTS || bytes + size > MAX_LOG_BYTES) {
            out.push(&lines[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < lines.len() {
        out.push(&lines[start..]);
    }
    out
}

/// The JSON body of one `PutLogEvents` call.
pub fn put_log_events(group: &str, stream: &str, lines: &[Line]) -> Vec<u8> {
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::json!({"timestamp": l.time_ms, "message": l.message}))
        .collect();
    serde_json::json!({"logGroupName": group, "logStreamName": stream, "logEvents": events})
        .to_string()
        .into_bytes()
}

/// The JSON body of `CreateLogStream`.
pub fn create_log_stream(group: &str, stream: &str) -> Vec<u8> {
    serde_json::json!({"logGroupName": group, "logStreamName": stream})
        .to_string()
        .into_bytes()
}

/// An AWS error answer: status, code and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The HTTP status.
    pub status: u16,
    /// `ResourceNotFoundException`, `InvalidParameterValue`, ... when the body says.
    pub code: Option<String>,
    /// The first line of the body, for messages.
    pub excerpt: String,
}

impl Failure {
    /// The failure of a non-2xx `response`.
    pub fn of(response: &Response) -> Failure {
        Failure {
            status: response.status,
            code: error_code(&response.body),
            excerpt: wasmon_sdk::sink::excerpt(&response.body),
        }
    }

    /// Whether it is worth retrying (see the module's table).
    pub fn is_retryable(&self) -> bool {
        wasmon_sdk::sink::is_retryable_status(self.status)
            || (self.status == 400
                && self
                    .code
                    .as_deref()
                    .is_some_and(|c| RETRYABLE_CODES.contains(&c)))
    }

    /// What it means for the batch, naming `what` (the operation and target).
    pub fn delivery_error(&self, what: &str) -> DeliveryError {
        let message = format!(
            "{what}: HTTP {}{}{}",
            self.status,
            self.code
                .as_deref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default(),
            self.excerpt
        );
        if self.is_retryable() {
            DeliveryError::Retryable(message)
        } else {
            DeliveryError::Permanent(message)
        }
    }
}

/// What a request that got no answer means (network errors and timeouts
/// retry; a request the host refuses is permanent).
pub fn no_answer(what: &str, error: HttpError) -> DeliveryError {
    wasmon_sdk::sink::from_http_error(what, error)
}

/// The error code of a JSON (`__type`, `code`) or XML (`<Code>`) error body.
pub fn error_code(body: &[u8]) -> Option<String> {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        let code = json
            .get("__type")
            .or_else(|| json.get("code"))
            .or_else(|| json.get("Code"))
            .and_then(|c| c.as_str())?;
        // `com.amazonaws.logs#ResourceNotFoundException`, or with a `:` suffix.
        let code = code.rsplit('#').next().unwrap_or(code);
        let code = code.split(':').next().unwrap_or(code);
        return Some(code.to_string());
    }
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmon_sdk::{AlertChange, AlertState, Label, Severity};

    fn event(id: &str, event_type: &str, severity: Severity, time_ms: u64) -> Event {
        Event {
            id: id.into(),
            time_ms,
            event_type: event_type.into(),
            source: "ingest".into(),
            service: Some("api".into()),
            component: None,
            severity,
            detail: None,
            attributes: Vec::new(),
            alert: None,
        }
    }

    #[test]
    fn counts_per_type_and_severity_and_alert_values() {
        let mut alert = event("a", "alert.firing", Severity::Critical, 30);
        alert.alert = Some(AlertChange {
            rule: "threshold".into(),
            name: "disk".into(),
            labels: vec![Label::new("m", "/")],
            severity: Severity::Critical,
            state: AlertState::Firing,
            summary: "s".into(),
            value: Some(0.93),
            active_since_ms: 1,
        });
        let events = [
            event("1", "task.done", Severity::Ok, 10),
            event("2", "task.done", Severity::Ok, 20),
            event("3", "task.failed", Severity::Critical, 15),
            alert,
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let d = datums(&refs);
        assert_eq!(d.len(), 4);
        assert_eq!(d[1].name, "Events");
        assert_eq!(
            d[1].dimensions,
            vec![("EventType", "task.done".into()), ("Severity", "ok".into())]
        );
        assert_eq!((d[1].value, d[1].time_ms), (2.0, 20));
        assert_eq!(d[3].name, "AlertValue");
        assert_eq!(d[3].value, 0.93);
        let body = put_metric_data("Wasmon/Edge 1", &d[1..2]);
        assert_eq!(
            body,
            "Action=PutMetricData&Version=2010-08-01&Namespace=Wasmon%2FEdge%201\
             &MetricData.member.1.MetricName=Events&MetricData.member.1.Value=2\
             &MetricData.member.1.Unit=Count&MetricData.member.1.Timestamp=1970-01-01T00%3A00%3A00.020Z\
             &MetricData.member.1.Dimensions.member.1.Name=EventType\
             &MetricData.member.1.Dimensions.member.1.Value=task.done\
             &MetricData.member.1.Dimensions.member.2.Name=Severity\
             &MetricData.member.1.Dimensions.member.2.Value=ok"
        );
    }

    #[test]
    fn lines_are_in_time_order_and_chunked() {
        let events = [
            event("late", "x", Severity::Ok, 20),
            event("early", "x", Severity::Ok, 10),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let l = lines(&refs);
        assert!(l[0].message.contains("\"early\""));
        let body: serde_json::Value =
            serde_json::from_slice(&put_log_events("g", "s", &l)).unwrap();
        assert_eq!(body["logEvents"][1]["timestamp"], 20);
        let many: Vec<Line> = (0..25_000)
            .map(|i| Line {
                time_ms: i,
                message: "m".into(),
            })
            .collect();
        let sizes: Vec<usize> = chunks(&many).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [10_000, 10_000, 5_000]);
        let big: Vec<Line> = (0..10)
            .map(|i| Line {
                time_ms: i,
                message: "m".repeat(200_000),
            })
            .collect();
        assert!(chunks(&big).iter().all(|c| c.len() == 5));
    }

    #[test]
    fn codes_and_retries() {
        let json = br#"{"__type":"com.amazonaws.logs#ResourceNotFoundException","message":"The specified log group does not exist."}"#;
        assert_eq!(
            error_code(json).as_deref(),
            Some("ResourceNotFoundException")
        );
        let xml = b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert_eq!(error_code(xml).as_deref(), Some("Throttling"));
        let failure = |status, body: &[u8]| Failure {
            status,
            code: error_code(body),
            excerpt: String::new(),
        };
        assert!(failure(400, xml).is_retryable());
        assert!(!failure(400, json).is_retryable());
        assert!(failure(503, b"").is_retryable());
        assert!(failure(429, b"").is_retryable());
        assert!(!failure(403, b"<Code>SignatureDoesNotMatch</Code>").is_retryable());
        assert!(
            !failure(400, json)
                .delivery_error("PutLogEvents")
                .is_retryable()
        );
    }
}
