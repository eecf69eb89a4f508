//! Judging one probe and turning it into samples: pure functions of the
//! target, the host's answer and the measured time, unit-tested natively.
//!
//! The samples follow blackbox-exporter's http module, so its dashboards and
//! alerts carry over (the host adds `plugin="<name>"` to each):
//!
//! | sample | value |
//! |---|---|
//! | `probe_success{target}` | 1 when the probe passed, else 0 |
//! | `probe_duration_seconds{target}` | wall time of the probe, as the plugin measured it |
//! | `probe_http_status_code{target}` | the response's status; 0 without a response |
//! | `probe_http_duration_seconds{target}` | request sent to body read, as the host measured it (with a response) |
//! | `probe_http_content_length_bytes{target}` | `Content-Length`, or the body's size without one (with a response) |
//! | `probe_http_body_match{target}` | 1 when the body conditions hold, else 0 (with a response and a body condition) |
//! | `probe_failure_info{target,reason}` | 1, only while the probe fails; `reason` says why |

use crate::config::Target;
use std::time::Duration;
use wasmon_sdk::Sample;
use wasmon_sdk::http::{HttpError, Method, Response};

/// Why a probe failed: the `reason` label of `probe_failure_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The manifest does not allow-list the target's host.
    NotGranted,
    /// The host rejected the request as malformed.
    InvalidRequest,
    /// No complete response within the timeout.
    Timeout,
    /// Connecting, TLS or the transfer failed.
    Transport,
    /// The response body exceeded the manifest's size cap.
    TooLarge,
    /// The status code is not one of the valid ones.
    StatusCode,
    /// A body condition does not hold.
    BodyMismatch,
    /// The collect budget was spent before this target's turn.
    BudgetExhausted,
}

impl Reason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotGranted => "not_granted",
            Reason::InvalidRequest => "invalid_request",
            Reason::Timeout => "timeout",
            Reason::Transport => "transport",
            Reason::TooLarge => "too_large",
            Reason::StatusCode => "status_code",
            Reason::BodyMismatch => "body_mismatch",
            Reason::BudgetExhausted => "budget_exhausted",
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Wall time of the probe.
    pub duration: Duration,
    /// What the response showed, when there was one.
    pub response: Option<ResponseFacts>,
    /// Why it failed; `None` when it passed.
    pub failure: Option<(Reason, String)>,
}

/// The facts of a response that become samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFacts {
    /// Status code.
    pub status: u16,
    /// Host-measured time from request to end of body.
    pub http_seconds: f64,
    /// `Content-Length`, or the body's size.
    pub content_length: f64,
    /// Whether the body conditions hold; `None` when there are none.
    pub body_match: Option<bool>,
}

impl Outcome {
    /// A target skipped because the collect budget was spent.
    pub fn budget_exhausted(budget: Duration) -> Outcome {
        Outcome {
            duration: Duration::ZERO,
            response: None,
            failure: Some((
                Reason::BudgetExhausted,
                format!(
                    "not probed: the collect budget of {} ms was spent on earlier targets",
                    budget.as_millis()
                ),
            )),
        }
    }

    /// Whether the probe passed.
    pub fn success(&self) -> bool {
        self.failure.is_none()
    }
}

/// Judges the host's answer to one target's request.
pub fn judge(target: &Target, answer: Result<Response, HttpError>, duration: Duration) -> Outcome {
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            let failure = match error {
                HttpError::NotGranted(detail) => (
                    Reason::NotGranted,
                    format!(
                        "not granted ({detail}): add {:?} to [capabilities.http] allow in the manifest",
                        target.authority
                    ),
                ),
                HttpError::InvalidRequest(detail) => {
                    (Reason::InvalidRequest, format!("invalid request: {detail}"))
                }
                HttpError::Timeout => (
                    Reason::Timeout,
                    format!("no response within {} ms", duration.as_millis()),
                ),
                HttpError::Transport(detail) => (Reason::Transport, detail),
                HttpError::TooLarge(cap) => (
                    Reason::TooLarge,
                    format!("response body over the manifest's cap of {cap} bytes"),
                ),
            };
            return Outcome {
                duration,
                response: None,
                failure: Some(failure),
            };
        }
    };
    let status_ok = if target.valid_status_codes.is_empty() {
        (200..300).contains(&response.status)
    } else {
        target.valid_status_codes.contains(&response.status)
    };
    let body_match = body_match(target, &response);
    let failure = if !status_ok {
        Some((
            Reason::StatusCode,
            format!(
                "status {} (expected {})",
                response.status,
                expected_codes(&target.valid_status_codes)
            ),
        ))
    } else if body_match == Some(false) {
        Some((Reason::BodyMismatch, body_mismatch(target)))
    } else {
        None
    };
    let content_length = response
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(response.body.len() as u64) as f64;
    Outcome {
        duration,
        response: Some(ResponseFacts {
            status: response.status,
            http_seconds: response.elapsed_us as f64 / 1e6,
            content_length,
            body_match,
        }),
        failure,
    }
}

