//! Unit tests of the payload parsers: the seeds' shapes verbatim, every
//! field kept, and bad input named.

use super::*;

fn limits() -> Limits {
    Limits {
        max_depth: 8,
        max_batch: 3,
        max_detail_bytes: 32,
        max_event_bytes: 1000,
    }
}

#[track_caller]
fn check_err(result: Result<impl std::fmt::Debug, IngestError>, reason: &str, detail: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.reason(), reason, "{err}");
    assert!(err.to_string().contains(detail), "{err:?} lacks {detail:?}");
}

#[test]
fn seed_000_payloads_parse_verbatim() {
    let hb = heartbeat(
        br#"{"service": "edge-cam01", "phase": "edge_loop"}"#,
        &limits(),
    )
    .unwrap();
    assert_eq!(hb.service, "edge-cam01");
    assert_eq!(hb.phase.as_deref(), Some("edge_loop"));
    let e = event(
        br#"{"service": "edge-cam01", "event_type": "error", "detail": "model timeout"}"#,
        &limits(),
    )
    .unwrap()
    .event;
    assert_eq!(e.service.as_deref(), Some("edge-cam01"));
    assert_eq!(e.event_type, "error");
    assert_eq!(e.detail.as_deref(), Some("model timeout"));
    assert_eq!(e.severity, Severity::Critical);
    assert!(e.attributes.is_empty());
    assert_eq!(e.id.len(), 36);
}

#[test]
fn job_events_keep_every_field() {
    let body = br#"{"idempotency_key": "k1", "site_id": "fab1",
        "app": {"app_id": "a-1", "name": "my-app", "version": "1.0.0"},
        "entity": {"type": "subjob", "id": "e-2", "parent_id": "e-1", "business_key": "daily", "sub_key": null},
        "event": {"kind": "finished", "at": "2025-01-01T00:00:00Z", "status": "failed",
                  "metrics": {"duration_s": 1.5, "cpu_user_s": 0.2},
                  "metadata": {"error": "boom", "error_type": "ValueError"}},
        "extra": {"deep": {"x": [1, 2]}}}"#;
    let parsed = any_event(body, &limits()).unwrap();
    assert_eq!(parsed.outcome, Some(TaskOutcome::Failure));
    let e = parsed.event;
    assert_eq!(e.event_type, "subjob.finished");
    assert_eq!(e.service.as_deref(), Some("my-app"));
    assert_eq!(e.component.as_deref(), Some("subjob"));
    assert_eq!(e.severity, Severity::Critical);
    assert_eq!(e.detail.as_deref(), Some("boom"));
    let a = e.attributes.to_map();
    assert_eq!(a["entity.parent_id"], "e-1");
    assert_eq!(a["event.metrics.duration_s"], 1.5);
    assert_eq!(a["event.status"], "failed");
    assert_eq!(a["site_id"], "fab1");
    assert_eq!(a["extra.deep.x"], serde_json::json!([1, 2]));
    assert!(a["entity.sub_key"].is_null());
    assert_eq!(a["event.metadata.error_type"], "ValueError");
    for modelled in ["app.name", "entity.type", "event.kind"] {
        assert!(!a.contains_key(modelled), "{modelled} is not an attribute");
    }
    let simple = event(
        br#"{"service": "a", "event_type": "x", "node": {"rack": 4}}"#,
        &limits(),
    )
    .unwrap()
    .event;
    assert_eq!(
        Value::Object(simple.attributes.to_map()),
        serde_json::json!({"node.rack": 4})
    );
}

