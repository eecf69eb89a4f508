//! Issue 9, the plugin side: the `redis` capability against a real
//! `redis-server` (read-only by default, writes granted by name, nested
//! replies keep their structure, secrets never logged), and components built
//! against the frozen `wasmon:plugin@0.1.0` WIT loading and running on the
//! 0.2.0 host.

use serde_json::Value;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, RedisServer, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

fn start(plugins: &[(&str, &str, &str)]) -> Host {
    let mut options = HostOptions::new(BIN).config(
        "[sampling]\ninterval = \"1s\"\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n",
    );
    for (name, wasm, manifest) in plugins {
        options = options.plugin(name, wasm).manifest(name, manifest);
    }
    Host::start(options)
}

/// A `guest-redis-probe` manifest sending `commands` to `url`, with `extra`
/// lines in `[capabilities.redis]`.
fn probe_manifest(url: &str, extra: &str, commands: &[&[&str]]) -> String {
    let commands: Vec<String> = commands
        .iter()
        .map(|c| {
            let words: Vec<String> = c.iter().map(|w| format!("{w:?}")).collect();
            format!("[{}]", words.join(", "))
        })
        .collect();
    format!(
        "interval = \"200ms\"\nmax_restarts = 1000\n[capabilities.redis]\nurl = {url:?}\n{extra}\n[config]\ncommands = [{}]\n",
        commands.join(", ")
    )
}

/// The plugin's view, or null while it is not loaded yet.
fn plugin(host: &Host, name: &str) -> Value {
    let (status, body) = host.get(&format!("/api/plugins/{name}"));
    if status.is_success() {
        serde_json::from_str(&body).unwrap_or(Value::Null)
    } else {
        Value::Null
    }
}

fn metrics(host: &Host) -> String {
    host.get("/metrics").1
}

#[test]
fn reads_reach_redis_and_nested_replies_keep_their_structure() {
    let redis = RedisServer::start();
    redis.cmd(&["SET", "greeting", "hello"]);
    redis.cmd(&["XADD", "events", "1-0", "kind", "start", "job", "a"]);
    redis.cmd(&["XADD", "events", "2-0", "kind", "end", "job", "a"]);
    let manifest = probe_manifest(
        &redis.url(),
        "",
        &[
            &["GET", "greeting"],
            &["XRANGE", "events", "-", "+"],
            &["XINFO STREAM", "events"],
            &["CLIENT", "LIST"],
        ],
    );
    let host = start(&[("probe", guests::GUEST_REDIS_PROBE, &manifest)]);
    let text = host.wait_until(WAIT, || {
        let text = metrics(&host);
        metric_value(&text, "redis_probe_ok", &[("index", "3")]).map(|_| text)
    });
    for i in ["0", "1", "2", "3"] {
        assert_eq!(
            metric_value(&text, "redis_probe_ok", &[("index", i)]),
            Some(1.0),
            "command #{i}\n{text}"
        );
    }
    assert_eq!(
        metric_value(&text, "redis_probe_depth", &[("index", "0")]),
        Some(0.0)
    );
    // XRANGE: [[id, [field, value, ...]], ...]: three levels, 2 × (1 + 4) leaves.
    assert_eq!(
        metric_value(&text, "redis_probe_depth", &[("index", "1")]),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        metric_value(&text, "redis_probe_leaves", &[("index", "1")]),
        Some(10.0)
    );
    // XINFO STREAM holds its first and last entries, nested below it.
    let xinfo = metric_value(&text, "redis_probe_depth", &[("index", "2")]).unwrap();
    assert!(
        xinfo >= 3.0,
        "XINFO STREAM keeps its nesting: depth {xinfo}"
    );
    host.wait_for_log(
        r#"redis-probe #0 ok: Data([104, 101, 108, 108, 111])"#,
        WAIT,
    );
    assert_eq!(
        metric_value(
            &text,
            "wasmon_plugin_capability_calls_total",
            &[
                ("plugin", "probe"),
                ("capability", "redis"),
                ("result", "forbidden")
            ]
        ),
        None
    );
    assert_eq!(plugin(&host, "probe")["faults"], 0);
}

