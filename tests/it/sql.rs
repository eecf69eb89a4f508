//! Issue 9 points 3, 7 and 8: the read-only `sql` capability against a real
//! PostgreSQL (named queries only, a `READ ONLY` transaction, a row cap, the
//! `NAME/sql` breaker), `collector-sql` feeding seed 003's active-chunks
//! thresholds (warn 35, alert 40) to `rule-threshold`, and `${VAR}`
//! expansion in manifests.

use serde_json::Value;
use std::time::Duration;
use wasmon_test_support::{
    Host, HostOptions, PostgresServer, guests, metric_value, promtool_check,
};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

fn options() -> HostOptions {
    HostOptions::new(BIN).config(
        "[sampling]\ninterval = \"1s\"\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n",
    )
}

/// A unique table name per test (they share one server).
fn table(test: &str) -> String {
    format!("{test}_{}", std::process::id())
}

/// A collector-sql manifest: `sql` lines in `[capabilities.sql]` (after the
/// URL), `queries` and `config` as written.
fn collector(url: &str, sql: &str, queries: &str, config: &str) -> String {
    format!(
        "interval = \"200ms\"\nmax_restarts = 1000\n[capabilities.sql]\nurl = {url:?}\n{sql}\n[capabilities.sql.queries]\n{queries}\n[config]\n{config}\n"
    )
}

fn metrics(host: &Host) -> String {
    host.get("/metrics").1
}

fn gauge(host: &Host, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&metrics(host), name, labels)
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
fn rows_come_back_typed_and_writes_and_oversized_answers_are_refused() {
    let pg = PostgresServer::shared();
    let t = table("typed");
    pg.psql(&format!(
        "CREATE TABLE {t} (id int, status text); INSERT INTO {t} SELECT i, 'processing' FROM generate_series(1, 3) i;"
    ));
    let queries = format!(
        r#"
numbers = "SELECT 7::int2 AS small, 2.5::float8 AS dbl, 12.25::numeric AS num, true AS flag, '41'::text AS txt, now() AS at"
per_row = "SELECT id::text AS id, id * 10 AS value FROM {t} ORDER BY id"
bump = "UPDATE {t} SET status = 'done' RETURNING id"
wipe = "DELETE FROM {t}"
many = "SELECT i FROM generate_series(1, 10) i"
slow = "SELECT 1 FROM pg_sleep(5)"
"#
    );
    let config = r#"
[[config.metrics]]
query = "numbers"
name = "typed_small"
value_column = "small"
[[config.metrics]]
query = "numbers"
name = "typed_double"
value_column = "dbl"
[[config.metrics]]
query = "numbers"
name = "typed_numeric"
value_column = "num"
[[config.metrics]]
query = "numbers"
name = "typed_flag"
value_column = "flag"
[[config.metrics]]
query = "numbers"
name = "typed_text"
value_column = "txt"
[[config.metrics]]
query = "per_row"
name = "typed_row"
label_columns = ["id"]
labels = { source = "test" }
[[config.metrics]]
query = "bump"
name = "typed_bump"
[[config.metrics]]
query = "wipe"
name = "typed_wipe"
[[config.metrics]]
query = "many"
name = "typed_many"
[[config.metrics]]
query = "slow"
name = "typed_slow"
"#;
    let manifest = collector(
        &pg.url(),
        "max_rows = 5\ntimeout = \"400ms\"",
        &queries,
        config,
    )
    .replacen(
        "interval = \"200ms\"",
        "interval = \"200ms\"\ntimeout = \"3s\"",
        1,
    );
    let host = Host::start(
        options()
            .plugin("sqlt", guests::COLLECTOR_SQL)
            .manifest("sqlt", &manifest),
    );
    let p = [("plugin", "sqlt")];
    host.wait_until(WAIT, || gauge(&host, "typed_small", &p));
    let text = metrics(&host);
    for (name, value) in [
        ("typed_small", 7.0),
        ("typed_double", 2.5),
        ("typed_numeric", 12.25),
        ("typed_flag", 1.0),
        ("typed_text", 41.0),
    ] {
        assert_eq!(metric_value(&text, name, &p), Some(value), "{name}\n{text}");
    }
    for id in 1..=3 {
        let id_text = id.to_string();
        assert_eq!(
            metric_value(
                &text,
                "typed_row",
                &[("plugin", "sqlt"), ("id", &id_text), ("source", "test")]
            ),
            Some(f64::from(id * 10)),
            "{text}"
        );
    }

    // Writes are refused by the READ ONLY transaction, with the server's words.
    host.wait_for_log("cannot execute UPDATE in a read-only transaction", WAIT);
    host.wait_for_log("cannot execute DELETE in a read-only transaction", WAIT);
    let line = host.wait_for_log("query bump: query:", WAIT);
    assert!(
        line.contains("plugin sqlt")
            && line.contains(&format!(
                "postgresql://postgres@127.0.0.1:{}/postgres",
                pg.port()
            )),
        "{line}"
    );
    assert_eq!(
        pg.psql(&format!(
            "SELECT count(*) FROM {t} WHERE status = 'processing'"
        ))
        .trim(),
        "3"
    );
    // More rows than max_rows: too-many-rows, and the rest keeps working.
    host.wait_for_log("query many: too-many-rows: more than 5 rows", WAIT);
    // A query past the statement timeout is cancelled by the server.
    host.wait_for_log("query slow: timeout:", WAIT);
    let line = host.wait_for_log("canceling statement due to statement timeout", WAIT);
    assert!(line.contains("statement_timeout 400ms"), "{line}");
    let text = metrics(&host);
    for (query, ok) in [
        ("numbers", 1.0),
        ("bump", 0.0),
        ("wipe", 0.0),
        ("many", 0.0),
        ("slow", 0.0),
    ] {
        assert_eq!(
            metric_value(
                &text,
                "sql_query_success",
                &[("plugin", "sqlt"), ("query", query)]
            ),
            Some(ok),
            "{query}\n{text}"
        );
    }
    assert_eq!(metric_value(&text, "typed_many", &p), None);
    assert_eq!(promtool_check(&text), Ok(()));
    // Server-side refusals are not policy violations: no capability fault.
    assert_eq!(
        plugin(&host, "sqlt")["faults"],
        0,
        "{}",
        plugin(&host, "sqlt")
    );
    // A lasting error is logged once, not on every interval.
    let count = host
        .logs()
        .lines()
        .filter(|l| l.contains("cannot execute UPDATE"))
        .count();
    assert_eq!(count, 1, "{}", host.logs());
}

