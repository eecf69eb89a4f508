//! `[[ingest.amqp]]` against a real RabbitMQ: events from a queue reach
//! `/api/events` and the `monitoring_*` series; an invalid message goes to the
//! dead-letter queue without blocking the ones behind it; a broker killed
//! mid-stream and restarted loses nothing and the host reconnects by itself;
//! 10 000 messages are recorded exactly once; queue depth is exported.

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, RabbitMqServer, metric_value, promtool_check};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);

/// A queue name no other test uses.
fn unique(name: &str) -> String {
    format!("it-{name}-{}-{}", std::process::id(), fastrand::u32(..))
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A confirming channel to `url` (the connection is kept alive beside it).
pub(crate) async fn open(url: &str) -> (Connection, Channel) {
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

/// A durable `queue` whose dead letters go to `QUEUE.dlq` (through the
/// fanout exchange `QUEUE.dlx`).
pub(crate) async fn declare_with_dlq(channel: &Channel, queue: &str) {
    let dlx = format!("{queue}.dlx");
    let dlq = format!("{queue}.dlq");
    channel
        .exchange_declare(
            dlx.as_str().into(),
            ExchangeKind::Fanout,
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
            dlq.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            dlq.as_str().into(),
            dlx.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dlx.as_str().into()),
    );
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await
        .unwrap();
}

/// Publishes each body persistently to `queue` and waits for every confirm.
pub(crate) async fn publish(
    channel: &Channel,
    queue: &str,
    bodies: impl IntoIterator<Item = String>,
) {
    for body in bodies {
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
    }
    let returned = channel.wait_for_confirms().await.unwrap();
    assert!(returned.is_empty(), "{returned:?}");
}

pub(crate) async fn depth(channel: &Channel, queue: &str) -> u32 {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

fn host_for(url: &str, queue: &str, extra: &str) -> Host {
    let host = Host::start(HostOptions::new(BIN).config(&format!(
        "[sampling]\nenabled = false\n[ingest]\nrecent_events = 20000\n\
         [[ingest.amqp]]\nurl = \"{url}\"\nqueue = \"{queue}\"\n\
         depth_interval = \"200ms\"\nreconnect_max = \"500ms\"\n{extra}"
    )));
    host.wait_ready(WAIT);
    host
}

/// Every event of `service` in `/api/events`, newest first, paging through.
fn events_of(host: &Host, service: &str) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let page = host.get_json(&format!(
            "/api/events?service={service}&limit=1000&offset={}",
            all.len()
        ));
        let events = page["events"].as_array().unwrap().clone();
        let more = page["has_more"] == json!(true);
        all.extend(events);
        if !more {
            return all;
        }
    }
}

fn total_of(host: &Host, service: &str) -> u64 {
    host.get_json(&format!("/api/events?service={service}&limit=1"))["total"]
        .as_u64()
        .unwrap()
}

/// The `n` of every event's `detail` (`n=123`).
fn numbers(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["detail"].as_str().unwrap()["n=".len()..].parse().unwrap())
        .collect()
}

fn numbered(service: &str, range: std::ops::Range<u64>) -> impl Iterator<Item = String> {
    let service = service.to_string();
    range.map(move |n| {
        json!({"service": service, "event_type": "task.done", "detail": format!("n={n}")})
            .to_string()
    })
}

