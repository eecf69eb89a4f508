//! Helpers for sinks: what an HTTP answer means for a batch, with the retry
//! rules of Prometheus remote-write, UTC time formatting, the
//! [`EventFilter`] of a sink's `[config] events`, and the [`fingerprint`] of
//! a batch.
//!
//! | answer | result |
//! |---|---|
//! | 2xx | `Ok(())`: delivered |
//! | 429, 5xx, 408, timeout, transport error, response over the size cap | [`DeliveryError::Retryable`]: the host backs off and retries the same batch (honouring a `Retry-After` it saw itself) |
//! | other statuses (1xx, 3xx, 4xx), not granted, invalid request | [`DeliveryError::Permanent`]: the host dead-letters the batch |
//!
//! 408 (Request Timeout) is a network timeout reported by the server, so it is
//! retried like one. A response over the manifest's size cap means the target
//! answered at length and may have taken the batch: retrying may duplicate,
//! never lose. A `not-granted` answer is also a policy violation that the host
//! turns into a capability fault of the call (the batch then waits for the
//! restart), whatever the plugin returns.
//!
//! ```
//! use wasmon_sdk::DeliveryError;
//! use wasmon_sdk::sink;
//!
//! assert_eq!(sink::from_status("es", 200, b""), Ok(()));
//! assert_eq!(
//!     sink::from_status("es", 503, b"maintenance\nmore"),
//!     Err(DeliveryError::Retryable("es: HTTP 503: maintenance".into()))
//! );
//! assert_eq!(
//!     sink::from_status("es", 400, b"bad json"),
//!     Err(DeliveryError::Permanent("es: HTTP 400: bad json".into()))
//! );
//! assert!(sink::is_retryable_status(429));
//! assert_eq!(sink::rfc3339(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
//! ```

use crate::http::{HttpError, Response};
use crate::{DeliveryError, Event};
use serde::Deserialize;

/// The most bytes of a response body quoted in an error message.
pub const EXCERPT_BYTES: usize = 200;

/// What an HTTP exchange means for the batch: [`from_status`] for an answer,
/// [`from_http_error`] for none. `target` names the other end in messages
/// (a URL, or the sink's name for a target with a secret in its URL).
pub fn outcome(target: &str, answer: Result<Response, HttpError>) -> Result<(), DeliveryError> {
    match answer {
        Ok(response) => from_status(target, response.status, &response.body),
        Err(error) => Err(from_http_error(target, error)),
    }
}

/// What a status means: 2xx `Ok`; 429, 408 and 5xx retryable; anything else
/// permanent. The message names the status and the first line of the body.
pub fn from_status(target: &str, status: u16, body: &[u8]) -> Result<(), DeliveryError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let message = format!("{target}: HTTP {status}{}", excerpt(body));
    if is_retryable_status(status) {
        Err(DeliveryError::Retryable(message))
    } else {
        Err(DeliveryError::Permanent(message))
    }
}

/// Whether a failed status is worth retrying: 429, 408 and 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || status == 408 || (500..600).contains(&status)
}

/// What a request that got no usable answer means: network errors, timeouts
/// and an answer over the size cap are retryable; a request the manifest does
/// not grant, or one that is not valid, is permanent (waiting changes neither).
pub fn from_http_error(target: &str, error: HttpError) -> DeliveryError {
    match error {
        HttpError::Timeout => {
            DeliveryError::Retryable(format!("{target}: no response within the timeout"))
        }
        HttpError::Transport(detail) => DeliveryError::Retryable(format!("{target}: {detail}")),
        HttpError::TooLarge(cap) => DeliveryError::Retryable(format!(
            "{target}: response over the manifest's cap of {cap} bytes"
        )),
        HttpError::NotGranted(detail) => DeliveryError::Permanent(format!(
            "{target}: not granted ({detail}); allow-list its host in [capabilities.http] allow"
        )),
        HttpError::InvalidRequest(detail) => {
            DeliveryError::Permanent(format!("{target}: invalid request: {detail}"))
        }
    }
}

/// `": <first non-empty line of body>"`, cut at [`EXCERPT_BYTES`] (with
/// `...`), or `""` for an empty body: for error messages.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.lines().map(str::trim).find(|l| !l.is_empty()) {
        None => String::new(),
        Some(line) if line.len() <= EXCERPT_BYTES => format!(": {line}"),
        Some(line) => {
            let mut end = EXCERPT_BYTES;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            format!(": {}...", &line[..end])
        }
    }
}

impl DeliveryError {
    /// Whether the host will retry the batch.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DeliveryError::Retryable(_))
    }

    /// The message, whichever the kind.
    pub fn message(&self) -> &str {
        match self {
            DeliveryError::Retryable(m) | DeliveryError::Permanent(m) => m,
        }
    }
}

/// A sink's `[config] events`: event-type globs ([`crate::glob`]) applied
/// after the manifest's own `events`; all events when empty. A pattern may
/// not be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct EventFilter(Vec<String>);

impl TryFrom<Vec<String>> for EventFilter {
    type Error = String;

    fn try_from(patterns: Vec<String>) -> Result<Self, String> {
        match patterns.iter().find(|p| p.is_empty()) {
            Some(pattern) => Err(format!("{pattern:?} is empty")),
            None => Ok(EventFilter(patterns)),
        }
    }
}

impl EventFilter {
    /// Whether `event` passes: no patterns, or one matching its type.
    pub fn accepts(&self, event: &Event) -> bool {
        self.0.is_empty() || crate::glob::matches_any(&self.0, &event.event_type)
    }

