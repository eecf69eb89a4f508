//! Seed 004's supervisor API against the real binary: stop, start, restart
//! and reset of a plugin with their restart-history entries; a stopped plugin
//! is not called, its series go stale, and it stays stopped across hot
//! reloads (of itself and of another plugin) and a host restart; 400/404/409
//! details, pagination edges, the admin guard (401 with a token, 403 from the
//! network without one); `plugin.stopped`/`plugin.started` reach a `/ws` client;
//! a stopped collector stops consuming its RabbitMQ queue until started.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);
const SUP: &str = "/api/system/supervisor";

fn counter_host(config: &str) -> Host {
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&format!("[sampling]\nenabled = false\n{config}"))
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"100ms\"\n"),
    );
    wait_plugin(&host, "counter", |p| p["status"] == "running");
    host
}

fn wait_plugin(host: &Host, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    host.wait_until(WAIT, || {
        let (status, body) = host.get(&format!("/api/plugins/{name}"));
        let view: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK && check(&view)).then_some(view)
    })
}

fn sample(host: &Host, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&host.get("/metrics").1, name, labels)
}

fn worker(host: &Host, name: &str) -> Value {
    let status = host.get_json(SUP);
    status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no worker {name} in {status:#}"))
}

/// POSTs a control route and checks it answered 200 `success`.
fn control(host: &Host, path: &str) -> Value {
    let (status, body) = host.post(path);
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["success"], true, "{answer:#}");
    answer
}

fn history(host: &Host, query: &str) -> Value {
    host.get_json(&format!("{SUP}/restart-history{query}"))
}

#[test]
fn stop_start_restart_and_reset_change_the_worker_and_leave_history() {
    let host = counter_host("");
    let w = worker(&host, "counter");
    assert_eq!(w["kind"], "plugin");
    assert_eq!(w["status"], "running");
    assert_eq!(w["max_restarts"], 5);
    assert!(w["last_started_at"].is_string(), "{w:#}");
    let sampler = worker(&host, "system");
    assert_eq!(sampler["kind"], "sampler");
    assert_eq!(sampler["status"], "stopped", "disabled by config");
    let status = host.get_json(&format!("{SUP}/status"));
    assert_eq!(status["running"], true);
    assert_eq!(
        status["worker_count"],
        status["workers"].as_array().unwrap().len()
    );
    let counted = host.wait_until(WAIT, || {
        sample(&host, "fixture_collected", &[]).filter(|v| *v >= 3.0)
    });

    // Stop: not called any more, its series go stale.
    let answer = control(&host, &format!("{SUP}/workers/counter/stop"));
    assert_eq!(answer["worker_name"], "counter");
    assert_eq!(answer["worker"]["status"], "stopped");
    assert_eq!(worker(&host, "counter")["status"], "stopped");
    host.wait_until(WAIT, || {
        sample(&host, "fixture_collected", &[])
            .is_none()
            .then_some(())
    });
    let calls = wait_plugin(&host, "counter", |_| true)["calls"]
        .as_u64()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let view = wait_plugin(&host, "counter", |_| true);
    assert_eq!(
        view["calls"].as_u64().unwrap(),
        calls,
        "a stopped plugin is not called"
    );
    assert!(sample(&host, "fixture_collected", &[]).is_none());
    let again = control(&host, &format!("{SUP}/workers/counter/stop"));
    assert!(
        again["message"].as_str().unwrap().contains("already"),
        "{again:#}"
    );

    // Start: a new instance, its state kept (the count goes on).
    let answer = control(&host, &format!("{SUP}/workers/counter/start"));
    assert_eq!(answer["worker"]["status"], "running", "{answer:#}");
    let resumed = host.wait_until(WAIT, || sample(&host, "fixture_collected", &[]));
    assert!(
        resumed > counted,
        "the count restarted: {counted} then {resumed}"
    );

    // Restart and reset.
    let answer = control(&host, &format!("{SUP}/workers/counter/restart"));
    assert_eq!(answer["worker"]["status"], "running", "{answer:#}");
    control(&host, &format!("{SUP}/reset/counter"));

    let page = history(&host, "");
    let actions: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["worker_name"], "counter");
            assert_eq!(i["status"], "manual");
            i["action"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        actions,
        ["reset", "restart", "start", "stop"],
        "newest first"
    );
    assert_eq!(page["pagination"]["total"], 4);
    assert_eq!(page["pagination"]["has_more"], false);
    // The plugin route reads the same history (oldest first).
    let plugin_history = host.get_json("/api/plugins/counter/restart-history");
    assert_eq!(plugin_history["items"].as_array().unwrap().len(), 4);
    assert_eq!(plugin_history["items"][0]["action"], "stop");
}

