//! `collector-rabbitmq-pipeline` against a real broker: 10 000 results
//! counted once with their latency histogram, saved actions and gateway
//! events; a broker killed mid-stream; a hot reload mid-stream; the example
//! manifest.

use super::*;
/// `n` pipeline results: every fourth a failure, latencies cycling through
/// 3 ms, 30 ms, 300 ms and 3 s.
fn results(pipeline: &str, range: std::ops::Range<u64>) -> Vec<String> {
    range
        .map(|i| {
            let latency = [0.003, 0.03, 0.3, 3.0][(i % 4) as usize];
            let ingest = 1_700_000_000.0 + i as f64;
            json!({
                "pipeline": pipeline, "request_id": format!("r-{i}"),
                "status": if i % 4 == 3 { "failure" } else { "success" },
                "ingest_ts": ingest, "process_ts": ingest + latency,
            })
            .to_string()
        })
        .collect()
}

fn pipeline_manifest(url: &str, queues: &[&str], extra: &str) -> String {
    let mut manifest = format!(
        "interval = \"500ms\"\nmax_restarts = 1000\n[capabilities.rabbitmq]\nurl = {url:?}\n"
    );
    for queue in queues {
        manifest.push_str(&format!(
            "[[capabilities.rabbitmq.consume]]\nqueue = {queue:?}\nprefetch = 100\nmax_redeliveries = 3\ndepth_interval = \"200ms\"\nreconnect_max = \"500ms\"\n"
        ));
    }
    manifest.push_str(&format!("[config]\n{extra}\n"));
    manifest
}

fn requests(host: &Host, pipeline: &str, status: &str) -> f64 {
    host.metric(
        "fr_pipeline_requests_total",
        &[("pipeline", pipeline), ("status", status)],
    )
    .unwrap_or(0.0)
}

#[test]
fn the_pipeline_collector_counts_ten_thousand_messages_once_with_their_latency_and_history() {
    let rabbit = RabbitMqServer::shared();
    let results_queue = format!("{}_pipeline_results", unique("face"));
    let actions_queue = format!("{}.saved_actions", unique("actions"));
    let gateway_queue = format!("{}.gateway_events", unique("monitoring"));
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    for queue in [&results_queue, &actions_queue, &gateway_queue] {
        rt.block_on(declare_with_dlq(&channel, queue));
    }
    let manifest = pipeline_manifest(
        &rabbit.amqp_url(),
        &[&results_queue, &actions_queue, &gateway_queue],
        "history = 100",
    );
    let host = start(&[("pipeline", guests::COLLECTOR_RABBITMQ_PIPELINE, &manifest)]);
    rt.block_on(publish(
        &channel,
        &results_queue,
        results("face", 0..10_000),
    ));
    let actions: Vec<String> = (0..150)
        .map(|i| {
            json!({"action": if i % 3 == 0 { "block" } else { "pause" }, "client_id": format!("c-{i}"), "outcome": "success", "timestamp": 1_700_000_000 + i})
                .to_string()
        })
        .collect();
    rt.block_on(publish(&channel, &actions_queue, actions));
    rt.block_on(publish(
        &channel,
        &gateway_queue,
        [
            json!({"gateway_id": "gw-1", "event": "heartbeat", "clients": 12, "timestamp": 1_700_000_100}).to_string(),
            json!({"gateway_id": "gw-1", "event": "heartbeat", "clients": 7, "timestamp": 1_700_000_105}).to_string(),
        ],
    ));
    host.wait_until(Duration::from_secs(120), || {
        (requests(&host, "face", "success") + requests(&host, "face", "failure") >= 10_000.0)
            .then_some(())
    });
    // Once the queue is drained, nothing more comes: each message counted once.
    host.wait_until(WAIT, || {
        (rt.block_on(depth(&channel, &results_queue)) == 0).then_some(())
    });
    let name = format!("plugin:pipeline:{results_queue}");
    host.wait_until(WAIT, || {
        (host.metric(
            "wasmon_amqp_deliveries_total",
            &[("name", &name), ("outcome", "acked")],
        ) == Some(10_000.0))
        .then_some(())
    });
    assert_eq!(requests(&host, "face", "success"), 7_500.0);
    assert_eq!(requests(&host, "face", "failure"), 2_500.0);
    let bucket = |bound: &str| {
        host.metric(
            "fr_pipeline_latency_observations_total",
            &[("pipeline", "face"), ("upper_bound", bound)],
        )
    };
    for (bound, expected) in [
        ("0.005", 2_500.0),
        ("0.025", 2_500.0),
        ("0.05", 5_000.0),
        ("0.25", 5_000.0),
        ("0.5", 7_500.0),
        ("2.5", 7_500.0),
        ("5", 10_000.0),
        ("+Inf", 10_000.0),
    ] {
        assert_eq!(bucket(bound), Some(expected), "bucket {bound}");
    }
    let sum = host
        .metric(
            "fr_pipeline_latency_sum_seconds_total",
            &[("pipeline", "face")],
        )
        .unwrap();
    assert!((sum - 2_500.0 * 3.333).abs() < 0.5, "{sum}");
    let max = host
        .metric(
            "fr_pipeline_latency_seconds",
            &[("pipeline", "face"), ("stat", "max")],
        )
        .unwrap();
    assert!((max - 3.0).abs() < 1e-3, "{max}");
    // Saved actions: counted, and the newest 100 kept as the plugin's state.
    host.wait_until(WAIT, || {
        (host.metric(
            "fr_saved_actions_total",
            &[("action", "pause"), ("outcome", "success")],
        ) == Some(100.0))
        .then_some(())
    });
    assert_eq!(
        host.metric(
            "fr_saved_actions_total",
            &[("action", "block"), ("outcome", "success")]
        ),
        Some(50.0)
    );
    let state = host.get_json("/api/plugins/pipeline/state");
    let history: Vec<Value> =
        serde_json::from_str(state["state"]["saved_actions"].as_str().unwrap()).unwrap();
    assert_eq!(history.len(), 100);
    assert_eq!(history[0]["client_id"], "c-50");
    assert_eq!(history[99]["client_id"], "c-149");
    host.wait_until(WAIT, || {
        (host.metric("fr_gateway_sessions", &[("gateway", "gw-1")]) == Some(7.0)).then_some(())
    });
    assert_eq!(
        host.metric(
            "fr_gateway_events_total",
            &[("gateway", "gw-1"), ("event", "heartbeat")]
        ),
        Some(2.0)
    );
    assert_eq!(plugin(&host, "pipeline")["faults"], 0);
    let (_, text) = host.get("/metrics");
    wasmon_test_support::promtool_check(&text).unwrap();
}

