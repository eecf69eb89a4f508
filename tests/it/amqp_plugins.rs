//! Issue 9, RabbitMQ on the plugin side, against a real broker: `publish`
//! from a plugin is confirmed, rejected (nothing bound) or not granted (a
//! capability fault); the queues a collector's manifest names are consumed
//! and handed to `on-message` (acked after `Ok`, redelivered on `Err`, then
//! dead-lettered after `max_redeliveries`); `collector-rabbitmq-pipeline`
//! counts 10 000 messages exactly once with the right latency histogram and
//! keeps the saved_actions history; a broker killed mid-stream loses nothing
//! and the consumer reconnects without a host restart; a hot reload hands
//! the queue over to the new generation without losing a message.

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use serde_json::{Value, json};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, RabbitMqServer, guests};

mod pipeline;

pub(crate) use crate::amqp::{declare_with_dlq, depth, open, publish, runtime};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(60);

/// A queue name no other test uses.
fn unique(name: &str) -> String {
    format!("itp-{name}-{}-{}", std::process::id(), fastrand::u32(..))
}

fn start(plugins: &[(&str, &str, &str)]) -> Host {
    let mut options = HostOptions::new(BIN).config(
        "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n",
    );
    for (name, wasm, manifest) in plugins {
        options = options.plugin(name, wasm).manifest(name, manifest);
    }
    let host = Host::start(options);
    host.wait_ready(WAIT);
    host
}

fn plugin(host: &Host, name: &str) -> Value {
    host.get_json(&format!("/api/plugins/{name}"))
}

#[test]
fn publish_is_confirmed_rejected_or_not_granted_and_the_password_never_shows() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("pub");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    let manifest = format!(
        "interval = \"300ms\"\nmax_restarts = 1000\n\
         [capabilities.rabbitmq]\nurl = {url:?}\nexchanges = [\"\"]\n\
         [config]\nbody = \"hello\"\npublish = [\
         {{exchange = \"\", routing_key = {queue:?}}}, \
         {{exchange = \"\", routing_key = \"itp-nobody-listens\"}}, \
         {{exchange = \"amq.topic\", routing_key = \"x\"}}]\n",
        url = rabbit.amqp_url()
    );
    let nogrant = "interval = \"300ms\"\nmax_restarts = 1000\n[config]\npublish = [{exchange = \"\", routing_key = \"x\"}]\n";
    let host = start(&[
        ("publisher", guests::GUEST_AMQP_PROBE, &manifest),
        ("nogrant", guests::GUEST_AMQP_PROBE, nogrant),
    ]);
    host.wait_for_log("amqp-probe #0 confirmed", WAIT);
    host.wait_for_log("amqp-probe #2 not-granted", WAIT);
    let logs = host.logs();
    assert!(logs.contains("amqp-probe #1 rejected"), "{logs}");
    host.wait_until(WAIT, || {
        (rt.block_on(depth(&channel, &queue)) >= 1).then_some(())
    });
    // Not allow-listed: a capability fault naming the exchange; no grant at all: the same.
    host.wait_until(WAIT, || {
        let p = plugin(&host, "publisher");
        (p["last_error"]["kind"] == "capability").then_some(p)
    });
    let p = plugin(&host, "publisher");
    let error = p["last_error"]["message"].as_str().unwrap();
    assert!(error.contains("amq.topic"), "{error}");
    host.wait_for_log("amqp-probe #0 not-granted", WAIT);
    host.wait_until(WAIT, || {
        (plugin(&host, "nogrant")["last_error"]["kind"] == "capability").then_some(())
    });
    let confirmed = host.metric(
        "wasmon_amqp_published_total",
        &[("name", "plugin:publisher"), ("result", "confirmed")],
    );
    assert!(confirmed.unwrap_or(0.0) >= 1.0, "{confirmed:?}");
    let rejected = host.metric(
        "wasmon_amqp_published_total",
        &[("name", "plugin:publisher"), ("result", "rejected")],
    );
    assert!(rejected.unwrap_or(0.0) >= 1.0, "{rejected:?}");
    // The broker's password shows neither in the logs nor in the API.
    let logs = host.logs();
    assert!(!logs.contains("guest:guest@"), "password in the logs");
    let view = host.get("/api/plugins/publisher").1;
    assert!(view.contains("guest:***@"), "{view}");
    assert!(
        !view.contains("guest:guest@"),
        "password in the API: {view}"
    );
}