#[test]
fn a_fault_shows_as_crashed_then_success_in_the_history() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config(
                "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"100ms\"\n",
            )
            .plugin("trappy", guests::GUEST_TRAP_CALL)
            .manifest("trappy", "interval = \"200ms\"\nmax_restarts = 100\n"),
    );
    let page = host.wait_until(WAIT, || {
        let page = history(&host, "?worker_name=trappy");
        let statuses: Vec<_> = page["items"]
            .as_array()?
            .iter()
            .map(|i| i["status"].clone())
            .collect();
        (statuses.contains(&json!("crashed")) && statuses.contains(&json!("success")))
            .then_some(page)
    });
    let first = &page["items"][0];
    assert!(first["timestamp"].is_string());
    assert!(first["attempt"].is_u64());
    let crashed = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "crashed")
        .unwrap();
    assert!(
        crashed["error"].as_str().unwrap().contains("trap"),
        "{crashed:#}"
    );
    assert!(worker(&host, "trappy")["last_crashed_at"].is_string());
}

#[test]
fn a_stopped_plugin_stays_stopped_across_hot_reloads_and_a_host_restart() {
    let mut host = counter_host("");
    control(&host, &format!("{SUP}/workers/counter/stop"));
    let calls = wait_plugin(&host, "counter", |_| true)["calls"].clone();
    let stopped = host.dir().join("data/stopped.json");
    let list: Value = serde_json::from_slice(&std::fs::read(&stopped).unwrap()).unwrap();
    assert_eq!(list, json!(["counter"]));

    // A new version of itself: loaded, still stopped, never called.
    host.plugins().install("counter", guests::GUEST_COUNTER_V2);
    let view = wait_plugin(&host, "counter", |p| p["generation"] == 2);
    assert_eq!(view["status"], "stopped");
    // Another plugin comes and goes through a reload of everything.
    host.plugins().install("other", guests::GUEST_COUNTER);
    wait_plugin(&host, "other", |p| p["status"] == "running");
    assert_eq!(host.post("/api/plugins/reload").0, StatusCode::OK);
    std::thread::sleep(Duration::from_millis(500));
    let view = wait_plugin(&host, "counter", |_| true);
    assert_eq!(view["status"], "stopped");
    assert_eq!(view["calls"], calls, "not called while stopped: {view:#}");
    assert!(sample(&host, "fixture_build", &[("build", "2")]).is_none());

    // The host restarts with the same data directory: still stopped.
    host.restart();
    host.wait_ready(WAIT);
    wait_plugin(&host, "other", |p| p["status"] == "running");
    let view = wait_plugin(&host, "counter", |p| p["generation"] == 1);
    assert_eq!(view["status"], "stopped", "{view:#}");
    assert_eq!(worker(&host, "counter")["status"], "stopped");
    std::thread::sleep(Duration::from_millis(300));
    assert!(sample(&host, "fixture_build", &[("build", "2")]).is_none());

    control(&host, &format!("{SUP}/workers/counter/start"));
    host.wait_until(WAIT, || sample(&host, "fixture_build", &[("build", "2")]));
    let list: Value = serde_json::from_slice(&std::fs::read(&stopped).unwrap()).unwrap();
    assert_eq!(list, json!([]));
}