#[test]
fn a_broker_killed_mid_stream_loses_nothing_and_the_collector_reconnects() {
    let rabbit = RabbitMqServer::start();
    let queue = format!("{}_pipeline_results", unique("crash"));
    let rt = runtime();
    {
        let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
        rt.block_on(declare_with_dlq(&channel, &queue));
        rt.block_on(publish(&channel, &queue, results("crash", 0..3000)));
    }
    let manifest = pipeline_manifest(&rabbit.amqp_url(), &[&queue], "");
    let host = start(&[("pipeline", guests::COLLECTOR_RABBITMQ_PIPELINE, &manifest)]);
    let pid = host.pid();
    host.wait_until(WAIT, || {
        (requests(&host, "crash", "success") > 0.0).then_some(())
    });
    rabbit.kill();
    host.wait_for_log("amqp connection lost", WAIT);
    let name = format!("plugin:pipeline:{queue}");
    assert_eq!(
        host.metric("wasmon_amqp_connected", &[("name", &name)]),
        Some(0.0)
    );
    rabbit.restart();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(publish(&channel, &queue, results("crash", 3000..4000)));
    host.wait_until(Duration::from_secs(90), || {
        (requests(&host, "crash", "success") + requests(&host, "crash", "failure") >= 4000.0)
            .then_some(())
    });
    // Nothing left behind and nothing dead-lettered: every message was
    // handled by on-message and acked (at least once).
    host.wait_until(WAIT, || {
        (rt.block_on(depth(&channel, &queue)) == 0).then_some(())
    });
    assert_eq!(rt.block_on(depth(&channel, &format!("{queue}.dlq"))), 0);
    assert_eq!(host.pid(), pid, "the host was not restarted");
    host.wait_until(WAIT, || {
        (host.metric("wasmon_amqp_connected", &[("name", &name)]) == Some(1.0)).then_some(())
    });
    assert_eq!(
        host.metric("wasmon_amqp_disconnects_total", &[("name", &name)]),
        Some(1.0)
    );
}

