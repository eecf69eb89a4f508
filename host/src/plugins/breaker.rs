//! Circuit breakers, one per plugin and data source (`probe/redis`, and
//! `probe/collect` for the collector's own `collect()`): closed → open after
//! `breaker_threshold` consecutive failures → half-open once a jittered,
//! doubling backoff has passed → closed on a success (open again on a
//! failure). While open, calls to the source answer at once, naming the
//! breaker, and the collector's interval backs off until the next attempt.
//!
//! Exported as `wasmon_circuit_breaker_state{plugin,source}` (0 closed, 1
//! half-open, 2 open) and `wasmon_circuit_breaker_transitions_total{plugin,
//! source,to}`; one log line per transition, never per call. Listed and reset
//! over `/api/system/circuit-breakers` (seed 004's shapes).

use crate::telemetry::Telemetry;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// The backoff passed: the next call is a trial.
    HalfOpen,
    /// Calls answer at once until `next_attempt`.
    Open,
}

impl BreakerState {
    fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// How a plugin's breakers trip and recover (from its manifest).
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Consecutive failures that open a breaker.
    pub threshold: u32,
    /// The first open period; it doubles on each failed trial, up to `max_backoff`.
    pub backoff: Duration,
    /// The longest open period.
    pub max_backoff: Duration,
}

/// What the API shows of one breaker (seed 004's fields).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BreakerView {
    /// `plugin/source`.
    pub name: String,
    /// The plugin.
    pub plugin: String,
    /// The data source (`redis`, `collect`).
    pub source: String,
    /// `closed`, `half_open` or `open`.
    pub state: BreakerState,
    /// Consecutive failures.
    pub failure_count: u32,
    /// The last failure: when (RFC 3339) and why.
    pub last_failure: Option<FailureView>,
    /// When an open breaker lets the next trial through (RFC 3339).
    pub next_attempt: Option<String>,
}

/// One failure as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FailureView {
    /// RFC 3339.
    pub at: String,
    /// Why.
    pub error: String,
}

struct Inner {
    state: BreakerState,
    failures: u32,
    last_failure: Option<(u64, String)>,
    /// Monotonic and wall-clock time of the next trial while open.
    next_attempt: Option<(Instant, u64)>,
    /// The open period to use next.
    backoff: Duration,
}

/// One breaker.
pub struct Breaker {
    name: String,
    plugin: String,
    source: String,
    settings: Mutex<BreakerSettings>,
    inner: Mutex<Inner>,
    telemetry: Arc<Telemetry>,
}

impl Breaker {
    /// `plugin/source`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a call may go through now; an open breaker whose backoff has
    /// passed turns half-open and lets this call through as its trial.
    pub fn admit(&self) -> Result<(), String> {
        let mut inner = self.inner.lock();
        match inner.state {
            BreakerState::Closed | BreakerState::HalfOpen => Ok(()),
            BreakerState::Open => match inner.next_attempt {
                Some((at, _)) if Instant::now() < at => Err(format!(
                    "circuit breaker {} is open after {} consecutive failures; next attempt in {}",
                    self.name,
                    inner.failures,
                    humantime::format_duration(Duration::from_millis(
                        at.saturating_duration_since(Instant::now()).as_millis() as u64
                    ))
                )),
                _ => {
                    self.transition(&mut inner, BreakerState::HalfOpen, None);
                    Ok(())
                }
            },
        }
    }

    /// A call succeeded.
    pub fn success(&self) {
        let mut inner = self.inner.lock();
        inner.failures = 0;
        if inner.state != BreakerState::Closed {
            inner.backoff = self.settings.lock().backoff;
            inner.next_attempt = None;
            self.transition(&mut inner, BreakerState::Closed, None);
        }
    }

    /// A call failed with `error`.
    pub fn failure(&self, error: &str) {
        let settings = *self.settings.lock();
        let mut inner = self.inner.lock();
        inner.failures = inner.failures.saturating_add(1);
        inner.last_failure = Some((crate::time::now_ms(), error.to_string()));
        let trip = match inner.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => inner.failures >= settings.threshold,
            BreakerState::Open => false,
        };
        if trip {
            let backoff = inner.backoff;
            // ±20 % so plugins failing together do not retry together.
            let wait = backoff.mul_f64(0.8 + fastrand::f64() * 0.4);
            let now_ms = crate::time::now_ms();
            inner.next_attempt = Some((
                Instant::now() + wait,
                now_ms.saturating_add(wait.as_millis() as u64),
            ));
            inner.backoff = (backoff * 2).min(settings.max_backoff);
            self.transition(&mut inner, BreakerState::Open, Some(error));
        }
    }

    /// When an open breaker lets the next trial through.
    pub fn next_attempt(&self) -> Option<Instant> {
        let inner = self.inner.lock();
        (inner.state == BreakerState::Open)
            .then_some(inner.next_attempt.map(|(at, _)| at))
            .flatten()
    }

    /// Closes the breaker and forgets its failures.
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        inner.failures = 0;
        inner.next_attempt = None;
        inner.backoff = self.settings.lock().backoff;
        if inner.state != BreakerState::Closed {
            self.transition(&mut inner, BreakerState::Closed, Some("reset over the API"));
        }
    }

    fn transition(&self, inner: &mut Inner, to: BreakerState, why: Option<&str>) {
        let from = inner.state;
        inner.state = to;
        let t = &self.telemetry;
        t.circuit_breaker_state
            .with_label_values(&[&self.plugin, &self.source])
            .set(to.gauge());
        t.circuit_breaker_transitions
            .with_label_values(&[&self.plugin, &self.source, to.as_str()])
            .inc();
        let (breaker, from, to) = (&self.name, from.as_str(), to.as_str());
        let failures = inner.failures;
        match why {
            Some(why) if to == "open" => tracing::warn!(
                breaker,
                from,
                to,
                failures,
                error = why,
                "circuit breaker opened"
            ),
            Some(why) => tracing::info!(
                breaker,
                from,
                to,
                reason = why,
                "circuit breaker changed state"
            ),
            None => tracing::info!(breaker, from, to, "circuit breaker changed state"),
        }
    }

    /// What the API shows.
    pub fn view(&self) -> BreakerView {
        let inner = self.inner.lock();
        BreakerView {
            name: self.name.clone(),
            plugin: self.plugin.clone(),
            source: self.source.clone(),
            state: inner.state,
            failure_count: inner.failures,
            last_failure: inner.last_failure.as_ref().map(|(ms, error)| FailureView {
                at: crate::time::rfc3339(*ms),
                error: error.clone(),
            }),
            next_attempt: (inner.state == BreakerState::Open)
                .then_some(inner.next_attempt.map(|(_, ms)| crate::time::rfc3339(ms)))
                .flatten(),
        }
    }
}