#[test]
fn errors_are_details_and_pagination_has_edges() {
    let host = counter_host("");
    for (path, code) in [
        (format!("{SUP}/workers/1bad/stop"), 400),
        (format!("{SUP}/workers/bad-name/start"), 400),
        (format!("{SUP}/reset/_x"), 400),
        (format!("{SUP}/workers/nobody/stop"), 404),
        (format!("{SUP}/workers/nobody/restart"), 404),
        (format!("{SUP}/reset/nobody"), 404),
        (format!("{SUP}/workers/system/stop"), 409),
        (format!("{SUP}/workers/system/restart"), 409),
        (format!("{SUP}/reset/system"), 409),
    ] {
        let (status, body) = host.post(&path);
        assert_eq!(status.as_u16(), code, "{path}: {body}");
        let detail: Value = serde_json::from_str(&body).unwrap();
        assert!(detail["detail"].is_string(), "{path}: {body}");
    }
    let (_, body) = host.post(&format!("{SUP}/workers/system/stop"));
    assert!(body.contains("native samplers cannot be stopped"), "{body}");

    for _ in 0..3 {
        control(&host, &format!("{SUP}/reset/counter"));
    }
    let page = history(&host, "?limit=2&offset=1");
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["pagination"]["total"], 3);
    assert_eq!(page["pagination"]["has_more"], false);
    let page = history(&host, "?limit=1");
    assert_eq!(page["pagination"]["has_more"], true);
    assert_eq!(page["pagination"]["items_count"], 1);
    let page = history(&host, "?offset=50");
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["pagination"]["total"], 3);
    assert_eq!(page["pagination"]["has_more"], false);
    assert_eq!(
        history(&host, "?worker_name=nobody")["pagination"]["total"],
        0
    );
    assert_eq!(history(&host, "?limit=100")["pagination"]["limit"], 100);
    for query in [
        "?limit=0",
        "?limit=101",
        "?limit=-1",
        "?offset=x",
        "?worker_name=1x",
    ] {
        let (status, body) = host.get(&format!("{SUP}/restart-history{query}"));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(serde_json::from_str::<Value>(&body).unwrap()["detail"].is_string());
    }
}

/// A non-loopback IPv4 address of this machine (the source address of a
/// route outward; no packet is sent).
fn non_loopback_address() -> std::net::IpAddr {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.connect("10.255.255.255:9").unwrap();
    let ip = socket.local_addr().unwrap().ip();
    assert!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "this test needs a non-loopback address, got {ip}"
    );
    ip
}

