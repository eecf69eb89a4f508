//! Issue 10: `sink-zabbix` over `[capabilities.tcp]` (WASI sockets,
//! allow-listed) against a receiver that speaks the Zabbix sender protocol
//! (`ZabbixReceiver`: a real `zabbix_server` does not fit in CI):
//!
//! - events arrive as trapper items (host and key from patterns, the event
//!   as the value, its time as the clock), through a name in the allow-list;
//! - items Zabbix refuses (unknown host or key) dead-letter the batch, once;
//! - a receiver that is down is retried until it is back, then everything
//!   arrives;
//! - a connect to an address not in `connect`, or to the host's own API
//!   even when listed, is refused: `not granted` in the guest, a
//!   `capability` fault and a counted violation, and nothing is sent.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, ZabbixItem, ZabbixReceiver, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);

fn manifest(connect: &str, server: &str, config: &str) -> String {
    format!(
        "events = [\"task.*\"]\nbatch_size = 50\nmax_restarts = 1000\n\
         [capabilities.tcp]\nconnect = [{connect:?}]\n\
         [config]\nserver = {server:?}\nhost = \"{{service}}\"\ntimeout = \"1s\"\n{config}"
    )
}

fn start(sinks: &[(&str, String)]) -> Host {
    let mut options = HostOptions::new(BIN).config(
        "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\n",
    );
    for (name, manifest) in sinks {
        options = options
            .plugin(name, guests::SINK_ZABBIX)
            .manifest(name, manifest);
    }
    let host = Host::start(options);
    host.wait_ready(WAIT);
    host
}

