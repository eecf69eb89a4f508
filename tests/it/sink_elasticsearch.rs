//! `sink-elasticsearch` against the `_bulk` receiver of tests/support
//! ([`EsBulk`]: Elasticsearch's request parsing and per-item answers; no
//! Elasticsearch server is installable here): events indexed by day under
//! their own ids with basic auth from the environment, a partial failure
//! re-sending only the failed items, an item refused with a 4xx
//! dead-lettered while the rest is indexed, and a 503 retried.

use crate::sinks::{self, dead_lettered};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};
use wasmon_test_support::{EsBulk, Host, HostOptions, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

fn start(es: &EsBulk) -> Host {
    let manifest = format!(
        r#"
batch_size = 10
[capabilities.http]
allow = ["{addr}"]
[config]
url = "{url}"
username = "wasmon"
password = "${{MONITORING_ES_PASSWORD}}"
"#,
        addr = es.addr(),
        url = es.url(),
    );
    sinks::start(
        sinks::options("400ms").env("MONITORING_ES_PASSWORD", "s3cret"),
        guests::SINK_ELASTICSEARCH,
        &[("es", manifest)],
        WAIT,
    )
}

/// Ingests one batch of events with these details; returns their ids.
fn ingest(host: &Host, details: &[&str]) -> Vec<String> {
    let events: Vec<Value> = details
        .iter()
        .map(|d| json!({"service": "api", "event_type": "note", "detail": d}))
        .collect();
    sinks::post_batch(host, &json!({ "events": events }))
}

/// The UTC day `YYYY-MM-DD` of Unix milliseconds, computed independently of the plugin.
fn day(time_ms: u64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(time_ms);
    humantime::format_rfc3339(time).to_string()[..10].to_string()
}

/// detail → id of every stored document.
fn ids_by_detail(es: &EsBulk) -> BTreeMap<String, String> {
    es.indices()
        .values()
        .flat_map(|docs| docs.iter())
        .map(|(id, doc)| {
            (
                doc.source["detail"].as_str().unwrap().to_string(),
                id.clone(),
            )
        })
        .collect()
}

#[test]
fn events_are_indexed_by_day_under_their_ids_with_basic_auth() {
    let es = EsBulk::start();
    // "wasmon:s3cret", the password from MONITORING_ES_PASSWORD.
    es.require_authorization("Basic d2FzbW9uOnMzY3JldA==");
    let host = start(&es);
    let ids = ingest(&host, &["one", "two", "three"]);
    let indices = es.wait_for_documents(3, WAIT);
    for id in &ids {
        let (index, doc) = es
            .document(id)
            .unwrap_or_else(|| panic!("{id} not indexed: {indices:?}"));
        assert_eq!(doc.source["id"], id.as_str());
        let time_ms = doc.source["time_ms"].as_u64().unwrap();
        let day = day(time_ms);
        assert_eq!(
            index,
            format!("events-{}", day.replace('-', ".")),
            "index from the event's day (UTC)"
        );
        assert!(doc.source["@timestamp"].as_str().unwrap().starts_with(&day));
        assert_eq!(doc.source["type"], "note");
        assert_eq!(doc.source["service"], "api");
        assert_eq!(doc.version, 1, "indexed once");
    }
    for request in es.requests() {
        assert_eq!(request.path, "/_bulk");
        assert_eq!(request.status, 200);
        assert!(request.items.iter().all(|(action, _, _)| action == "index"));
    }
    host.wait_until(WAIT, || {
        (host.metric("wasmon_sink_delivered_events_total", &[("sink", "es")]) == Some(3.0))
            .then_some(())
    });
}

#[test]
fn a_partial_failure_re_sends_only_the_failed_items() {
    let es = EsBulk::start();
    es.fail_items("flaky-429", 429, 1);
    es.fail_items("flaky-503", 503, 2);
    let host = start(&es);
    ingest(&host, &["ok-1", "flaky-429", "ok-2", "flaky-503"]);
    es.wait_for_documents(4, WAIT);
    let ids = ids_by_detail(&es);
    let sent: BTreeMap<&str, usize> = ids
        .iter()
        .map(|(detail, id)| (detail.as_str(), es.times_sent(id)))
        .collect();
    let expect: BTreeMap<&str, usize> =
        [("ok-1", 1), ("ok-2", 1), ("flaky-429", 2), ("flaky-503", 3)].into();
    assert_eq!(sent, expect, "requests: {:#?}", es.requests());
    for id in ids.values() {
        assert_eq!(es.document(id).unwrap().1.version, 1, "never overwritten");
    }
    assert_eq!(dead_lettered(&host, "es"), 0.0);
    assert!(
        host.metric(
            "wasmon_sink_failures_total",
            &[("sink", "es"), ("kind", "retryable")]
        )
        .is_some_and(|n| n >= 2.0)
    );
    // The batch's progress is forgotten once it is delivered.
    host.wait_until(WAIT, || {
        let state = host.get_json("/api/plugins/es/state");
        state["state"].get("bulk").is_none().then_some(())
    });
}

#[test]
fn an_item_refused_with_a_4xx_is_dead_lettered_and_the_rest_indexed() {
    let es = EsBulk::start();
    es.fail_items("bad-doc", 400, usize::MAX);
    let host = start(&es);
    let mark = host.log_mark();
    ingest(&host, &["good-1", "bad-doc", "good-2"]);
    es.wait_for_documents(2, WAIT);
    let line = host.wait_for_log_since(mark, "Elasticsearch refused 1", WAIT);
    assert!(line.contains("document_parsing_exception"), "{line}");
    host.wait_until(WAIT, || (dead_lettered(&host, "es") >= 1.0).then_some(()));
    let bad = es
        .requests()
        .iter()
        .flat_map(|r| r.items.clone())
        .map(|(_, _, id)| id)
        .find(|id| es.document(id).is_none())
        .expect("the refused item was sent");
    assert!(
        line.contains(&bad),
        "the message names the refused id: {line}"
    );
    assert_eq!(es.times_sent(&bad), 1, "a refused item is never re-sent");
    // The sink moved on.
    ingest(&host, &["after"]);
    es.wait_for_documents(3, WAIT);
    assert_eq!(es.times_sent(&bad), 1);
}

#[test]
fn a_503_answer_is_retried_until_it_goes_through() {
    let es = EsBulk::start();
    es.fail_requests(503, 2);
    let host = start(&es);
    let ids = ingest(&host, &["a", "b"]);
    es.wait_for_documents(2, WAIT);
    let requests = es.requests();
    assert_eq!(requests[0].status, 503);
    assert_eq!(requests[1].status, 503);
    assert_eq!(requests.last().unwrap().status, 200);
    for id in &ids {
        assert_eq!(es.document(id).unwrap().1.version, 1);
    }
    assert_eq!(dead_lettered(&host, "es"), 0.0);
}

#[test]
fn the_example_manifest_indexes_events_by_day() {
    let es = EsBulk::start();
    let example =
        sinks::example("elasticsearch.toml").replace("127.0.0.1:9200", &es.addr().to_string());
    assert!(
        example.contains(&es.addr().to_string()),
        "the example names 127.0.0.1:9200"
    );
    let host = sinks::start(
        HostOptions::new(BIN).config("[sampling]\nenabled = false\n"),
        guests::SINK_ELASTICSEARCH,
        &[("elasticsearch", example)],
        WAIT,
    );
    let ids = ingest(&host, &["from the example"]);
    es.wait_for_documents(1, WAIT);
    let (index, doc) = es.document(&ids[0]).unwrap();
    let day = day(doc.source["time_ms"].as_u64().unwrap());
    assert_eq!(index, format!("events-{}", day.replace('-', ".")));
}
