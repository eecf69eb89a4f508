//! Unit tests of manifest parsing, defaults, ceilings and host patterns.

use super::*;

fn parse(text: &str) -> Result<Manifest> {
    Manifest::parse(text, &PluginDefaults::default(), &PluginLimits::default())
}

#[track_caller]
fn check_err(text: &str, expect: &str) {
    let err = format!("{:#}", parse(text).unwrap_err());
    assert!(err.contains(expect), "{err:?} does not contain {expect:?}");
}

#[test]
fn empty_manifest_takes_the_defaults() {
    let m = parse("").unwrap();
    assert_eq!(m.interval, Duration::from_secs(5));
    assert_eq!(m.timeout, Duration::from_secs(2));
    assert_eq!(m.max_series, 10_000);
    assert_eq!(m.init_timeout, Duration::from_secs(10));
    assert!(m.capabilities.http.is_none());
    assert_eq!(m.config, serde_json::json!({}));
}

#[test]
fn full_manifest() {
    let m = parse(
        r#"
        kind = "rule"
        interval = "10s"
        timeout = 1.5
        memory_limit = "16MiB"
        for = "30s"
        select = ["probe_*"]
        [capabilities.http]
        allow = ["127.0.0.1:8080", "*.example.org"]
        [config]
        checks = [{ name = "disk", warn = 0.8 }]
        "#,
    )
    .unwrap();
    assert_eq!(m.kind, Some(PluginKind::Rule));
    assert_eq!(m.timeout, Duration::from_millis(1500));
    assert_eq!(m.memory_limit, ByteSize(16 << 20));
    assert_eq!(m.for_duration, Duration::from_secs(30));
    let http = m.capabilities.http.unwrap();
    assert_eq!(http.allow.len(), 2);
    assert_eq!(m.config["checks"][0]["warn"], serde_json::json!(0.8));
}

#[test]
fn errors_name_the_key() {
    check_err("interval = \"often\"", "`interval`");
    check_err("colour = 1", "unknown field `colour`");
    check_err(
        "[capabilities.http]\nallow = [\"http://x/y\"]",
        "`capabilities.http.allow[0]`",
    );
    check_err(
        "[capabilities.redis]\nurl = \"http://x\"",
        "`capabilities.redis.url`",
    );
    check_err(
        "[capabilities.redis]\nurl = \"redis://x\"\nwrite = [\"BLPOP\"]",
        "`capabilities.redis.write[0]`",
    );
    check_err("[capabilities.sql]\nurl = \"x\"", "`capabilities.sql.url`");
    check_err("[capabilities.smtp]\nurl = \"x\"", "unknown field `smtp`");
    check_err("[config]\nhome = \"${HOME}\"", "`plugins.env_allow`");
    check_err("memory_limit = \"1KiB\"", "`memory_limit`");
    check_err("kind = \"collector\"\nselect = [\"x\"]", "`select`");
    check_err("kind = \"gadget\"", "`kind`");
    check_err("interval = [", "");
}

#[test]
fn host_patterns() {
    let p = |s: &str| HostPattern::parse(s).unwrap();
    assert!(p("127.0.0.1:8080").matches("127.0.0.1", 8080));
    assert!(!p("127.0.0.1:8080").matches("127.0.0.1", 8081));
    assert!(p("Example.com").matches("example.COM", 443));
    assert!(p("*.example.org").matches("api.example.org", 80));
    assert!(!p("*.example.org").matches("example.org", 80));
    assert!(!p("*.example.org").matches("evilexample.org", 80));
    assert!(p("[::1]:9000").matches("[::1]", 9000));
    assert!(p("*").matches("anything", 1));
    assert!(HostPattern::parse("http://x").is_err());
    assert!(HostPattern::parse("x:99999").is_err());
    assert!(HostPattern::parse("a b").is_err());
}

#[test]
fn globs() {
    assert!(glob_match("alert.*", "alert.firing"));
    assert!(!glob_match("alert.*", "service.down"));
    assert!(glob_match("*", "x"));
    assert!(glob_match("a*c*e", "abcde"));
    assert!(!glob_match("a*c*e", "abcdf"));
    assert!(glob_match("exact", "exact"));
    assert!(!glob_match("exact", "exactly"));
}

#[test]
fn values_above_a_ceiling_are_invalid_and_named() {
    check_err(
        "memory_limit = \"100GiB\"",
        "invalid value for `memory_limit`: 100GiB exceeds the host's ceiling `plugins.limits.max_memory_limit` (512MiB)",
    );
    check_err(
        "timeout = \"1000h\"",
        "invalid value for `timeout`: 1000h exceeds the host's ceiling `plugins.limits.max_timeout` (1m)",
    );
    check_err(
        "init_timeout = 61",
        "invalid value for `init_timeout`: 61 exceeds the host's ceiling `plugins.limits.max_init_timeout` (1m)",
    );
    check_err(
        "interval = \"2days\"",
        "`interval`: 2days exceeds the host's ceiling `plugins.limits.max_interval` (1day)",
    );
    check_err(
        "max_series = 100000",
        "`max_series`: 100000 exceeds the host's ceiling `plugins.limits.max_series_per_plugin` (10000)",
    );
    check_err(
        "state_quota = \"1GiB\"",
        "`state_quota`: 1GiB exceeds the host's ceiling `plugins.limits.max_state_quota` (64MiB)",
    );
    check_err(
        "init_timeout = 0",
        "`init_timeout`: must be greater than zero",
    );
    // A value that does not parse is named by the deserialiser, as before.
    check_err("memory_limit = \"lots\"", "`memory_limit`");
}

