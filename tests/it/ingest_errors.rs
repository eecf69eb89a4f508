//! Bad input on the ingestion routes, table-driven against the real binary:
//! each case gets its status and a `{"detail"}` naming the problem, is
//! counted by reason, records nothing, and the host keeps serving.

use serde_json::{Value, json};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, metric_value, promtool_check};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const TOKEN: &str = "ingest-s3cret";
const JSON: &str = "application/json";

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    /// `None`: the right token; `Some("")`: no Authorization header.
    auth: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    detail: &'static str,
}

fn case(
    name: &'static str,
    path: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    detail: &'static str,
) -> Case {
    Case {
        name,
        method: "POST",
        path,
        content_type: Some(JSON),
        auth: None,
        body: body.into(),
        status,
        detail,
    }
}

fn nested(depth: usize) -> String {
    format!(
        r#"{{"service": "a", "phase": "p", "x": {}1{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

fn cases() -> Vec<Case> {
    let event = |extra: Value| {
        let mut e = json!({"service": "svc", "event_type": "error"});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e.to_string()
    };
    let job = |patch: &dyn Fn(&mut Value)| {
        let mut j = json!({"app": {"name": "etl"}, "entity": {"type": "job", "id": "j1"},
                           "event": {"kind": "started", "status": "running", "metrics": {"duration_s": 1}}});
        patch(&mut j);
        j.to_string()
    };
    let ok = r#"{"service": "batchcheck", "event_type": "x"}"#;
    let big_event = format!(
        r#"{{"service": "svc", "event_type": "x", "note": "{}"}}"#,
        "n".repeat(70_000)
    );
    vec![
        case("malformed JSON", "/heartbeat", "{", 400, "malformed JSON"),
        case(
            "trailing characters",
            "/heartbeat",
            r#"{"service": "a"} x"#,
            400,
            "trailing characters",
        ),
        case("empty body", "/heartbeat", "", 400, "EOF while parsing"),
        case(
            "not an object",
            "/heartbeat",
            "[]",
            422,
            "expected a JSON object, found an array",
        ),
        case(
            "service of the wrong type",
            "/heartbeat",
            r#"{"service": 42}"#,
            422,
            "service: invalid type: integer",
        ),
        case(
            "service missing",
            "/heartbeat",
            r#"{"phase": "x"}"#,
            422,
            "service: field required",
        ),
        case(
            "service empty",
            "/heartbeat",
            r#"{"service": ""}"#,
            422,
            "service: must not be empty",
        ),
        case(
            "service too long",
            "/heartbeat",
            format!(r#"{{"service": "{}"}}"#, "s".repeat(200)),
            422,
            "service: 200 bytes exceeds the limit of 128",
        ),
        case(
            "service with a space",
            "/heartbeat",
            r#"{"service": "edge cam"}"#,
            422,
            "service: invalid name \"edge cam\"",
        ),
        case(
            "service starting with a dash",
            "/heartbeat",
            r#"{"service": "-edge"}"#,
            422,
            "invalid name",
        ),
        case(
            "phase of the wrong type",
            "/heartbeat",
            r#"{"service": "a", "phase": 3}"#,
            422,
            "phase: invalid type: integer",
        ),
        case(
            "phase with control characters",
            "/heartbeat",
            r#"{"service": "a", "phase": "x\u0007y"}"#,
            422,
            "phase: contains control characters",
        ),
        case(
            "deep nesting",
            "/heartbeat",
            nested(40),
            400,
            "nested deeper than 32 levels",
        ),
        case(
            "oversized body",
            "/events",
            format!(
                r#"{{"service": "svc", "event_type": "x", "detail": "{}"}}"#,
                "d".repeat(300_000)
            ),
            413,
            "exceeds the limit of 262144 bytes",
        ),
        Case {
            content_type: Some("text/plain"),
            ..case(
                "wrong content type",
                "/heartbeat",
                r#"{"service": "a"}"#,
                415,
                "unsupported Content-Type \"text/plain\"",
            )
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case(
                "form content type",
                "/events",
                "service=a",
                415,
                "expected application/json",
            )
        },
        Case {
            content_type: None,
            ..case(
                "no content type",
                "/v1/event",
                r#"{"service": "a"}"#,
                415,
                "missing Content-Type",
            )
        },
        Case {
            auth: Some(""),
            ..case(
                "missing token",
                "/heartbeat",
                r#"{"service": "a"}"#,
                401,
                "missing bearer token",
            )
        },
        Case {
            auth: Some("Bearer wrong"),
            ..case(
                "wrong token",
                "/events",
                event(json!({})),
                401,
                "invalid bearer token",
            )
        },
        Case {
            auth: Some("Basic aW5nZXN0OnMzY3JldA=="),
            ..case(
                "wrong scheme",
                "/v1/events/batch",
                "[]",
                401,
                "missing bearer token",
            )
        },
        case(
            "event_type missing",
            "/events",
            r#"{"service": "svc"}"#,
            422,
            "event_type: field required",
        ),
        case(
            "event_type invalid",
            "/events",
            event(json!({"event_type": "model timeout"})),
            422,
            "event_type: invalid name",
        ),
        case(
            "detail of the wrong type",
            "/events",
            event(json!({"detail": {"x": 1}})),
            422,
            "detail: invalid type: map, expected a string",
        ),
        case(
            "detail too long",
            "/events",
            event(json!({"detail": "d".repeat(9000)})),
            422,
            "detail: 9000 bytes exceeds the limit of 8192",
        ),
        case(
            "component invalid",
            "/events",
            event(json!({"component": "a b"})),
            422,
            "component: invalid name",
        ),
        case(
            "severity unknown",
            "/events",
            event(json!({"severity": "apocalyptic"})),
            422,
            "severity: expected ok, info, warning, critical or error",
        ),
        case(
            "event too large",
            "/events",
            big_event,
            422,
            "exceeds the limit of 65536 (ingest.max_event_bytes)",
        ),
        case(
            "job event without entity",
            "/v1/event",
            job(&|j| {
                j.as_object_mut().unwrap().remove("entity");
            }),
            422,
            "entity: field required",
        ),
        case(
            "job event with app not an object",
            "/v1/event",
            job(&|j| j["app"] = json!("etl")),
            422,
            "app: invalid type: string \"etl\", expected an object",
        ),
        case(
            "job event without app name",
            "/v1/event",
            job(&|j| j["app"] = json!({"version": "1"})),
            422,
            "app.name: field required",
        ),
        case(
            "job event metric not a number",
            "/v1/event",
            job(&|j| j["event"]["metrics"]["duration_s"] = json!("1s")),
            422,
            "event.metrics.duration_s: invalid type: string \"1s\", expected f64",
        ),
        case(
            "job event parent_id a number",
            "/v1/event",
            job(&|j| j["entity"]["parent_id"] = json!(7)),
            422,
            "entity.parent_id: invalid type: integer `7`, expected a string",
        ),
        case(
            "job event progress a string",
            "/v1/event",
            job(&|j| j["event"]["progress"] = json!("half")),
            422,
            "event.progress: invalid type: string \"half\", expected f64",
        ),
        case(
            "batch with a bad item",
            "/v1/events/batch",
            format!(r#"[{ok}, {ok}, {{"service": "batchcheck", "event_type": 5}}]"#),
            422,
            "events[2]: event_type: invalid type: integer `5`, expected a string",
        ),
        case(
            "batch item not an object",
            "/v1/events/batch",
            format!(r#"[{ok}, "x"]"#),
            422,
            "events[1]: expected a JSON object, found a string",
        ),
        case(
            "batch too large",
            "/v1/events/batch",
            format!("[{}]", [ok; 11].join(",")),
            413,
            "batch of 11 events exceeds the limit of 10",
        ),
        case(
            "batch empty",
            "/v1/events/batch",
            "[]",
            422,
            "the batch holds no events",
        ),
        case(
            "batch not a list",
            "/v1/events/batch",
            r#""events""#,
            422,
            "expected a JSON array of events",
        ),
        case(
            "batch wrapper with unknown field",
            "/v1/events/batch",
            format!(r#"{{"events": [{ok}], "extra": 1}}"#),
            422,
            "unknown field `extra`",
        ),
        case(
            "too many services",
            "/heartbeat",
            r#"{"service": "the-fourth"}"#,
            429,
            "would exceed the limit of 3 distinct services",
        ),
        Case {
            method: "GET",
            ..case(
                "wrong method",
                "/heartbeat",
                "",
                405,
                "method GET is not allowed on /heartbeat",
            )
        },
        Case {
            method: "GET",
            ..case(
                "limit out of range",
                "/api/events?limit=0",
                "",
                400,
                "limit: must be between 1 and 1000",
            )
        },
        Case {
            method: "GET",
            ..case(
                "limit not a number",
                "/api/events?limit=ten",
                "",
                400,
                "limit: invalid digit",
            )
        },
        Case {
            method: "GET",
            ..case(
                "unknown query parameter",
                "/api/events?colour=red",
                "",
                400,
                "unknown field `colour`",
            )
        },
        Case {
            method: "GET",
            ..case(
                "bad service name in path",
                "/api/services/a%20b",
                "",
                400,
                "service: invalid name",
            )
        },
        Case {
            method: "GET",
            ..case(
                "unknown service",
                "/api/services/nobody",
                "",
                404,
                "service \"nobody\" not found",
            )
        },
    ]
}

#[test]
fn every_bad_input_gets_its_status_and_a_detail_naming_the_problem() {
    let host = Host::start(HostOptions::new(BIN).config(&format!(
        "[sampling]\nenabled = false\n[server]\nmax_body_bytes = \"256KiB\"\n[ingest]\ntoken = \"{TOKEN}\"\nmax_batch = 10\nmax_services = 3\n"
    )));
    host.wait_ready(Duration::from_secs(20));
    let bearer = format!("Bearer {TOKEN}");
    // Fill the service table to its limit of 3 (one is "batchcheck"'s room? no:
    // a rejected batch must not take a slot, so fill with three others).
    for service in ["one", "two", "three"] {
        let r = host.request(
            "POST",
            "/heartbeat",
            &[("content-type", JSON), ("authorization", &bearer)],
            Some(json!({"service": service}).to_string().as_bytes()),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let cases = cases();
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(ct) = c.content_type {
            headers.push(("content-type", ct));
        }
        match c.auth {
            None => headers.push(("authorization", &bearer)),
            Some("") => {}
            Some(value) => headers.push(("authorization", value)),
        }
        let body = (c.method == "POST").then_some(c.body.as_slice());
        let r = host.request(c.method, c.path, &headers, body);
        let detail = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(String::from));
        let ok = r.status.as_u16() == c.status
            && detail.as_deref().is_some_and(|d| d.contains(c.detail));
        if !ok {
            failures.push(format!(
                "{}: expected {} with a detail containing {:?}, got {} {}",
                c.name,
                c.status,
                c.detail,
                r.status,
                r.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Nothing of a rejected batch was recorded, and the host still serves.
    let services = host.get_json("/api/services");
    assert_eq!(services["total"], 3, "{services}");
    assert_eq!(host.get_json("/api/events?service=batchcheck")["total"], 0);
    let (status, metrics) = host.get("/metrics");
    assert_eq!(status, 200);
    assert_eq!(promtool_check(&metrics), Ok(()));
    let rejected = |route: &str, reason: &str| {
        metric_value(
            &metrics,
            "wasmon_ingest_rejected_total",
            &[("route", route), ("reason", reason)],
        )
    };
    assert_eq!(rejected("/heartbeat", "malformed"), Some(4.0), "{metrics}");
    assert_eq!(rejected("/heartbeat", "unauthorized"), Some(1.0));
    assert_eq!(rejected("/v1/events/batch", "batch_too_large"), Some(1.0));
    assert_eq!(rejected("/heartbeat", "too_many_services"), Some(1.0));
    assert_eq!(rejected("/events", "body_too_large"), Some(1.0));
    assert_eq!(rejected("/heartbeat", "unsupported_media_type"), Some(1.0));
    let good = host.request(
        "POST",
        "/events",
        &[("content-type", JSON), ("authorization", &bearer)],
        Some(br#"{"service": "one", "event_type": "ok"}"#),
    );
    assert_eq!(good.status, 200, "{}", good.text());
    let health = host.get_json("/healthz");
    assert_eq!(health["status"], "ok");
}