#[test]
fn ingest_amqp_records_every_shape_into_events_and_monitoring_series() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("shapes");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    let host = host_for(&rabbit.amqp_url(), &queue, "");
    let service = unique("svc");
    let job = json!({
        "idempotency_key": "k-1", "site_id": "site-a",
        "app": {"app_id": "a1", "name": "crawler", "version": "1.0"},
        "entity": {"type": "job", "id": "j-1"},
        "event": {"kind": "started", "at": "2026-01-01T00:00:00Z"},
    });
    rt.block_on(publish(
        &channel,
        &queue,
        [
            json!({"service": service, "event_type": "task.done", "detail": "one"}).to_string(),
            json!([
                {"service": service, "event_type": "task.done"},
                {"service": service, "event_type": "error", "component": "db"},
            ])
            .to_string(),
            json!({"events": [{"service": service, "event_type": "deploy"}]}).to_string(),
            job.to_string(),
        ],
    ));
    host.wait_until(WAIT, || (total_of(&host, &service) == 4).then_some(()));
    let job_events = host.get_json("/api/events?event_type=job.started");
    assert!(
        job_events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.to_string().contains("j-1")),
        "{job_events}"
    );
    let metrics = host.wait_until(WAIT, || {
        let (_, body) = host.get("/metrics");
        metric_value(&body, "wasmon_amqp_queue_messages", &[("queue", &queue)])
            .is_some()
            .then_some(body)
    });
    let labels = [("service", service.as_str()), ("event_type", "task.done")];
    assert_eq!(
        metric_value(&metrics, "monitoring_events_total", &labels),
        Some(2.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "monitoring_task_failures_total",
            &[("service", &service), ("component", "db")]
        ),
        Some(1.0)
    );
    let name = format!("ingest:{queue}");
    assert_eq!(
        metric_value(&metrics, "wasmon_amqp_connected", &[("name", &name)]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_amqp_queue_consumers",
            &[("queue", &queue)]
        ),
        Some(1.0)
    );
    assert_eq!(promtool_check(&metrics), Ok(()));
    // The password of the URL never reaches the log.
    assert!(!host.logs().contains("guest:guest"), "{}", host.logs());
}

#[test]
fn an_invalid_message_is_dead_lettered_and_does_not_block_the_next() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("invalid");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    let host = host_for(&rabbit.amqp_url(), &queue, "max_redeliveries = 2");
    let service = unique("svc");
    let big = format!(
        "{{\"service\":\"{service}\",\"event_type\":\"x\",\"detail\":\"{}\"}}",
        "a".repeat(1024 * 1024 + 10)
    );
    rt.block_on(publish(
        &channel,
        &queue,
        [
            json!({"service": service, "event_type": "task.done", "detail": "n=1"}).to_string(),
            "{not json".to_string(),
            json!({"service": service}).to_string(),
            format!("{{\"service\":\"{service}\",\"service\":\"dup\",\"event_type\":\"x\"}}"),
            big,
            json!({"service": service, "event_type": "task.done", "detail": "n=2"}).to_string(),
        ],
    ));
    host.wait_until(WAIT, || (total_of(&host, &service) == 2).then_some(()));
    let dlq = format!("{queue}.dlq");
    rt.block_on(async {
        for _ in 0..100 {
            if depth(&channel, &dlq).await == 4 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the dead-letter queue holds {}",
            depth(&channel, &dlq).await
        );
    });
    let (_, metrics) = host.get("/metrics");
    let route = format!("amqp:{queue}");
    for (reason, n) in [
        ("malformed", 2.0),
        ("invalid", 1.0),
        ("body_too_large", 1.0),
    ] {
        assert_eq!(
            metric_value(
                &metrics,
                "wasmon_ingest_rejected_total",
                &[("route", &route), ("reason", reason)]
            ),
            Some(n),
            "{reason}"
        );
    }
    host.wait_for_log("app: field required", WAIT);
    host.wait_for_log("duplicate key", WAIT);
    host.wait_for_log(
        "exceeds the limit of 1048576 bytes (server.max_body_bytes)",
        WAIT,
    );
    assert_eq!(rt.block_on(depth(&channel, &queue)), 0);
}

