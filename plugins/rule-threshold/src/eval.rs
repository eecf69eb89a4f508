//! Evaluation: a pure function from the validated [`Rules`] and one
//! [`RuleInput`] to the alerts to return. No host calls, so it is unit-tested
//! natively.
//!
//! Every condition checked is returned on every evaluation, with severity `ok`
//! when fine; the host turns that into pending → firing → resolved.

use crate::config::{Check, Direction, Rules};
use std::fmt::Write as _;
use wasmon_sdk::{Alert, Label, RuleInput, Sample, Severity};

/// The name of the alert raised per service whose heartbeats stopped.
pub const SERVICE_DOWN: &str = "service_down";

/// The label the host adds to every plugin sample, left out of summaries.
const PLUGIN_LABEL: &str = "plugin";

/// Evaluates every check and, when configured, the services.
pub fn evaluate(rules: &Rules, input: &RuleInput) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for check in &rules.checks {
        evaluate_check(check, &input.samples, &mut alerts);
    }
    if let Some(severity) = rules.services_down {
        for service in &input.services {
            if !rules.services.is_empty()
                && !wasmon_sdk::glob::matches_any(&rules.services, &service.name)
            {
                continue;
            }
            let silent_seconds = input.now_ms.saturating_sub(service.last_seen_ms) as f64 / 1000.0;
            let phase = match &service.phase {
                Some(phase) => format!(" (phase {phase})"),
                None => String::new(),
            };
            let (severity, summary) = if service.up {
                (
                    Severity::Ok,
                    format!("service {} is up{phase}", service.name),
                )
            } else {
                (
                    severity,
                    format!(
                        "service {} is down: no heartbeat for {}s{phase}",
                        service.name,
                        format_value(silent_seconds.round())
                    ),
                )
            };
            alerts.push(
                Alert::new(SERVICE_DOWN, severity, summary)
                    .with_label("service", service.name.as_str())
                    .with_value(silent_seconds),
            );
        }
    }
    alerts
}

/// One alert per matching series, plus the absent-series alert when configured.
fn evaluate_check(check: &Check, samples: &[Sample], alerts: &mut Vec<Alert>) {
    let mut matched = 0usize;
    for sample in samples.iter().filter(|s| matches(check, s)) {
        matched += 1;
        // NaN is "no value": checking it would report a made-up `ok`.
        if sample.value.is_nan() {
            continue;
        }
        alerts.push(classify(check, sample));
    }
    if let Some(absent) = check.absent {
        let mut alert = if matched == 0 {
            Alert::new(
                absent_name(check),
                absent,
                format!(
                    "{} is absent: no series of {}",
                    check.description,
                    selector(check)
                ),
            )
        } else {
            Alert::new(
                absent_name(check),
                Severity::Ok,
                format!("{} is present: {matched} series", check.description),
            )
        };
        for matcher in check.matchers.iter().filter(|m| m.is_exact()) {
            alert = alert.with_label(matcher.label.as_str(), matcher.pattern.as_str());
        }
        alerts.push(alert);
    }
}

/// The name of a check's absent-series alert.
pub fn absent_name(check: &Check) -> String {
    format!("{}_absent", check.name)
}

/// Whether a sample is one of the check's series.
fn matches(check: &Check, sample: &Sample) -> bool {
    sample.name == check.metric
        && check
            .matchers
            .iter()
            .all(|m| m.matches(sample.label(&m.label).unwrap_or("")))
}

/// The alert for one series: its severity, and a summary like
/// `disk usage 0.93 >= alert 0.9 on /`.
fn classify(check: &Check, sample: &Sample) -> Alert {
    let value = sample.value;
    let breaches = |threshold: f64| match check.direction {
        Direction::Above => value >= threshold,
        Direction::Below => value <= threshold,
    };
    let (breach_op, ok_op) = match check.direction {
        Direction::Above => (">=", "<"),
        Direction::Below => ("<=", ">"),
    };
    let (severity, op, level, threshold) = match (check.alert, check.warn) {
        (Some(alert), _) if breaches(alert) => (Severity::Critical, breach_op, "alert", alert),
        (_, Some(warn)) if breaches(warn) => (Severity::Warning, breach_op, "warn", warn),
        // Fine: compare with the nearest threshold.
        (_, Some(warn)) => (Severity::Ok, ok_op, "warn", warn),
        (Some(alert), None) => (Severity::Ok, ok_op, "alert", alert),
        // Validation requires at least one threshold.
        (None, None) => (Severity::Ok, ok_op, "threshold", f64::NAN),
    };
    let mut summary = format!(
        "{} {} {op} {level} {}",
        check.description,
        format_value(value),
        format_value(threshold)
    );
    append_context(&mut summary, check, &sample.labels);
    Alert {
        name: check.name.clone(),
        labels: sample.labels.clone(),
        severity,
        summary,
        value: Some(value),
    }
}