#[test]
fn without_the_grant_or_for_an_unknown_query_sql_is_not_granted_and_a_capability_fault() {
    let pg = PostgresServer::shared();
    let config = "[[config.metrics]]\nquery = \"anything\"\nname = \"never\"\n";
    let no_grant = format!("interval = \"200ms\"\nmax_restarts = 1000\n[config]\n{config}");
    let unknown = collector(&pg.url(), "", "other = \"SELECT 1\"", config);
    // The same query granted, with the URL from `url_env`: it works.
    let granted = collector(&pg.url(), "", "anything = \"SELECT 1 AS one\"", config).replacen(
        &format!("url = {:?}", pg.url()),
        "url_env = \"PIXCRAWLER_TEST_DB_URL\"",
        1,
    );
    let host = Host::start(
        options()
            .env("PIXCRAWLER_TEST_DB_URL", pg.url())
            .plugin("granted", guests::COLLECTOR_SQL)
            .manifest("granted", &granted)
            .plugin("nogrant", guests::COLLECTOR_SQL)
            .manifest("nogrant", &no_grant)
            .plugin("unknown", guests::COLLECTOR_SQL)
            .manifest("unknown", &unknown),
    );
    for (name, why) in [
        ("nogrant", "no [capabilities.sql]"),
        ("unknown", "is not in capabilities.sql.queries"),
    ] {
        let view = host.wait_until(WAIT, || {
            let v = plugin(&host, name);
            (v["faults"].as_u64() >= Some(1)).then_some(v)
        });
        let error = view["last_error"].to_string();
        assert!(
            error.contains("capability") && error.contains(why),
            "{name}: {error}"
        );
        let text = metrics(&host);
        assert!(
            metric_value(
                &text,
                "wasmon_plugin_faults_total",
                &[("plugin", name), ("reason", "capability")]
            )
            .is_some_and(|n| n >= 1.0),
            "{text}"
        );
        assert!(
            metric_value(
                &text,
                "wasmon_plugin_capability_denied_total",
                &[("plugin", name), ("capability", "sql")]
            )
            .is_some_and(|n| n >= 1.0),
            "{text}"
        );
    }
    host.wait_for_log("query anything: not-granted:", WAIT);
    host.wait_until(WAIT, || {
        gauge(&host, "never", &[("plugin", "granted")]).filter(|v| *v == 1.0)
    });
    assert_eq!(plugin(&host, "granted")["faults"], 0);
}

