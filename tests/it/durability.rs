//! The durable event log against the real binary, with `sink-webhook`
//! posting to a [`Recorder`]: acknowledged events survive 20 `kill -9`s at
//! random moments with their ids; a torn tail and a flipped byte are
//! repaired at start (counted, logged) and the rest delivered; a full log
//! answers 503 with `Retry-After` (`reject`) or drops and counts its oldest
//! segment (`drop_oldest`) without losing what it acknowledged; an
//! `idempotency_key` repeated, also across a restart, is stored once.

use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, Recorder, StatusCode, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

/// A host with the webhook sink posting `durable.*` events to `receiver`;
/// `storage` is extra `[storage]` TOML.
fn options(receiver: &Recorder, storage: &str) -> HostOptions {
    HostOptions::new(BIN)
        .config(&format!(
            "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\n[storage]\n{storage}\n"
        ))
        .plugin("hook", guests::SINK_WEBHOOK)
        .manifest("hook", &hook_manifest(receiver))
}

fn hook_manifest(receiver: &Recorder) -> String {
    format!(
        "events = [\"durable.*\"]\nbatch_size = 50\n[capabilities.http]\nallow = [\"{addr}\"]\n[config]\nurl = \"{url}\"\ntimeout = \"1s\"\n",
        addr = receiver.addr(),
        url = receiver.url("/hook"),
    )
}

fn batch_body(first: usize, n: usize) -> Vec<u8> {
    let events: Vec<Value> = (first..first + n)
        .map(|i| json!({"service": "durable", "event_type": "durable.test", "detail": format!("event {i}")}))
        .collect();
    serde_json::to_vec(&json!({ "events": events })).unwrap()
}