#[test]
fn writes_and_blocking_commands_are_forbidden_unless_granted_by_name() {
    let redis = RedisServer::start();
    redis.cmd(&["SET", "keep", "me"]);
    redis.cmd(&["RPUSH", "queue", "x"]);
    let forbidden: [&[&str]; 5] = [
        &["FLUSHALL"],
        &["CONFIG SET", "maxmemory", "1"],
        &["CONFIG", "SET", "maxmemory", "1"],
        &["DEL", "keep"],
        &["BLPOP", "nothing", "0"],
    ];
    let mut plugins = Vec::new();
    let manifests: Vec<(String, String)> = forbidden
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                format!("forbidden{i}"),
                probe_manifest(&redis.url(), "", &[c]),
            )
        })
        .collect();
    for (name, manifest) in &manifests {
        plugins.push((name.as_str(), guests::GUEST_REDIS_PROBE, manifest.as_str()));
    }
    // A write granted by name goes through.
    let granted = probe_manifest(
        &redis.url(),
        "write = [\"XADD\"]",
        &[&["XADD", "audit", "*", "by", "wasmon"]],
    );
    plugins.push(("granted", guests::GUEST_REDIS_PROBE, &granted));
    let host = start(&plugins);
    for (name, _) in &manifests {
        let view = host.wait_until(WAIT, || {
            let v = plugin(&host, name);
            (v["faults"].as_u64() >= Some(1)).then_some(v)
        });
        let error = view["last_error"].to_string();
        assert!(
            error.contains("capability") && error.contains("not in capabilities.redis.write"),
            "{name}: {error}"
        );
        assert!(
            error.contains(&redis.url()),
            "the error names the server: {error}"
        );
    }
    host.wait_for_log("redis-probe #0 forbidden-command: FLUSHALL", WAIT);
    host.wait_for_log("redis-probe #0 forbidden-command: CONFIG SET", WAIT);
    host.wait_for_log("redis-probe #0 forbidden-command: DEL", WAIT);
    host.wait_for_log("redis-probe #0 forbidden-command: BLPOP", WAIT);
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "redis_probe_ok", &[("plugin", "granted")])
    });
    // Nothing forbidden reached the server.
    let keep = format!("{:?}", redis.cmd(&["EXISTS", "keep"]));
    assert!(
        keep.contains('1'),
        "the key survived DEL and FLUSHALL: {keep}"
    );
    let len = format!("{:?}", redis.cmd(&["XLEN", "audit"]));
    assert!(!len.contains("(0)"), "the granted XADD wrote: {len}");
    let text = metrics(&host);
    assert!(
        metric_value(
            &text,
            "wasmon_plugin_capability_denied_total",
            &[("plugin", "forbidden0"), ("capability", "redis")]
        )
        .is_some_and(|n| n >= 1.0),
        "a forbidden command is a counted policy violation"
    );
}

#[test]
fn without_the_grant_redis_is_not_granted_and_a_capability_fault() {
    let redis = RedisServer::start();
    let manifest = "interval = \"200ms\"\nmax_restarts = 1000\n[config]\ncommands = [[\"PING\"]]\n";
    let host = start(&[("nogrant", guests::GUEST_REDIS_PROBE, manifest)]);
    let view = host.wait_until(WAIT, || {
        let v = plugin(&host, "nogrant");
        (v["faults"].as_u64() >= Some(1)).then_some(v)
    });
    let error = view["last_error"].to_string();
    assert!(
        error.contains("capability") && error.contains("no [capabilities.redis]"),
        "{error}"
    );
    host.wait_for_log("redis-probe #0 not-granted:", WAIT);
    let text = metrics(&host);
    assert!(
        metric_value(
            &text,
            "wasmon_plugin_faults_total",
            &[("plugin", "nogrant"), ("reason", "capability")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    drop(redis);
}

#[test]
fn the_password_is_never_logged_and_a_dead_server_is_a_connection_error() {
    let redis = RedisServer::start();
    redis.cmd(&["CONFIG", "SET", "requirepass", "s3cret-pass"]);
    let url = format!("redis://:s3cret-pass@127.0.0.1:{}", redis.port());
    let good = probe_manifest(&url, "", &[&["DBSIZE"]]);
    let wrong = probe_manifest(
        &format!("redis://:wrong-pass@127.0.0.1:{}", redis.port()),
        "",
        &[&["DBSIZE"]],
    );
    let from_env = probe_manifest(
        &format!("redis://127.0.0.1:{}", redis.port()),
        "password_env = \"WASMON_TEST_REDIS_PASSWORD\"",
        &[&["PING"]],
    );
    let dead_port = wasmon_test_support::free_port();
    let dead = probe_manifest(
        &format!("redis://127.0.0.1:{dead_port}"),
        "timeout = \"500ms\"",
        &[&["PING"]],
    );
    let mut options = HostOptions::new(BIN)
        .config("[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n")
        .env("WASMON_TEST_REDIS_PASSWORD", "s3cret-pass");
    for (name, manifest) in [
        ("good", &good),
        ("wrong", &wrong),
        ("env", &from_env),
        ("dead", &dead),
    ] {
        options = options
            .plugin(name, guests::GUEST_REDIS_PROBE)
            .manifest(name, manifest);
    }
    let host = Host::start(options);
    host.wait_until(WAIT, || {
        let text = metrics(&host);
        (metric_value(&text, "redis_probe_ok", &[("plugin", "good")]).is_some()
            && metric_value(&text, "redis_probe_ok", &[("plugin", "env")]).is_some())
        .then_some(())
    });
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "redis_probe_error", &[("plugin", "wrong")])
    });
    let dead_error = host.wait_for_log("redis-probe #0 connection: plugin dead:", WAIT);
    assert!(
        dead_error.contains(&format!("127.0.0.1:{dead_port}"))
            && dead_error.contains("plugin dead"),
        "the error names the plugin and the server: {dead_error}"
    );
    let view = plugin(&host, "good");
    assert!(
        !view.to_string().contains("s3cret-pass"),
        "the API never shows the password: {view}"
    );
    let logs = host.logs();
    assert!(
        !logs.contains("s3cret-pass"),
        "no log line holds the password"
    );
    assert!(!logs.contains("wrong-pass"), "nor a wrong one");
}