#[test]
fn a_stopped_postgres_opens_the_sql_breaker_which_closes_after_a_restart() {
    let pg = PostgresServer::start();
    let t = table("breaker");
    pg.psql(&format!(
        "CREATE TABLE {t} (status text); INSERT INTO {t} VALUES ('processing');"
    ));
    let manifest = format!(
        "breaker_threshold = 3\nbreaker_backoff = \"300ms\"\nbreaker_max_backoff = \"600ms\"\n{}",
        collector(
            &pg.url(),
            "timeout = \"1s\"",
            &format!("active = \"SELECT count(*) FROM {t} WHERE status = $1\""),
            "[[config.metrics]]\nquery = \"active\"\nname = \"breaker_active\"\nparams = [\"processing\"]\n",
        )
    );
    let host = Host::start(
        options()
            .plugin("sqlb", guests::COLLECTOR_SQL)
            .manifest("sqlb", &manifest)
            .plugin("bystander", guests::GUEST_COUNTER)
            .manifest("bystander", "interval = \"200ms\"\n"),
    );
    let p = [("plugin", "sqlb")];
    host.wait_until(WAIT, || {
        gauge(&host, "breaker_active", &p).filter(|v| *v == 1.0)
    });
    assert_eq!(breaker(&host, "sqlb/sql")["state"], "closed");

    pg.stop();
    let open = host.wait_until(WAIT, || {
        let b = breaker(&host, "sqlb/sql");
        (b["state"] == "open").then_some(b)
    });
    assert_eq!(open["failure_count"], 3, "{open}");
    let error = open["last_failure"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("plugin sqlb")
            && error.contains("sql query active")
            && error.contains(&format!("127.0.0.1:{}", pg.port())),
        "{open}"
    );
    assert_eq!(
        gauge(
            &host,
            "wasmon_circuit_breaker_state",
            &[("plugin", "sqlb"), ("source", "sql")]
        ),
        Some(2.0)
    );
    // The collector is not called while its breaker is open (its interval
    // backs off to the next trial); the rest of the host keeps serving.
    let before = gauge(
        &host,
        "wasmon_plugin_calls_total",
        &[("plugin", "bystander"), ("result", "ok")],
    )
    .unwrap();
    host.wait_until(WAIT, || {
        let now = gauge(
            &host,
            "wasmon_plugin_calls_total",
            &[("plugin", "bystander"), ("result", "ok")],
        )?;
        (now > before + 2.0).then_some(())
    });

    pg.restart();
    pg.psql(&format!("INSERT INTO {t} VALUES ('processing');"));
    let closed = host.wait_until(WAIT, || {
        let b = breaker(&host, "sqlb/sql");
        (b["state"] == "closed").then_some(b)
    });
    assert_eq!(closed["failure_count"], 0, "{closed}");
    // Reconnected without a host restart: the new row is counted.
    host.wait_until(WAIT, || {
        gauge(&host, "breaker_active", &p).filter(|v| *v == 2.0)
    });
    let text = metrics(&host);
    for to in ["open", "half_open", "closed"] {
        let n = metric_value(
            &text,
            "wasmon_circuit_breaker_transitions_total",
            &[("plugin", "sqlb"), ("source", "sql"), ("to", to)],
        )
        .unwrap_or(0.0);
        assert!(n >= 1.0, "transitions to {to}: {n}\n{text}");
    }
}