fn post(host: &Host, service: &str, range: std::ops::Range<u32>) -> Vec<String> {
    let events: Vec<Value> = range
        .map(|n| json!({"service": service, "event_type": "task.done", "detail": format!("n={n}")}))
        .collect();
    let (status, body) = host.post_json("/v1/events/batch", &json!(events));
    assert!(status.is_success(), "{status}: {body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

fn metric(host: &Host, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_value(&host.get("/metrics").1, name, labels).unwrap_or(0.0)
}

/// The event id inside an item's JSON value.
fn id(item: &ZabbixItem) -> String {
    let value: Value = serde_json::from_str(&item.value).unwrap();
    value["id"].as_str().unwrap().to_string()
}

#[test]
fn events_arrive_as_trapper_items_through_an_allow_listed_name() {
    let zabbix = ZabbixReceiver::start();
    let port = zabbix.addr().port();
    let name = format!("localhost:{port}");
    let host = start(&[("zabbix", manifest(&name, &name, ""))]);
    let ids = post(&host, "api", 0..5);
    let items = zabbix.wait_for(WAIT, |items| items.len() >= 5);
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(zabbix.errors(), Vec::<String>::new());
    let got: Vec<String> = items.iter().map(id).collect();
    assert_eq!(got, ids, "every event, in order, once");
    let events = host.get_json("/api/events?limit=100");
    for item in &items {
        assert!(item.processed);
        assert_eq!(item.host, "api");
        assert_eq!(item.key, "wasmon.event[task.done]");
        let value: Value = serde_json::from_str(&item.value).unwrap();
        assert_eq!(value["event_type"], "task.done");
        let time_ms = value["time_ms"].as_u64().unwrap();
        assert_eq!(item.clock, time_ms / 1000);
        assert_eq!(item.ns, (time_ms % 1000) * 1_000_000);
    }
    assert!(events.to_string().contains(&ids[0]));
    let allowed = metric(
        &host,
        "wasmon_plugin_capability_calls_total",
        &[
            ("plugin", "zabbix"),
            ("capability", "tcp"),
            ("result", "ok"),
        ],
    );
    assert!(allowed >= 1.0, "{allowed}");
    assert_eq!(
        metric(
            &host,
            "wasmon_plugin_capability_denied_total",
            &[("plugin", "zabbix"), ("capability", "tcp")]
        ),
        0.0
    );
}

#[test]
fn items_zabbix_refuses_dead_letter_the_batch_once() {
    let zabbix = ZabbixReceiver::start();
    zabbix.set_known(Some(vec![("api", "wasmon.event[task.done]")]));
    let addr = zabbix.addr().to_string();
    let host = start(&[("zabbix", manifest(&addr, &addr, ""))]);
    // One batch with an item for a host Zabbix does not know.
    let mixed = [post(&host, "api", 0..2), post(&host, "ghost", 2..3)].concat();
    host.wait_until(WAIT, || {
        let dead = metric(
            &host,
            "wasmon_sink_dead_letters_total",
            &[("sink", "zabbix"), ("reason", "permanent")],
        );
        (dead >= 1.0).then_some(())
    });
    host.wait_for_log("refused 1 of", WAIT);
    // Later batches are delivered; the refused one was never retried.
    let later = post(&host, "api", 3..5);
    let items = zabbix.wait_for(WAIT, |items| {
        let ids: BTreeSet<String> = items.iter().filter(|i| i.processed).map(id).collect();
        later.iter().all(|l| ids.contains(l))
    });
    let ghost: Vec<&ZabbixItem> = items.iter().filter(|i| i.host == "ghost").collect();
    assert_eq!(ghost.len(), 1, "the refused item was sent once: {items:?}");
    assert!(!ghost[0].processed);
    assert_eq!(id(ghost[0]), mixed[2]);
    assert_eq!(zabbix.errors(), Vec::<String>::new());
}

#[test]
fn a_receiver_that_is_down_is_retried_until_everything_arrives() {
    let zabbix = ZabbixReceiver::start();
    let addr = zabbix.addr();
    let host = start(&[("zabbix", manifest(&addr.to_string(), &addr.to_string(), ""))]);
    let first = post(&host, "api", 0..3);
    zabbix.wait_for(WAIT, |items| items.len() >= 3);
    drop(zabbix);
    let mark = host.log_mark();
    let during = post(&host, "api", 3..8);
    host.wait_for_log_since(mark, "will retry", WAIT);
    host.wait_until(WAIT, || {
        let failures = metric(
            &host,
            "wasmon_sink_failures_total",
            &[("sink", "zabbix"), ("kind", "retryable")],
        );
        (failures >= 2.0).then_some(())
    });
    let zabbix = ZabbixReceiver::start_on(addr);
    let items = zabbix.wait_for(WAIT, |items| items.len() >= during.len());
    let got: Vec<String> = items.iter().map(id).collect();
    assert_eq!(got, during, "the waiting events, in order, once");
    assert_eq!(
        metric(
            &host,
            "wasmon_sink_dead_letters_total",
            &[("sink", "zabbix"), ("reason", "permanent")]
        ),
        0.0
    );
    assert_eq!(zabbix.errors(), Vec::<String>::new());
    assert!(!first.is_empty());
}

#[test]
fn a_receiver_that_never_answers_times_out_in_the_guest_and_is_retried() {
    let zabbix = ZabbixReceiver::start();
    zabbix.set_silent(true);
    let addr = zabbix.addr().to_string();
    // The sink's own timeout (300ms) is well inside the call's budget (2s):
    // the guest's socket read times out, a retryable error, not a fault.
    let host = start(&[(
        "zabbix",
        manifest(&addr, &addr, "").replace("timeout = \"1s\"", "timeout = \"300ms\""),
    )]);
    let ids = post(&host, "api", 0..3);
    host.wait_until(WAIT, || {
        let failures = metric(
            &host,
            "wasmon_sink_failures_total",
            &[("sink", "zabbix"), ("kind", "retryable")],
        );
        (failures >= 2.0 && zabbix.requests() >= 2).then_some(())
    });
    let view = host.get_json("/api/plugins/zabbix");
    assert_eq!(view["faults"], 0, "{view}");
    assert_eq!(view["last_error"]["kind"], "delivery", "{view}");
    zabbix.set_silent(false);
    let items = zabbix.wait_for(WAIT, |items| items.len() >= 3);
    assert_eq!(items.iter().map(id).collect::<Vec<_>>(), ids);
}

/// Waits for `name`'s `capability` fault and returns its message.
fn capability_fault(host: &Host, name: &str) -> String {
    let view = host.wait_until(WAIT, || {
        let view = host.get_json(&format!("/api/plugins/{name}"));
        (view["last_error"]["kind"] == "capability").then_some(view)
    });
    view["last_error"]["message"].as_str().unwrap().to_string()
}

#[test]
fn addresses_outside_the_allow_list_and_the_host_itself_are_refused() {
    let zabbix = ZabbixReceiver::start();
    let addr = zabbix.addr().to_string();
    // Allow-listed: another port. Asked for: the receiver.
    let host = start(&[("denied", manifest("127.0.0.1:9", &addr, ""))]);
    post(&host, "api", 0..2);
    let message = capability_fault(&host, "denied");
    assert!(
        message.contains(&format!("tcp: {addr} is not in capabilities.tcp.connect")),
        "{message}"
    );
    host.wait_for_log("capability denied", WAIT);
    let denied = metric(
        &host,
        "wasmon_plugin_capability_denied_total",
        &[("plugin", "denied"), ("capability", "tcp")],
    );
    assert!(denied >= 1.0, "{denied}");
    // The host's own API, even listed in `connect`.
    let me = host.addr().to_string();
    host.plugins()
        .write_manifest("selfish", &manifest(&me, &me, ""));
    host.plugins().install("selfish", guests::SINK_ZABBIX);
    // A sink added later reads the events recorded after it loads.
    host.wait_until(WAIT, || {
        let (status, _) = host.get("/api/plugins/selfish");
        status.is_success().then_some(())
    });
    host.wait_for_log("plugin loaded plugin=selfish", WAIT);
    post(&host, "api", 2..4);
    let message = capability_fault(&host, "selfish");
    assert!(message.contains("wasmon's own API"), "{message}");
    assert_eq!(zabbix.requests(), 0, "nothing reached the receiver");
    assert!(zabbix.items().is_empty());
}

#[test]
fn the_example_manifest_sends_items() {
    let zabbix = ZabbixReceiver::start();
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins.d/zabbix.toml");
    let example = std::fs::read_to_string(&path)
        .unwrap()
        .replace("127.0.0.1:10051", &zabbix.addr().to_string());
    assert!(example.contains(&zabbix.addr().to_string()));
    let host = start(&[("zabbix", example)]);
    let ids = post(&host, "billing", 0..2);
    let items = zabbix.wait_for(WAIT, |items| items.len() >= 2);
    assert_eq!(items.iter().map(id).collect::<Vec<_>>(), ids);
    assert_eq!(items[0].host, "billing");
    assert_eq!(items[0].key, "wasmon.event[task.done]");
}
