//! The health rules on hand-made snapshots.

use super::*;

fn plugin(name: &str, status: Status, critical: bool) -> PluginHealth {
    PluginHealth {
        name: name.into(),
        status: match status {
            Status::Running => ComponentStatus::Healthy,
            Status::Loading => ComponentStatus::Starting,
            _ => ComponentStatus::Unhealthy,
        },
        critical,
        message: String::new(),
        kind: Some(PluginKind::Collector),
        plugin_status: status,
        generation: 1,
        faults: 0,
        consecutive_faults: 0,
        restarts: 0,
        last_error: None,
    }
}

fn sampler(name: &str, available: bool, up: bool) -> SamplerStatus {
    SamplerStatus {
        name: name.into(),
        enabled: true,
        available,
        up,
        reason: (!up).then(|| "broken".to_string()),
        ..SamplerStatus::default()
    }
}

fn breaker(plugin: &str, source: &str, state: BreakerState) -> BreakerView {
    BreakerView {
        name: format!("{plugin}/{source}"),
        plugin: plugin.into(),
        source: source.into(),
        state,
        failure_count: 3,
        last_failure: None,
        next_attempt: None,
    }
}

fn report(
    gpu: GpuConfig,
    samplers: Vec<SamplerStatus>,
    plugins: Vec<PluginHealth>,
    breakers: Vec<BreakerView>,
) -> Report {
    let sampling = SamplingConfig::default();
    assess(Inputs {
        sampling: &sampling,
        gpu: &gpu,
        samplers,
        plugins,
        plugins_loaded: true,
        breakers,
        events: (0, 0),
        sinks: BTreeMap::new(),
        lag_degraded: std::time::Duration::from_secs(300),
        now_ms: 1_000,
    })
}

#[test]
fn nothing_down_is_healthy_and_ready() {
    let r = report(
        GpuConfig::default(),
        vec![sampler("system", true, true), sampler("gpu", false, false)],
        vec![plugin("a", Status::Running, true)],
        vec![breaker("a", "redis", BreakerState::Closed)],
    );
    assert_eq!(r.status, Overall::Healthy);
    assert!(r.ready && r.down.is_empty() && r.detail.is_none());
    assert_eq!(r.message, "All systems operational");
    // `auto` without a driver is unavailable, not down.
    assert_eq!(r.samplers[0].name, "gpu");
    assert_eq!(r.samplers[0].status, ComponentStatus::Unavailable);
    assert_eq!(r.circuit_breakers.closed, 1);
}

#[test]
fn a_critical_plugin_down_is_unhealthy_and_not_ready() {
    for status in [
        Status::Crashed,
        Status::Failed,
        Status::Invalid,
        Status::Restarting,
    ] {
        let r = report(
            GpuConfig::default(),
            vec![],
            vec![
                plugin("a", status, true),
                plugin("b", Status::Failed, false),
            ],
            vec![],
        );
        assert_eq!(r.status, Overall::Unhealthy, "{status:?}");
        assert!(!r.ready);
        assert_eq!(r.down[0].name, "a", "critical first");
        assert!(r.message.contains("plugin a"), "{}", r.message);
        assert!(r.message.contains("plugin b"), "{}", r.message);
        assert_eq!(r.detail.as_deref(), Some(r.message.as_str()));
    }
}

#[test]
fn non_critical_components_down_degrade() {
    let gpu = GpuConfig {
        enabled: GpuEnabled::On,
        ..GpuConfig::default()
    };
    let r = report(
        gpu,
        vec![sampler("gpu", false, false)],
        vec![plugin("a", Status::Running, false)],
        vec![breaker("a", "redis", BreakerState::Open)],
    );
    assert_eq!(r.status, Overall::Degraded);
    assert!(r.ready);
    let names: Vec<_> = r.down.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        names,
        ["sampler gpu (broken)", "data source a/redis (circuit open)"]
    );
    assert_eq!(r.circuit_breakers.open, 1);
    // The system sampler has not run yet: starting, not down.
    assert_eq!(r.samplers[1].status, ComponentStatus::Starting);
}