/// An example manifest from `examples/plugins.d/`, as shipped.
fn example(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/plugins.d")
        .join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn active_chunks_alert(host: &Host) -> Option<Value> {
    host.get_json("/api/alerts")["alerts"]
        .as_array()
        .and_then(|alerts| {
            alerts
                .iter()
                .find(|a| a["name"] == "active_chunks")
                .cloned()
        })
}

#[test]
fn seed_003s_active_chunk_rule_warns_at_35_and_fires_at_40_from_the_example_manifests() {
    let pg = PostgresServer::shared();
    pg.psql(
        "CREATE TABLE chunks (id serial PRIMARY KEY, status text NOT NULL);
         INSERT INTO chunks (status) SELECT 'processing' FROM generate_series(1, 34);
         INSERT INTO chunks (status) SELECT 'done' FROM generate_series(1, 10);",
    );
    // The shipped manifests, unchanged but for the rule's interval: the
    // database URL (SQLAlchemy's form, with a password trust auth ignores)
    // and the poll interval come from the seed's variables, the thresholds
    // from their defaults (35 and 40).
    let url = format!(
        "postgresql+asyncpg://postgres:never-logged-pw@127.0.0.1:{}/postgres",
        pg.port()
    );
    let rule = example("active_chunks").replacen("interval = \"5s\"", "interval = \"200ms\"", 1);
    let host = Host::start(
        options()
            .env("PIXCRAWLER_DB_URL", &url)
            .env("PIXCRAWLER_POLL_INTERVAL_SECONDS", "0.2")
            .env("HOME_SECRET_TOKEN", "not-allow-listed")
            .plugin("sql", guests::COLLECTOR_SQL)
            .manifest("sql", &example("sql"))
            .plugin("active_chunks", guests::RULE_THRESHOLD)
            .manifest("active_chunks", &rule),
    );
    let p = [("plugin", "sql")];
    host.wait_until(WAIT, || {
        gauge(&host, "pixcrawler_active_chunks", &p).filter(|v| *v == 34.0)
    });
    host.wait_until(WAIT, || {
        let checks = host.get_json("/api/alerts")["checks"].clone();
        checks
            .as_array()?
            .iter()
            .any(|c| c["name"] == "active_chunks" && c["status"] == "OK")
            .then_some(())
    });
    assert_eq!(active_chunks_alert(&host), None);

    pg.psql("INSERT INTO chunks (status) VALUES ('processing');");
    let warning = host.wait_until(WAIT, || {
        active_chunks_alert(&host).filter(|a| a["state"] == "firing" && a["severity"] == "warning")
    });
    assert_eq!(warning["value"], 35.0, "{warning}");
    assert_eq!(host.get_json("/api/alerts")["overall"], "WARNING");

    pg.psql("INSERT INTO chunks (status) SELECT 'processing' FROM generate_series(1, 5);");
    let alert = host.wait_until(WAIT, || {
        active_chunks_alert(&host).filter(|a| a["severity"] == "critical")
    });
    assert_eq!(alert["value"], 40.0, "{alert}");
    host.wait_until(WAIT, || {
        (host.get_json("/api/alerts")["overall"] == "ALERT").then_some(())
    });

    // Each variable is logged by name, once per load, never its value.
    let logs = host.logs();
    let expanded: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("manifest variable expanded"))
        .collect();
    for (variable, source) in [
        ("PIXCRAWLER_DB_URL", "environment"),
        ("PIXCRAWLER_POLL_INTERVAL_SECONDS", "environment"),
        ("PIXCRAWLER_CHUNK_THRESHOLD_WARN", "default"),
        ("PIXCRAWLER_CHUNK_THRESHOLD_ALERT", "default"),
    ] {
        let lines: Vec<&&str> = expanded
            .iter()
            .filter(|l| l.contains(&format!("variable={variable} ")))
            .collect();
        assert_eq!(lines.len(), 1, "{variable}: {expanded:#?}");
        assert!(
            lines[0].contains(&format!("source=\"{source}\""))
                || lines[0].contains(&format!("source={source}")),
            "{}",
            lines[0]
        );
    }
    assert!(!logs.contains("never-logged-pw"), "{logs}");
    let view = host.get("/api/plugins/sql").1;
    assert!(!view.contains("never-logged-pw"), "{view}");

    // A reference outside `[plugins] env_allow` makes a manifest invalid,
    // naming the key and the variable; the old version keeps serving.
    let mark = host.log_mark();
    host.plugins().write_manifest(
        "sql",
        &example("sql").replacen("timeout = \"3s\"", "timeout = \"${HOME_SECRET_TOKEN}\"", 1),
    );
    let line = host.wait_for_log_since(mark, "HOME_SECRET_TOKEN", WAIT);
    assert!(
        line.contains("capabilities.sql.timeout") && line.contains("plugins.env_allow"),
        "{line}"
    );
    assert!(!host.logs().contains("not-allow-listed"));
    assert!(gauge(&host, "pixcrawler_active_chunks", &p).is_some());
}

#[test]
fn tls_connections_verify_the_server_certificate() {
    let pg = PostgresServer::start_tls();
    let ca = pg.ca_file().unwrap().display().to_string();
    let url = format!("{}?sslmode=require", pg.url());
    let queries =
        "tls = \"SELECT ssl::int AS on_tls FROM pg_stat_ssl WHERE pid = pg_backend_pid()\"";
    let config = "[[config.metrics]]\nquery = \"tls\"\nname = \"sql_tls\"\n";
    let trusted = collector(&url, &format!("ca_file = {ca:?}"), queries, config);
    let untrusted = collector(&url, "", queries, config);
    let host = Host::start(
        options()
            .plugin("trusted", guests::COLLECTOR_SQL)
            .manifest("trusted", &trusted)
            .plugin("untrusted", guests::COLLECTOR_SQL)
            .manifest("untrusted", &untrusted),
    );
    // The server reports the session as TLS.
    host.wait_until(WAIT, || {
        gauge(&host, "sql_tls", &[("plugin", "trusted")]).filter(|v| *v == 1.0)
    });
    assert_eq!(
        plugin(&host, "trusted")["manifest"]["capabilities"]["sql"]["tls"],
        true,
        "{}",
        plugin(&host, "trusted")
    );
    // A certificate the system's roots do not vouch for is refused.
    let line = host.wait_for_log("query tls: connection:", WAIT);
    assert!(
        line.contains("plugin untrusted") && line.to_lowercase().contains("certificate"),
        "{line}"
    );
    assert_eq!(gauge(&host, "sql_tls", &[("plugin", "untrusted")]), None);
}
