//! Issue 10, `sink-amqp` against a real RabbitMQ: every event arrives as the
//! host's own JSON with its id, routed by its type, with publisher confirms;
//! a broker that is down makes the sink retry until it is back, losing
//! nothing; an unroutable message is retried by default and dead-lettered
//! with `rejected = "dead-letter"`. And fan-in across hosts: an edge host
//! publishes with `sink-amqp`, a central host records the queue with
//! `[[ingest.amqp]]`, and every event reaches the central host's
//! `/api/events` under its original id, also while the central host is
//! restarted mid-stream.

use crate::amqp::{open, runtime};
use crate::sinks::{self, post};
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, RabbitMqServer, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(60);

/// A name no other test uses.
fn unique(name: &str) -> String {
    format!("itsa-{name}-{}-{}", std::process::id(), fastrand::u32(..))
}

/// A `sink-amqp` manifest publishing `task.*` events to `exchange`; its
/// `NAME/rabbitmq` breaker backs off at most 1 s, so a broker's return is
/// seen at once.
fn manifest(url: &str, exchange: &str, config: &str) -> String {
    format!(
        "events = [\"task.*\"]\nbatch_size = 20\nmax_restarts = 1000\nbreaker_max_backoff = \"1s\"\n\
         [capabilities.rabbitmq]\nurl = {url:?}\nexchanges = [{exchange:?}]\ntimeout = \"1s\"\n\
         [config]\nexchange = {exchange:?}\n{config}"
    )
}

/// A host with one `sink-amqp` instance per `(name, manifest)`, fast retries.
fn start(plugins: &[(&str, String)]) -> Host {
    sinks::start(sinks::options("500ms"), guests::SINK_AMQP, plugins, WAIT)
}