#[test]
fn every_post_needs_the_admin_token() {
    let posts = [
        format!("{SUP}/workers/counter/stop"),
        format!("{SUP}/workers/counter/start"),
        format!("{SUP}/workers/counter/restart"),
        format!("{SUP}/reset/counter"),
    ];
    // With a token: 401 without it, from loopback too.
    let host = counter_host("[server]\nadmin_token = \"s3cret\"\n");
    for path in &posts {
        let (status, body) = host.post(path);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(serde_json::from_str::<Value>(&body).unwrap()["detail"].is_string());
    }
    assert_eq!(worker(&host, "counter")["status"], "running");
    let r = host.request(
        "POST",
        &posts[0],
        &[("authorization", "Bearer s3cret")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(worker(&host, "counter")["status"], "stopped");

    // Without a token: 403 from the network, reads still answer.
    let ip = non_loopback_address();
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .env("MONITOR_HOST", "0.0.0.0")
            .plugin("counter", guests::GUEST_COUNTER),
    );
    host.wait_ready(WAIT);
    let url = |path: &str| format!("http://{ip}:{}{path}", host.addr().port());
    for path in &posts {
        let r = wasmon_test_support::http::request("POST", &url(path), &[], None).unwrap();
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(
            r.json()["detail"]
                .as_str()
                .unwrap()
                .contains("server.admin_token")
        );
    }
    let r = wasmon_test_support::http::request("GET", &url(SUP), &[], None).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn stop_and_start_are_pushed_to_websocket_clients() {
    let host = counter_host("");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("ws://{}/ws", host.addr());
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let subscribe = json!({"action": "subscribe", "channels": ["plugins"]});
        ws.send(Message::text(subscribe.to_string())).await.unwrap();
        let mut next = async |kind: &str| loop {
            let frame = tokio::time::timeout(WAIT, ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {kind} within {WAIT:?}"))
                .unwrap()
                .unwrap();
            if let Message::Text(text) = frame {
                let message: Value = serde_json::from_str(&text).unwrap();
                if message["type"] == kind {
                    return message;
                }
            }
        };
        next("system.subscribed").await;
        control(&host, &format!("{SUP}/workers/counter/stop"));
        let stopped = next("plugin.stopped").await;
        assert_eq!(stopped["channel"], "plugins");
        assert_eq!(stopped["data"]["plugin"], "counter");
        assert_eq!(stopped["data"]["status"], "stopped");
        control(&host, &format!("{SUP}/workers/counter/start"));
        let started = next("plugin.started").await;
        assert_eq!(started["data"]["plugin"], "counter");
        assert_eq!(started["data"]["status"], "running");
    });
    let types: Vec<_> = host.get_json("/api/system/websocket/events")["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["type"].as_str().unwrap().to_string())
        .collect();
    assert!(types.contains(&"plugin.stopped".to_string()));
    assert!(types.contains(&"plugin.started".to_string()));
}

/// Messages waiting in `queue`.
async fn depth(channel: &lapin::Channel, queue: &str) -> u32 {
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), options, lapin::types::FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

#[test]
fn a_stopped_collector_stops_consuming_its_queues_until_started() {
    let rabbit = wasmon_test_support::RabbitMqServer::shared();
    let queue = format!("itsup-{}-{}", std::process::id(), fastrand::u32(..));
    let rt = super::amqp_plugins::runtime();
    let (_conn, channel) = rt.block_on(super::amqp_plugins::open(&rabbit.amqp_url()));
    rt.block_on(channel.queue_declare(
        queue.as_str().into(),
        lapin::options::QueueDeclareOptions::durable(),
        lapin::types::FieldTable::default(),
    ))
    .unwrap();
    let manifest = format!(
        "interval = \"200ms\"\n[capabilities.rabbitmq]\nurl = {url:?}\n\
         [[capabilities.rabbitmq.consume]]\nqueue = {queue:?}\ndepth_interval = \"200ms\"\n",
        url = rabbit.amqp_url()
    );
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("consumer", guests::GUEST_AMQP_PROBE)
            .manifest("consumer", &manifest),
    );
    host.wait_ready(WAIT);
    let publish = |bodies: &[&str]| {
        rt.block_on(super::amqp_plugins::publish(
            &channel,
            &queue,
            bodies.iter().map(|b| b.to_string()),
        ))
    };
    publish(&["one"]);
    host.wait_until(WAIT, || {
        (sample(&host, "amqp_probe_received", &[]) == Some(1.0)).then_some(())
    });

    control(&host, &format!("{SUP}/workers/consumer/stop"));
    let name = format!("plugin:consumer:{queue}");
    host.wait_until(WAIT, || {
        (sample(&host, "wasmon_amqp_connected", &[("name", &name)]) != Some(1.0)).then_some(())
    });
    publish(&["two", "three"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        rt.block_on(depth(&channel, &queue)),
        2,
        "consumed while stopped"
    );
    assert!(
        sample(&host, "amqp_probe_received", &[]).is_none(),
        "series not stale"
    );

    control(&host, &format!("{SUP}/workers/consumer/start"));
    host.wait_until(WAIT, || {
        (rt.block_on(depth(&channel, &queue)) == 0).then_some(())
    });
    let acked = || {
        sample(
            &host,
            "wasmon_amqp_deliveries_total",
            &[("name", &name), ("outcome", "acked")],
        )
    };
    host.wait_until(WAIT, || (acked() == Some(3.0)).then_some(()));
}