    /// The patterns, as written.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

/// `all events`, or the patterns joined by `, `: for log lines.
impl std::fmt::Display for EventFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("all events")
        } else {
            f.write_str(&self.0.join(", "))
        }
    }
}

/// Identifies a batch by its ids (FNV-1a over them, and their count): a
/// sink that keeps a batch's progress across retries tells a retry of the
/// same batch from a new one.
pub fn fingerprint(batch: &[Event]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for event in batch {
        for byte in event.id.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{}:{hash:016x}", batch.len())
}

/// A UTC calendar time, from Unix milliseconds ([`Utc::from_ms`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    /// The year, e.g. 2024.
    pub year: u64,
    /// 1 to 12.
    pub month: u64,
    /// 1 to 31.
    pub day: u64,
    /// 0 to 23.
    pub hour: u64,
    /// 0 to 59.
    pub minute: u64,
    /// 0 to 59.
    pub second: u64,
    /// 0 to 999.
    pub millis: u64,
}

impl Utc {
    /// The calendar time of Unix milliseconds `ms` (proleptic Gregorian, UTC).
    pub fn from_ms(ms: u64) -> Utc {
        let seconds = ms / 1000;
        let (days, rest) = (seconds / 86_400, seconds % 86_400);
        let (year, month, day) = civil_from_days(days);
        Utc {
            year,
            month,
            day,
            hour: rest / 3600,
            minute: rest % 3600 / 60,
            second: rest % 60,
            millis: ms % 1000,
        }
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds:
/// `2024-05-01T12:00:00.000Z`.
pub fn rfc3339(ms: u64) -> String {
    let t = Utc::from_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
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
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            elapsed_us: 10,
        }
    }

    #[track_caller]
    fn check(answer: Result<Response, HttpError>, expect: Result<(), DeliveryError>) {
        assert_eq!(outcome("http://h/x", answer), expect);
    }

    #[test]
    fn statuses_classify() {
        check(Ok(response(200, "")), Ok(()));
        check(Ok(response(204, "")), Ok(()));
        for (status, retryable) in [
            (429, true),
            (408, true),
            (500, true),
            (502, true),
            (503, true),
            (599, true),
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (413, false),
            (422, false),
            (301, false),
            (100, false),
        ] {
            let result = outcome("t", Ok(response(status, "")));
            let message = format!("t: HTTP {status}");
            let expect = if retryable {
                DeliveryError::Retryable(message)
            } else {
                DeliveryError::Permanent(message)
            };
            assert_eq!(result, Err(expect), "status {status}");
        }
        check(
            Ok(response(503, "\n  maintenance \nmore")),
            Err(DeliveryError::Retryable(
                "http://h/x: HTTP 503: maintenance".into(),
            )),
        );
        check(
            Ok(response(400, "bad json")),
            Err(DeliveryError::Permanent(
                "http://h/x: HTTP 400: bad json".into(),
            )),
        );
    }

    #[test]
    fn capability_errors_classify() {
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
        assert!(from_http_error("u", HttpError::TooLarge(10)).is_retryable());
        let e = from_http_error("u", HttpError::NotGranted("h:1".into()));
        assert!(
            !e.is_retryable() && e.message().contains("allow-list"),
            "{e:?}"
        );
        let e = from_http_error("u", HttpError::InvalidRequest("bad header".into()));
        assert_eq!(
            e,
            DeliveryError::Permanent("u: invalid request: bad header".into())
        );
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        let long = "é".repeat(300);
        let Err(DeliveryError::Permanent(m)) = from_status("u", 400, long.as_bytes()) else {
            panic!("expected permanent");
        };
        assert!(m.ends_with("...") && m.len() < EXCERPT_BYTES + 20, "{m}");
        assert_eq!(excerpt(b""), "");
        assert_eq!(excerpt(b" \n \n"), "");
        assert_eq!(excerpt(&[0xff, b'a']), ": \u{fffd}a");
    }

    fn event(id: &str, event_type: &str) -> Event {
        Event {
            id: id.into(),
            time_ms: 0,
            event_type: event_type.into(),
            source: "rule".into(),
            service: None,
            component: None,
            severity: crate::Severity::Ok,
            detail: None,
            attributes: Vec::new(),
            alert: None,
        }
    }

    #[test]
    fn fingerprints_tell_batches_apart() {
        let ab = [event("a", "x"), event("b", "x")];
        let ba = [event("b", "x"), event("a", "x")];
        assert_eq!(fingerprint(&ab), fingerprint(&ab.clone()));
        assert_ne!(fingerprint(&ab), fingerprint(&ba));
        assert_ne!(fingerprint(&ab), fingerprint(&ab[..1]));
    }

    #[test]
    fn event_filters() {
        let filter = |json: &str| crate::config::from_json::<EventFilter>(json);
        let all = filter("[]").unwrap();
        let alerts = filter(r#"["alert.*"]"#).unwrap();
        assert_eq!(
            (all.to_string(), alerts.to_string()),
            ("all events".into(), "alert.*".into())
        );
        let mut event = event("e1", "alert.firing");
        assert!(all.accepts(&event) && alerts.accepts(&event));
        event.event_type = "service.down".into();
        assert!(all.accepts(&event) && !alerts.accepts(&event));
        assert!(
            filter(r#"["a", ""]"#)
                .unwrap_err()
                .message
                .contains("\"\" is empty")
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(4_102_444_800_000), "2100-01-01T00:00:00.000Z");
        let t = Utc::from_ms(1_714_564_800_123);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.millis),
            (2024, 5, 1, 12, 123)
        );
    }
}
