//! Live push over WebSocket (`/ws`, `/ws/metrics`) against the real binary,
//! with a real WebSocket client (tokio-tungstenite): subscribers get an
//! `alerts` message when a rule fires, `plugins` messages on hot reload,
//! `events` when an event is posted, `metrics` updates of their selection
//! only; a client that never reads is sent `system.lagged` and disconnected
//! while `/metrics` keeps answering; the client cap answers 503 and the admin
//! token guards the upgrade; the registry lists every type with a schema.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn ws_url(host: &Host, path: &str) -> String {
    format!("ws://{}{path}", host.addr())
}

async fn connect(host: &Host, path: &str) -> Ws {
    let (ws, response) = tokio_tungstenite::connect_async(ws_url(host, path))
        .await
        .unwrap_or_else(|e| panic!("connect to {path} failed: {e}; host log:\n{}", host.logs()));
    assert_eq!(response.status(), 101);
    ws
}

/// The status and `detail` of a refused upgrade.
async fn refused(request: impl IntoClientRequest + Unpin) -> (u16, String) {
    match tokio_tungstenite::connect_async(request).await {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            (
                response.status().as_u16(),
                json["detail"].as_str().unwrap_or_default().to_string(),
            )
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, got an upgrade"),
    }
}

/// The next JSON text message, within `WAIT`.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no message within the wait")
            .expect("the server closed the connection")
            .expect("read failed");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Messages until one of type `kind` that `check` accepts; returns it and
/// every message before it.
async fn wait_for(ws: &mut Ws, kind: &str, check: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, next(ws))
            .await
            .unwrap_or_else(|_| panic!("no {kind} within {WAIT:?}; got {seen:#?}"));
        if message["type"] == kind && check(&message) {
            return (message, seen);
        }
        seen.push(message);
    }
}

async fn subscribe(ws: &mut Ws, request: Value) -> Value {
    ws.send(Message::text(request.to_string())).await.unwrap();
    let (ack, _) = wait_for(ws, "system.subscribed", |_| true).await;
    ack
}

fn registry_types(host: &Host) -> Vec<String> {
    host.get_json("/api/system/websocket/events")["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap().to_string())
        .collect()
}

const STATIC_RULE: &str = "interval = \"200ms\"\n[config]\nfiring = false\n";

#[test]
fn subscribers_get_alerts_when_a_rule_fires_and_plugins_on_hot_reload() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"200ms\"\n")
            .plugin("watch", guests::GUEST_RULE_STATIC)
            .manifest("watch", STATIC_RULE),
    );
    host.wait_ready(WAIT);
    let types = registry_types(&host);
    runtime().block_on(async {
        let mut ws = connect(&host, "/ws").await;
        let ack = subscribe(
            &mut ws,
            json!({"action": "subscribe", "channels": ["alerts", "plugins"]}),
        )
        .await;
        assert_eq!(ack["channel"], "system");
        assert_eq!(ack["data"]["channels"], json!(["alerts", "plugins"]));

        // A manifest change reloads the rule, which now fires.
        host.plugins()
            .write_manifest("watch", &STATIC_RULE.replace("false", "true"));
        let (firing, before) = wait_for(&mut ws, "alert.firing", |_| true).await;
        assert_eq!(firing["channel"], "alerts");
        assert_eq!(firing["data"]["rule"], "watch");
        assert_eq!(firing["data"]["name"], "static");
        assert_eq!(firing["data"]["severity"], "warning");
        assert_eq!(firing["data"]["state"], "firing");
        assert!(firing["ts"].as_u64().unwrap() > 0);
        assert!(
            before
                .iter()
                .any(|m| m["type"] == "plugin.reloaded" && m["data"]["plugin"] == "watch"),
            "the rule's reload came first: {before:#?}"
        );

        // A new component of the collector: hot reload.
        host.plugins().install("counter", guests::GUEST_COUNTER_V2);
        let (reloaded, _) = wait_for(&mut ws, "plugin.reloaded", |m| {
            m["data"]["plugin"] == "counter"
        })
        .await;
        assert_eq!(reloaded["channel"], "plugins");
        assert_eq!(reloaded["data"]["generation"], 2);
        assert_eq!(reloaded["data"]["kind"], "collector");
        assert_eq!(reloaded["data"]["status"], "running");

        // Back to fine: the alert resolves.
        host.plugins().write_manifest("watch", STATIC_RULE);
        let (resolved, seen) = wait_for(&mut ws, "alert.resolved", |_| true).await;
        assert_eq!(resolved["data"]["name"], "static");
        for message in seen.iter().chain([&firing, &reloaded, &resolved]) {
            let kind = message["type"].as_str().unwrap();
            assert!(
                types.iter().any(|t| t == kind),
                "{kind} is not in the registry"
            );
            assert!(
                ["alerts", "plugins"].contains(&message["channel"].as_str().unwrap()),
                "not subscribed: {message}"
            );
        }
    });
    let (_, metrics) = host.get("/metrics");
    assert!(
        metric_value(
            &metrics,
            "wasmon_ws_messages_total",
            &[("channel", "alerts")]
        )
        .unwrap()
            >= 2.0
    );
}

