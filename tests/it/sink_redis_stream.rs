//! Issue 10, `sink-redis-stream` against a real Redis: every event is one
//! stream entry (`XADD key MAXLEN ~ N * ...`) with its id, type and the
//! host's JSON; the stream is trimmed to about `maxlen`; a key that is not a
//! stream (`WRONGTYPE`) dead-letters the batch; a Redis that is down makes
//! the sink retry until it is back.

use crate::sinks::{self, post};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, RedisServer, RespValue, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);

fn manifest(url: &str, config: &str) -> String {
    format!(
        "events = [\"task.*\"]\nbatch_size = 50\nmax_restarts = 1000\nbreaker_max_backoff = \"1s\"\n\
         [capabilities.redis]\nurl = {url:?}\nwrite = [\"XADD\"]\ntimeout = \"500ms\"\n\
         [config]\n{config}"
    )
}

/// A host with one `sink-redis-stream` instance per `(name, manifest)`, fast retries.
fn start(plugins: &[(&str, String)]) -> Host {
    sinks::start(
        sinks::options("500ms"),
        guests::SINK_REDIS_STREAM,
        plugins,
        WAIT,
    )
}

fn text(value: &RespValue) -> String {
    match value {
        RespValue::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
        RespValue::Simple(s) => s.clone(),
        RespValue::Integer(i) => i.to_string(),
        other => panic!("not text: {other:?}"),
    }
}

fn int(value: &RespValue) -> i64 {
    match value {
        RespValue::Integer(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

/// Every entry of `key`: its fields as (name, value) pairs.
fn entries(redis: &RedisServer, key: &str) -> Vec<Vec<(String, String)>> {
    let RespValue::Array(Some(items)) = redis.cmd(&["XRANGE", key, "-", "+"]) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|entry| {
            let RespValue::Array(Some(parts)) = entry else {
                panic!("{entry:?}")
            };
            let RespValue::Array(Some(fields)) = &parts[1] else {
                panic!("{entry:?}")
            };
            fields
                .chunks(2)
                .map(|kv| (text(&kv[0]), text(&kv[1])))
                .collect()
        })
        .collect()
}

fn field<'a>(entry: &'a [(String, String)], name: &str) -> &'a str {
    entry
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {entry:?}"))
}

#[test]
fn every_event_is_a_stream_entry_with_its_id_and_the_stream_is_trimmed() {
    let redis = RedisServer::start();
    let host = start(&[
        (
            "stream",
            manifest(&redis.url(), "key = \"wasmon:{service}\"\nmaxlen = 0\n"),
        ),
        (
            "trimmed",
            manifest(&redis.url(), "key = \"wasmon:trimmed\"\nmaxlen = 100\n"),
        ),
    ]);
    let mut ids = Vec::new();
    for round in 0..10 {
        ids.extend(post(&host, "billing", round * 100..round * 100 + 100));
    }
    // All 1 000 events in order, each once, with their ids and JSON.
    let got = host.wait_until(WAIT, || {
        let got = entries(&redis, "wasmon:billing");
        (got.len() >= ids.len()).then_some(got)
    });
    let got_ids: Vec<&str> = got.iter().map(|e| field(e, "id")).collect();
    assert_eq!(got_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let first = &got[0];
    assert_eq!(field(first, "type"), "task.done");
    assert_eq!(field(first, "source"), "ingest");
    assert_eq!(field(first, "service"), "billing");
    assert_eq!(field(first, "severity"), "ok");
    let json: Value = serde_json::from_str(field(first, "event")).unwrap();
    assert_eq!(json["id"], ids[0]);
    assert_eq!(json["detail"], "n=0");
    assert_eq!(field(first, "time_ms"), json["time_ms"].to_string());
    // MAXLEN ~ 100: trimmed near 100 (whole macro nodes of 100 entries), and
    // what is kept is the newest.
    host.wait_until(WAIT, || {
        let delivered = host.metric("wasmon_sink_delivered_events_total", &[("sink", "trimmed")]);
        (delivered == Some(1000.0)).then_some(())
    });
    let len = int(&redis.cmd(&["XLEN", "wasmon:trimmed"]));
    assert!((100..=300).contains(&len), "XLEN {len} after MAXLEN ~ 100");
    let kept = entries(&redis, "wasmon:trimmed");
    assert_eq!(field(kept.last().unwrap(), "id"), ids.last().unwrap());
}

#[test]
fn a_key_that_is_not_a_stream_is_dead_lettered_and_a_dead_redis_is_retried() {
    let redis = RedisServer::start();
    redis.cmd(&["SET", "wasmon:taken", "a string"]);
    let host = start(&[
        (
            "wrongtype",
            manifest(&redis.url(), "key = \"wasmon:taken\"\n"),
        ),
        ("stream", manifest(&redis.url(), "key = \"wasmon:ok\"\n")),
    ]);
    let ids = post(&host, "edge", 0..3);
    host.wait_until(WAIT, || {
        let n = host.metric("wasmon_sink_dead_letters_total", &[("sink", "wrongtype")]);
        (n.unwrap_or(0.0) >= 3.0).then_some(())
    });
    host.wait_for_log("WRONGTYPE", WAIT);
    host.wait_until(WAIT, || {
        (entries(&redis, "wasmon:ok").len() == 3).then_some(())
    });
    // Redis stops answering (SIGSTOP): the sink retries (timeouts), never
    // dead-letters; once it answers again (SIGCONT) the waiting events land.
    let pid = redis.pid();
    // SAFETY: a plain kill(2) on the child this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let mark = host.log_mark();
    let later = post(&host, "edge", 3..8);
    host.wait_for_log_since(mark, "sink delivery failed; will retry", WAIT);
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let got = host.wait_until(WAIT, || {
        let got = entries(&redis, "wasmon:ok");
        (got.len() >= 8).then_some(got)
    });
    let got_ids: BTreeSet<&str> = got.iter().map(|e| field(e, "id")).collect();
    let want: BTreeSet<&str> = ids.iter().chain(&later).map(String::as_str).collect();
    assert_eq!(got_ids, want, "every event once the server answers again");
    let dead = host.metric("wasmon_sink_dead_letters_total", &[("sink", "stream")]);
    assert_eq!(dead.unwrap_or(0.0), 0.0);
}

#[test]
fn the_example_manifest_appends_to_wasmon_events() {
    let redis = RedisServer::start();
    let host = sinks::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .env("MONITORING_REDIS_PORT", redis.port().to_string()),
        guests::SINK_REDIS_STREAM,
        &[("redis_stream", sinks::example("redis_stream.toml"))],
        WAIT,
    );
    let ids = post(&host, "example", 0..2);
    let got = host.wait_until(WAIT, || {
        let got = entries(&redis, "wasmon:events");
        (got.len() == 2).then_some(got)
    });
    let got: Vec<&str> = got.iter().map(|e| field(e, "id")).collect();
    assert_eq!(got, ids);
}