/// Appends ` on /` (the chosen labels' values) or ` on mountpoint=/ fstype=ext4`
/// (every label but `plugin`); nothing when there is nothing to show.
fn append_context(summary: &mut String, check: &Check, labels: &[Label]) {
    let mut first = true;
    let mut sep = |summary: &mut String| {
        summary.push_str(if first { " on " } else { " " });
        first = false;
    };
    match &check.summary_labels {
        Some(names) => {
            for name in names {
                if let Some(label) = labels.iter().find(|l| &l.name == name) {
                    sep(summary);
                    summary.push_str(&label.value);
                }
            }
        }
        None => {
            for label in labels.iter().filter(|l| l.name != PLUGIN_LABEL) {
                sep(summary);
                let _ = write!(summary, "{}={}", label.name, label.value);
            }
        }
    }
}

/// `metric{label="value",...}` as the check selects it.
fn selector(check: &Check) -> String {
    let mut out = check.metric.clone();
    if !check.matchers.is_empty() {
        out.push('{');
        for (i, m) in check.matchers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let op = match (m.negated, m.pattern.contains('*')) {
                (false, false) => "=",
                (true, false) => "!=",
                (false, true) => "=~",
                (true, true) => "!~",
            };
            let _ = write!(out, "{}{op}{:?}", m.label, m.pattern);
        }
        out.push('}');
    }
    out
}

