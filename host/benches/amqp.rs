//! `[[ingest.amqp]]` throughput, messages/s with ack, against a native lapin
//! consumer that only acks, in the same run on the same broker [targets:
//! ratio >= 0.5 and >= 20 000 msg/s].
//!
//! Each round fills a fresh durable queue with `N` persistent seed 000
//! events (~90 bytes), then times the consumer from its start until it has
//! acked all of them: the native one acks each delivery; wasmon's is the
//! production path (`amqp::spawn_consumer` with `amqp::ingest::IngestHandler`
//! over a real `Ingest`: parse, validate, record in the event log, then ack).
//! Same prefetch for both. A real RabbitMQ runs as a child process
//! (`scripts/bench.sh --bench amqp`).
//!
//! Then `on-message` throughput with ack [same targets]: the release binary
//! runs `guest-amqp-probe`, a collector whose manifest consumes the queue and
//! whose `on-message` does nothing but return `[]`; each message goes the
//! production path (the consumer, the plugin's instance lock, the call under
//! its budget, the ack). Timed from the consumer's connection (the host's
//! startup excluded) until `wasmon_amqp_deliveries_total{outcome="acked"}`
//! reaches `N`, against the native consumer of the same round.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmon::amqp::{ConsumerSpec, ingest::IngestHandler, spawn_consumer};
use wasmon::config::{HeartbeatConfig, IngestConfig};
use wasmon::events::EventLog;
use wasmon::ingest::Ingest;
use wasmon::shutdown::Shutdown;
use wasmon::telemetry::Telemetry;
use wasmon_test_support::{Host, HostOptions, RabbitMqServer, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");

const N: u64 = 50_000;
const PREFETCH: u16 = 256;
const ROUNDS: usize = 3;

fn main() {
    let rabbit = RabbitMqServer::start();
    let url = rabbit.amqp_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_conn, channel) = rt.block_on(open(&url));
    let mut native = Vec::new();
    let mut wasmon = Vec::new();
    for round in 0..ROUNDS {
        let q = format!("bench-native-{round}");
        rt.block_on(fill(&channel, &q));
        native.push(rt.block_on(native_consume(&url, &q)));
        let q = format!("bench-wasmon-{round}");
        rt.block_on(fill(&channel, &q));
        wasmon.push(rt.block_on(wasmon_consume(&url, &q)));
        println!(
            "round {round}: native lapin consumer (ack only) {:>8.0} msg/s   [[ingest.amqp]] {:>8.0} msg/s",
            native[round], wasmon[round]
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (n, w) = (median(&mut native), median(&mut wasmon));
    println!(
        "amqp ingest, {N} messages, prefetch {PREFETCH}, median of {ROUNDS}: native {n:.0} msg/s, \
         wasmon {w:.0} msg/s, ratio {:.2} [target >= 0.5 and >= 20000 msg/s]",
        w / n
    );
    let mut native = Vec::new();
    let mut plugin = Vec::new();
    for round in 0..ROUNDS {
        let q = format!("bench-native-om-{round}");
        rt.block_on(fill(&channel, &q));
        native.push(rt.block_on(native_consume(&url, &q)));
        let q = format!("bench-plugin-{round}");
        rt.block_on(fill(&channel, &q));
        plugin.push(plugin_consume(&url, &q));
        println!(
            "round {round}: native lapin consumer (ack only) {:>8.0} msg/s   on-message (return []) {:>8.0} msg/s",
            native[round], plugin[round]
        );
    }
    let (n, p) = (median(&mut native), median(&mut plugin));
    println!(
        "amqp on-message, {N} messages, prefetch {PREFETCH}, median of {ROUNDS}: native {n:.0} msg/s, \
         plugin {p:.0} msg/s, ratio {:.2} [target >= 0.5 and >= 20000 msg/s]",
        p / n
    );
}

/// Runs the release binary with a collector consuming `queue` (already
/// filled) until it acked `N`; messages/s from the consumer's connection.
fn plugin_consume(url: &str, queue: &str) -> f64 {
    let manifest = format!(
        "interval = \"1h\"\n[capabilities.rabbitmq]\nurl = {url:?}\n\
         [[capabilities.rabbitmq.consume]]\nqueue = {queue:?}\nprefetch = {PREFETCH}\n"
    );
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n[log]\nlevel = \"warn\"\n")
            .plugin("bench", guests::GUEST_AMQP_PROBE)
            .manifest("bench", &manifest),
    );
    let name = format!("plugin:bench:{queue}");
    let read = |metric: &str, labels: &[(&str, &str)]| {
        metric_value(&host.get("/metrics").1, metric, labels).unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while read("wasmon_amqp_connected", &[("name", &name)]) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the plugin's consumer never connected"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now();
    while read(
        "wasmon_amqp_deliveries_total",
        &[("name", &name), ("outcome", "acked")],
    ) < N as f64
    {
        assert!(
            Instant::now() < deadline,
            "the plugin did not ack every message"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    N as f64 / start.elapsed().as_secs_f64()
}

async fn open(url: &str) -> (Connection, Channel) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (connection, channel)
}

/// A fresh durable queue holding `N` persistent events.
async fn fill(channel: &Channel, queue: &str) {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..N {
        let body = format!(
            r#"{{"service":"bench-{}","event_type":"task.done","detail":"n={i}"}}"#,
            i % 16
        );
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap();
        if i % 5000 == 4999 {
            channel.wait_for_confirms().await.unwrap();
        }
    }
    channel.wait_for_confirms().await.unwrap();
}

/// Consumes `N` messages, acking each; messages/s.
async fn native_consume(url: &str, queue: &str) -> f64 {
    let (_conn, channel) = open(url).await;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "native".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut n = 0;
    while let Some(delivery) = consumer.next().await {
        delivery
            .unwrap()
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        n += 1;
        if n == N {
            break;
        }
    }
    N as f64 / start.elapsed().as_secs_f64()
}

/// Runs wasmon's `[[ingest.amqp]]` consumer until it acked `N`; messages/s.
async fn wasmon_consume(url: &str, queue: &str) -> f64 {
    let telemetry = Arc::new(Telemetry::new().unwrap());
    let events = Arc::new(EventLog::new(2 * N as usize));
    let ingest = Arc::new(Ingest::new(
        &IngestConfig::default(),
        &HeartbeatConfig::default(),
        events.clone(),
        telemetry.clone(),
    ));
    let handler = Arc::new(IngestHandler::new(
        queue,
        ingest,
        telemetry.clone(),
        1024 * 1024,
    ));
    let name = format!("ingest:{queue}");
    let spec = ConsumerSpec {
        name: name.clone(),
        url: url.to_string(),
        queue: queue.to_string(),
        prefetch: PREFETCH,
        declare: false,
        arguments: Vec::new(),
        max_redeliveries: 5,
        depth_interval: Duration::from_secs(10),
        reconnect_max: Duration::from_secs(1),
    };
    let acked = telemetry
        .amqp
        .deliveries
        .with_label_values(&[&name, "acked"]);
    let shutdown = Shutdown::new();
    let start = Instant::now();
    let task = spawn_consumer(spec, handler, telemetry.amqp.clone(), shutdown.clone());
    while acked.get() < N {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = N as f64 / start.elapsed().as_secs_f64();
    assert_eq!(events.end(), N, "every message recorded once");
    shutdown.trigger();
    task.await.unwrap();
    rate
}