#[test]
fn a_broker_killed_mid_stream_loses_nothing_and_the_host_reconnects() {
    let rabbit = RabbitMqServer::start();
    let queue = unique("crash");
    let service = unique("svc");
    let rt = runtime();
    {
        let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
        rt.block_on(declare_with_dlq(&channel, &queue));
        rt.block_on(publish(&channel, &queue, numbered(&service, 0..3000)));
    }
    let host = host_for(&rabbit.amqp_url(), &queue, "prefetch = 20");
    let pid = host.pid();
    host.wait_until(WAIT, || (total_of(&host, &service) > 0).then_some(()));
    rabbit.kill();
    host.wait_for_log("amqp connection lost", WAIT);
    let (_, metrics) = host.get("/metrics");
    let name = format!("ingest:{queue}");
    assert_eq!(
        metric_value(&metrics, "wasmon_amqp_connected", &[("name", &name)]),
        Some(0.0)
    );
    rabbit.restart();
    {
        let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
        rt.block_on(publish(&channel, &queue, numbered(&service, 3000..4000)));
    }
    let events = host.wait_until(Duration::from_secs(60), || {
        let events = events_of(&host, &service);
        let distinct: HashSet<u64> = numbers(&events).into_iter().collect();
        (distinct.len() == 4000).then_some(events)
    });
    let seen = numbers(&events);
    let distinct: HashSet<u64> = seen.iter().copied().collect();
    assert_eq!(distinct, (0..4000).collect::<HashSet<u64>>());
    eprintln!(
        "broker crash: 4000 published, {} recorded, {} duplicates (at least once)",
        seen.len(),
        seen.len() - distinct.len()
    );
    assert_eq!(host.pid(), pid, "the host was not restarted");
    let (_, metrics) = host.get("/metrics");
    assert_eq!(
        metric_value(&metrics, "wasmon_amqp_connected", &[("name", &name)]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_amqp_disconnects_total",
            &[("name", &name)]
        ),
        Some(1.0)
    );
    assert_eq!(host.logs().matches("amqp connected").count(), 2);
}

#[test]
fn ten_thousand_messages_are_recorded_exactly_once() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("tenk");
    let service = unique("svc");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    let host = host_for(&rabbit.amqp_url(), &queue, "");
    rt.block_on(publish(&channel, &queue, numbered(&service, 0..10_000)));
    host.wait_until(WAIT, || (total_of(&host, &service) >= 10_000).then_some(()));
    let seen = numbers(&events_of(&host, &service));
    assert_eq!(seen.len(), 10_000);
    let distinct: HashSet<u64> = seen.into_iter().collect();
    assert_eq!(distinct, (0..10_000).collect::<HashSet<u64>>());
    let name = format!("ingest:{queue}");
    let (_, metrics) = host.get("/metrics");
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_amqp_deliveries_total",
            &[("name", &name), ("outcome", "acked")]
        ),
        Some(10_000.0)
    );
    assert_eq!(rt.block_on(depth(&channel, &queue)), 0);
}

#[test]
fn a_missing_queue_without_declare_is_a_clear_error_and_declare_creates_it() {
    let rabbit = RabbitMqServer::shared();
    let missing = unique("missing");
    let host = host_for(&rabbit.amqp_url(), &missing, "");
    let line = host.wait_for_log("declare = false expects it to exist", WAIT);
    assert!(line.contains(&missing), "{line}");
    assert!(!host.logs().contains("guest:guest"));

    let declared = unique("declared");
    let host = host_for(&rabbit.amqp_url(), &declared, "declare = true");
    host.wait_for_log("amqp connected", WAIT);
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    let service = unique("svc");
    rt.block_on(publish(&channel, &declared, numbered(&service, 0..3)));
    host.wait_until(WAIT, || (total_of(&host, &service) == 3).then_some(()));
}