#[test]
fn a_component_built_against_wit_0_1_0_loads_and_runs_unchanged() {
    let redis = RedisServer::start();
    redis.cmd(&["XADD", "s", "1-0", "f", "v"]);
    let manifest = format!(
        "interval = \"200ms\"\n[capabilities.redis]\nurl = {:?}\n[config]\nredis_key = \"s\"\n",
        redis.url()
    );
    let host = start(&[("legacy", guests::GUEST_WIT_V010, &manifest)]);
    let text = host.wait_until(WAIT, || {
        let text = metrics(&host);
        metric_value(&text, "wit_v010_calls_total", &[("plugin", "legacy")])
            .is_some_and(|n| n >= 2.0)
            .then_some(text)
    });
    // 0.1.0 gets the nested XRANGE reply flattened: id, field, value.
    assert_eq!(
        metric_value(&text, "wit_v010_redis_leaves", &[("plugin", "legacy")]),
        Some(3.0),
        "{text}"
    );
    let view = plugin(&host, "legacy");
    assert_eq!(view["wit"], "0.1.0", "{view}");
    assert_eq!(view["status"], "running");
    assert_eq!(view["faults"], 0);
    host.wait_for_log("wit 0.1.0 fixture ready", WAIT);
    let sdk = start(&[("current", guests::GUEST_COUNTER, "interval = \"200ms\"\n")]);
    sdk.wait_until(WAIT, || {
        (plugin(&sdk, "current")["wit"] == "0.2.0").then_some(())
    });
}

