//! Backtests: a rule version (serving or shadow) replayed over the store's
//! history, one evaluation per step, in a fresh instance with a fresh state,
//! on a thread of its own at a lower priority (nice 10, so scrapes and live
//! evaluations come first), into a detached alert state machine.
//!
//! `rule-input` is rebuilt at each step time `t` from the buckets
//! (`store.history_resolution` wide): each selected series' value is the
//! `last` of its newest bucket starting at or before `t`, if that bucket
//! started less than the lookback (`max(step, 5 × resolution)`) before `t`;
//! the sample's timestamp is `min(t, bucket end)`. Each step gets the events
//! of the log's memory recorded since the previous step. What history
//! cannot give is said in `unreconstructed`: the services table (not kept
//! over time: empty), events older than the log's memory, and series whose
//! family has no live series now (the selection is resolved against the live
//! store).
//!
//! Bounds: one backtest at a time (409 otherwise), at most
//! `alerts.backtest.max_steps` steps and `alerts.backtest.max_points` points
//! copied (400 beyond, before any guest call), and `alerts.backtest.timeout`
//! in all (then the answer is partial: `complete` false); each evaluation
//! also under the manifest's `timeout`. The history is copied family by
//! family under the store's read lock, so collectors and `/metrics` wait at
//! most one family's copy.

use super::ShadowError;
use super::diff::HistoryEntry;
use crate::model::{MetricKind, Sample};
use crate::plugins::bindings::types;
use crate::plugins::context::{GuestOutput, HostParts, PluginEnv};
use crate::plugins::registry::{Generation, Inner, Plugins};
use crate::plugins::runtime::CallError;
use crate::plugins::state::KvState;
use crate::store::HistoryPoint;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One backtest at a time, host-wide.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Which version a backtest replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BacktestVersion {
    /// The version serving now.
    Serving,
    /// Its shadow.
    Shadow,
}

/// What to replay.
#[derive(Debug, Clone, Copy)]
pub struct BacktestRequest {
    /// How far back from now.
    pub window: Duration,
    /// One evaluation per step.
    pub step: Duration,
    /// Which version.
    pub version: BacktestVersion,
}

/// The bounds of a backtest (`[alerts.backtest]`).
#[derive(Debug, Clone, Copy)]
pub struct BacktestLimits {
    /// The whole replay's deadline.
    pub timeout: Duration,
    /// Most history points copied.
    pub max_points: usize,
    /// Most steps.
    pub max_steps: usize,
}

/// A field of `rule-input` history cannot give back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Unreconstructed {
    /// The field: `services`, `events`, `samples`.
    pub field: &'static str,
    /// Why, and what the backtest passed instead.
    pub reason: String,
}

/// What a backtest answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BacktestReport {
    /// The rule.
    pub rule: String,
    /// The version replayed.
    pub version: BacktestVersion,
    /// Its generation (the shadow's own count for a shadow).
    pub generation: u64,
    /// SHA-256 of its component.
    pub sha256: String,
    /// The window's start, Unix milliseconds.
    pub from_ms: u64,
    /// Its end ("now" when the backtest started).
    pub to_ms: u64,
    /// The step, milliseconds.
    pub step_ms: u64,
    /// The history's bucket width, milliseconds.
    pub resolution_ms: u64,
    /// Steps planned (`window / step`).
    pub steps: usize,
    /// Steps evaluated.
    pub evaluated: usize,
    /// Whether every step was evaluated.
    pub complete: bool,
    /// Why it stopped early: `deadline` or the fault.
    pub stopped: Option<String>,
    /// Series replayed.
    pub series: usize,
    /// History points copied.
    pub points: usize,
    /// What history cannot reconstruct.
    pub unreconstructed: Vec<Unreconstructed>,
    /// Evaluations that returned an error.
    pub errors: u64,
    /// The first such error.
    pub first_error: Option<String>,
    /// The alerts this version would have raised and resolved, at step times.
    pub timeline: Vec<HistoryEntry>,
    /// The serving version's real alert changes over the window (the host
    /// keeps the last 1000 per rule).
    pub serving_history: Vec<HistoryEntry>,
    /// Milliseconds the backtest took.
    pub took_ms: u64,
}

