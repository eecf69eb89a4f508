//! Tests of the alert state machine and its bounds.

use super::*;
use crate::config::StoreConfig;

fn config(max_alerts_per_rule: usize, max_resolved: usize) -> AlertsConfig {
    AlertsConfig {
        keep_resolved: Duration::from_secs(60),
        max_resolved,
        max_alerts_per_rule,
        ..AlertsConfig::default()
    }
}

fn manager_with(config: &AlertsConfig, store: StoreConfig) -> (AlertManager, Arc<EventLog>) {
    let events = Arc::new(EventLog::new(100_000));
    let store = Arc::new(Store::new(&store));
    (AlertManager::new(events.clone(), store, config), events)
}

fn test_store(m: &AlertManager) -> &Store {
    &m.outputs.as_ref().expect("a live manager").store
}

fn manager() -> (AlertManager, Arc<EventLog>) {
    manager_with(&config(1000, 1000), StoreConfig::default())
}

fn all(m: &AlertManager) -> AlertsPage {
    m.page(&AlertQuery {
        limit: 100_000,
        ..AlertQuery::default()
    })
}

fn alert(name: &str, severity: Severity) -> RuleAlert {
    RuleAlert {
        name: name.into(),
        labels: vec![("mountpoint".into(), "/".into())],
        severity,
        summary: format!("{name} is {severity:?}"),
        value: Some(0.95),
    }
}

/// `n` alerts named `flood` with labels `i` = `{prefix}{i}`.
fn flood(prefix: &str, n: usize, severity: Severity) -> Vec<RuleAlert> {
    (0..n)
        .map(|i| RuleAlert {
            name: "flood".into(),
            labels: vec![("i".into(), format!("{prefix}{i}"))],
            severity,
            summary: String::new(),
            value: None,
        })
        .collect()
}

fn states(changes: &[AlertChange]) -> Vec<(String, AlertState, Severity)> {
    changes
        .iter()
        .map(|c| (c.name.clone(), c.state, c.severity))
        .collect()
}

fn update(
    m: &AlertManager,
    rule: &str,
    alerts: Vec<RuleAlert>,
    hold: Duration,
    now: u64,
) -> Vec<AlertChange> {
    m.update(rule, alerts, hold, None, now)
}

#[test]
fn fires_after_for_and_resolves() {
    let (m, events) = manager();
    let hold = Duration::from_secs(10);
    assert!(update(&m, "r", vec![alert("disk", Severity::Warning)], hold, 1_000).is_empty());
    assert_eq!(all(&m).alerts[0].state, AlertState::Pending);
    assert_eq!(all(&m).overall, "OK");
    assert!(update(&m, "r", vec![alert("disk", Severity::Warning)], hold, 5_000).is_empty());
    let fired = update(
        &m,
        "r",
        vec![alert("disk", Severity::Warning)],
        hold,
        11_000,
    );
    assert_eq!(
        states(&fired),
        vec![("disk".into(), AlertState::Firing, Severity::Warning)]
    );
    assert_eq!(all(&m).overall, "WARNING");
    let escalated = update(
        &m,
        "r",
        vec![alert("disk", Severity::Critical)],
        hold,
        12_000,
    );
    assert_eq!(
        states(&escalated),
        vec![("disk".into(), AlertState::Firing, Severity::Critical)]
    );
    assert_eq!(all(&m).overall, "ALERT");
    assert_eq!(m.overall(), Severity::Critical);
    let resolved = update(&m, "r", vec![alert("disk", Severity::Ok)], hold, 13_000);
    assert_eq!(
        states(&resolved),
        vec![("disk".into(), AlertState::Resolved, Severity::Ok)]
    );
    let page = all(&m);
    assert_eq!(page.overall, "OK");
    // Still checked, and fine: listed as a check while its resolved alert stays.
    assert_eq!(page.checks.len(), 1);
    assert_eq!(page.checks[0].status, "OK");
    let types: Vec<String> = events
        .read(0, 10)
        .0
        .iter()
        .map(|(_, e)| e.event_type.clone())
        .collect();
    assert_eq!(types, ["alert.firing", "alert.firing", "alert.resolved"]);
}

#[test]
fn pending_that_clears_never_fires() {
    let (m, events) = manager();
    let hold = Duration::from_secs(10);
    update(&m, "r", vec![alert("cpu", Severity::Critical)], hold, 0);
    assert!(update(&m, "r", vec![], hold, 5_000).is_empty());
    assert!(all(&m).alerts.is_empty());
    assert_eq!(events.end(), 0);
}

