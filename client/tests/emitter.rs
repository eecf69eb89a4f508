//! The emitter and the job guard against a recording HTTP server: batching,
//! retries until the server recovers, refusals not retried, the bounded
//! buffer, and the events a job and its sub-jobs send.

use serde_json::Value;
use std::time::Duration;
use wasmon_client::{AppRef, Emitter, Monitored};
use wasmon_test_support::{RecordedRequest, Recorder, wait_until};

const WAIT: Duration = Duration::from_secs(20);

fn events(requests: &[RecordedRequest]) -> Vec<Value> {
    requests
        .iter()
        .flat_map(|r| r.json().as_array().cloned().unwrap_or_default())
        .collect()
}

#[test]
fn a_job_with_subjobs_sends_started_progress_and_finished_in_batches() {
    let server = Recorder::start();
    let emitter = Emitter::builder(&server.base_url())
        .batch_size(4)
        .flush_interval(Duration::from_millis(50))
        .token("sekret")
        .build()
        .unwrap();
    let app = AppRef::new("etl", "2.0.0");
    let job = Monitored::job(&emitter, "fab1", &app)
        .business_key("nightly")
        .start();
    let sub = job.subjob().sub_key("part-1").start();
    sub.progress(0.5);
    let sub_id = sub.id().to_string();
    sub.fail(&std::io::Error::other("disk full"));
    let parent_id = job.id().to_string();
    drop(job);
    emitter.flush(WAIT).unwrap();

    let requests = server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.path == "/v1/events/batch" && r.method == "POST")
    );
    assert!(
        requests
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer sekret"))
    );
    assert!(
        requests
            .iter()
            .all(|r| r.json().as_array().unwrap().len() <= 4)
    );
    let sent = events(&requests);
    let kinds: Vec<(String, String)> = sent
        .iter()
        .map(|e| {
            (
                e["entity"]["type"].as_str().unwrap().to_string(),
                e["event"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("job", "started"),
        ("subjob", "started"),
        ("subjob", "progress"),
        ("subjob", "finished"),
        ("job", "finished"),
    ];
    assert_eq!(
        kinds,
        expect.map(|(a, b)| (a.to_string(), b.to_string())),
        "in order"
    );
    let sub_finished = &sent[3];
    assert_eq!(sub_finished["entity"]["id"], sub_id.as_str());
    assert_eq!(sub_finished["entity"]["parent_id"], parent_id.as_str());
    assert_eq!(sub_finished["entity"]["business_key"], "nightly");
    assert_eq!(sub_finished["entity"]["sub_key"], "part-1");
    assert_eq!(sub_finished["event"]["status"], "failed");
    assert_eq!(sub_finished["event"]["metadata"]["error"], "disk full");
    assert_eq!(sent[2]["event"]["progress"], 0.5);
    let finished = &sent[4];
    assert_eq!(finished["event"]["status"], "succeeded");
    assert_eq!(finished["app"]["name"], "etl");
    assert_eq!(finished["site_id"], "fab1");
    for key in ["duration_s", "cpu_user_s", "cpu_system_s", "mem_max_mb"] {
        assert!(
            finished["event"]["metrics"][key].as_f64().unwrap() >= 0.0,
            "{key}: {finished}"
        );
    }
    assert!(finished["event"]["metrics"]["mem_max_mb"].as_f64().unwrap() > 1.0);
    let keys: std::collections::HashSet<_> = sent
        .iter()
        .map(|e| e["idempotency_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 5, "one idempotency key per event");
    assert_eq!(emitter.stats().sent, 5);
}

#[test]
fn a_failing_server_is_retried_with_backoff_and_nothing_is_lost() {
    let server = Recorder::start();
    server.set_status(503);
    let emitter = Emitter::builder(&server.base_url())
        .batch_size(10)
        .flush_interval(Duration::from_millis(20))
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .build()
        .unwrap();
    let app = AppRef::new("svc", "1");
    for _ in 0..3 {
        Monitored::job(&emitter, "s", &app).start().succeed();
    }
    let failed = server.wait_for_requests(3, WAIT);
    assert!(failed.len() >= 3);
    assert!(emitter.stats().retries >= 2);
    assert_eq!(emitter.stats().buffered, 6, "kept while the server fails");
    server.set_status(200);
    emitter.flush(WAIT).unwrap();
    let stats = emitter.stats();
    assert_eq!((stats.sent, stats.buffered, stats.dropped), (6, 0, 0));
    let last = server.requests().pop().unwrap();
    assert_eq!(
        last.json().as_array().unwrap().len(),
        6,
        "the same batch, whole"
    );
}

#[test]
fn a_refused_batch_is_dropped_and_counted_not_retried() {
    let server = Recorder::start();
    server.set_response(422, "application/json", r#"{"detail": "events[0]: nope"}"#);
    let emitter = Emitter::builder(&server.base_url())
        .flush_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    Monitored::job(&emitter, "s", &AppRef::new("svc", "1"))
        .start()
        .succeed();
    emitter.flush(WAIT).unwrap();
    let stats = emitter.stats();
    assert_eq!((stats.rejected, stats.retries, stats.sent), (2, 0, 0));
}

#[test]
fn the_buffer_is_bounded_and_drops_the_oldest() {
    // Nothing listens on the port: every send fails and is retried.
    let port = wasmon_test_support::free_port();
    let emitter = Emitter::builder(&format!("http://127.0.0.1:{port}"))
        .max_buffer(5)
        .batch_size(2)
        .flush_interval(Duration::from_millis(10))
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .close_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let app = AppRef::new("svc", "1");
    for _ in 0..10 {
        Monitored::job(&emitter, "s", &app).start().succeed();
    }
    let stats = wait_until(WAIT, || {
        let s = emitter.stats();
        (s.retries > 0).then_some(s)
    });
    assert!(stats.buffered <= 5 + 2, "{stats:?}");
    assert_eq!(stats.dropped as usize + stats.buffered, 20, "{stats:?}");
    assert!(emitter.flush(Duration::from_millis(50)).is_err());
}

#[test]
fn urls_are_checked() {
    assert!(Emitter::new("localhost:9400").is_err());
    let err = Emitter::new("ftp://x").err().unwrap().to_string();
    assert!(err.contains("expected http://"), "{err}");
}