/// One series' history, walked forward step by step.
struct Replayed {
    name: String,
    kind: MetricKind,
    help: Option<String>,
    labels: Vec<(String, String)>,
    points: Vec<HistoryPoint>,
    cursor: usize,
}

impl Replayed {
    /// The sample at step time `t`, if the series had a value then.
    fn at(&mut self, t: u64, resolution_ms: u64, lookback_ms: u64) -> Option<types::Sample> {
        while self
            .points
            .get(self.cursor + 1)
            .is_some_and(|p| p.time_ms <= t)
        {
            self.cursor += 1;
        }
        let point = self.points.get(self.cursor)?;
        if point.time_ms > t || t - point.time_ms >= lookback_ms {
            return None;
        }
        Some(types::Sample::from(Sample {
            name: self.name.clone(),
            kind: self.kind,
            labels: self.labels.clone(),
            value: point.last,
            help: self.help.clone(),
            timestamp_ms: Some(t.min(point.time_ms + resolution_ms)),
        }))
    }
}

impl Plugins {
    /// Replays rule `name`'s `request.version` over the last `request.window`
    /// of history (see the module docs).
    pub async fn backtest(
        &self,
        name: &str,
        request: BacktestRequest,
        limits: BacktestLimits,
    ) -> Result<BacktestReport, ShadowError> {
        // A thread of its own at a lower priority: a backtest keeps a core
        // busy for seconds, and the OS should prefer the HTTP threads (a
        // scrape) and the plugin runtime (live evaluations) meanwhile.
        let inner = self.inner.clone();
        let name = name.to_string();
        let (done, result) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("wasmon-backtest".into())
            .spawn(move || {
                crate::plugins::priority::lower_this_thread();
                let report = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(inner.backtest(&name, request, limits)),
                    Err(e) => Err(ShadowError::Internal(format!(
                        "cannot start the backtest's runtime: {e}"
                    ))),
                };
                let _ = done.send(report);
            })
            .map_err(|e| ShadowError::Internal(format!("cannot start the backtest thread: {e}")))?;
        result
            .await
            .map_err(|_| ShadowError::Internal("the backtest thread stopped".into()))?
    }
}

