//! Delivery through outages, against the real binary and `sink-webhook`
//! posting to a [`Recorder`]: a target down (connection refused) for 10× the
//! sink's max backoff gets every event in order once back, also when the host
//! restarts during the outage; a 4xx target dead-letters the batch (counted,
//! listed, kept across a restart) and a replay delivers it with its original
//! ids; a 429 with `Retry-After: 2` holds the retry back at least 2 s; a
//! sink behind by more than `sinks.lag_degraded` degrades the health; a
//! sink's `tick` calls `deliver` with an empty batch.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wasmon_test_support::{Host, HostOptions, Recorder, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);
/// The sink's max backoff in these tests (`plugins.defaults.backoff_max`).
const MAX_BACKOFF: Duration = Duration::from_millis(200);

fn options(receiver: &Recorder, extra_manifest: &str) -> HostOptions {
    options_with(receiver, extra_manifest, "")
}

fn options_with(receiver: &Recorder, extra_manifest: &str, extra_config: &str) -> HostOptions {
    HostOptions::new(BIN)
        .config(&format!(
            "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"50ms\"\nbackoff_max = \"{}ms\"\n{extra_config}",
            MAX_BACKOFF.as_millis()
        ))
        .plugin("hook", guests::SINK_WEBHOOK)
        .manifest(
            "hook",
            &format!(
                "events = [\"outage.*\"]\nbatch_size = 5\n{extra_manifest}\n[capabilities.http]\nallow = [\"{addr}\"]\n[config]\nurl = \"{url}\"\ntimeout = \"1s\"\n",
                addr = receiver.addr(),
                url = receiver.url("/hook"),
            ),
        )
}

fn start(receiver: &Recorder) -> Host {
    let host = Host::start(options(receiver, ""));
    host.wait_ready(WAIT);
    host
}