#[test]
fn values_at_a_ceiling_are_accepted_and_max_series_may_only_lower_it() {
    let m = parse(
        "memory_limit = \"512MiB\"\ntimeout = \"60s\"\ninit_timeout = \"1m\"\ninterval = \"24h\"\nmax_series = 10000\nstate_quota = \"64MiB\"",
    )
    .unwrap();
    assert_eq!(m.memory_limit, ByteSize(512 << 20));
    assert_eq!(m.init_timeout, Duration::from_secs(60));
    assert_eq!(m.max_series, 10_000);
    assert_eq!(parse("max_series = 50").unwrap().max_series, 50);
    let limits = PluginLimits {
        max_series_per_plugin: 20,
        max_memory_limit: ByteSize(8 << 20),
        ..PluginLimits::default()
    };
    let defaults = PluginDefaults {
        memory_limit: ByteSize(4 << 20),
        ..PluginDefaults::default()
    };
    let m = Manifest::parse("", &defaults, &limits).unwrap();
    assert_eq!(m.max_series, 20, "no max_series: the ceiling");
    assert_eq!(Manifest::defaults(&defaults, &limits).max_series, 20);
    let err = Manifest::parse("max_series = 21", &defaults, &limits).unwrap_err();
    assert!(format!("{err:#}").contains("(20)"), "{err:#}");
    let err = Manifest::parse("memory_limit = \"16MiB\"", &defaults, &limits).unwrap_err();
    assert!(format!("{err:#}").contains("16MiB exceeds"), "{err:#}");
}

#[test]
fn self_access_is_none_unless_granted_and_only_reads_health_and_metrics() {
    let grant = |text: &str| parse(text).unwrap().capabilities.http.unwrap().self_access;
    assert_eq!(
        grant("[capabilities.http]\nallow = [\"x\"]"),
        SelfAccess::None
    );
    let read = grant("[capabilities.http]\nallow = [\"x\"]\nself = \"read\"");
    assert_eq!(read, SelfAccess::Read);
    check_err(
        "[capabilities.http]\nallow = [\"x\"]\nself = \"write\"",
        "`capabilities.http.self`",
    );
    use reqwest::Method;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(read.allows(&Method::GET, path), "{path}");
        assert!(read.allows(&Method::HEAD, path), "{path}");
        assert!(!read.allows(&Method::POST, path), "{path}");
        assert!(!SelfAccess::None.allows(&Method::GET, path), "{path}");
    }
    for path in [
        "/",
        "/api/plugins",
        "/api/plugins/x/reset",
        "/heartbeat",
        "/metrics/",
        "/metricsx",
    ] {
        assert!(!read.allows(&Method::GET, path), "{path}");
    }
}

#[test]
fn the_example_manifests_parse_within_the_example_limits() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = crate::config::Config::load(Some(&root.join("examples/wasmon.toml")), []).unwrap();
    let (defaults, limits) = (&config.plugins.defaults, &config.plugins.limits);
    for name in [
        "http_probe",
        "threshold",
        "webhook",
        "redis",
        "sql",
        "active_chunks",
    ] {
        let path = root.join(format!("examples/plugins.d/{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let manifest = Manifest::parse(&text, defaults, limits)
            .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        if name == "http_probe" {
            // It probes the host itself, so it has the read-only self grant.
            assert_eq!(
                manifest.capabilities.http.unwrap().self_access,
                SelfAccess::Read
            );
        }
    }
}

#[test]
fn variables_expand_only_from_the_allow_list_and_may_become_numbers() {
    let (d, l) = (PluginDefaults::default(), PluginLimits::default());
    let text = "interval = \"${PATH:-x}\"\n[config]\npath = \"${PATH}\"\nwarn = \"${PIXCRAWLER_SURELY_UNSET_WARN:-35}\"";
    // PATH is outside the default allow-list.
    let err = format!("{:#}", Manifest::parse(text, &d, &l).unwrap_err());
    assert!(
        err.contains("PATH") && err.contains("plugins.env_allow"),
        "{err}"
    );
    // With it allowed, `interval` (a string, then a duration) is still invalid: PATH is no duration.
    let allow = vec!["PATH".to_string(), "PIXCRAWLER_*".to_string()];
    let err = format!(
        "{:#}",
        Manifest::parse_with_env(text, &d, &l, &allow, "t").unwrap_err()
    );
    assert!(err.contains("`interval`"), "{err}");
    let text = text.replacen("interval = \"${PATH:-x}\"\n", "", 1);
    let m = Manifest::parse_with_env(&text, &d, &l, &allow, "t").unwrap();
    assert_eq!(m.config["path"], std::env::var("PATH").unwrap());
    assert_eq!(m.config["warn"], 35);
}

#[test]
fn a_sink_tick_is_optional_and_at_least_100ms() {
    assert_eq!(parse("").unwrap().tick, None);
    assert_eq!(
        parse("tick = \"30s\"").unwrap().tick,
        Some(Duration::from_secs(30))
    );
    check_err("tick = \"10ms\"", "`tick`");
}
