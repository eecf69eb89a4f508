//! Smoke tests of the real servers: each starts, is used for real, and stops
//! with nothing left running. They fail, never skip, when a server cannot start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;
use wasmon_test_support::{
    ProcessId, PrometheusServer, RabbitMqServer, Recorder, RedisServer, RespValue,
    leftover_processes, promtool_check,
};

/// Asserts none of `before` runs any more, nor anything carrying `tag`.
#[track_caller]
fn assert_all_gone(before: &[ProcessId], tag: &str) {
    let mut left = leftover_processes(tag);
    left.extend(before.iter().filter(|p| p.is_running()));
    assert!(
        left.is_empty(),
        "processes left running: {:?}",
        left.iter()
            .map(|p| (p.pid, p.cmdline()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn redis_starts_answers_and_stops() {
    let redis = RedisServer::start();
    assert_eq!(redis.cmd(&["PING"]), RespValue::Simple("PONG".into()));
    assert_eq!(
        redis.cmd(&["HSET", "Clients_status", "client-1", "active"]),
        RespValue::Integer(1)
    );
    assert_eq!(
        redis.cmd(&["HGETALL", "Clients_status"]),
        RespValue::Array(Some(vec![
            RespValue::Bulk(Some(b"client-1".to_vec())),
            RespValue::Bulk(Some(b"active".to_vec())),
        ]))
    );
    assert!(matches!(redis.cmd(&["NOSUCHCOMMAND"]), RespValue::Error(_)));

    let other = RedisServer::start();
    assert_ne!(other.port(), redis.port());
    assert_eq!(
        other.cmd(&["EXISTS", "Clients_status"]),
        RespValue::Integer(0)
    );

    let (tag, port, before) = (redis.tag().to_string(), redis.port(), redis.processes());
    assert_eq!(before.len(), 1, "{before:?}");
    drop(redis);
    assert_all_gone(&before, &tag);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn rabbitmq_starts_handshakes_and_stops_with_its_helpers_and_epmd() {
    let rabbit = RabbitMqServer::start();
    // Readiness already proved the AMQP handshake; the CLI proves the node works.
    let queues = rabbit.rabbitmqctl(&["list_queues", "name"]);
    assert!(!queues.contains("error"), "{queues}");
    assert!(
        rabbit
            .amqp_url()
            .ends_with(&format!(":{}/%2f", rabbit.port()))
    );

    let tag = rabbit.tag().to_string();
    let before = rabbit.processes();
    let names: Vec<String> = before.iter().map(|p| p.cmdline()).collect();
    assert!(names.iter().any(|c| c.contains("beam")), "{names:#?}");
    assert!(names.iter().any(|c| c.starts_with("epmd")), "{names:#?}");
    let port = rabbit.port();
    drop(rabbit);
    assert_all_gone(&before, &tag);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn the_shared_rabbitmq_is_one_broker() {
    let a = RabbitMqServer::shared();
    let b = RabbitMqServer::shared();
    assert!(std::ptr::eq(a, b));
    assert!(std::net::TcpStream::connect(("127.0.0.1", a.port())).is_ok());
}

#[test]
fn prometheus_scrapes_a_file_sd_target_and_stops() {
    let target = Recorder::start();
    target.serve_metrics("# TYPE smoke_value gauge\nsmoke_value{source=\"recorder\"} 42\n");
    let prometheus = PrometheusServer::start::<&str>(&[]);
    let instance = target.addr().to_string();
    prometheus.set_targets(&[&instance]);
    let up = prometheus.wait_for_target_up(&instance, Duration::from_secs(30));
    assert_eq!(up["labels"]["job"], "wasmon");
    let result = prometheus.query("smoke_value{source=\"recorder\"}");
    assert_eq!(result.len(), 1, "{result:?}");
    assert_eq!(result[0]["value"][1], "42");
    assert!(target.requests().iter().all(|r| r.path == "/metrics"));

    let (tag, before) = (prometheus.tag().to_string(), prometheus.processes());
    drop(prometheus);
    assert_all_gone(&before, &tag);
}

#[test]
fn alertmanager_keeps_a_posted_alert_resolves_it_and_stops() {
    let am = wasmon_test_support::AlertmanagerServer::start();
    let post = |ends_at: &str| {
        let body = format!(
            r#"[{{"labels": {{"alertname": "smoke"}}, "startsAt": "2020-01-01T00:00:00Z", "endsAt": "{ends_at}"}}]"#
        );
        let url = format!("{}/api/v2/alerts", am.url());
        let response = wasmon_test_support::http::request(
            "POST",
            &url,
            &[("content-type", "application/json")],
            Some(body.as_bytes()),
        )
        .unwrap();
        assert!(
            response.status.is_success(),
            "{}: {}",
            response.status,
            response.text()
        );
    };
    post("2999-01-01T00:00:00Z");
    let alerts = am.alerts_with(&[("alertname", "smoke")]);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["status"]["state"], "active");
    post("2020-01-01T00:00:01Z");
    assert!(
        am.alerts_with(&[("alertname", "smoke")]).is_empty(),
        "resolved"
    );

    let (tag, before) = (am.tag().to_string(), am.processes());
    drop(am);
    assert_all_gone(&before, &tag);
}

#[test]
fn promtool_accepts_good_text_and_explains_bad_text() {
    assert_eq!(
        promtool_check("# HELP x_total Things.\n# TYPE x_total counter\nx_total 1\n"),
        Ok(())
    );
    let lint = promtool_check("# HELP x Things.\n# TYPE x counter\nx 1\n").unwrap_err();
    assert!(lint.contains("_total"), "{lint}");
    let parse = promtool_check("this is { not metrics\n").unwrap_err();
    assert!(!parse.is_empty());
}