#[test]
fn zero_for_fires_at_once_and_missing_resolves() {
    let (m, _) = manager();
    let fired = update(
        &m,
        "r",
        vec![alert("a", Severity::Critical), alert("b", Severity::Ok)],
        Duration::ZERO,
        0,
    );
    assert_eq!(
        states(&fired),
        vec![("a".into(), AlertState::Firing, Severity::Critical)]
    );
    let checks = all(&m).checks;
    assert_eq!(checks.len(), 2);
    let resolved = update(&m, "r", vec![], Duration::ZERO, 1);
    assert_eq!(
        states(&resolved),
        vec![("a".into(), AlertState::Resolved, Severity::Ok)]
    );
    assert!(all(&m).checks.is_empty(), "nothing was checked");
}

#[test]
fn rules_are_independent_and_removal_resolves() {
    let (m, _) = manager();
    update(
        &m,
        "r1",
        vec![alert("a", Severity::Warning)],
        Duration::ZERO,
        0,
    );
    update(
        &m,
        "r2",
        vec![alert("a", Severity::Critical)],
        Duration::ZERO,
        0,
    );
    assert!(
        update(
            &m,
            "r1",
            vec![alert("a", Severity::Warning)],
            Duration::ZERO,
            1
        )
        .is_empty()
    );
    assert_eq!(all(&m).overall, "ALERT");
    let resolved = m.remove_rule("r2", 2);
    assert_eq!(resolved.len(), 1);
    assert_eq!(all(&m).overall, "WARNING");
    assert_eq!(m.rule_stats("r2"), None);
}

#[test]
fn resolved_alerts_are_forgotten_after_keep_resolved() {
    let (m, _) = manager();
    update(
        &m,
        "r",
        vec![alert("a", Severity::Warning)],
        Duration::ZERO,
        0,
    );
    update(&m, "r", vec![], Duration::ZERO, 1_000);
    assert_eq!(all(&m).alerts.len(), 1);
    // Another rule's evaluation ages it out too.
    update(&m, "other", vec![], Duration::ZERO, 62_000);
    assert!(all(&m).alerts.is_empty());
    assert_eq!(m.rule_stats("r").unwrap().resolved, 0);
}

#[test]
fn a_flood_of_fresh_alerts_is_capped_and_counted() {
    let counter =
        prometheus::IntCounterVec::new(prometheus::Opts::new("t_total", "t"), &["rule"]).unwrap();
    let (m, events) = manager_with(&config(1000, 100), StoreConfig::default());
    let m = m.with_drop_counter(counter.clone());
    for round in 0..20u64 {
        let alerts = flood(&format!("r{round}_"), 2_000, Severity::Warning);
        m.update("flood", alerts, Duration::ZERO, Some(50), round * 1_000);
        let stats = m.rule_stats("flood").unwrap();
        assert_eq!(stats.active, 50, "{round}: {stats:?}");
        assert!(stats.resolved <= 100, "{round}: {stats:?}");
        assert_eq!(stats.max_alerts, 50);
    }
    let stats = m.rule_stats("flood").unwrap();
    // 1 950 refused per round; 50 resolved per round beyond the first two.
    assert_eq!(stats.dropped - stats.dropped_resolved, 20 * 1_950);
    assert_eq!(stats.dropped_resolved, 17 * 50);
    assert_eq!(counter.with_label_values(&["flood"]).get(), stats.dropped);
    // Events: 50 firings per round, 50 resolutions per round after the first.
    assert_eq!(events.end(), 20 * 50 + 19 * 50);
    // The export follows the cap.
    let exported = test_store(&m).select(&["wasmon_alert_active".into()]);
    assert_eq!(exported.len(), 50);
}

#[test]
fn the_most_severe_are_admitted_first_and_active_alerts_keep_their_place() {
    let (m, _) = manager_with(&config(3, 10), StoreConfig::default());
    let mut alerts = flood("w", 3, Severity::Warning);
    update(&m, "r", alerts.clone(), Duration::ZERO, 0);
    // Three new criticals cannot push out the three active warnings...
    alerts.extend(flood("c", 3, Severity::Critical));
    update(&m, "r", alerts.clone(), Duration::ZERO, 1);
    let page = all(&m);
    assert!(page.alerts.iter().all(|a| a.severity == Severity::Warning));
    assert_eq!(m.rule_stats("r").unwrap().dropped, 3);
    // ...but take the room they leave, the most severe first.
    let mut next = flood("w", 1, Severity::Warning);
    next.extend(flood("x", 2, Severity::Warning));
    next.extend(flood("c", 3, Severity::Critical));
    update(&m, "r", next, Duration::ZERO, 2);
    let active: Vec<(String, Severity)> = all(&m)
        .alerts
        .into_iter()
        .filter(|a| a.state != AlertState::Resolved)
        .map(|a| (a.labels["i"].clone(), a.severity))
        .collect();
    assert_eq!(
        active,
        [
            ("c0".into(), Severity::Critical),
            ("c1".into(), Severity::Critical),
            ("w0".into(), Severity::Warning)
        ]
    );
}

