//! Unit tests of the config: files, environment overrides, defaults and errors.

use super::*;
use crate::units::ByteSize;
use std::time::Duration;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config> {
    let dir = std::env::temp_dir().join(format!("wasmon-config-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("wasmon.toml");
    std::fs::write(&path, toml)?;
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let result = Config::load(Some(&path), env);
    std::fs::remove_dir_all(&dir)?;
    result
}

#[track_caller]
fn check_err(toml: &str, env: &[(&str, &str)], expect: &str) {
    let err = format!("{:#}", load(toml, env).unwrap_err());
    assert!(
        err.contains(expect),
        "error {err:?} does not contain {expect:?}"
    );
}

#[test]
fn empty_file_gives_defaults() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.server.port, 9400);
    assert_eq!(c.sampling.interval, Duration::from_secs(5));
    assert_eq!(c.heartbeat.timeout, Duration::from_secs(30));
    assert!(c.plugins.dir.ends_with("plugins.d"));
}

#[test]
fn seed_variables_override_the_file() {
    let c = load(
        "[server]\nport = 1234\n",
        &[
            ("MONITOR_PORT", "9500"),
            ("MONITOR_HOST", "127.0.0.1"),
            ("MONITOR_HEARTBEAT_ENABLED", "0"),
            ("MONITOR_HEARTBEAT_TIMEOUT", "45"),
            ("MONITORING_HISTORY_WINDOW", "30"),
            ("MONITORING_GPU_ENABLED", "false"),
            ("WASMON_SAMPLING__INTERVAL", "250ms"),
            ("WASMON_CONFIG", "/etc/wasmon.toml"),
            ("WASMON_TEST_OWNER", "x"),
        ],
    )
    .unwrap();
    assert_eq!(c.server.port, 9500);
    assert_eq!(c.server.host.to_string(), "127.0.0.1");
    assert!(!c.heartbeat.enabled);
    assert_eq!(c.heartbeat.timeout, Duration::from_secs(45));
    assert_eq!(c.store.history_window, Duration::from_secs(1800));
    assert_eq!(c.gpu.enabled, GpuEnabled::Off);
    assert_eq!(c.sampling.interval, Duration::from_millis(250));
}

#[test]
fn seed_gpu_variable_takes_flags_and_auto() {
    for (value, expect) in [
        ("1", GpuEnabled::On),
        ("true", GpuEnabled::On),
        ("auto", GpuEnabled::Auto),
        ("AUTO", GpuEnabled::Auto),
        ("0", GpuEnabled::Off),
    ] {
        let c = load(
            "[gpu]\nenabled = true\n",
            &[("MONITORING_GPU_ENABLED", value)],
        )
        .unwrap();
        assert_eq!(c.gpu.enabled, expect, "MONITORING_GPU_ENABLED={value}");
    }
    check_err(
        "",
        &[("MONITORING_GPU_ENABLED", "maybe")],
        "`gpu.enabled` (from MONITORING_GPU_ENABLED)",
    );
}

#[test]
fn errors_name_the_key_and_its_origin() {
    check_err("[server]\nport = \"abc\"\n", &[], "`server.port`");
    check_err(
        "",
        &[("MONITOR_PORT", "abc")],
        "`server.port` (from MONITOR_PORT)",
    );
    check_err("[server]\nprot = 1\n", &[], "unknown field `prot`");
    check_err(
        "[sampling]\ninterval = \"5 parsecs\"\n",
        &[],
        "`sampling.interval`",
    );
    check_err(
        "[sampling]\ninterval = 0\n",
        &[],
        "`sampling.interval`: must be greater than zero",
    );
    check_err(
        "[plugins.defaults]\nmemory_limit = \"12 XB\"\n",
        &[],
        "`plugins.defaults.memory_limit`",
    );
    check_err("[gpu]\nenabled = \"sometimes\"\n", &[], "`gpu.enabled`");
    check_err(
        "[gpu]\nretry_interval = 0\n",
        &[],
        "`gpu.retry_interval`: must be greater than zero",
    );
    check_err(
        "[gpu]\ninterval = \"0s\"\n",
        &[],
        "`gpu.interval`: must be greater than zero",
    );
    check_err("[gpu]\ndevices = [\"0\", \" \"]\n", &[], "`gpu.devices`");
    check_err(
        "[plugins]\ncompiler = \"llvm\"\n",
        &[],
        "unknown variant `llvm`, expected one of `auto`, `cranelift`, `winch`\nin `plugins.compiler`",
    );
    check_err("[server\n", &[], "failed to parse config file");
}

#[test]
fn the_compiler_is_chosen_by_file_or_environment() {
    assert_eq!(load("", &[]).unwrap().plugins.compiler, Compiler::Auto);
    let c = load(
        "[plugins]\ncompiler = \"winch\"\n",
        &[("WASMON_PLUGINS__COMPILER", "cranelift")],
    )
    .unwrap();
    assert_eq!(c.plugins.compiler, Compiler::Cranelift);
    assert_eq!(Compiler::Cranelift.resolve(), Compiler::Cranelift);
    assert_eq!(Compiler::Winch.resolve(), Compiler::Winch);
    assert_ne!(Compiler::Auto.resolve(), Compiler::Auto);
}