/// A durable topic exchange with a durable queue bound to it with `binding`.
async fn topic_with_queue(channel: &Channel, exchange: &str, queue: &str, binding: &str) {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// A message taken from a queue.
struct Taken {
    routing_key: String,
    headers: HashMap<String, String>,
    body: Value,
}

/// Takes (and acks) every message waiting in `queue`.
async fn take(channel: &Channel, queue: &str) -> Vec<Taken> {
    let mut out = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let delivery = message.delivery;
        let headers = delivery
            .properties
            .headers()
            .as_ref()
            .map(|table| {
                table
                    .inner()
                    .iter()
                    .filter_map(|(k, v)| match v {
                        AMQPValue::LongString(s) => Some((k.to_string(), s.to_string())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Taken {
            routing_key: delivery.routing_key.to_string(),
            headers,
            body: serde_json::from_slice(&delivery.data).unwrap(),
        });
    }
    out
}

/// Takes messages from `queue` until every id of `ids` arrived; all taken.
fn take_until(
    rt: &tokio::runtime::Runtime,
    channel: &Channel,
    queue: &str,
    ids: &[String],
) -> Vec<Taken> {
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let mut all = Vec::new();
    wasmon_test_support::wait_until(WAIT, || {
        all.extend(rt.block_on(take(channel, queue)));
        let seen: BTreeSet<&str> = all.iter().filter_map(|m| m.body["id"].as_str()).collect();
        want.is_subset(&seen).then_some(())
    });
    all
}

#[test]
fn events_arrive_as_json_with_their_ids_routed_by_type() {
    let rabbit = RabbitMqServer::shared();
    let (exchange, queue) = (unique("ex"), unique("q"));
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(topic_with_queue(&channel, &exchange, &queue, "wasmon.#"));
    let host = start(&[(
        "amqp",
        manifest(
            &rabbit.amqp_url(),
            &exchange,
            "routing_key = \"wasmon.{type}.{service}\"\n",
        ),
    )]);
    let ids = post(&host, "billing", 0..30);
    let taken = take_until(&rt, &channel, &queue, &ids);
    // In order, each once, the host's own JSON with the original id.
    let got: Vec<&str> = taken
        .iter()
        .map(|m| m.body["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
    for (m, n) in taken.iter().zip(0..) {
        assert_eq!(m.routing_key, "wasmon.task.done.billing");
        assert_eq!(m.headers["wasmon-event-id"], m.body["id"].as_str().unwrap());
        assert_eq!(m.headers["wasmon-event-type"], "task.done");
        assert_eq!(m.headers["content-type"], "application/json");
        assert_eq!(m.body["event_type"], "task.done");
        assert_eq!(m.body["service"], "billing");
        assert_eq!(m.body["source"], "ingest");
        assert_eq!(m.body["detail"], format!("n={n}"));
        assert!(m.body["time_ms"].as_u64().unwrap() > 0);
    }
    // Each message confirmed by the broker, counted by the capability.
    let confirmed = host.metric(
        "wasmon_amqp_published_total",
        &[("name", "plugin:amqp"), ("result", "confirmed")],
    );
    assert_eq!(confirmed, Some(30.0));
}

#[test]
fn a_broker_that_is_down_is_retried_and_nothing_is_lost() {
    // A broker of its own: this test kills it.
    let rabbit = RabbitMqServer::start();
    let (exchange, queue) = (unique("ex"), unique("q"));
    let rt = runtime();
    {
        let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
        rt.block_on(topic_with_queue(&channel, &exchange, &queue, "#"));
    }
    let host = start(&[("amqp", manifest(&rabbit.amqp_url(), &exchange, ""))]);
    let mut ids = post(&host, "edge", 0..5);
    {
        let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
        let first = take_until(&rt, &channel, &queue, &ids);
        assert_eq!(first.len(), 5);
    }
    rabbit.kill();
    let mark = host.log_mark();
    ids.extend(post(&host, "edge", 5..25));
    // The sink fails with a connection error and retries; the host keeps serving.
    host.wait_for_log_since(mark, "sink delivery failed; will retry", WAIT);
    let logs = host.logs();
    assert!(!logs.contains("guest:guest@"), "password in the logs");
    assert!(
        !logs.contains("dead-lettered"),
        "a broker outage must not dead-letter: {logs}"
    );
    rabbit.restart();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    // A broker killed right after the topology was declared may come back
    // without the binding: declare it again, as a consumer does on reconnect
    // (publishes refused meanwhile as unroutable are retried by the sink).
    rt.block_on(topic_with_queue(&channel, &exchange, &queue, "#"));
    let taken = take_until(&rt, &channel, &queue, &ids[5..]);
    let got: BTreeSet<&str> = taken
        .iter()
        .map(|m| m.body["id"].as_str().unwrap())
        .collect();
    // At least once: a broker killed with SIGKILL may bring back messages
    // taken before the kill; nothing else.
    let all: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert!(got.is_subset(&all), "ids the host never gave");
    assert!(ids[5..].iter().all(|id| got.contains(id.as_str())));
    let (status, _) = host.get("/healthz");
    assert!(status.is_success());
}

#[test]
fn an_unroutable_message_is_retried_until_bound_or_dead_lettered_when_configured() {
    let rabbit = RabbitMqServer::shared();
    let (exchange, queue) = (unique("ex"), unique("q"));
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    // The exchange exists but nothing is bound: every publish is returned.
    rt.block_on(topic_with_queue(&channel, &exchange, &queue, "bound.later"));
    let url = rabbit.amqp_url();
    let host = start(&[
        (
            "patient",
            manifest(&url, &exchange, "routing_key = \"r.{type}\"\n"),
        ),
        (
            "strict",
            manifest(
                &url,
                &exchange,
                "routing_key = \"s.{type}\"\nrejected = \"dead-letter\"\n",
            ),
        ),
    ]);
    let ids = post(&host, "edge", 0..3);
    // `strict` dead-letters the batch; `patient` keeps retrying it.
    host.wait_until(WAIT, || {
        let n = host.metric("wasmon_sink_dead_letters_total", &[("sink", "strict")]);
        (n.unwrap_or(0.0) >= 1.0).then_some(())
    });
    host.wait_for_log("returned by the broker", WAIT);
    let patient = host.metric("wasmon_sink_dead_letters_total", &[("sink", "patient")]);
    assert_eq!(
        patient.unwrap_or(0.0),
        0.0,
        "the patient sink dead-lettered"
    );
    // Binding a queue for it lets the waiting batch through.
    rt.block_on(channel.queue_bind(
        queue.as_str().into(),
        exchange.as_str().into(),
        "r.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .unwrap();
    let taken = take_until(&rt, &channel, &queue, &ids);
    assert!(taken.iter().all(|m| m.routing_key == "r.task.done"));
    let strict: Vec<&Taken> = taken
        .iter()
        .filter(|m| m.routing_key.starts_with("s."))
        .collect();
    assert!(strict.is_empty());
}

/// Every event id in the central host's `/api/events` for `service`.
fn central_ids(host: &Host, service: &str) -> Vec<String> {
    let mut all = Vec::new();
    loop {
        let page = host.get_json(&format!(
            "/api/events?service={service}&limit=1000&offset={}",
            all.len()
        ));
        let events = page["events"].as_array().unwrap().clone();
        let more = page["has_more"] == json!(true);
        all.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        if !more {
            return all;
        }
    }
}

#[test]
fn fan_in_two_hosts_keep_the_original_ids_across_a_central_restart() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("fanin");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(channel.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    ))
    .unwrap();
    // The edge publishes to the default exchange, routed to the queue by name.
    let edge = start(&[(
        "uplink",
        manifest(
            &rabbit.amqp_url(),
            "",
            &format!("routing_key = {queue:?}\n"),
        ),
    )]);
    let mut central = Host::start(HostOptions::new(BIN).config(&format!(
        "[sampling]\nenabled = false\n[ingest]\nrecent_events = 20000\n\
         [[ingest.amqp]]\nurl = {url:?}\nqueue = {queue:?}\nreconnect_max = \"500ms\"\n",
        url = rabbit.amqp_url()
    )));
    central.wait_ready(WAIT);
    assert_ne!(edge.dir(), central.dir(), "each host has its own data dir");
    let service = unique("edge").replace('-', "_");
    let mut ids = Vec::new();
    for round in 0..5 {
        ids.extend(post(&edge, &service, round * 20..round * 20 + 20));
    }
    // Restart the central host mid-stream: the edge keeps publishing, the
    // broker keeps what the central host has not acked.
    central.stop();
    for round in 5..10 {
        ids.extend(post(&edge, &service, round * 20..round * 20 + 20));
    }
    central.restart();
    central.wait_ready(WAIT);
    for round in 10..15 {
        ids.extend(post(&edge, &service, round * 20..round * 20 + 20));
    }
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let seen = central.wait_until(WAIT, || {
        let seen = central_ids(&central, &service);
        let set: BTreeSet<String> = seen.iter().cloned().collect();
        want.iter().all(|id| set.contains(*id)).then_some(seen)
    });
    let unique_seen: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    let foreign: Vec<&&str> = unique_seen
        .iter()
        .filter(|id| !want.contains(**id))
        .collect();
    assert!(foreign.is_empty(), "ids the edge never gave: {foreign:?}");
    println!(
        "fan-in: {} events published by the edge, {} recorded by the central host ({} duplicates)",
        ids.len(),
        seen.len(),
        seen.len() - unique_seen.len()
    );
    // A forwarded event delivered again (the broker redelivers, an edge
    // republishes) is recorded once: its id is its idempotency key.
    let again =
        edge.get_json(&format!("/api/events?service={service}&limit=1"))["events"][0].clone();
    let marker = json!({"id": unique("marker"), "time_ms": 1, "event_type": "task.done",
        "source": "ingest", "service": service});
    rt.block_on(crate::amqp::publish(
        &channel,
        &queue,
        [again.to_string(), again.to_string(), marker.to_string()],
    ));
    let seen = central.wait_until(WAIT, || {
        let seen = central_ids(&central, &service);
        seen.contains(&marker["id"].as_str().unwrap().to_string())
            .then_some(seen)
    });
    let copies = seen.iter().filter(|id| **id == again["id"]).count();
    assert_eq!(copies, 1, "a redelivered event recorded {copies} times");
    // The central host recorded them as the edge's events: type, service, source.
    let page = central.get_json(&format!("/api/events?service={service}&limit=1"));
    let event = &page["events"][0];
    assert_eq!(event["event_type"], "task.done");
    assert_eq!(event["source"], "ingest");
    assert!(
        !central.logs().contains("amqp message refused"),
        "a forwarded event was refused"
    );
}

#[test]
fn the_example_manifest_publishes_to_wasmon_events_routed_by_type() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("example");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(topic_with_queue(
        &channel,
        "wasmon.events",
        &queue,
        "wasmon.#",
    ));
    let host = sinks::start(
        sinks::options("500ms").env("MONITORING_RMQ_URL", rabbit.amqp_url()),
        guests::SINK_AMQP,
        &[("amqp_sink", sinks::example("amqp_sink.toml"))],
        WAIT,
    );
    let ids = post(&host, "example", 0..2);
    let taken = take_until(&rt, &channel, &queue, &ids);
    assert!(taken.iter().all(|m| m.routing_key == "wasmon.task.done"));
}