#[test]
fn a_manifest_may_lower_the_cap_but_not_raise_it() {
    let (m, _) = manager_with(&config(10, 10), StoreConfig::default());
    assert_eq!(m.max_alerts(None), 10);
    assert_eq!(m.max_alerts(Some(5)), 5);
    assert_eq!(m.max_alerts(Some(50)), 10);
    m.update(
        "r",
        flood("a", 40, Severity::Critical),
        Duration::ZERO,
        Some(1000),
        0,
    );
    assert_eq!(m.rule_stats("r").unwrap().active, 10);
}

#[test]
fn oversized_alerts_are_dropped_and_long_summaries_cut() {
    let (m, _) = manager();
    let mut long = alert("a", Severity::Warning);
    long.summary = "x".repeat(100_000);
    let mut huge_label = alert("b", Severity::Warning);
    huge_label.labels.push(("big".into(), "y".repeat(2000)));
    let mut many = alert("c", Severity::Warning);
    many.labels = (0..40).map(|i| (format!("l{i}"), "v".into())).collect();
    update(&m, "r", vec![long, huge_label, many], Duration::ZERO, 0);
    let page = all(&m);
    assert_eq!(page.alerts.len(), 1);
    assert_eq!(page.alerts[0].summary.len(), 1024);
    assert_eq!(m.rule_stats("r").unwrap().dropped, 2);
}

#[test]
fn pages_and_filters() {
    let (m, _) = manager();
    update(
        &m,
        "a",
        flood("a", 30, Severity::Warning),
        Duration::ZERO,
        0,
    );
    update(
        &m,
        "b",
        flood("b", 20, Severity::Critical),
        Duration::from_secs(60),
        0,
    );
    let page = |rule: Option<&str>, state: Option<AlertState>, offset, limit| {
        m.page(&AlertQuery {
            rule: rule.map(String::from),
            state,
            offset,
            limit,
        })
    };
    let first = page(None, None, 0, 10);
    assert_eq!(
        (first.total, first.alerts.len(), first.has_more),
        (50, 10, true)
    );
    assert_eq!(first.checks_total, 50);
    // Most severe first: b's pending criticals.
    assert!(first.alerts.iter().all(|a| a.rule == "b"));
    let last = page(None, None, 40, 10);
    assert_eq!((last.alerts.len(), last.has_more), (10, false));
    assert!(page(None, None, 100, 10).alerts.is_empty());
    let a = page(Some("a"), None, 0, 100);
    assert_eq!((a.total, a.checks_total), (30, 30));
    let pending = page(None, Some(AlertState::Pending), 0, 100);
    assert_eq!(pending.total, 20);
    assert!(
        pending
            .alerts
            .iter()
            .all(|x| x.state == AlertState::Pending)
    );
    assert_eq!(page(Some("nope"), None, 0, 10).total, 0);
}

#[test]
fn alert_series_stay_within_their_share_of_the_reserved_budget() {
    let store = StoreConfig {
        reserved_series: 40,
        ..StoreConfig::default()
    };
    let (m, _) = manager_with(&config(1000, 10), store);
    update(
        &m,
        "r",
        flood("a", 100, Severity::Warning),
        Duration::ZERO,
        0,
    );
    assert_eq!(m.rule_stats("r").unwrap().active, 100);
    let stats = test_store(&m).source_stats("alerts", false).unwrap();
    assert_eq!(stats.held_series, 20, "{stats:?}");
    assert!(stats.refused["series_limit"] > 0);
    // The status is always exported.
    assert_eq!(
        test_store(&m)
            .select(&["wasmon_alerts_status".into()])
            .len(),
        1
    );
}

#[test]
fn a_detached_manager_keeps_state_but_publishes_and_exports_nothing() {
    let (m, events) = manager();
    let shadow = m.detached();
    let changes = update(
        &shadow,
        "r",
        flood("a", 3, Severity::Critical),
        Duration::ZERO,
        0,
    );
    assert_eq!(changes.len(), 3);
    assert_eq!(shadow.firing("r").len(), 3);
    assert_eq!(events.end(), 0, "no event reaches the log");
    assert!(m.firing("r").is_empty(), "the live manager is untouched");
    assert!(
        test_store(&m)
            .select(&["wasmon_alert_active".into()])
            .is_empty()
    );
}