#[test]
fn posted_events_are_pushed_and_bad_requests_get_a_system_error() {
    let host = Host::start(HostOptions::new(BIN).config("[sampling]\nenabled = false\n"));
    runtime().block_on(async {
        let mut events = connect(&host, "/ws").await;
        subscribe(&mut events, json!({"action": "subscribe", "channels": ["events"]})).await;
        let mut alerts_only = connect(&host, "/ws").await;
        subscribe(&mut alerts_only, json!({"action": "subscribe", "channels": ["alerts"]})).await;

        let (status, body) = host.post_json(
            "/events",
            &json!({"service": "billing", "event_type": "deploy", "detail": "v42", "component": "api"}),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
        let (recorded, _) = wait_for(&mut events, "event.recorded", |_| true).await;
        assert_eq!(recorded["channel"], "events");
        let data = &recorded["data"];
        assert_eq!(data["event_type"], "deploy");
        assert_eq!(data["service"], "billing");
        assert_eq!(data["component"], "api");
        assert_eq!(data["detail"], "v42");
        assert_eq!(data["source"], "ingest");
        assert!(data["id"].as_str().is_some_and(|id| !id.is_empty()));

        // A client listening on alerts only got nothing of it.
        alerts_only
            .send(Message::text(r#"{"action": "dance"}"#))
            .await
            .unwrap();
        let error = next(&mut alerts_only).await;
        assert_eq!(error["type"], "system.error", "{error}");
        assert!(error["data"]["detail"].as_str().unwrap().contains("dance"), "{error}");
        alerts_only
            .send(Message::text(r#"{"action": "subscribe", "channels": ["nosuch"]}"#))
            .await
            .unwrap();
        let error = next(&mut alerts_only).await;
        assert_eq!(error["type"], "system.error", "{error}");
        alerts_only
            .send(Message::text(r#"{"action": "subscribe", "channels": ["metrics"]}"#))
            .await
            .unwrap();
        let error = next(&mut alerts_only).await;
        assert_eq!(error["type"], "system.error", "{error}");
        assert!(error["data"]["detail"].as_str().unwrap().contains("selection"), "{error}");
    });
}

#[test]
fn service_transitions_and_health_changes_are_pushed() {
    let host = Host::start(HostOptions::new(BIN).config(
        "[sampling]\nenabled = false\n[heartbeat]\ntimeout = \"1s\"\ncheck_interval = \"100ms\"\n[plugins.defaults]\nbackoff_initial = \"5s\"\n",
    ));
    host.wait_ready(WAIT);
    runtime().block_on(async {
        let mut ws = connect(&host, "/ws").await;
        subscribe(
            &mut ws,
            json!({"action": "subscribe", "channels": ["services", "system", "plugins"]}),
        )
        .await;

        // A service that goes silent is down, and up at its next heartbeat.
        let (status, body) = host.post_json("/heartbeat", &json!({"service": "billing"}));
        assert_eq!(status, StatusCode::OK, "{body}");
        let (down, _) = wait_for(&mut ws, "service.down", |_| true).await;
        assert_eq!(down["channel"], "services");
        assert_eq!(down["data"]["service"], "billing");
        assert_eq!(down["data"]["status"], "down");
        host.post_json("/heartbeat", &json!({"service": "billing"}));
        let (up, _) = wait_for(&mut ws, "service.up", |_| true).await;
        assert_eq!(up["data"]["service"], "billing");

        // A plugin that faults makes the host degraded; gone, healthy again.
        host.plugins().install("trap", guests::GUEST_TRAP_CALL);
        let (faulted, _) = wait_for(&mut ws, "plugin.faulted", |_| true).await;
        assert_eq!(faulted["data"]["plugin"], "trap");
        assert_eq!(faulted["data"]["status"], "crashed");
        assert!(
            faulted["data"]["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty())
        );
        let (degraded, _) = wait_for(&mut ws, "system.health_changed", |_| true).await;
        assert_eq!(degraded["channel"], "system");
        assert_eq!(degraded["data"]["status"], "degraded", "{degraded}");
        assert_eq!(degraded["data"]["previous"], "healthy");
        assert_eq!(degraded["data"]["plugins_down"]["trap"], "crashed");
        host.plugins().remove("trap");
        wait_for(&mut ws, "plugin.unloaded", |m| {
            m["data"]["plugin"] == "trap"
        })
        .await;
        let (healthy, _) = wait_for(&mut ws, "system.health_changed", |_| true).await;
        assert_eq!(healthy["data"]["status"], "healthy", "{healthy}");
        assert_eq!(healthy["data"]["previous"], "degraded");
    });
}

#[test]
fn metrics_updates_carry_the_selected_series_only() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\ninterval = \"200ms\"\n[server]\nws_metrics_interval = \"200ms\"\n")
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"100ms\"\n"),
    );
    host.wait_until(WAIT, || {
        metric_value(&host.get("/metrics").1, "fixture_collected", &[]).filter(|v| *v >= 1.0)
    });
    runtime().block_on(async {
        // The alias of seed 001.
        let mut ws = connect(&host, "/ws/metrics").await;
        let ack = subscribe(
            &mut ws,
            json!({"action": "subscribe", "channels": ["metrics"],
                   "metrics": {"name": "fixture_*", "labels": {"plugin": "counter", "build": "1"}}}),
        )
        .await;
        assert_eq!(ack["data"]["metrics"]["name"], json!(["fixture_*"]));
        let (snapshot, _) = wait_for(&mut ws, "metrics.snapshot", |_| true).await;
        let series = snapshot["data"]["series"].as_array().unwrap();
        assert_eq!(series.len(), 1, "{snapshot}");
        assert_eq!(series[0]["name"], "fixture_build");

        // A new selection (comma-separated names) replaces the old one.
        subscribe(
            &mut ws,
            json!({"action": "subscribe", "metrics": {"name": "fixture_collected,wasmon_nosuch"}}),
        )
        .await;
        let (snapshot, _) = wait_for(&mut ws, "metrics.snapshot", |_| true).await;
        let first = snapshot["data"]["series"][0]["value"].as_f64().unwrap();
        let mut last = first;
        for _ in 0..3 {
            let (update, _) = wait_for(&mut ws, "metrics.update", |_| true).await;
            assert_eq!(update["channel"], "metrics");
            let series = update["data"]["series"].as_array().unwrap();
            assert!(!series.is_empty(), "{update}");
            for s in series {
                assert_eq!(s["name"], "fixture_collected", "{update}");
                assert_eq!(s["labels"]["plugin"], "counter");
                let value = s["value"].as_f64().unwrap();
                assert!(value > last, "{value} after {last}");
                last = value;
            }
        }
        // Unsubscribed: no more metrics.
        ws.send(Message::text(r#"{"action": "unsubscribe", "channels": ["metrics"]}"#))
            .await
            .unwrap();
        let (ack, _) = wait_for(&mut ws, "system.subscribed", |_| true).await;
        assert_eq!(ack["data"]["channels"], json!([]));
        assert!(ack["data"]["metrics"].is_null());
    });
}

#[test]
fn a_client_that_never_reads_is_lagged_and_disconnected_while_metrics_keep_answering() {
    let host = Host::start(HostOptions::new(BIN).config(
        "[sampling]\nenabled = false\n[server]\nws_queue = 8\nmax_body_bytes = \"8MiB\"\n",
    ));
    let rt = runtime();
    let mut slow = rt.block_on(async {
        // A small receive buffer, so the socket fills soon.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(host.addr()).await.unwrap();
        let (mut ws, _) =
            tokio_tungstenite::client_async(ws_url(&host, "/ws"), MaybeTlsStream::Plain(stream))
                .await
                .unwrap();
        subscribe(
            &mut ws,
            json!({"action": "subscribe", "channels": ["events"]}),
        )
        .await;
        ws
    });
    // The slow client reads nothing from here on; events pile up.
    let detail = "x".repeat(4000);
    let batch: Vec<Value> = (0..1000)
        .map(
            |i| json!({"service": "flood", "event_type": format!("e{}", i % 10), "detail": detail}),
        )
        .collect();
    let batch = Value::Array(batch);
    host.wait_until(WAIT, || {
        let (status, body) = host.post_json("/v1/events/batch", &batch);
        assert!(status.is_success(), "{status} {body}");
        let (status, metrics) = host.get("/metrics");
        assert_eq!(status, StatusCode::OK);
        (metric_value(&metrics, "wasmon_ws_lagged_total", &[]) == Some(1.0)).then_some(())
    });
    let metrics = host.wait_until(WAIT, || {
        let (_, m) = host.get("/metrics");
        (metric_value(&m, "wasmon_ws_clients", &[]) == Some(0.0)).then_some(m)
    });
    assert!(metrics.contains("wasmon_ws_lagged_total 1"));
    // Reading now: what was in flight, maybe `system.lagged`, then the end.
    rt.block_on(async {
        let mut lagged = None;
        loop {
            match tokio::time::timeout(WAIT, slow.next())
                .await
                .expect("the connection stays open")
            {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    if message["type"] == "system.lagged" {
                        lagged = Some(message);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            }
        }
        if let Some(lagged) = lagged {
            assert_eq!(lagged["data"]["queue"], 8);
            assert!(
                lagged["data"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("server.ws_queue")
            );
        }
    });
    assert!(host.logs().contains("WebSocket client too slow"));
}

#[test]
fn a_silent_peer_that_answers_no_ping_is_closed_after_the_idle_timeout() {
    let host = Host::start(HostOptions::new(BIN).config(
        "[sampling]\nenabled = false\n[server]\nws_ping_interval = \"200ms\"\nws_idle_timeout = \"1s\"\n",
    ));
    let rt = runtime();
    // Connected, then never polled again: no pong ever goes back.
    let silent = rt.block_on(connect(&host, "/ws"));
    let mut live = rt.block_on(connect(&host, "/ws"));
    host.wait_until(WAIT, || {
        let (_, m) = host.get("/metrics");
        (metric_value(&m, "wasmon_ws_clients", &[]) == Some(2.0)).then_some(())
    });
    // The other one reads (and so answers pings) and stays.
    rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while let Ok(Some(frame)) = tokio::time::timeout_at(deadline, live.next()).await {
            frame.unwrap();
        }
    });
    host.wait_until(WAIT, || {
        let (_, m) = host.get("/metrics");
        (metric_value(&m, "wasmon_ws_clients", &[]) == Some(1.0)).then_some(())
    });
    drop(silent);
    rt.block_on(subscribe(
        &mut live,
        json!({"action": "subscribe", "channels": ["system"]}),
    ));
}

#[test]
fn clients_beyond_max_ws_clients_get_503_before_the_upgrade() {
    let host = Host::start(
        HostOptions::new(BIN).config("[sampling]\nenabled = false\n[server]\nmax_ws_clients = 2\n"),
    );
    runtime().block_on(async {
        let first = connect(&host, "/ws").await;
        let _second = connect(&host, "/ws/metrics").await;
        let (status, detail) = refused(ws_url(&host, "/ws")).await;
        assert_eq!(status, 503);
        assert!(detail.contains("server.max_ws_clients"), "{detail}");
        // One leaves: room for another.
        drop(first);
        let mut third = None;
        for _ in 0..100 {
            if let Ok((ws, _)) = tokio_tungstenite::connect_async(ws_url(&host, "/ws")).await {
                third = Some(ws);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(third.is_some(), "a slot was freed");
    });
    // Not a WebSocket request: 400 with a detail.
    let (status, body) = host.get("/ws");
    assert!(status.is_client_error(), "{status}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["detail"].is_string());
}

#[test]
fn the_admin_token_guards_the_upgrade_when_one_is_set() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n[server]\nadmin_token = \"s3cret\"\n"),
    );
    runtime().block_on(async {
        let (status, detail) = refused(ws_url(&host, "/ws")).await;
        assert_eq!(status, 401);
        assert!(detail.contains("token"), "{detail}");
        let (status, _) = refused(ws_url(&host, "/ws?token=wrong")).await;
        assert_eq!(status, 401);
        let mut request = ws_url(&host, "/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", "Bearer wrong".parse().unwrap());
        let (status, _) = refused(request).await;
        assert_eq!(status, 401);

        let mut ws = connect(&host, "/ws?token=s3cret").await;
        subscribe(
            &mut ws,
            json!({"action": "subscribe", "channels": ["system"]}),
        )
        .await;
        let mut request = ws_url(&host, "/ws/metrics").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        subscribe(
            &mut ws,
            json!({"action": "subscribe", "channels": ["plugins"]}),
        )
        .await;
    });
}

#[test]
fn the_registry_lists_every_event_type_with_its_channel_and_schema() {
    let host = Host::start(HostOptions::new(BIN).config("[sampling]\nenabled = false\n"));
    let registry = host.get_json("/api/system/websocket/events");
    let types = registry["event_types"].as_array().unwrap();
    assert_eq!(registry["total_count"], types.len());
    assert_eq!(registry["deprecated_count"], 0);
    let channels: Vec<&str> = registry["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        channels,
        [
            "metrics", "events", "alerts", "services", "plugins", "system"
        ]
    );
    for t in types {
        let name = t["type"].as_str().unwrap();
        let (domain, action) = name.split_once('.').unwrap();
        assert!(!domain.is_empty() && !action.is_empty(), "{name}");
        assert!(channels.contains(&t["channel"].as_str().unwrap()), "{t}");
        assert!(!t["description"].as_str().unwrap().is_empty(), "{t}");
        assert_eq!(t["deprecated"], false);
        let schema = &t["payload_schema"];
        assert_eq!(schema["type"], "object", "{name}: {schema}");
        assert!(
            schema["properties"]
                .as_object()
                .is_some_and(|p| !p.is_empty()),
            "{name}"
        );
    }
    for expected in [
        "alert.pending",
        "alert.firing",
        "alert.resolved",
        "event.recorded",
        "service.up",
        "service.down",
        "plugin.loaded",
        "plugin.reloaded",
        "plugin.faulted",
        "plugin.failed",
        "system.health_changed",
        "system.lagged",
        "metrics.update",
    ] {
        assert!(
            types.iter().any(|t| t["type"] == expected),
            "{expected} missing"
        );
    }
    let alert = types.iter().find(|t| t["type"] == "alert.firing").unwrap();
    let properties = &alert["payload_schema"]["properties"];
    for field in ["rule", "name", "labels", "severity", "state", "summary"] {
        assert!(properties[field].is_object(), "alert.firing lacks {field}");
    }
}
