//! What the `sink_*` modules share: a host with sink plugins loaded before
//! any event is posted, a batch of events posted and its ids, a metric read,
//! the events dead-lettered for a sink, an example manifest.

use serde_json::{Value, json};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, StatusCode, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");

/// A host's options: no samplers, sink retries backing off from 100 ms up to
/// `backoff_max`.
pub(crate) fn options(backoff_max: &str) -> HostOptions {
    HostOptions::new(BIN).config(&format!(
        "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"{backoff_max}\"\n"
    ))
}

/// A host from `options` with one `wasm` instance per `(name, manifest)`,
/// once ready and its plugins loaded: sinks loaded at start read the log from
/// its start, so no event is posted before they are there.
pub(crate) fn start(
    mut options: HostOptions,
    wasm: &str,
    sinks: &[(&str, String)],
    wait: Duration,
) -> Host {
    for (name, manifest) in sinks {
        options = options.plugin(name, wasm).manifest(name, manifest);
    }
    let host = Host::start(options);
    host.wait_ready(wait);
    host.wait_for_log("plugins loaded", wait);
    host
}

/// Posts `body` to `/v1/events/batch`; the ids the host gave, in order.
pub(crate) fn post_batch(host: &Host, body: &Value) -> Vec<String> {
    let (status, text) = host.post_json("/v1/events/batch", body);
    assert_eq!(status, StatusCode::OK, "{text}");
    let text: Value = serde_json::from_str(&text).unwrap();
    text["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no ids in {text}"))
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

/// Posts `task.done` events of `service` numbered `range` (`detail` `n=N`)
/// in one batch; their ids.
pub(crate) fn post(host: &Host, service: &str, range: std::ops::Range<u32>) -> Vec<String> {
    let events: Vec<Value> = range
        .map(|n| json!({"service": service, "event_type": "task.done", "detail": format!("n={n}")}))
        .collect();
    post_batch(host, &json!(events))
}

/// Events the host dead-lettered for `sink`, whichever name the metric has.
pub(crate) fn dead_lettered(host: &Host, sink: &str) -> f64 {
    let metrics = host.get("/metrics").1;
    [
        "wasmon_sink_dead_letter_events_total",
        "wasmon_sink_dead_letters_total",
    ]
    .iter()
    .filter_map(|name| metric_value(&metrics, name, &[("sink", sink)]))
    .fold(0.0, f64::max)
}

/// The example manifest `examples/plugins.d/NAME`.
pub(crate) fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/plugins.d")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
