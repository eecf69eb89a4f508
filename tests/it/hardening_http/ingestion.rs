//! Ingestion hardening: one rule for every route's body (UTF-8, no
//! duplicate keys at any depth), and the service table recovering room by
//! evicting services silent for `ingest.service_ttl`.

use super::{BIN, WAIT, metric};
use serde_json::Value;
use std::time::{Duration, Instant};
use wasmon_test_support::{Host, HostOptions, StatusCode};

const JSON: [(&str, &str); 1] = [("content-type", "application/json")];

/// Builds a route's body around an event object's inner text.
type Wrap = fn(&str) -> String;

/// Every ingestion route, with how to build a body for it around an event
/// object's inner text (`"service": ..., ...`).
fn routes() -> Vec<(&'static str, Wrap)> {
    fn object(inner: &str) -> String {
        format!("{{{inner}}}")
    }
    fn list(inner: &str) -> String {
        format!("[{{\"service\": \"ok\", \"event_type\": \"x\"}}, {{{inner}}}]")
    }
    fn wrapped(inner: &str) -> String {
        format!("{{\"events\": [{{{inner}}}]}}")
    }
    vec![
        ("/heartbeat", object),
        ("/events", object),
        ("/v1/event", object),
        ("/v1/ingest/events", object),
        ("/v1/events/batch", list),
        ("/v1/ingest/events:batch", wrapped),
    ]
}

#[test]
fn every_route_refuses_invalid_utf8_and_duplicate_keys_alike() {
    let host = Host::start(HostOptions::new(BIN).config("[sampling]\nenabled = false\n"));
    let base = r#""service": "svc", "event_type": "x""#;
    // (defect, inner text with it, what the detail says)
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "invalid UTF-8 in a field no route reads",
            [base.as_bytes(), b", \"note\": \"\xff\xfe\""].concat(),
            "not UTF-8",
        ),
        (
            "invalid UTF-8 in a key",
            [base.as_bytes(), b", \"\xc3\x28\": 1"].concat(),
            "not UTF-8",
        ),
        (
            "a duplicate modelled key",
            format!(r#"{base}, "service": "other""#).into_bytes(),
            r#"duplicate key "service""#,
        ),
        (
            "a duplicate unknown key",
            format!(r#"{base}, "note": 1, "note": 2"#).into_bytes(),
            r#"duplicate key "note""#,
        ),
        (
            "a duplicate key in a nested object",
            format!(r#"{base}, "meta": {{"a": {{"b": 1, "b": 1}}}}"#).into_bytes(),
            r#"duplicate key "b""#,
        ),
        (
            "an escaped duplicate",
            format!(r#"{base}, "note": 1, "\u006eote": 2"#).into_bytes(),
            "duplicate key",
        ),
    ];
    let mut failures = Vec::new();
    for (route, wrap) in routes() {
        // The same body without a defect is accepted: the defect is the cause.
        let good = wrap(&format!(r#"{base}, "note": "fine", "meta": {{"b": 1}}"#));
        let r = host.request("POST", route, &JSON, Some(good.as_bytes()));
        assert_eq!(r.status, 200, "{route}: {}", r.text());
        // The defects are bytes, not text: wrap a placeholder, splice them in.
        let shell = wrap("\u{0}");
        let (before, after) = shell.split_once('\u{0}').unwrap();
        for (defect, inner, detail) in &cases {
            let raw = [before.as_bytes(), inner, after.as_bytes()].concat();
            let r = host.request("POST", route, &JSON, Some(&raw));
            let got = serde_json::from_slice::<Value>(&r.body)
                .ok()
                .and_then(|v| v["detail"].as_str().map(String::from))
                .unwrap_or_default();
            if r.status != StatusCode::BAD_REQUEST || !got.contains(detail) {
                failures.push(format!(
                    "{route}, {defect}: expected 400 with {detail:?}, got {} {}",
                    r.status,
                    r.text()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let metrics = host.get("/metrics").1;
    let malformed = metric(
        &metrics,
        "wasmon_ingest_rejected_total",
        &[("route", "/heartbeat"), ("reason", "malformed")],
    );
    assert_eq!(malformed, cases.len() as f64, "{metrics}");
    // Nothing of a refused body was recorded.
    let events = host.get_json("/api/events?service=svc");
    assert_eq!(
        events["total"], 5,
        "one good event per event route: {events}"
    );
}

fn heartbeat(host: &Host, service: &str) -> StatusCode {
    let body = format!(r#"{{"service": "{service}"}}"#);
    host.request("POST", "/heartbeat", &JSON, Some(body.as_bytes()))
        .status
}

#[test]
fn silent_services_are_evicted_after_the_ttl_so_new_ones_fit() {
    let host = Host::start(HostOptions::new(BIN).config(
        "[sampling]\nenabled = false\n\
         [heartbeat]\ntimeout = \"4s\"\ncheck_interval = \"200ms\"\n\
         [ingest]\nmax_services = 3\nservice_ttl = \"2s\"\n",
    ));
    // `keep` heartbeats every 2.5 s: silent longer than the TTL (2 s)
    // between heartbeats, but up (timeout 4 s), so never evicted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keeper = {
        let (stop, url) = (stop.clone(), host.url("/heartbeat"));
        std::thread::spawn(move || {
            let mut beats = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = wasmon_test_support::http::request(
                    "POST",
                    &url,
                    &JSON,
                    Some(br#"{"service": "keep"}"#),
                )
                .unwrap();
                assert_eq!(r.status, 200, "{}", r.text());
                beats += 1;
                std::thread::sleep(Duration::from_millis(2500));
            }
            beats
        })
    };
    host.wait_until(WAIT, || {
        (host.get("/api/services/keep").0 == 200).then_some(())
    });
    assert_eq!(heartbeat(&host, "a"), 200);
    // `b`'s TTL runs from when the host saw it, before its POST answered
    // (the answer waits for the event to be durable).
    let full = Instant::now();
    let event = br#"{"service": "b", "event_type": "deploy"}"#;
    assert_eq!(
        host.request("POST", "/events", &JSON, Some(event)).status,
        200
    );
    let refused = host.request("POST", "/heartbeat", &JSON, Some(br#"{"service": "c"}"#));
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.text().contains("ingest.max_services"));

    // `b` (known from events only) is evicted after 2 s, and `c` then fits;
    // `a` goes down after 4 s and is evicted then.
    host.wait_until(WAIT, || (heartbeat(&host, "c") == 200).then_some(()));
    assert!(
        full.elapsed() >= Duration::from_secs(2),
        "admitted before the TTL"
    );
    let metrics = host.wait_until(WAIT, || {
        let m = host.get("/metrics").1;
        (metric(&m, "wasmon_ingest_services_evicted_total", &[]) == 2.0).then_some(m)
    });
    for gone in ["a", "b"] {
        assert!(
            !metrics.contains(&format!("service=\"{gone}\"")),
            "{gone}'s series are still in /metrics"
        );
        assert_eq!(host.get(&format!("/api/services/{gone}")).0, 404);
    }
    assert!(metrics.contains(r#"monitoring_service_status{service="keep"} 1"#));
    assert_eq!(metric(&metrics, "wasmon_ingest_services", &[]), 2.0);

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let beats = keeper.join().unwrap();
    let keep = host.get_json("/api/services/keep");
    assert_eq!(keep["status"], "up");
    assert_eq!(
        keep["heartbeats"], beats,
        "keep was never evicted (its count never restarted)"
    );
    host.wait_for_log("services silent for ingest.service_ttl evicted", WAIT);
}