/// Posts a batch to `base`; the ids when it was acknowledged, else the
/// response (or `None` when the host was unreachable).
fn post_batch(
    base: &str,
    body: &[u8],
) -> Result<Vec<String>, Option<wasmon_test_support::Response>> {
    let response = wasmon_test_support::http::request(
        "POST",
        &format!("{base}/v1/events/batch"),
        &[("content-type", "application/json")],
        Some(body),
    )
    .map_err(|_| None)?;
    if response.status != StatusCode::OK {
        return Err(Some(response));
    }
    Ok(response.json()["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect())
}

/// Every event id the receiver got, repeats kept.
fn received(receiver: &Recorder) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .flat_map(|r| r.json()["events"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect()
}

fn segments(host: &Host) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(host.dir().join("data/events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn acknowledged_events_survive_twenty_kill_nines_with_their_ids() {
    let receiver = Recorder::start();
    let mut host = Host::start(options(&receiver, "durability = \"fsync\""));
    host.wait_ready(WAIT);
    let base = Arc::new(Mutex::new(host.base_url()));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (base, acked, stop) = (base.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let url = base.lock().unwrap().clone();
                let size = 1 + n % 7;
                match post_batch(&url, &batch_body(n, size)) {
                    Ok(ids) => {
                        acked.lock().unwrap().extend(ids);
                        n += size;
                    }
                    // Down or refused: not acknowledged, so it may be lost;
                    // try again shortly.
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };
    for kill in 0..20 {
        // A random moment: the load runs meanwhile.
        let before = acked.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(fastrand::u64(50..350)));
        host.wait_until(WAIT, || {
            (acked.lock().unwrap().len() > before).then_some(())
        });
        host.kill();
        host.restart();
        *base.lock().unwrap() = host.base_url();
        eprintln!(
            "kill {kill}: {} acknowledged so far",
            acked.lock().unwrap().len()
        );
    }
    let settle = acked.lock().unwrap().len();
    host.wait_until(WAIT, || {
        (acked.lock().unwrap().len() > settle).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    client.join().unwrap();

    let acked = acked.lock().unwrap().clone();
    let wanted: HashSet<&String> = acked.iter().collect();
    let got = host.wait_until(Duration::from_secs(30), || {
        let got = received(&receiver);
        let have: HashSet<&String> = got.iter().collect();
        wanted.is_subset(&have).then_some(got)
    });
    let unique: HashSet<&String> = got.iter().collect();
    let extra: Vec<_> = unique.iter().filter(|id| !wanted.contains(**id)).collect();
    println!(
        "crash safety: {} acknowledged, {} delivered ({} distinct), {} duplicated, {} delivered unacknowledged",
        acked.len(),
        got.len(),
        unique.len(),
        got.len() - unique.len(),
        extra.len()
    );
    assert!(acked.len() > 100, "a steady load: {}", acked.len());
    assert_eq!(
        acked.iter().collect::<HashSet<_>>().len(),
        acked.len(),
        "ids are never reused across restarts"
    );
}

#[test]
fn a_torn_tail_and_a_flipped_byte_are_counted_logged_and_the_rest_delivered() {
    let receiver = Recorder::start();
    // No sink yet: the events wait in the log.
    let mut host = Host::start(
        HostOptions::new(BIN).config("[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"50ms\"\nbackoff_max = \"200ms\"\n"),
    );
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.extend(post_batch(&host.base_url(), &batch_body(i * 10, 10)).unwrap());
    }
    host.stop();
    let segment = segments(&host).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 10);
    bytes[len / 2] ^= 0x20;
    std::fs::write(&segment, &bytes).unwrap();

    host.plugins().install("hook", guests::SINK_WEBHOOK);
    host.plugins()
        .write_manifest("hook", &hook_manifest(&receiver));
    host.restart();
    host.wait_ready(WAIT);
    let line = host.wait_for_log("damaged event log record skipped", WAIT);
    assert!(line.contains("offset"), "{line}");
    host.wait_for_log("torn tail", WAIT);
    assert_eq!(
        host.metric("wasmon_event_log_corrupt_records_total", &[]),
        Some(1.0)
    );
    let got = host.wait_until(WAIT, || {
        let got = received(&receiver);
        (got.len() >= 98).then_some(got)
    });
    let got: HashSet<String> = got.into_iter().collect();
    assert_eq!(got.len(), 98, "all but the damaged and the torn record");
    assert!(got.iter().all(|id| acked.contains(id)));
    assert!(got.contains(&acked[0]) && got.contains(&acked[98]));
    // The log takes new events after its repair.
    let more = post_batch(&host.base_url(), &batch_body(100, 1)).unwrap();
    host.wait_until(WAIT, || {
        received(&receiver).contains(&more[0]).then_some(())
    });
}

#[test]
fn a_full_log_rejects_with_retry_after_and_loses_nothing_acknowledged() {
    let receiver = Recorder::start();
    receiver.set_status(500);
    let host = Host::start(options(
        &receiver,
        "max_bytes = \"64KiB\"\nwhen_full = \"reject\"",
    ));
    host.wait_ready(WAIT);
    let mut acked = Vec::new();
    let refused =
        (0..500).find_map(
            |i| match post_batch(&host.base_url(), &batch_body(i * 5, 5)) {
                Ok(ids) => {
                    acked.extend(ids);
                    None
                }
                Err(response) => response,
            },
        );
    let refused = refused.expect("the log fills up");
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        refused
            .header("retry-after")
            .is_some_and(|v| v.parse::<u64>().unwrap() >= 1)
    );
    assert!(refused.json()["detail"].as_str().unwrap().contains("full"));
    assert!(host.metric("wasmon_event_log_bytes", &[]).unwrap() <= 65536.0);

    // The target comes back: every acknowledged event arrives, and the log
    // takes events again.
    receiver.set_status(200);
    let wanted: HashSet<&String> = acked.iter().collect();
    host.wait_until(WAIT, || {
        let got = received(&receiver);
        wanted.is_subset(&got.iter().collect()).then_some(())
    });
    host.wait_until(WAIT, || {
        post_batch(&host.base_url(), &batch_body(0, 5)).ok()
    });
    assert_eq!(
        host.metric(
            "wasmon_event_log_dropped_total",
            &[("sink", "hook"), ("reason", "full")]
        ),
        None
    );
}

#[test]
fn drop_oldest_counts_what_it_drops_and_keeps_the_newest() {
    let receiver = Recorder::start();
    receiver.set_status(500);
    let host = Host::start(options(
        &receiver,
        "max_bytes = \"64KiB\"\nwhen_full = \"drop_oldest\"",
    ));
    host.wait_ready(WAIT);
    let mut acked = Vec::new();
    for i in 0..150 {
        acked.extend(post_batch(&host.base_url(), &batch_body(i * 5, 5)).expect("never refused"));
    }
    let dropped = host
        .metric(
            "wasmon_event_log_dropped_total",
            &[("sink", "hook"), ("reason", "full")],
        )
        .expect("drops are counted");
    assert!(dropped > 0.0);
    receiver.set_status(200);
    let newest: HashSet<&String> = acked[acked.len() - 50..].iter().collect();
    let got = host.wait_until(WAIT, || {
        let got = received(&receiver);
        newest.is_subset(&got.iter().collect()).then_some(got)
    });
    let got: HashSet<&String> = got.iter().collect();
    let lost = acked.iter().filter(|id| !got.contains(id)).count();
    assert!(
        lost as f64 <= dropped,
        "{lost} acknowledged events never arrived, {dropped} counted as dropped"
    );
}

fn job(key: &str) -> Value {
    json!({"idempotency_key": key, "site_id": "fab1",
        "app": {"app_id": "a-1", "name": "durable-app", "version": "1.0.0"},
        "entity": {"type": "job", "id": "e-1"},
        "event": {"kind": "finished", "at": "2025-01-01T00:00:00Z", "status": "succeeded"}})
}

fn stored_with_key(host: &Host, key: &str) -> usize {
    host.get_json("/api/events?service=durable-app&limit=1000")["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["attributes"]["idempotency_key"] == key)
        .count()
}

#[test]
fn an_idempotency_key_is_stored_once_also_across_a_restart() {
    let receiver = Recorder::start();
    let mut host = Host::start(options(&receiver, ""));
    let (status, first) = host.post_json("/v1/event", &job("k-1"));
    assert_eq!(status, StatusCode::OK, "{first}");
    let first: Value = serde_json::from_str(&first).unwrap();
    assert!(first.get("duplicate").is_none());
    let (status, again) = host.post_json("/v1/event", &job("k-1"));
    assert_eq!(status, StatusCode::OK);
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["duplicate"], true);

    // In a batch, beside a new key.
    let (status, batch) = host.post_json("/v1/events/batch", &json!([job("k-1"), job("k-2")]));
    assert_eq!(status, StatusCode::OK);
    let batch: Value = serde_json::from_str(&batch).unwrap();
    assert_eq!(batch["ids"][0], first["id"]);
    assert_eq!(batch["duplicates"], json!([0]));

    host.kill();
    host.restart();
    let (status, after) = host.post_json("/v1/event", &job("k-1"));
    assert_eq!(status, StatusCode::OK);
    let after: Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["id"], first["id"], "the original id, after a restart");
    assert_eq!(after["duplicate"], true);
    assert_eq!(stored_with_key(&host, "k-1"), 1);
    assert_eq!(stored_with_key(&host, "k-2"), 1);
}