#[test]
fn data_sources_and_samplers_follow_their_critical_flag() {
    let gpu = GpuConfig {
        critical: true,
        ..GpuConfig::default()
    };
    let r = report(
        gpu,
        vec![sampler("gpu", true, false)],
        vec![plugin("a", Status::Running, true)],
        vec![breaker("a", "sql", BreakerState::HalfOpen)],
    );
    assert_eq!(r.status, Overall::Unhealthy);
    assert_eq!(r.critical_down().count(), 2);
    assert_eq!(r.circuit_breakers.half_open, 1);
}

#[test]
fn disabled_samplers_and_loading_plugins_are_not_down() {
    let gpu = GpuConfig {
        enabled: GpuEnabled::Off,
        critical: true,
        ..GpuConfig::default()
    };
    let sampling = SamplingConfig {
        enabled: false,
        ..SamplingConfig::default()
    };
    let r = assess(Inputs {
        sampling: &sampling,
        gpu: &gpu,
        samplers: vec![],
        plugins: vec![plugin("a", Status::Loading, true)],
        plugins_loaded: false,
        breakers: vec![],
        events: (5, 2),
        sinks: BTreeMap::new(),
        lag_degraded: std::time::Duration::from_secs(300),
        now_ms: 0,
    });
    assert_eq!(r.status, Overall::Healthy);
    assert!(!r.ready, "still loading");
    assert!(r.message.contains("still loading: a"), "{}", r.message);
    assert!(
        r.samplers
            .iter()
            .all(|s| s.status == ComponentStatus::Disabled)
    );
    assert_eq!(r.event_log.dropped_total, 2);
}

#[test]
fn a_sink_shows_its_backlog_and_lag_and_counts_once() {
    let mut sink = plugin("out", Status::Failed, false);
    sink.kind = Some(PluginKind::Sink);
    let sampling = SamplingConfig::default();
    let gpu = GpuConfig::default();
    let r = assess(Inputs {
        sampling: &sampling,
        gpu: &gpu,
        samplers: vec![],
        plugins: vec![sink],
        plugins_loaded: true,
        breakers: vec![],
        events: (10, 0),
        sinks: [("out".to_string(), (4, Some(7_500)))].into(),
        lag_degraded: std::time::Duration::from_secs(300),
        now_ms: 10_000,
    });
    assert_eq!(r.down.len(), 1);
    assert_eq!(r.sinks[0].backlog_events, 4);
    assert!((r.sinks[0].lag_seconds - 2.5).abs() < 1e-9);
    assert_eq!(r.sinks[0].status, ComponentStatus::Unhealthy);
}

#[test]
fn a_running_sink_behind_by_more_than_lag_degraded_degrades_the_host() {
    let mut sink = plugin("out", Status::Running, true);
    sink.kind = Some(PluginKind::Sink);
    let sampling = SamplingConfig::default();
    let gpu = GpuConfig::default();
    let inputs = |now_ms| Inputs {
        sampling: &sampling,
        gpu: &gpu,
        samplers: vec![],
        plugins: vec![sink.clone()],
        plugins_loaded: true,
        breakers: vec![],
        events: (10, 0),
        sinks: [("out".to_string(), (4, Some(1_000)))].into(),
        lag_degraded: std::time::Duration::from_secs(60),
        now_ms,
    };
    assert_eq!(assess(inputs(30_000)).status, Overall::Healthy);
    let r = assess(inputs(62_000));
    assert_eq!(
        r.status,
        Overall::Degraded,
        "not unhealthy, though critical"
    );
    assert_eq!(r.down.len(), 1);
    assert_eq!(r.down[0].kind, ComponentKind::Sink);
    assert!(
        r.down[0].reason.contains("behind by 61s"),
        "{}",
        r.down[0].reason
    );
}
