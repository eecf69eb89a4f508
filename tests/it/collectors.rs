//! The seed collectors together, each from its shipped example manifest
//! (`examples/plugins.d/`) configured only through the seeds' environment
//! variables, against real Redis, RabbitMQ, PostgreSQL and S3 servers: every
//! one reports, seed 003's rule sees the chunks, and `/metrics` stays
//! promtool-clean with all of them loaded.

use crate::amqp::{open, publish, runtime};
use serde_json::json;
use std::time::Duration;
use wasmon_test_support::{
    Host, HostOptions, PostgresServer, RabbitMqServer, RedisServer, S3Server, guests, metric_value,
    promtool_check,
};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(60);

fn example(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../examples/plugins.d/{name}.toml")),
    )
    .unwrap()
}

#[test]
fn every_seed_collector_reports_from_its_example_manifest_and_metrics_stay_promtool_clean() {
    let id = format!("{}x{}", std::process::id(), fastrand::u32(..));
    // Redis: seed 001's client states.
    let redis = RedisServer::start();
    redis.cmd(&["HSET", "Clients_status", "c1", "active", "c2", "Paused"]);
    redis.cmd(&["SADD", "deactivate_clients", "c3"]);
    // PostgreSQL: seed 003's chunks, 40 of them processing.
    let pg = PostgresServer::start();
    pg.psql(
        "CREATE TABLE chunks (id int, status text); \
         INSERT INTO chunks SELECT i, 'processing' FROM generate_series(1, 40) i; \
         INSERT INTO chunks SELECT i, 'done' FROM generate_series(41, 45) i;",
    );
    // S3: one bucket of three objects.
    let s3 = S3Server::shared();
    let bucket = format!("seed-{id}");
    s3.fill(&[(bucket.as_str(), &[("a", 100), ("b", 200), ("c", 300)])]);
    // RabbitMQ: the example's queues, under a prefix of this test's own so
    // other tests on the shared broker never consume them.
    let rabbit = RabbitMqServer::shared();
    let prefix = format!("seed{id}");
    let pipeline = example("rabbitmq_pipeline").replace("\"monitoring.", &format!("\"{prefix}."));
    let rt = runtime();
    let (_conn, channel) = rt.block_on(open(&rabbit.amqp_url()));
    for queue in [
        "face_pipeline_results",
        "phone_pipeline_results",
        "saved_actions",
    ] {
        rt.block_on(channel.queue_declare(
            format!("{prefix}.{queue}").as_str().into(),
            lapin::options::QueueDeclareOptions::durable(),
            lapin::types::FieldTable::default(),
        ))
        .unwrap();
    }

    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\ninterval = \"1s\"\n")
            .env("MONITORING_REDIS_HOST", "127.0.0.1")
            .env("MONITORING_REDIS_PORT", redis.port().to_string())
            .env("MONITORING_REDIS_DB", "0")
            .env("MONITORING_RMQ_URL", rabbit.amqp_url())
            .env(
                "MONITORING_MINIO_ENDPOINT",
                s3.endpoint().trim_start_matches("http://"),
            )
            .env("MONITORING_MINIO_ACCESS_KEY", s3.access_key())
            .env("MONITORING_MINIO_SECRET_KEY", s3.secret_key())
            .env("MONITORING_MINIO_SECURE", "false")
            .env("PIXCRAWLER_DB_URL", pg.url())
            .env("PIXCRAWLER_POLL_INTERVAL_SECONDS", "1")
            .plugin("redis", guests::COLLECTOR_REDIS)
            .manifest("redis", &example("redis"))
            .plugin("rabbitmq_pipeline", guests::COLLECTOR_RABBITMQ_PIPELINE)
            .manifest("rabbitmq_pipeline", &pipeline)
            .plugin("sql", guests::COLLECTOR_SQL)
            .manifest("sql", &example("sql"))
            .plugin("active_chunks", guests::RULE_THRESHOLD)
            .manifest("active_chunks", &example("active_chunks"))
            .plugin("storage", guests::COLLECTOR_STORAGE)
            .manifest("storage", &example("storage")),
    );
    host.wait_ready(WAIT);
    let face = format!("{prefix}.face_pipeline_results");
    let results = (0..5).map(|i| {
        json!({"pipeline": "face", "status": "success", "ingest_ts": 1_700_000_000.0 + f64::from(i), "process_ts": 1_700_000_000.5 + f64::from(i)})
            .to_string()
    });
    // The consumer may still be starting: publishing to the durable queue
    // keeps the messages until it does.
    rt.block_on(publish(&channel, &face, results));

    let text = host.wait_until(WAIT, || {
        let text = host.get("/metrics").1;
        let all = [
            metric_value(
                &text,
                "fr_gateway_clients",
                &[("plugin", "redis"), ("state", "active")],
            ) == Some(1.0),
            metric_value(&text, "pixcrawler_active_chunks", &[("plugin", "sql")]) == Some(40.0),
            metric_value(
                &text,
                "storage_bucket_bytes",
                &[("plugin", "storage"), ("bucket", &bucket)],
            ) == Some(600.0),
            metric_value(
                &text,
                "fr_pipeline_requests_total",
                &[
                    ("plugin", "rabbitmq_pipeline"),
                    ("pipeline", "face"),
                    ("status", "success"),
                ],
            ) == Some(5.0),
        ];
        all.iter().all(|ok| *ok).then_some(text)
    });
    // Seed 003's rule fires at 40 active chunks.
    host.wait_until(WAIT, || {
        let alerts = host.get_json("/api/alerts?rule=active_chunks");
        alerts["alerts"]
            .as_array()?
            .iter()
            .any(|a| {
                a["name"] == "active_chunks"
                    && a["state"] == "firing"
                    && a["severity"] == "critical"
            })
            .then_some(())
    });
    assert_eq!(
        promtool_check(&text),
        Ok(()),
        "promtool with every collector loaded"
    );
    for plugin in [
        "redis",
        "rabbitmq_pipeline",
        "sql",
        "active_chunks",
        "storage",
    ] {
        let view = host.get_json(&format!("/api/plugins/{plugin}"));
        assert_eq!(view["status"], "running", "{view}");
    }
    // No secret of any of them in the log.
    let logs = host.logs();
    assert!(
        !logs.contains(s3.secret_key()),
        "the S3 secret is in the log"
    );
    assert!(
        !logs.contains("guest:guest@"),
        "the broker password is in the log"
    );
}