/// Sends `signal` (`STOP`, `CONT`) to `pid`.
fn signal(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

fn breaker(host: &Host, name: &str) -> Value {
    let list = host.get_json("/api/system/circuit-breakers");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_stopped_redis_opens_the_breaker_which_half_opens_and_closes_when_it_returns() {
    let redis = RedisServer::start();
    let manifest = format!(
        "interval = \"200ms\"\nbreaker_threshold = 3\nbreaker_backoff = \"500ms\"\nbreaker_max_backoff = \"1s\"\n{}",
        probe_manifest(&redis.url(), "timeout = \"300ms\"", &[&["PING"], &["PING"]]).replacen(
            "interval = \"200ms\"\n",
            "",
            1
        )
    );
    let host = start(&[
        ("probe", guests::GUEST_REDIS_PROBE, &manifest),
        ("bystander", guests::GUEST_COUNTER, "interval = \"200ms\"\n"),
    ]);
    host.wait_until(WAIT, || {
        metric_value(
            &metrics(&host),
            "redis_probe_ok",
            &[("plugin", "probe"), ("index", "0")],
        )
    });
    assert_eq!(breaker(&host, "probe/redis")["state"], "closed");

    signal(redis.pid(), "STOP");
    let open = host.wait_until(WAIT, || {
        let b = breaker(&host, "probe/redis");
        (b["state"] == "open").then_some(b)
    });
    // Opened by the threshold's worth of failed calls, not more.
    assert_eq!(open["failure_count"], 3, "{open}");
    assert!(open["next_attempt"].is_string(), "{open}");
    assert!(
        open["last_failure"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("plugin probe") && e.contains(&redis.url())),
        "{open}"
    );
    let text = metrics(&host);
    assert_eq!(
        metric_value(
            &text,
            "wasmon_circuit_breaker_state",
            &[("plugin", "probe"), ("source", "redis")]
        ),
        Some(2.0)
    );
    // While open, calls answer at once naming the breaker (the second PING
    // of the call that opened it); /metrics and the other plugins keep serving.
    host.wait_for_log("circuit breaker probe/redis is open", WAIT);
    let before = metric_value(
        &text,
        "wasmon_plugin_calls_total",
        &[("plugin", "bystander"), ("result", "ok")],
    )
    .unwrap();
    host.wait_until(WAIT, || {
        let now = metric_value(
            &metrics(&host),
            "wasmon_plugin_calls_total",
            &[("plugin", "bystander"), ("result", "ok")],
        )?;
        (now > before + 2.0).then_some(())
    });

    signal(redis.pid(), "CONT");
    let closed = host.wait_until(WAIT, || {
        let b = breaker(&host, "probe/redis");
        (b["state"] == "closed").then_some(b)
    });
    assert_eq!(closed["failure_count"], 0, "{closed}");
    let text = metrics(&host);
    for (to, at_least) in [("open", 1.0), ("half_open", 1.0), ("closed", 1.0)] {
        let n = metric_value(
            &text,
            "wasmon_circuit_breaker_transitions_total",
            &[("plugin", "probe"), ("source", "redis"), ("to", to)],
        )
        .unwrap_or(0.0);
        assert!(n >= at_least, "transitions to {to}: {n}\n{text}");
    }
    // One log line per transition, not one per failed call.
    let logs = host.logs();
    let opened = logs
        .lines()
        .filter(|l| l.contains("circuit breaker opened") && l.contains("probe/redis"))
        .count();
    let to_open = metric_value(
        &text,
        "wasmon_circuit_breaker_transitions_total",
        &[("plugin", "probe"), ("source", "redis"), ("to", "open")],
    )
    .unwrap();
    assert_eq!(opened as f64, to_open, "{logs}");

    // The API resets an open breaker.
    signal(redis.pid(), "STOP");
    host.wait_until(WAIT, || {
        (breaker(&host, "probe/redis")["state"] == "open").then_some(())
    });
    let (status, body) = host.post("/api/system/circuit-breakers/probe%2Fredis/reset");
    signal(redis.pid(), "CONT");
    assert!(status.is_success(), "{status} {body}");
    let reset: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(reset["state"], "closed", "{reset}");
    assert_eq!(reset["failure_count"], 0, "{reset}");
    let (status, body) = host.post("/api/system/circuit-breakers/nothing:here/reset");
    assert_eq!(status.as_u16(), 404, "{body}");
    assert!(body.contains("detail"), "{body}");
    host.wait_until(WAIT, || {
        let b = breaker(&host, "probe/redis");
        (b["state"] == "closed"
            && metric_value(
                &metrics(&host),
                "redis_probe_ok",
                &[("plugin", "probe"), ("index", "0")],
            )
            .is_some())
        .then_some(())
    });
}

#[test]
fn collector_redis_reports_the_client_states_the_test_wrote() {
    let redis = RedisServer::start();
    redis.cmd(&[
        "HSET",
        "Clients_status",
        "c1",
        "active",
        "c2",
        "active",
        "c3",
        "Paused",
        "c4",
        "active",
    ]);
    redis.cmd(&["SADD", "deactivate_clients", "c5", "c6"]);
    redis.cmd(&["RPUSH", "blocked_clients", "c7"]);
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins.d/redis.toml"),
    )
    .unwrap();
    let manifest = example
        // The example's URL is `redis://${MONITORING_REDIS_HOST:-127.0.0.1}:${MONITORING_REDIS_PORT:-6379}/...`.
        .replace(":-6379}", &format!(":-{}}}", redis.port()))
        .replace("interval = \"5s\"", "interval = \"200ms\"");
    let host = start(&[("redis", guests::COLLECTOR_REDIS, &manifest)]);
    let count = |text: &str, state: &str| {
        metric_value(
            text,
            "fr_gateway_clients",
            &[("plugin", "redis"), ("state", state)],
        )
    };
    let text = wasmon_test_support::try_wait_until(WAIT, || {
        let text = metrics(&host);
        count(&text, "blocked").map(|_| text)
    })
    .unwrap_or_else(|| {
        let text = metrics(&host);
        let ours: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("redis") || l.contains("fr_"))
            .collect();
        panic!(
            "no fr_gateway_clients: {}\n{}",
            ours.join("\n"),
            plugin(&host, "redis")
        )
    });
    assert_eq!(count(&text, "active"), Some(3.0), "{text}");
    assert_eq!(count(&text, "paused"), Some(1.0));
    assert_eq!(count(&text, "deactivated"), Some(2.0));
    assert_eq!(count(&text, "blocked"), Some(1.0));
    assert!(
        metric_value(&text, "redis_connected_clients", &[("plugin", "redis")])
            .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(metric_value(&text, "redis_memory_used_bytes", &[("plugin", "redis")]).is_some());
    assert!(
        metric_value(
            &text,
            "redis_commands_processed_total",
            &[("plugin", "redis")]
        )
        .is_some()
    );
    assert_eq!(
        metric_value(
            &text,
            "redis_keyspace_keys",
            &[("plugin", "redis"), ("db", "db0")]
        ),
        Some(3.0)
    );
    // A client changing state shows at the next collection.
    redis.cmd(&["HSET", "Clients_status", "c3", "active"]);
    host.wait_until(WAIT, || {
        (count(&metrics(&host), "active") == Some(4.0)).then_some(())
    });
    assert_eq!(
        wasmon_test_support::promtool_check(&metrics(&host)),
        Ok(()),
        "promtool is clean with collector-redis loaded"
    );
    assert_eq!(plugin(&host, "redis")["faults"], 0);
}

#[test]
fn a_collector_returning_errors_opens_its_collect_breaker_and_backs_off() {
    let manifest = "interval = \"100ms\"\nbreaker_threshold = 3\nbreaker_backoff = \"30s\"\nbreaker_max_backoff = \"60s\"\n[config]\nerror = \"the source is down\"\n";
    let host = start(&[
        ("failing", guests::GUEST_REDIS_PROBE, manifest),
        ("bystander", guests::GUEST_COUNTER, "interval = \"100ms\"\n"),
    ]);
    let open = host.wait_until(WAIT, || {
        let b = breaker(&host, "failing/collect");
        (b["state"] == "open").then_some(b)
    });
    assert_eq!(open["failure_count"], 3, "{open}");
    assert_eq!(open["last_failure"]["error"], "the source is down");
    // Seed 004's summary beside the full list.
    let list = host.get_json("/api/system/circuit-breakers");
    assert_eq!(list["breakers"]["failing/collect"], "open", "{list}");
    assert_eq!(
        list["total"], 2,
        "failing/collect and bystander/collect: {list}"
    );
    assert_eq!(list["open"], 1, "{list}");
    assert_eq!(list["closed"], 1, "{list}");
    let calls = |host: &Host| {
        metric_value(
            &metrics(host),
            "wasmon_plugin_calls_total",
            &[("plugin", "failing"), ("result", "error")],
        )
    };
    let before = calls(&host);
    assert_eq!(before, Some(3.0), "no call after the breaker opened");
    // The interval backs off to the breaker's next attempt (30 s away): while
    // a neighbour on the same 100 ms interval is called 10 more times, the
    // failing collector is called none.
    let ok_calls = |host: &Host| {
        metric_value(
            &metrics(host),
            "wasmon_plugin_calls_total",
            &[("plugin", "bystander"), ("result", "ok")],
        )
        .unwrap_or(0.0)
    };
    let neighbour = ok_calls(&host);
    host.wait_until(WAIT, || (ok_calls(&host) >= neighbour + 10.0).then_some(()));
    assert_eq!(calls(&host), before, "no call while open");
    assert_eq!(
        plugin(&host, "failing")["faults"],
        0,
        "an Err is not a fault"
    );
    // A reset closes it and the collector is called again.
    let (status, body) = host.post("/api/system/circuit-breakers/failing:collect/reset");
    assert!(status.is_success(), "{body}");
    host.wait_until(WAIT, || calls(&host).is_some_and(|n| n > 3.0).then_some(()));
}