/// Whether the body conditions hold; `None` when there are none.
fn body_match(target: &Target, response: &Response) -> Option<bool> {
    if target.method == Method::Head
        || (target.body_contains.is_none() && target.body_not_contains.is_none())
    {
        return None;
    }
    let body = String::from_utf8_lossy(&response.body);
    let contains = target
        .body_contains
        .as_deref()
        .is_none_or(|text| body.contains(text));
    let lacks = target
        .body_not_contains
        .as_deref()
        .is_none_or(|text| !body.contains(text));
    Some(contains && lacks)
}

fn body_mismatch(target: &Target) -> String {
    match (&target.body_contains, &target.body_not_contains) {
        (Some(want), Some(unwanted)) => {
            format!("body does not contain {want:?} or contains {unwanted:?}")
        }
        (Some(want), None) => format!("body does not contain {want:?}"),
        (None, Some(unwanted)) => format!("body contains {unwanted:?}"),
        (None, None) => "body does not match".into(),
    }
}

fn expected_codes(codes: &[u16]) -> String {
    if codes.is_empty() {
        return "2xx".into();
    }
    codes
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The samples of one probe.
pub fn samples(target: &Target, outcome: &Outcome, out: &mut Vec<Sample>) {
    let gauge = |name: &str, value: f64, help: &str| {
        Sample::gauge(name, value)
            .with_label("target", target.label.as_str())
            .with_help(help)
    };
    out.push(gauge(
        "probe_success",
        if outcome.success() { 1.0 } else { 0.0 },
        "Whether the probe succeeded (1) or failed (0)",
    ));
    out.push(gauge(
        "probe_duration_seconds",
        outcome.duration.as_secs_f64(),
        "How long the probe took, in seconds",
    ));
    out.push(gauge(
        "probe_http_status_code",
        outcome
            .response
            .as_ref()
            .map_or(0.0, |r| f64::from(r.status)),
        "Response HTTP status code; 0 when no response",
    ));
    if let Some(response) = &outcome.response {
        out.push(gauge(
            "probe_http_duration_seconds",
            response.http_seconds,
            "Time from sending the request to the end of the body, in seconds",
        ));
        out.push(gauge(
            "probe_http_content_length_bytes",
            response.content_length,
            "Length of the response body (Content-Length, or bytes received), in bytes",
        ));
        if let Some(matched) = response.body_match {
            out.push(gauge(
                "probe_http_body_match",
                if matched { 1.0 } else { 0.0 },
                "Whether the body conditions (body_contains, body_not_contains) hold",
            ));
        }
    }
    if let Some((reason, _)) = &outcome.failure {
        out.push(
            gauge(
                "probe_failure_info",
                1.0,
                "Why the probe fails, as the reason label; present only while it fails",
            )
            .with_label("reason", reason.as_str()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use wasmon_sdk::Label;

    fn target(json: &str) -> Target {
        let config = format!(r#"{{"targets": [{json}]}}"#);
        wasmon_sdk::config::from_json::<Config>(&config)
            .unwrap()
            .validate()
            .unwrap()
            .targets
            .remove(0)
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
            body: body.as_bytes().to_vec(),
            elapsed_us: 1_500,
        }
    }

    /// `name{labels} value` lines, for compact expectations.
    fn lines(target: &Target, outcome: &Outcome) -> Vec<String> {
        let mut out = Vec::new();
        samples(target, outcome, &mut out);
        out.iter()
            .map(|s| {
                let labels: Vec<String> = s
                    .labels
                    .iter()
                    .map(|l| format!("{}={:?}", l.name, l.value))
                    .collect();
                format!("{}{{{}}} {}", s.name, labels.join(","), s.value)
            })
            .collect()
    }

    const MS: Duration = Duration::from_millis(20);

    #[test]
    fn success_with_body_match() {
        let t = target(
            r#"{"url": "http://127.0.0.1:9400/healthz", "name": "wasmon", "body_contains": "ok"}"#,
        );
        let outcome = judge(&t, Ok(response(200, &[("Content-Length", "2")], "ok")), MS);
        assert!(outcome.success());
        assert_eq!(
            lines(&t, &outcome),
            [
                r#"probe_success{target="wasmon"} 1"#,
                r#"probe_duration_seconds{target="wasmon"} 0.02"#,
                r#"probe_http_status_code{target="wasmon"} 200"#,
                r#"probe_http_duration_seconds{target="wasmon"} 0.0015"#,
                r#"probe_http_content_length_bytes{target="wasmon"} 2"#,
                r#"probe_http_body_match{target="wasmon"} 1"#,
            ]
        );
    }

    #[test]
    fn wrong_status_fails() {
        let t = target(r#"{"url": "http://a/", "name": "a"}"#);
        let outcome = judge(&t, Ok(response(503, &[], "down")), MS);
        assert_eq!(
            outcome.failure,
            Some((Reason::StatusCode, "status 503 (expected 2xx)".into()))
        );
        let lines = lines(&t, &outcome);
        assert_eq!(lines[0], r#"probe_success{target="a"} 0"#);
        assert_eq!(lines[2], r#"probe_http_status_code{target="a"} 503"#);
        // Without a Content-Length header, the body's size.
        assert_eq!(lines[4], r#"probe_http_content_length_bytes{target="a"} 4"#);
        assert_eq!(
            lines.last().unwrap(),
            r#"probe_failure_info{target="a",reason="status_code"} 1"#
        );
    }

    #[test]
    fn configured_status_codes() {
        let t = target(r#"{"url": "http://a/", "valid_status_codes": [200, 401]}"#);
        assert!(judge(&t, Ok(response(401, &[], "")), MS).success());
        assert_eq!(
            judge(&t, Ok(response(204, &[], "")), MS).failure,
            Some((Reason::StatusCode, "status 204 (expected 200, 401)".into()))
        );
    }

    #[test]
    fn body_conditions() {
        let t =
            target(r#"{"url": "http://a/", "body_contains": "ok", "body_not_contains": "error"}"#);
        assert!(judge(&t, Ok(response(200, &[], "all ok")), MS).success());
        for body in ["nothing", "ok but error"] {
            let outcome = judge(&t, Ok(response(200, &[], body)), MS);
            assert_eq!(
                outcome.failure.map(|f| f.0),
                Some(Reason::BodyMismatch),
                "{body}"
            );
            assert_eq!(outcome.response.unwrap().body_match, Some(false));
        }
    }

    #[test]
    fn transport_failures_are_failed_probes() {
        let t = target(r#"{"url": "http://10.0.0.1:81/x", "name": "n"}"#);
        for (error, reason, detail) in [
            (
                HttpError::NotGranted("host 10.0.0.1:81".into()),
                Reason::NotGranted,
                "add \"10.0.0.1:81\" to [capabilities.http] allow",
            ),
            (
                HttpError::Timeout,
                Reason::Timeout,
                "no response within 20 ms",
            ),
            (
                HttpError::Transport("connection refused".into()),
                Reason::Transport,
                "connection refused",
            ),
            (HttpError::TooLarge(1024), Reason::TooLarge, "1024 bytes"),
            (
                HttpError::InvalidRequest("bad header".into()),
                Reason::InvalidRequest,
                "bad header",
            ),
        ] {
            let outcome = judge(&t, Err(error), MS);
            let (got, message) = outcome.failure.clone().unwrap();
            assert_eq!(got, reason);
            assert!(message.contains(detail), "{message:?} lacks {detail:?}");
            assert_eq!(
                lines(&t, &outcome),
                [
                    r#"probe_success{target="n"} 0"#.to_string(),
                    r#"probe_duration_seconds{target="n"} 0.02"#.to_string(),
                    r#"probe_http_status_code{target="n"} 0"#.to_string(),
                    format!(
                        r#"probe_failure_info{{target="n",reason="{}"}} 1"#,
                        reason.as_str()
                    ),
                ]
            );
        }
    }

    #[test]
    fn budget_exhausted() {
        let t = target(r#"{"url": "http://a/", "name": "a"}"#);
        let outcome = Outcome::budget_exhausted(Duration::from_millis(1500));
        assert!(outcome.failure.as_ref().unwrap().1.contains("1500 ms"));
        assert_eq!(
            lines(&t, &outcome).last().unwrap(),
            r#"probe_failure_info{target="a",reason="budget_exhausted"} 1"#
        );
    }

    #[test]
    fn every_sample_name_is_promlint_clean() {
        let t = target(r#"{"url": "http://a/", "body_contains": "x"}"#);
        let mut out = Vec::new();
        samples(&t, &judge(&t, Ok(response(200, &[], "x")), MS), &mut out);
        samples(&t, &judge(&t, Err(HttpError::Timeout), MS), &mut out);
        for sample in out {
            let name = sample.name.as_str();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            assert!(!name.starts_with("wasmon_") && !name.starts_with("monitoring_"));
            assert!(
                ["_seconds", "_bytes", "_info", "_success", "_code", "_match"]
                    .iter()
                    .any(|suffix| name.ends_with(suffix)),
                "{name}"
            );
            assert!(sample.help.is_some());
        }
    }
}