/// Every breaker of the host, by name. A breaker outlives plugin
/// generations (a reload does not close an open breaker); it goes with its plugin.
pub struct Breakers {
    map: Mutex<BTreeMap<String, Arc<Breaker>>>,
    telemetry: Arc<Telemetry>,
}

impl Breakers {
    /// No breakers yet.
    pub fn new(telemetry: Arc<Telemetry>) -> Breakers {
        Breakers {
            map: Mutex::new(BTreeMap::new()),
            telemetry,
        }
    }

    /// The breaker of `plugin`'s `source`, made closed on first use; its
    /// settings follow the newest manifest.
    pub fn get(&self, plugin: &str, source: &str, settings: BreakerSettings) -> Arc<Breaker> {
        let name = format!("{plugin}/{source}");
        let mut map = self.map.lock();
        if let Some(breaker) = map.get(&name) {
            *breaker.settings.lock() = settings;
            return breaker.clone();
        }
        self.telemetry
            .circuit_breaker_state
            .with_label_values(&[plugin, source])
            .set(0);
        let breaker = Arc::new(Breaker {
            name: name.clone(),
            plugin: plugin.to_string(),
            source: source.to_string(),
            settings: Mutex::new(settings),
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                last_failure: None,
                next_attempt: None,
                backoff: settings.backoff,
            }),
            telemetry: self.telemetry.clone(),
        });
        map.insert(name, breaker.clone());
        breaker
    }

    /// When the first of `plugin`'s open breakers lets a trial through, if any is open.
    pub fn open_until(&self, plugin: &str) -> Option<Instant> {
        let prefix = format!("{plugin}/");
        self.map
            .lock()
            .iter()
            .filter(|(name, _)| name.starts_with(&prefix))
            .filter_map(|(_, b)| b.next_attempt())
            .min()
    }

    /// Every breaker.
    pub fn list(&self) -> Vec<BreakerView> {
        let breakers: Vec<Arc<Breaker>> = self.map.lock().values().cloned().collect();
        breakers.iter().map(|b| b.view()).collect()
    }

    /// Resets the breaker `name`.
    pub fn reset(&self, name: &str) -> Option<BreakerView> {
        let breaker = self.map.lock().get(name).cloned()?;
        breaker.reset();
        Some(breaker.view())
    }

    /// Forgets `plugin`'s breakers (it was unloaded).
    pub fn forget(&self, plugin: &str) {
        let prefix = format!("{plugin}/");
        self.map.lock().retain(|name, b| {
            let keep = !name.starts_with(&prefix);
            if !keep {
                let _ = self
                    .telemetry
                    .circuit_breaker_state
                    .remove_label_values(&[&b.plugin, &b.source]);
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Arc<Breaker> {
        let breakers = Breakers::new(Arc::new(Telemetry::new().unwrap()));
        breakers.get(
            "p",
            "redis",
            BreakerSettings {
                threshold: 3,
                backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
            },
        )
    }

    #[test]
    fn opens_after_the_threshold_half_opens_after_the_backoff_and_closes_on_success() {
        let b = breaker();
        b.failure("x");
        b.failure("x");
        assert!(b.admit().is_ok());
        b.failure("x");
        let err = b.admit().unwrap_err();
        assert!(err.contains("circuit breaker p/redis is open"), "{err}");
        assert_eq!(b.view().state, BreakerState::Open);
        assert!(b.view().next_attempt.is_some());
        std::thread::sleep(Duration::from_millis(70));
        assert!(b.admit().is_ok());
        assert_eq!(b.view().state, BreakerState::HalfOpen);
        b.failure("still down");
        assert_eq!(b.view().state, BreakerState::Open);
        b.reset();
        assert_eq!(b.view().state, BreakerState::Closed);
        assert_eq!(b.view().failure_count, 0);
        b.failure("x");
        b.success();
        assert_eq!(b.view().failure_count, 0);
    }
}
