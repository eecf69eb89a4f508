//! `collector-http-probe`: what blackbox-exporter's http module does, as a
//! wasmon collector. Each `collect()` probes every configured target once,
//! through the host's HTTP capability, and reports `probe_success`,
//! `probe_duration_seconds`, `probe_http_status_code` and friends per target
//! (see [`probe`] for the full list).
//!
//! A target that fails (not allow-listed, timeout, transport error, wrong
//! status, body mismatch) is a failed probe, `probe_success 0` with a
//! `probe_failure_info{reason}`, never an error from `collect()`. A bad
//! `[config]` fails `init()` with a message naming the key.
//!
//! Requests run one after another (the host's HTTP call blocks), within
//! `[config] budget` (1.5 s by default), which must stay below the manifest's
//! per-call `timeout` (2 s by default): targets whose turn comes after the
//! budget is spent are reported `budget_exhausted` rather than letting the
//! host interrupt the whole call.
//!
//! # Layout
//!
//! - [`config`]: the `[config]` table and its validation.
//! - [`probe`]: judging one answer and building its samples, pure and
//!   unit-tested natively with `cargo test --target x86_64-unknown-linux-gnu`.

pub mod config;
pub mod probe;

use probe::{Outcome, Reason};
use std::time::{Duration, Instant};
use wasmon_sdk::http::{self, Request};
use wasmon_sdk::{Collector, Error, Sample};

/// The `User-Agent` of every probe unless the target sets its own.
const USER_AGENT: &str = concat!("wasmon-http-probe/", env!("CARGO_PKG_VERSION"));

/// The plugin: the targets, and each one's last failure reason so the log
/// shows changes rather than one line per failed probe.
pub struct HttpProbe {
    config: config::Targets,
    last_failure: Vec<Option<Reason>>,
}

impl Collector for HttpProbe {
    fn init() -> Result<Self, Error> {
        let config = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        wasmon_sdk::info!(
            "probing {} targets within {} ms per collect",
            config.targets.len(),
            config.budget.as_millis()
        );
        Ok(HttpProbe {
            last_failure: vec![None; config.targets.len()],
            config,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let started = Instant::now();
        let mut samples = Vec::with_capacity(self.config.targets.len() * 7);
        for (target, last_failure) in self.config.targets.iter().zip(&mut self.last_failure) {
            let remaining = self.config.budget.saturating_sub(started.elapsed());
            let outcome = if remaining < Duration::from_millis(1) {
                Outcome::budget_exhausted(self.config.budget)
            } else {
                probe_one(target, target.timeout.min(remaining))
            };
            report_change(target, &outcome, last_failure);
            probe::samples(target, &outcome, &mut samples);
        }
        Ok(samples)
    }
}

/// Sends one target's request and judges the answer.
fn probe_one(target: &config::Target, timeout: Duration) -> Outcome {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let mut request = Request::new(target.method, target.url.as_str()).with_timeout_ms(timeout_ms);
    if !target
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
    {
        request = request.with_header("user-agent", USER_AGENT);
    }
    for (name, value) in &target.headers {
        request = request.with_header(name.as_str(), value.as_str());
    }
    if let Some(body) = &target.body {
        request = request.with_body(body.as_bytes());
    }
    let sent = Instant::now();
    let answer = http::send(&request);
    probe::judge(target, answer, sent.elapsed())
}

/// Logs when a target starts failing, fails differently, or recovers.
fn report_change(target: &config::Target, outcome: &Outcome, last: &mut Option<Reason>) {
    let now = outcome.failure.as_ref().map(|(reason, _)| *reason);
    if now == *last {
        return;
    }
    match &outcome.failure {
        Some((reason, detail)) => wasmon_sdk::warn!(
            "probe {} ({}) failing: {}: {detail}",
            target.label,
            target.url,
            reason.as_str()
        ),
        None => wasmon_sdk::info!("probe {} ({}) succeeds again", target.label, target.url),
    }
    *last = now;
}

wasmon_sdk::export_collector!(HttpProbe);