#[test]
fn a_hot_reload_hands_the_queue_over_without_losing_a_message() {
    let rabbit = RabbitMqServer::shared();
    let queue = format!("{}_pipeline_results", unique("reload"));
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    rt.block_on(declare_with_dlq(&channel, &queue));
    let url = rabbit.amqp_url();
    rt.block_on(publish(&channel, &queue, results("reload", 0..20_000)));
    let host = start(&[(
        "pipeline",
        guests::COLLECTOR_RABBITMQ_PIPELINE,
        &pipeline_manifest(&url, &[&queue], "history = 10"),
    )]);
    let total = || requests(&host, "reload", "success") + requests(&host, "reload", "failure");
    host.wait_until(WAIT, || (total() > 0.0).then_some(()));
    // A new manifest: a new generation takes the queue over mid-stream.
    host.plugins().write_manifest(
        "pipeline",
        &pipeline_manifest(&url, &[&queue], "history = 20"),
    );
    host.wait_for_log(
        "consuming queues for the collector plugin=pipeline generation=2",
        WAIT,
    );
    let at_handover = total();
    assert!(
        at_handover < 20_000.0,
        "the queue was drained before the reload"
    );
    rt.block_on(publish(&channel, &queue, results("reload", 20_000..21_000)));
    host.wait_until(Duration::from_secs(120), || {
        (total() >= 21_000.0).then_some(())
    });
    host.wait_until(WAIT, || {
        (rt.block_on(depth(&channel, &queue)) == 0).then_some(())
    });
    assert_eq!(rt.block_on(depth(&channel, &format!("{queue}.dlq"))), 0);
    // Handed over, not shared: the old generation acked what it handled
    // before the new one started, so each message counts once.
    assert_eq!(total(), 21_000.0, "handover at {at_handover}");
    assert_eq!(plugin(&host, "pipeline")["generation"], 2);
}

#[test]
fn the_example_manifest_consumes_the_seed_queues_with_the_url_from_the_seed_variable() {
    let rabbit = RabbitMqServer::shared();
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    // The example consumes monitoring copies of the seed's queues; the
    // gateway events queue it declares itself.
    let face = "monitoring.face_pipeline_results";
    let phone = "monitoring.phone_pipeline_results";
    let actions = "monitoring.saved_actions";
    for queue in [face, phone, actions] {
        rt.block_on(channel.queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        ))
        .unwrap();
    }
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/plugins.d/rabbitmq_pipeline.toml"),
    )
    .unwrap();
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .env("MONITORING_RMQ_URL", rabbit.amqp_url())
            .plugin("rabbitmq_pipeline", guests::COLLECTOR_RABBITMQ_PIPELINE)
            .manifest("rabbitmq_pipeline", &manifest),
    );
    host.wait_ready(WAIT);
    let gateway = "monitoring.gateway_events";
    host.wait_until(WAIT, || {
        (host.metric(
            "wasmon_amqp_connected",
            &[("name", &format!("plugin:rabbitmq_pipeline:{gateway}"))],
        ) == Some(1.0))
        .then_some(())
    });
    rt.block_on(publish(&channel, face, results("face", 0..4)));
    let phone_results: Vec<String> = (0..3)
        .map(|i| {
            // No `pipeline` field: read from the queue's name. Milliseconds.
            json!({"status": "success", "ingest_ts": 1_700_000_000_000u64 + i, "process_ts": 1_700_000_000_250u64 + i})
                .to_string()
        })
        .collect();
    rt.block_on(publish(&channel, phone, phone_results));
    rt.block_on(publish(
        &channel,
        gateway,
        [json!({"gateway_id": "gw-a", "event": "connected", "clients": 3}).to_string()],
    ));
    rt.block_on(publish(
        &channel,
        actions,
        [json!({"action": "deactivate", "client_id": "c-9", "outcome": "success"}).to_string()],
    ));
    host.wait_until(WAIT, || {
        (requests(&host, "phone", "success") == 3.0
            && requests(&host, "face", "success") == 3.0
            && requests(&host, "face", "failure") == 1.0)
            .then_some(())
    });
    let mean = host
        .metric(
            "fr_pipeline_latency_seconds",
            &[("pipeline", "phone"), ("stat", "mean")],
        )
        .unwrap();
    assert!((mean - 0.25).abs() < 1e-6, "{mean}");
    host.wait_until(WAIT, || {
        (host.metric(
            "fr_saved_actions_total",
            &[("action", "deactivate"), ("outcome", "success")],
        ) == Some(1.0)
            && host.metric("fr_gateway_sessions", &[("gateway", "gw-a")]) == Some(3.0))
        .then_some(())
    });
    let logs = host.logs();
    assert!(!logs.contains("guest:guest@"), "password in the logs");
}