#[test]
fn the_publisher_waits_for_confirms_and_reports_unroutable_messages_as_rejected() {
    use wasmon::amqp::{AmqpMetrics, PublishError, Publisher, PublisherSpec};
    let rabbit = RabbitMqServer::shared();
    let queue = unique("publish");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(channel.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    ))
    .unwrap();
    let metrics = AmqpMetrics::register(&prometheus::Registry::new()).unwrap();
    let spec = |url: &str| PublisherSpec {
        name: "it-publisher".to_string(),
        url: url.to_string(),
        confirm_timeout: Duration::from_secs(10),
        reconnect_max: Duration::from_secs(1),
    };
    let publisher = Publisher::new(spec(&rabbit.amqp_url()), metrics.clone());
    let headers = [("origin".to_string(), "edge-1".to_string())];
    rt.block_on(async {
        publisher
            .publish("", &queue, &headers, b"first")
            .await
            .unwrap();
        let unroutable = publisher
            .publish("", &unique("nowhere"), &[], b"lost?")
            .await
            .unwrap_err();
        assert!(
            matches!(&unroutable, PublishError::Rejected(m) if m.contains("NO_ROUTE")),
            "{unroutable:?}"
        );
        publisher
            .publish("", &queue, &headers, b"second")
            .await
            .unwrap();
        assert_eq!(depth(&channel, &queue).await, 2);
    });
    let confirmed = metrics
        .published
        .with_label_values(&["it-publisher", "confirmed"]);
    assert_eq!(confirmed.get(), 2);
    assert_eq!(
        metrics.connected.with_label_values(&["it-publisher"]).get(),
        1
    );

    // No broker there: a connection error, quickly, without the password.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = Publisher::new(
        spec(&format!("amqp://guest:s3cret@127.0.0.1:{port}/%2f")),
        metrics.clone(),
    );
    for _ in 0..2 {
        let error = rt
            .block_on(nowhere.publish("", &queue, &[], b"x"))
            .unwrap_err();
        assert!(matches!(error, PublishError::Connection(_)), "{error:?}");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }
}

#[test]
fn monitoring_rmq_url_is_the_default_broker() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("seedenv");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    let host = Host::start(
        HostOptions::new(BIN)
            .env("MONITORING_RMQ_URL", rabbit.amqp_url())
            .config(&format!(
                "[sampling]\nenabled = false\n[[ingest.amqp]]\nqueue = \"{queue}\"\n"
            )),
    );
    host.wait_ready(WAIT);
    let service = unique("svc");
    rt.block_on(publish(&channel, &queue, numbered(&service, 0..2)));
    host.wait_until(WAIT, || (total_of(&host, &service) == 2).then_some(()));
    assert!(!host.logs().contains("guest:guest"));
}

#[test]
fn a_message_refused_for_a_passing_reason_is_redelivered_then_dead_lettered() {
    let rabbit = RabbitMqServer::shared();
    let queue = unique("retry");
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    // The service table holds one service: a second one is refused (429 over
    // HTTP), a passing condition, so the message is requeued, not dropped.
    let host = Host::start(HostOptions::new(BIN).config(&format!(
        "[sampling]\nenabled = false\n[ingest]\nmax_services = 1\n\
         [[ingest.amqp]]\nurl = \"{}\"\nqueue = \"{queue}\"\nmax_redeliveries = 2\n",
        rabbit.amqp_url()
    )));
    host.wait_ready(WAIT);
    let (status, _) = host.post_json(
        "/events",
        &json!({"service": "first", "event_type": "task.done"}),
    );
    assert!(status.is_success());
    let service = unique("second");
    rt.block_on(publish(&channel, &queue, numbered(&service, 0..1)));
    let dlq = format!("{queue}.dlq");
    rt.block_on(async {
        for _ in 0..200 {
            if depth(&channel, &dlq).await == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nothing dead-lettered");
    });
    let name = format!("ingest:{queue}");
    let route = format!("amqp:{queue}");
    let metrics = host.wait_until(WAIT, || {
        let (_, body) = host.get("/metrics");
        let done = metric_value(
            &body,
            "wasmon_amqp_deliveries_total",
            &[("name", &name), ("outcome", "dead_lettered")],
        );
        (done == Some(1.0)).then_some(body)
    });
    let outcome = |o: &str| {
        metric_value(
            &metrics,
            "wasmon_amqp_deliveries_total",
            &[("name", &name), ("outcome", o)],
        )
    };
    assert_eq!(outcome("requeued"), Some(2.0));
    assert_eq!(outcome("dead_lettered"), Some(1.0));
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_ingest_rejected_total",
            &[("route", &route), ("reason", "too_many_services")]
        ),
        Some(3.0)
    );
    host.wait_for_log("dead-lettered after max_redeliveries", WAIT);
    assert_eq!(total_of(&host, &service), 0);
    assert_eq!(rt.block_on(depth(&channel, &queue)), 0);
}