#[test]
fn batches_take_both_shapes_and_name_the_bad_item() {
    let ok = br#"[{"service": "a", "event_type": "success", "component": "c"},
                  {"app": {"name": "b"}, "entity": {"type": "job"}, "event": {"kind": "started"}}]"#;
    let events = batch(ok, &limits()).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].outcome, Some(TaskOutcome::Success));
    assert_eq!(events[1].event.event_type, "job.started");
    assert_eq!(events[1].outcome, None);
    let wrapped = br#"{"events": [{"service": "a", "event_type": "x"}]}"#;
    assert_eq!(batch(wrapped, &limits()).unwrap().len(), 1);
    check_err(
        batch(
            br#"[{"service": "a", "event_type": "x"}, {"service": 5, "event_type": "x"}]"#,
            &limits(),
        ),
        "invalid",
        "events[1]: service: invalid type: integer `5`, expected a string",
    );
    check_err(
        batch(br#"[{"service": "a", "event_type": "x"}, {"app": {"name": "b"}, "entity": {}, "event": {"kind": "k"}}]"#, &limits()),
        "invalid",
        "events[1]: entity.type: field required",
    );
    check_err(batch(b"[1]", &limits()), "invalid", "[0]");
    check_err(batch(b"[]", &limits()), "invalid", "no events");
    check_err(
        batch(b"\"x\"", &limits()),
        "invalid",
        "expected a JSON array",
    );
    check_err(
        batch(br#"[{"service":"a","event_type":"x"},{"service":"a","event_type":"x"},{"service":"a","event_type":"x"},{"service":"a","event_type":"x"}]"#, &limits()),
        "batch_too_large",
        "4 events exceeds the limit of 3",
    );
}

#[test]
fn bad_input_is_named() {
    let l = limits();
    check_err(heartbeat(b"{", &l), "malformed", "malformed JSON");
    check_err(heartbeat(b"{} x", &l), "malformed", "trailing");
    check_err(heartbeat(b"{}", &l), "invalid", "service: field required");
    check_err(
        heartbeat(br#"{"service": 1}"#, &l),
        "invalid",
        "service: invalid type",
    );
    check_err(
        heartbeat(br#"{"service": ""}"#, &l),
        "invalid",
        "must not be empty",
    );
    check_err(
        heartbeat(br#"{"service": "a b"}"#, &l),
        "invalid",
        "invalid name",
    );
    check_err(
        heartbeat(br#"{"service": "-a"}"#, &l),
        "invalid",
        "invalid name",
    );
    let long = format!(r#"{{"service": "{}"}}"#, "a".repeat(129));
    check_err(
        heartbeat(long.as_bytes(), &l),
        "invalid",
        "129 bytes exceeds the limit of 128",
    );
    check_err(
        heartbeat(br#"[[[[[[[[[1]]]]]]]]]"#, &l),
        "malformed",
        "deeper than 8",
    );
    check_err(
        event(br#"{"service": "a"}"#, &l),
        "invalid",
        "event_type: field required",
    );
    check_err(
        event(br#"{"service": "a", "event_type": "x", "detail": 3}"#, &l),
        "invalid",
        "detail: invalid type: integer `3`, expected a string",
    );
    check_err(event(br#"{"service": "a", "event_type": "x", "detail": "0123456789012345678901234567890123"}"#, &l), "invalid", "detail: 34 bytes");
    check_err(
        event(
            br#"{"service": "a", "event_type": "x", "severity": "meh"}"#,
            &l,
        ),
        "invalid",
        "severity",
    );
    check_err(any_event(br#"{"app": {"name": "b"}, "entity": {"type": "job"}, "event": {"kind": "k", "metrics": {"m": "x"}}}"#, &l), "invalid", "event.metrics.m: invalid type: string \"x\", expected f64");
    check_err(
        any_event(br#"{"app": {"name": "b"}}"#, &l),
        "invalid",
        "entity: field required",
    );
    check_err(
        any_event(
            br#"{"app": {"name": "b"}, "entity": {"type": "job"}, "event": {"kind": "a b"}}"#,
            &l,
        ),
        "invalid",
        "event.kind",
    );
    let big = format!(
        r#"{{"service": "a", "event_type": "x", "note": "{}"}}"#,
        "n".repeat(1000)
    );
    check_err(
        event(big.as_bytes(), &l),
        "invalid",
        "exceeds the limit of 1000 (ingest.max_event_bytes)",
    );
    check_err(
        event(
            br#"{"service": "a", "event_type": "x", "detail": "\ud800"}"#,
            &l,
        ),
        "malformed",
        "detail: unexpected end of hex escape",
    );
}

#[test]
fn outcomes() {
    assert_eq!(task_outcome("failure"), Some(TaskOutcome::Failure));
    assert_eq!(task_outcome("Success"), Some(TaskOutcome::Success));
    assert_eq!(task_outcome("warning"), None);
    assert_eq!(severity_of("warning"), Severity::Warning);
}