#[test]
fn plugin_defaults_must_be_within_the_limits() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.plugins.limits.max_memory_limit, ByteSize(512 << 20));
    assert_eq!(c.plugins.limits.max_series_per_plugin, 10_000);
    assert_eq!(c.plugins.defaults.init_timeout, Duration::from_secs(10));
    check_err(
        "[plugins.defaults]\nmemory_limit = \"1GiB\"\n",
        &[],
        "invalid value for `plugins.defaults.memory_limit`: 1024MiB exceeds `plugins.limits.max_memory_limit` (512MiB)",
    );
    check_err(
        "[plugins.defaults]\ntimeout = \"2m\"\n",
        &[],
        "`plugins.defaults.timeout`: 2m exceeds `plugins.limits.max_timeout` (1m)",
    );
    check_err(
        "[plugins.limits]\nmax_init_timeout = \"5s\"\n",
        &[],
        "`plugins.defaults.init_timeout`: 10s exceeds `plugins.limits.max_init_timeout` (5s)",
    );
    check_err(
        "[plugins.limits]\nmax_series_per_plugin = 0\n",
        &[],
        "`plugins.limits.max_series_per_plugin`: must be greater than zero",
    );
    check_err(
        "[plugins.limits]\nmax_cpu = 1\n",
        &[],
        "unknown field `max_cpu`",
    );
    check_err(
        "[store]\nmax_series_per_plugin = 10\n",
        &[],
        "unknown field `max_series_per_plugin`",
    );
    let c = load(
        "[plugins.limits]\nmax_memory_limit = \"2GiB\"\n[plugins.defaults]\nmemory_limit = \"1GiB\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.plugins.defaults.memory_limit, ByteSize(1 << 30));
}

#[test]
fn server_limits_and_the_service_ttl_have_defaults_and_must_be_positive() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.server.body_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.keep_alive_timeout, Duration::from_secs(75));
    assert_eq!(c.server.max_connections, 4096);
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.ingest.service_ttl, Duration::from_secs(24 * 3600));
    let c = load(
        "",
        &[
            ("WASMON_SERVER__ADMIN_TOKEN", "t0k"),
            ("WASMON_SERVER__KEEP_ALIVE_TIMEOUT", "5s"),
            ("WASMON_INGEST__SERVICE_TTL", "1h"),
        ],
    )
    .unwrap();
    assert_eq!(c.server.admin_token.as_deref(), Some("t0k"));
    assert_eq!(c.server.keep_alive_timeout, Duration::from_secs(5));
    assert_eq!(c.ingest.service_ttl, Duration::from_secs(3600));
    check_err(
        "[server]\nbody_read_timeout = 0\n",
        &[],
        "`server.body_read_timeout`: must be greater than zero",
    );
    check_err(
        "[server]\nmax_connections = 0\n",
        &[],
        "`server.max_connections`: must be greater than zero",
    );
    check_err(
        "[ingest]\nservice_ttl = \"0s\"\n",
        &[],
        "`ingest.service_ttl`: must be greater than zero",
    );
}

#[test]
fn relative_plugin_dir_is_resolved_against_the_file() {
    let c = load("[plugins]\ndir = \"p.d\"\n", &[]).unwrap();
    assert!(c.plugins.dir.is_absolute());
    assert!(c.plugins.dir.ends_with("p.d"));
}

#[test]
fn plugin_uploads_grant_nothing_by_default_and_name_their_keys() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.plugins.upload.max_bytes, ByteSize(32 << 20));
    assert_eq!(c.plugins.upload.timeout, Duration::from_secs(30));
    assert!(c.plugins.upload.max_grants.http.is_empty());
    assert!(!c.plugins.upload.max_grants.http_self);
    assert!(c.plugins.upload.max_grants.capabilities.is_empty());

    let c = load(
        "[plugins.upload]\nmax_bytes = \"8MiB\"\n[plugins.upload.max_grants]\nhttp = [\"api.example.com\", \"10.0.0.5:8080\"]\ncapabilities = [\"redis\", \"sql\"]\n",
        &[("WASMON_PLUGINS__UPLOAD__TIMEOUT", "5s")],
    )
    .unwrap();
    assert_eq!(c.plugins.upload.max_bytes, ByteSize(8 << 20));
    assert_eq!(c.plugins.upload.timeout, Duration::from_secs(5));
    assert_eq!(
        c.plugins.upload.max_grants.http,
        ["api.example.com", "10.0.0.5:8080"]
    );
    assert_eq!(c.plugins.upload.max_grants.capabilities, ["redis", "sql"]);

    check_err(
        "[plugins.upload.max_grants]\nhttp = [\"ok.example\", \"http://x/\"]\n",
        &[],
        "invalid value for `plugins.upload.max_grants.http[1]`",
    );
    check_err(
        "[plugins.upload.max_grants]\ncapabilities = [\"redis\", \"ftp\"]\n",
        &[],
        "`plugins.upload.max_grants.capabilities[1]`: unknown capability \"ftp\"",
    );
    check_err(
        "[plugins.upload.max_grants]\ncapabilities = [\"http\"]\n",
        &[],
        "bounded by `plugins.upload.max_grants.http`",
    );
    check_err(
        "[plugins.upload]\nmax_bytes = 0\n",
        &[],
        "`plugins.upload.max_bytes`: must be greater than zero",
    );
    check_err(
        "[plugins.upload]\nmax_size = \"1MiB\"\n",
        &[],
        "unknown field `max_size`",
    );
}