/// A value for a human: integers as integers, others rounded to three
/// significant digits after the point at most (`0.93`, `12.5`, `0.000123`).
///
/// Rounds arithmetically and prints the shortest form, so the plugin carries
/// one float-formatting algorithm rather than two.
pub fn format_value(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value == value.trunc() && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    let magnitude = value.abs().log10().floor() as i32;
    let scale = 10f64.powi((2 - magnitude).clamp(2, 12));
    format!("{}", (value * scale).round() / scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use wasmon_sdk::ServiceState;

    fn rules(json: &str) -> Rules {
        wasmon_sdk::config::from_json::<Config>(json)
            .unwrap()
            .validate()
            .unwrap()
    }

    fn sample(name: &str, value: f64, labels: &[(&str, &str)]) -> Sample {
        labels
            .iter()
            .fold(Sample::gauge(name, value), |s, (k, v)| s.with_label(*k, *v))
    }

    fn input(samples: Vec<Sample>, services: Vec<ServiceState>) -> RuleInput {
        RuleInput {
            now_ms: 100_000,
            samples,
            services,
            events: Vec::new(),
        }
    }

    /// `(name, severity, summary)` of each alert, for compact expectations.
    fn brief(alerts: &[Alert]) -> Vec<(String, Severity, String)> {
        alerts
            .iter()
            .map(|a| (a.name.clone(), a.severity, a.summary.clone()))
            .collect()
    }

    #[track_caller]
    fn check(rules: &Rules, samples: Vec<Sample>, expect: &[(&str, Severity, &str)]) {
        let got = brief(&evaluate(rules, &input(samples, Vec::new())));
        let want: Vec<_> = expect
            .iter()
            .map(|(n, s, m)| (n.to_string(), *s, m.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    const DISK: &str = r#"{"checks": [{"name": "disk_usage", "metric": "wasmon_filesystem_usage_ratio",
        "warn": 0.8, "alert": 0.9, "summary_labels": ["mountpoint"]}]}"#;

    #[test]
    fn above_thresholds_follow_the_seed() {
        let rules = rules(DISK);
        let disk = |v, mp| sample("wasmon_filesystem_usage_ratio", v, &[("mountpoint", mp)]);
        check(
            &rules,
            vec![
                disk(0.93, "/"),
                disk(0.85, "/home"),
                disk(0.45, "/data"),
                disk(0.9, "/edge"),
                disk(0.8, "/warn-edge"),
                sample("wasmon_memory_usage_ratio", 0.99, &[]),
            ],
            &[
                (
                    "disk_usage",
                    Severity::Critical,
                    "disk usage 0.93 >= alert 0.9 on /",
                ),
                (
                    "disk_usage",
                    Severity::Warning,
                    "disk usage 0.85 >= warn 0.8 on /home",
                ),
                (
                    "disk_usage",
                    Severity::Ok,
                    "disk usage 0.45 < warn 0.8 on /data",
                ),
                (
                    "disk_usage",
                    Severity::Critical,
                    "disk usage 0.9 >= alert 0.9 on /edge",
                ),
                (
                    "disk_usage",
                    Severity::Warning,
                    "disk usage 0.8 >= warn 0.8 on /warn-edge",
                ),
            ],
        );
    }

    #[test]
    fn alerts_carry_the_series_labels_and_value() {
        let rules = rules(DISK);
        let alerts = evaluate(
            &rules,
            &input(
                vec![sample(
                    "wasmon_filesystem_usage_ratio",
                    0.95,
                    &[
                        ("mountpoint", "/"),
                        ("device", "/dev/sda1"),
                        ("plugin", "x"),
                    ],
                )],
                Vec::new(),
            ),
        );
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].value, Some(0.95));
        assert_eq!(
            alerts[0]
                .labels
                .iter()
                .map(|l| (l.name.as_str(), l.value.as_str()))
                .collect::<Vec<_>>(),
            [
                ("mountpoint", "/"),
                ("device", "/dev/sda1"),
                ("plugin", "x")
            ]
        );
    }

    #[test]
    fn below_direction_for_probe_success() {
        let rules = rules(
            r#"{"checks": [{"name": "probe_failed", "metric": "probe_success",
                "direction": "below", "alert": 0, "description": "probe success"}]}"#,
        );
        check(
            &rules,
            vec![
                sample(
                    "probe_success",
                    0.0,
                    &[("target", "api"), ("plugin", "http_probe")],
                ),
                sample(
                    "probe_success",
                    1.0,
                    &[("target", "web"), ("plugin", "http_probe")],
                ),
            ],
            &[
                (
                    "probe_failed",
                    Severity::Critical,
                    "probe success 0 <= alert 0 on target=api",
                ),
                (
                    "probe_failed",
                    Severity::Ok,
                    "probe success 1 > alert 0 on target=web",
                ),
            ],
        );
    }

    #[test]
    fn below_direction_with_both_thresholds() {
        let rules = rules(
            r#"{"checks": [{"name": "free", "metric": "avail_ratio",
                "direction": "below", "warn": 0.2, "alert": 0.1}]}"#,
        );
        check(
            &rules,
            vec![
                sample("avail_ratio", 0.05, &[]),
                sample("avail_ratio", 0.15, &[]),
                sample("avail_ratio", 0.5, &[]),
            ],
            &[
                ("free", Severity::Critical, "free 0.05 <= alert 0.1"),
                ("free", Severity::Warning, "free 0.15 <= warn 0.2"),
                ("free", Severity::Ok, "free 0.5 > warn 0.2"),
            ],
        );
    }

    #[test]
    fn only_one_threshold() {
        let rules = rules(
            r#"{"checks": [
                {"name": "backlog", "metric": "queue_backlog", "alert": 100},
                {"name": "chunks", "metric": "active_chunks", "warn": 35}]}"#,
        );
        check(
            &rules,
            vec![
                sample("queue_backlog", 150.0, &[]),
                sample("queue_backlog", 12.0, &[]),
                sample("active_chunks", 36.0, &[]),
            ],
            &[
                ("backlog", Severity::Critical, "backlog 150 >= alert 100"),
                ("backlog", Severity::Ok, "backlog 12 < alert 100"),
                ("chunks", Severity::Warning, "chunks 36 >= warn 35"),
            ],
        );
    }

    #[test]
    fn label_matchers_select_series() {
        let rules = rules(
            r#"{"checks": [{"name": "disk", "metric": "fs", "alert": 0.9,
                "labels": {"fstype": "!tmpfs", "mountpoint": "/mnt/*"}, "summary_labels": ["mountpoint"]}]}"#,
        );
        check(
            &rules,
            vec![
                sample("fs", 0.95, &[("fstype", "ext4"), ("mountpoint", "/mnt/a")]),
                sample("fs", 0.95, &[("fstype", "tmpfs"), ("mountpoint", "/mnt/b")]),
                sample("fs", 0.95, &[("fstype", "ext4"), ("mountpoint", "/")]),
                // A missing label is "", which `!tmpfs` accepts.
                sample("fs", 0.5, &[("mountpoint", "/mnt/c")]),
            ],
            &[
                (
                    "disk",
                    Severity::Critical,
                    "disk 0.95 >= alert 0.9 on /mnt/a",
                ),
                ("disk", Severity::Ok, "disk 0.5 < alert 0.9 on /mnt/c"),
            ],
        );
    }

    #[test]
    fn absent_series_raise_and_resolve() {
        let rules = rules(
            r#"{"checks": [{"name": "gpu_busy", "metric": "wasmon_gpu_utilization_ratio",
                "labels": {"gpu": "0", "uuid": "GPU-*"}, "warn": 0.9, "absent": "critical"}]}"#,
        );
        let alerts = evaluate(&rules, &input(Vec::new(), Vec::new()));
        assert_eq!(
            brief(&alerts),
            [(
                "gpu_busy_absent".to_string(),
                Severity::Critical,
                r#"gpu busy is absent: no series of wasmon_gpu_utilization_ratio{gpu="0",uuid=~"GPU-*"}"#
                    .to_string()
            )]
        );
        // Only the exact matcher becomes a label.
        assert_eq!(alerts[0].labels, vec![Label::new("gpu", "0")]);
        assert_eq!(alerts[0].value, None);
        check(
            &rules,
            vec![sample(
                "wasmon_gpu_utilization_ratio",
                0.5,
                &[("gpu", "0"), ("uuid", "GPU-1")],
            )],
            &[
                (
                    "gpu_busy",
                    Severity::Ok,
                    "gpu busy 0.5 < warn 0.9 on gpu=0 uuid=GPU-1",
                ),
                (
                    "gpu_busy_absent",
                    Severity::Ok,
                    "gpu busy is present: 1 series",
                ),
            ],
        );
    }

    #[test]
    fn nan_is_skipped_but_counts_as_present() {
        let rules = rules(
            r#"{"checks": [{"name": "cpu", "metric": "wasmon_cpu_usage_ratio", "warn": 0.8, "absent": "warning"}]}"#,
        );
        check(
            &rules,
            vec![sample("wasmon_cpu_usage_ratio", f64::NAN, &[])],
            &[("cpu_absent", Severity::Ok, "cpu is present: 1 series")],
        );
    }

    #[test]
    fn services_down() {
        let rules = rules(r#"{"services_down": "critical", "services": ["api*", "worker"]}"#);
        let service = |name: &str, up, phase: Option<&str>| ServiceState {
            name: name.into(),
            up,
            last_seen_ms: 58_000,
            phase: phase.map(String::from),
        };
        let alerts = evaluate(
            &rules,
            &input(
                Vec::new(),
                vec![
                    service("api-gw", false, Some("startup")),
                    service("worker", true, None),
                    service("other", false, None),
                ],
            ),
        );
        assert_eq!(
            brief(&alerts),
            [
                (
                    "service_down".to_string(),
                    Severity::Critical,
                    "service api-gw is down: no heartbeat for 42s (phase startup)".to_string()
                ),
                (
                    "service_down".to_string(),
                    Severity::Ok,
                    "service worker is up".to_string()
                ),
            ]
        );
        assert_eq!(alerts[0].labels, vec![Label::new("service", "api-gw")]);
        assert_eq!(alerts[0].value, Some(42.0));
    }

    #[test]
    fn values_are_formatted_for_people() {
        for (value, text) in [
            (0.93, "0.93"),
            (0.9, "0.9"),
            (0.931234, "0.931"),
            (35.0, "35"),
            (12.5, "12.5"),
            (1234.5678, "1234.57"),
            (0.000123, "0.000123"),
            (0.00012345, "0.000123"),
            (0.1 + 0.2, "0.3"),
            (99.999, "100"),
            (-0.5, "-0.5"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(format_value(value), text, "{value}");
        }
    }
}