/// Posts `n` events numbered from `first`; returns their ids in order.
fn post_events(host: &Host, first: usize, n: usize) -> Vec<String> {
    let batch = json!({"events": (first..first + n)
        .map(|i| json!({"service": "outage", "event_type": "outage.test", "detail": format!("event {i}")}))
        .collect::<Vec<_>>()});
    let (status, body) = host.post_json("/v1/events/batch", &batch);
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// The ids of every event the receiver got, in arrival order (repeats kept).
fn received(receiver: &Recorder) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .flat_map(|r| r.json()["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect()
}

/// The ids in the order they were first received.
fn first_seen(ids: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    ids.iter().filter(|id| seen.insert(*id)).cloned().collect()
}

fn sink_view(host: &Host) -> Value {
    host.get_json("/api/sinks")["sinks"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "hook").cloned())
        .unwrap_or(Value::Null)
}

/// Waits until every id in `ids` was received; returns what was received.
fn wait_delivered(receiver: &Recorder, ids: &[String]) -> Vec<String> {
    wasmon_test_support::wait_until(WAIT, || {
        let got = received(receiver);
        ids.iter().all(|id| got.contains(id)).then_some(got)
    })
}

/// Keeps a target down (its port refusing connections) for 10× the max
/// backoff while events arrive, checking the sink retries and shows its
/// backlog; returns the ids posted during the outage.
fn outage(host: &Host, first: usize) -> Vec<String> {
    let began = Instant::now();
    let during = post_events(host, first, 12);
    let failures = host
        .metric(
            "wasmon_sink_failures_total",
            &[("sink", "hook"), ("kind", "retryable")],
        )
        .unwrap_or(0.0);
    host.wait_until(WAIT, || {
        host.metric(
            "wasmon_sink_failures_total",
            &[("sink", "hook"), ("kind", "retryable")],
        )
        .filter(|f| *f >= failures + 3.0)
    });
    let view = host.wait_until(WAIT, || {
        Some(sink_view(host)).filter(|v| v["backlog"].as_u64() == Some(12))
    });
    assert!(view["last_error"]["message"].is_string(), "{view}");
    let age = host.wait_until(WAIT, || {
        host.metric(
            "wasmon_sink_oldest_undelivered_age_seconds",
            &[("sink", "hook")],
        )
        .filter(|a| *a > 0.0)
    });
    assert!(age < 60.0, "{age}");
    assert_eq!(
        host.metric("wasmon_sink_backlog_events", &[("sink", "hook")]),
        Some(12.0)
    );
    let health = host.get_json("/v1/health");
    assert_eq!(health["sinks"][0]["backlog"], 12, "{health}");
    // The outage lasts 10× the max backoff: the scenario, not a wait for a result.
    if let Some(left) = (MAX_BACKOFF * 10).checked_sub(began.elapsed()) {
        std::thread::sleep(left);
    }
    during
}

#[test]
fn a_target_down_for_ten_times_the_max_backoff_gets_every_event_in_order_once_back() {
    let receiver = Recorder::start();
    let addr = receiver.addr();
    let host = start(&receiver);
    let before = post_events(&host, 0, 3);
    wait_delivered(&receiver, &before);
    let mut sent = before;

    drop(receiver);
    sent.extend(outage(&host, 3));
    let receiver = Recorder::start_on(addr);
    let got = wait_delivered(&receiver, &sent[3..]);
    assert_eq!(
        first_seen(&got),
        sent[3..].to_vec(),
        "every event, in order"
    );
    host.wait_until(WAIT, || {
        (host.metric("wasmon_sink_backlog_events", &[("sink", "hook")]) == Some(0.0)
            && host.metric(
                "wasmon_sink_oldest_undelivered_age_seconds",
                &[("sink", "hook")],
            ) == Some(0.0))
        .then_some(())
    });
    assert_eq!(sink_view(&host)["retry_at"], Value::Null);
}

#[test]
fn a_host_restart_during_the_outage_changes_nothing() {
    let receiver = Recorder::start();
    let addr = receiver.addr();
    let mut host = start(&receiver);
    let before = post_events(&host, 0, 3);
    wait_delivered(&receiver, &before);

    drop(receiver);
    let during = outage(&host, 3);
    host.restart();
    host.wait_ready(WAIT);
    let after = post_events(&host, 15, 3);
    let receiver = Recorder::start_on(addr);
    let mut expected = during.clone();
    expected.extend(after);
    let got = wait_delivered(&receiver, &expected);
    assert_eq!(
        first_seen(&got),
        expected,
        "the events acknowledged before the restart keep their ids and their order"
    );
}

#[test]
fn a_4xx_target_dead_letters_the_batch_and_a_replay_delivers_it() {
    let receiver = Recorder::start();
    receiver.set_status(400);
    let mut host = start(&receiver);
    let rejected = post_events(&host, 0, 3);
    host.wait_until(WAIT, || {
        (host.metric(
            "wasmon_sink_dead_letters_total",
            &[("sink", "hook"), ("reason", "permanent")],
        ) == Some(3.0))
        .then_some(())
    });
    assert_eq!(
        host.metric(
            "wasmon_sink_failures_total",
            &[("sink", "hook"), ("kind", "permanent")]
        ),
        Some(1.0),
        "one batch of three"
    );
    // The sink moved on: later events are delivered.
    receiver.set_status(200);
    let later = post_events(&host, 3, 2);
    wait_delivered(&receiver, &later);

    // Listed, with the original ids, and kept across a restart.
    host.restart();
    host.wait_ready(WAIT);
    let page = host.get_json("/api/sinks/hook/dead-letters?limit=10");
    assert_eq!(page["total"], 1, "{page}");
    let letter = &page["dead_letters"][0];
    assert_eq!(letter["reason"], "permanent");
    assert!(
        letter["error"].as_str().unwrap().contains("400"),
        "{letter}"
    );
    let ids: Vec<&str> = letter["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, rejected);
    let view = sink_view(&host);
    assert_eq!(view["dead_letters"], 1, "{view}");
    assert_eq!(view["dead_letter_events"], 3, "{view}");
    let (status, body) = host.get("/api/sinks/nope/dead-letters");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["detail"].is_string());
    let (status, _) = host.post_json("/api/sinks/hook/dead-letters/replay", &json!({"ids": [99]}));
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The replay delivers the batch to this sink, with its ids, and empties the store.
    receiver.clear();
    let id = letter["id"].as_u64().unwrap();
    let (status, body) =
        host.post_json("/api/sinks/hook/dead-letters/replay", &json!({"ids": [id]}));
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let got = wait_delivered(&receiver, &rejected);
    assert_eq!(first_seen(&got), rejected);
    host.wait_until(WAIT, || {
        (host.get_json("/api/sinks/hook/dead-letters")["total"] == 0).then_some(())
    });
}

#[test]
fn a_429_with_retry_after_holds_the_retry_back() {
    let receiver = Recorder::start();
    receiver.set_status(429);
    receiver.set_header("retry-after", "2");
    let host = start(&receiver);
    let ids = post_events(&host, 0, 1);
    let first = receiver.wait_for_requests(1, WAIT)[0].received;
    let view = host.wait_until(WAIT, || {
        Some(sink_view(&host)).filter(|v| v["retry_at"].is_string())
    });
    assert!(view["retry_at"].is_string(), "{view}");
    receiver.set_status(200);
    receiver.clear_headers();
    let requests = receiver.wait_for_requests(2, WAIT);
    let waited = requests[1].received.duration_since(first);
    eprintln!("retried {waited:?} after a 429 with Retry-After: 2");
    assert!(
        waited >= Duration::from_secs(2),
        "retried after {waited:?}, before the 2 s Retry-After (max backoff {MAX_BACKOFF:?})"
    );
    wait_delivered(&receiver, &ids);
    assert_eq!(
        host.metric("wasmon_sink_retry_after_waits_total", &[("sink", "hook")]),
        Some(1.0)
    );
}

#[test]
fn a_tick_calls_deliver_with_an_empty_batch_when_nothing_was_delivered() {
    let receiver = Recorder::start();
    let host = Host::start(
        options(&receiver, "tick = \"200ms\"")
            .plugin("recorder", guests::GUEST_SINK_RECORDER)
            .manifest(
                "recorder",
                "events = [\"none.*\"]\ntick = \"200ms\"\n[config]\n",
            ),
    );
    host.wait_ready(WAIT);
    // The recorder counts its calls; with no event, only ticks call it.
    host.wait_until(WAIT, || {
        let state = host.get_json("/api/plugins/recorder/state")["state"].clone();
        state["calls"]
            .as_str()
            .and_then(|c| c.parse::<u64>().ok())
            .filter(|c| *c >= 3)
    });
    assert_eq!(host.get_json("/api/plugins/recorder")["status"], "running");
    // The webhook sends nothing for an empty batch.
    assert!(received(&receiver).is_empty());
}

#[test]
fn a_sink_behind_by_more_than_lag_degraded_degrades_the_health() {
    let receiver = Recorder::start();
    receiver.set_status(503);
    let host = Host::start(options_with(
        &receiver,
        "",
        "[sinks]\nlag_degraded = \"1s\"\n",
    ));
    host.wait_ready(WAIT);
    assert_eq!(host.get_json("/v1/health")["status"], "ok");
    post_events(&host, 0, 1);
    let health = host.wait_until(WAIT, || {
        Some(host.get_json("/v1/health")).filter(|h| h["status"] == "degraded")
    });
    assert_eq!(health["sinks"][0]["healthy"], false, "{health}");
    assert!(
        health["sinks"][0]["oldest_undelivered_age_seconds"]
            .as_f64()
            .unwrap()
            > 1.0
    );
    let full = host.get_json("/api/system/health/full");
    assert_eq!(full["status"], "degraded", "{full}");
    assert_eq!(full["down"][0]["kind"], "sink", "{full}");
    assert_eq!(full["down"][0]["critical"], false, "{full}");
    assert_eq!(sink_view(&host)["behind"], true);
    // Caught up: healthy again.
    receiver.set_status(200);
    host.wait_until(WAIT, || {
        (host.get_json("/v1/health")["status"] == "ok"
            && host.get_json("/api/system/health/full")["status"] == "healthy")
            .then_some(())
    });
}