impl Inner {
    async fn backtest(
        self: &Arc<Self>,
        name: &str,
        request: BacktestRequest,
        limits: BacktestLimits,
    ) -> Result<BacktestReport, ShadowError> {
        let started = Instant::now();
        let slot = self.rule_slot(name)?;
        // The version replayed, held while it runs (a shadow's generation
        // outlives its discard meanwhile).
        let (serving, shadow);
        let generation: &Generation = match request.version {
            BacktestVersion::Serving => {
                serving = slot.current().ok_or_else(|| {
                    ShadowError::NotFound(format!("no version of rule {name:?} serves"))
                })?;
                &serving
            }
            BacktestVersion::Shadow => {
                shadow = slot.shadow.current.load_full().ok_or_else(|| {
                    ShadowError::NotFound(format!("rule {name:?} has no shadow to backtest"))
                })?;
                &shadow.generation
            }
        };
        let store = &self.deps.store;
        let (resolution, history_window) = store.history_limits();
        let bad = ShadowError::BadRequest;
        if request.window.is_zero() || request.window > history_window {
            return Err(bad(format!(
                "window {}s is beyond store.history_window ({}s) or zero",
                request.window.as_secs(),
                history_window.as_secs()
            )));
        }
        if request.step < Duration::from_secs(1) || request.step > request.window {
            return Err(bad(format!(
                "step {}ms must be at least 1s and at most the window",
                request.step.as_millis()
            )));
        }
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (window_ms, step_ms, resolution_ms) = (
            millis(request.window),
            millis(request.step),
            millis(resolution),
        );
        let steps = usize::try_from(window_ms / step_ms).unwrap_or(usize::MAX);
        if steps > limits.max_steps {
            return Err(bad(format!(
                "{steps} steps is more than alerts.backtest.max_steps ({}): a longer step or a shorter window",
                limits.max_steps
            )));
        }
        let _running = RUNNING.try_acquire().map_err(|_| {
            ShadowError::Busy("a backtest is already running; try again when it is done".into())
        })?;
        let to_ms = crate::time::now_ms();
        let from_ms = to_ms.saturating_sub(window_ms);

        // The selected families (as the live rule would see them), then
        // their history, family by family, within the point budget.
        let mut families: BTreeMap<String, (MetricKind, Option<String>)> = BTreeMap::new();
        for sample in store.select(&generation.manifest.select) {
            families
                .entry(sample.name)
                .or_insert((sample.kind, sample.help));
        }
        let mut series = Vec::new();
        let mut points = 0usize;
        let lookback_ms = step_ms.max(resolution_ms.saturating_mul(5));
        for (family, (kind, help)) in families {
            let window = request.window + Duration::from_millis(lookback_ms);
            for h in store.history_at(&family, &[], window, to_ms) {
                points += h.points.len();
                if points > limits.max_points {
                    return Err(bad(format!(
                        "the backtest would copy more than alerts.backtest.max_points ({}) history points: a shorter window or a narrower select",
                        limits.max_points
                    )));
                }
                series.push(Replayed {
                    name: h.name,
                    kind,
                    help: help.clone(),
                    labels: h.labels,
                    points: h.points,
                    cursor: 0,
                });
            }
        }

        // A fresh instance with a fresh state: the replay touches nothing live.
        let env = Arc::new(PluginEnv::new(
            Arc::from(format!("{name}.backtest")),
            generation.kind.export(),
            generation.manifest.clone(),
            Arc::new(KvState::new()),
            HostParts {
                shared: &self.capabilities,
                breakers: &self.breakers,
                telemetry: self.deps.telemetry.clone(),
            },
            GuestOutput::default(),
        ));
        let mut instance = self
            .runtime
            .instantiate(&generation.prepared, env)
            .await
            .map_err(|e| ShadowError::Invalid(format!("the backtest instance failed: {e}")))?;
        // The events still in the log's memory, oldest first, within the window.
        let oldest = std::cell::Cell::new(u64::MAX);
        let (mut events, matched) = self.deps.events.recent(usize::MAX, 0, MAX_EVENTS, |e| {
            oldest.set(oldest.get().min(e.time_ms));
            e.time_ms > from_ms && e.time_ms <= to_ms
        });
        events.reverse();
        let mut next_event = 0;
        let alerts = self.deps.alerts.detached();
        let deadline = started + limits.timeout;
        let mut report = BacktestReport {
            rule: name.to_string(),
            version: request.version,
            generation: generation.number,
            sha256: generation.sha256.clone(),
            from_ms,
            to_ms,
            step_ms,
            resolution_ms,
            steps,
            evaluated: 0,
            complete: false,
            stopped: None,
            series: series.len(),
            points,
            unreconstructed: unreconstructed(oldest.get(), from_ms, matched),
            errors: 0,
            first_error: None,
            timeline: Vec::new(),
            serving_history: slot.shadow.history.lock().since(from_ms),
            took_ms: 0,
        };
        for k in 1..=steps as u64 {
            if Instant::now() >= deadline {
                report.stopped = Some("deadline".into());
                break;
            }
            let t = from_ms + k * step_ms;
            // The events of this step: recorded after the previous one.
            let first = next_event;
            while events.get(next_event).is_some_and(|e| e.time_ms <= t) {
                next_event += 1;
            }
            let step_events = events.get(first..next_event).unwrap_or_default();
            let input = types::RuleInput {
                now_ms: t,
                samples: series
                    .iter_mut()
                    .filter_map(|s| s.at(t, resolution_ms, lookback_ms))
                    .collect(),
                services: Vec::new(),
                events: step_events
                    .iter()
                    .take(MAX_STEP_EVENTS)
                    .map(|e| types::Event::from(&**e))
                    .collect(),
            };
            match instance.evaluate(input).await {
                Ok(raised) => {
                    let changes = alerts.update(
                        name,
                        raised,
                        generation.manifest.for_duration,
                        generation.manifest.max_alerts,
                        t,
                    );
                    report
                        .timeline
                        .extend(changes.iter().map(|c| HistoryEntry::of(c, t)));
                }
                Err(CallError::Fault(fault)) => {
                    report.stopped = Some(format!("fault at step {k}: {fault}"));
                    report.evaluated += 1;
                    break;
                }
                Err(CallError::Plugin(message) | CallError::Delivery { message, .. }) => {
                    report.errors += 1;
                    report.first_error.get_or_insert(message);
                }
            }
            report.evaluated += 1;
            // Other tasks of the plugin runtime run between steps.
            tokio::task::yield_now().await;
        }
        report.complete = report.evaluated == steps && report.stopped.is_none();
        report.took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            plugin = name,
            steps,
            evaluated = report.evaluated,
            series = report.series,
            points,
            took_ms = report.took_ms,
            "backtest done"
        );
        Ok(report)
    }
}