#[test]
fn a_message_that_makes_on_message_fail_is_redelivered_then_dead_lettered() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("fail");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    let manifest = format!(
        "interval = \"200ms\"\n[capabilities.rabbitmq]\nurl = {url:?}\n\
         [[capabilities.rabbitmq.consume]]\nqueue = {queue:?}\nprefetch = 8\nmax_redeliveries = 2\ndepth_interval = \"200ms\"\n",
        url = rabbit.amqp_url()
    );
    let host = start(&[("consumer", guests::GUEST_AMQP_PROBE, &manifest)]);
    rt.block_on(publish(
        &channel,
        &queue,
        ["one", "fail: poison", "two", "three"].map(String::from),
    ));
    let dlq = format!("{queue}.dlq");
    host.wait_until(WAIT, || {
        (rt.block_on(depth(&channel, &dlq)) == 1).then_some(())
    });
    let name = format!("plugin:consumer:{queue}");
    host.wait_until(WAIT, || {
        (host.metric("amqp_probe_received", &[]) == Some(3.0)).then_some(())
    });
    let outcome = |o: &str| {
        host.metric(
            "wasmon_amqp_deliveries_total",
            &[("name", &name), ("outcome", o)],
        )
    };
    assert_eq!(outcome("requeued"), Some(2.0));
    assert_eq!(outcome("dead_lettered"), Some(1.0));
    host.wait_until(WAIT, || (outcome("acked") == Some(3.0)).then_some(()));
    assert_eq!(rt.block_on(depth(&channel, &queue)), 0);
    assert_eq!(
        host.metric("wasmon_amqp_connected", &[("name", &name)]),
        Some(1.0)
    );
    // The backlog of a consumed queue is exported by the host.
    assert!(
        host.metric("wasmon_amqp_queue_messages", &[("queue", &queue)])
            .is_some()
    );
    // An error is not a fault: the instance kept serving.
    assert_eq!(plugin(&host, "consumer")["faults"], 0);
}

#[test]
fn a_message_that_makes_on_message_trap_restarts_the_plugin_and_is_dead_lettered() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("trap");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    let manifest = format!(
        "interval = \"1h\"\nmax_restarts = 100\n[capabilities.rabbitmq]\nurl = {url:?}\n\
         [[capabilities.rabbitmq.consume]]\nqueue = {queue:?}\nmax_redeliveries = 2\n",
        url = rabbit.amqp_url()
    );
    let host = start(&[("trapper", guests::GUEST_AMQP_PROBE, &manifest)]);
    rt.block_on(publish(
        &channel,
        &queue,
        ["one", "trap", "two"].map(String::from),
    ));
    let dlq = format!("{queue}.dlq");
    host.wait_until(WAIT, || {
        (rt.block_on(depth(&channel, &dlq)) == 1).then_some(())
    });
    let name = format!("plugin:trapper:{queue}");
    let outcome = |o: &str| {
        host.metric(
            "wasmon_amqp_deliveries_total",
            &[("name", &name), ("outcome", o)],
        )
    };
    host.wait_until(WAIT, || (outcome("acked") == Some(2.0)).then_some(()));
    assert_eq!(outcome("requeued"), Some(2.0));
    assert_eq!(outcome("dead_lettered"), Some(1.0));
    // Each delivery of the poison message faulted the instance, which was
    // restarted before the next one: three traps, and the plugin serves on.
    let view = plugin(&host, "trapper");
    assert_eq!(view["faults"], 3, "{view}");
    assert_eq!(view["last_error"]["kind"], "trap", "{view}");
    host.wait_until(WAIT, || {
        (plugin(&host, "trapper")["status"] == "running").then_some(())
    });
    assert_eq!(rt.block_on(depth(&channel, &queue)), 0);
}

#[test]
fn consume_entries_are_refused_for_a_plugin_that_is_not_a_collector() {
    let manifest = "[capabilities.rabbitmq]\nurl = \"amqp://guest:s3cret@127.0.0.1:1/%2f\"\n\
                    [[capabilities.rabbitmq.consume]]\nqueue = \"q\"\n";
    let host = start(&[("sink", guests::GUEST_SINK_RECORDER, manifest)]);
    let view = plugin(&host, "sink");
    assert_eq!(view["status"], "invalid", "{view}");
    let error = view["last_error"]["message"].as_str().unwrap();
    assert!(
        error.contains("capabilities.rabbitmq.consume") && error.contains("sink"),
        "{error}"
    );
    assert!(!host.logs().contains("s3cret"), "password in the logs");
}