/// Most events one backtest replays.
const MAX_EVENTS: usize = 100_000;
/// Most events one step gets (as a live evaluation).
const MAX_STEP_EVENTS: usize = 1000;

fn unreconstructed(oldest_ms: u64, from_ms: u64, matched: usize) -> Vec<Unreconstructed> {
    let mut events = Vec::new();
    if oldest_ms == u64::MAX || oldest_ms > from_ms {
        events.push(Unreconstructed {
            field: "events",
            reason: if oldest_ms == u64::MAX {
                "the event log holds no event in memory: every step gets none".into()
            } else {
                format!(
                    "events older than the event log's memory ({}) are gone: steps before it get none; later steps get those recorded since the previous step (at most {MAX_STEP_EVENTS})",
                    crate::time::rfc3339(oldest_ms)
                )
            },
        });
    }
    if matched > MAX_EVENTS {
        events.push(Unreconstructed {
            field: "events",
            reason: format!(
                "{matched} events in the window: only the newest {MAX_EVENTS} are replayed"
            ),
        });
    }
    let mut out = vec![Unreconstructed {
        field: "services",
        reason: "the heartbeat table is not kept over time: every step gets no services".into(),
    }];
    out.extend(events);
    out.push(Unreconstructed {
        field: "samples",
        reason: "values are bucket `last`s at store.history_resolution; families with no live series now are not selected".into(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(time_ms: u64, last: f64) -> HistoryPoint {
        HistoryPoint {
            time_ms,
            min: last,
            max: last,
            avg: last,
            last,
            count: 1,
        }
    }

    #[test]
    fn a_step_sees_the_newest_bucket_at_or_before_it_within_the_lookback() {
        let mut series = Replayed {
            name: "cpu".into(),
            kind: MetricKind::Gauge,
            help: None,
            labels: Vec::new(),
            points: vec![point(10_000, 0.1), point(20_000, 0.2), point(60_000, 0.6)],
            cursor: 0,
        };
        let at = |s: &mut Replayed, t| s.at(t, 10_000, 30_000).map(|x| (x.value, x.timestamp_ms));
        assert_eq!(at(&mut series, 5_000), None, "before the first bucket");
        assert_eq!(at(&mut series, 10_000), Some((0.1, Some(10_000))));
        assert_eq!(at(&mut series, 25_000), Some((0.2, Some(25_000))));
        assert_eq!(at(&mut series, 45_000), Some((0.2, Some(30_000))));
        assert_eq!(at(&mut series, 50_000), None, "past the lookback");
        assert_eq!(at(&mut series, 65_000), Some((0.6, Some(65_000))));
    }
}
