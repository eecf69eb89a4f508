//! The loop that drives one plugin, per kind: collectors collect on their
//! interval (with jitter), rules evaluate on theirs, sinks deliver as events
//! arrive. Each loop re-reads the slot's serving generation every turn, so a
//! hot swap takes effect at the next call while the call in flight finishes on
//! the old instance. Faults discard the instance; the loop restarts it when its
//! backoff is due.

use super::bindings::types;
use super::fault::Fault;
use super::manifest::PluginKind;
use super::registry::{Generation, Inner, Slot, Status};
use super::runtime::{CallError, Instance};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the loop for a plugin of `kind` until shutdown, until the plugin is
/// unloaded, or until its kind changes.
pub(super) async fn run(inner: Arc<Inner>, slot: Arc<Slot>, kind: PluginKind) {
    match kind {
        PluginKind::Collector => collector(inner, slot).await,
        PluginKind::Rule => rule(inner, slot).await,
        PluginKind::Sink => sink(inner, slot).await,
    }
}

/// The serving generation, if it is still of `kind`.
fn serving(slot: &Slot, kind: PluginKind) -> Option<Arc<Generation>> {
    slot.current().filter(|g| g.kind == kind)
}

/// Waits until `at`, a due restart, a wake-up (reload, reset) or shutdown.
/// Returns false on shutdown.
async fn wait(inner: &Inner, slot: &Slot, at: Instant) -> bool {
    // A stopped plugin waits for a wake-up (its start) only.
    let at = (!slot.is_stopped()).then(|| slot.restart_at().map_or(at, |restart| restart.min(at)));
    tokio::select! {
        _ = inner.shutdown.wait() => false,
        _ = slot.wake.notified() => true,
        _ = sleep_until_opt(at) => true,
    }
}

/// `interval` ± 10 %.
fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + fastrand::f64() * 0.2)
}

async fn collector(inner: Arc<Inner>, slot: Arc<Slot>) {
    // Spread first collections over a short window rather than all at once.
    let mut next = Instant::now() + Duration::from_millis(fastrand::u64(0..100));
    // Whether `next` was pushed back by an open breaker (a reset then calls at once).
    let mut backed_off = false;
    loop {
        if !wait(&inner, &slot, next).await {
            return;
        }
        let Some(generation) = serving(&slot, PluginKind::Collector) else {
            return;
        };
        if slot.is_stopped() {
            continue;
        }
        if Instant::now() < next
            && slot.restart_at().is_none_or(|r| Instant::now() < r)
            && !woken_for_new(&slot, &generation)
            && !(backed_off && inner.breakers.open_until(&slot.name).is_none())
        {
            continue;
        }
        backed_off = false;
        // `collect()` returning errors in a row opens the plugin's `collect`
        // breaker: no call until its backoff has passed.
        let breaker = inner.breakers.get(
            &slot.name,
            "collect",
            generation.manifest.breaker_settings(),
        );
        if breaker.admit().is_err() {
            backed_off = true;
            next = inner
                .breakers
                .open_until(&slot.name)
                .unwrap_or_else(|| Instant::now() + jittered(generation.manifest.interval));
            continue;
        }
        let now_ms = crate::time::now_ms();
        match inner
            .call(&slot, &generation, async |i| i.collect().await)
            .await
        {
            Some(Ok(samples)) => {
                breaker.success();
                let source = *slot.source.lock();
                if let Some(source) = source {
                    let report = inner.deps.store.apply(source, samples, now_ms);
                    for (reason, count) in &report.dropped {
                        inner
                            .deps
                            .telemetry
                            .plugin_samples_dropped
                            .with_label_values(&[&*slot.name, reason.as_str()])
                            .inc_by(*count as u64);
                    }
                    if let Some(problem) = &report.first_problem {
                        tracing::debug!(plugin = %slot.name, problem, "samples dropped");
                    }
                    slot.info.lock().series = report.stored;
                }
            }
            Some(Err(CallError::Plugin(message))) => {
                breaker.failure(&message);
                tracing::warn!(plugin = %slot.name, error = %message, "collect returned an error")
            }
            Some(Err(_)) | None => {}
        }
        note_replaced(&slot, &generation);
        mark_seen(&slot, &generation);
        next = Instant::now() + jittered(generation.manifest.interval);
        // While one of its sources' breakers is open, the interval backs off
        // to that breaker's next attempt.
        if let Some(open) = inner.breakers.open_until(&slot.name) {
            backed_off = open > next;
            next = next.max(open);
        }
    }
}

/// Logs a call that finished on a generation swapped out while it ran: the
/// swap never waits for, nor cuts short, a call in flight.
fn note_replaced(slot: &Slot, generation: &Generation) {
    if slot
        .current()
        .is_some_and(|g| g.number != generation.number)
    {
        tracing::info!(plugin = %slot.name, generation = generation.number, "a call finished on the generation it started on, already replaced");
    }
}

async fn rule(inner: Arc<Inner>, slot: Arc<Slot>) {
    let mut next = Instant::now() + Duration::from_millis(fastrand::u64(0..100));
    // Events the rule has seen: it gets those recorded since its last evaluation.
    let mut seen = inner.deps.events.end();
    loop {
        if !wait(&inner, &slot, next).await {
            return;
        }
        let Some(generation) = serving(&slot, PluginKind::Rule) else {
            return;
        };
        if slot.is_stopped() {
            continue;
        }
        if Instant::now() < next
            && slot.restart_at().is_none_or(|r| Instant::now() < r)
            && !woken_for_new(&slot, &generation)
        {
            continue;
        }
        let now_ms = crate::time::now_ms();
        let (events, _) = inner.deps.events.read(seen, MAX_RULE_EVENTS);
        let end = events.last().map_or(seen, |(seq, _)| seq + 1);
        let input = types::RuleInput {
            now_ms,
            samples: inner
                .deps
                .store
                .select(&generation.manifest.select)
                .into_iter()
                .map(types::Sample::from)
                .collect(),
            services: (inner.deps.services)()
                .into_iter()
                .map(|s| types::ServiceState {
                    name: s.name,
                    up: s.up,
                    last_seen_ms: s.last_seen_ms,
                    phase: s.phase,
                })
                .collect(),
            events: events
                .iter()
                .map(|(_, e)| types::Event::from(&**e))
                .collect(),
        };
        let result = inner
            .call(&slot, &generation, async |i| i.evaluate(input).await)
            .await;
        let telemetry = &inner.deps.telemetry;
        match result {
            Some(Ok(alerts)) => {
                seen = end;
                telemetry
                    .rule_evaluations
                    .with_label_values(&[&*slot.name, "ok"])
                    .inc();
                inner.deps.alerts.update(
                    &slot.name,
                    alerts,
                    generation.manifest.for_duration,
                    generation.manifest.max_alerts,
                    now_ms,
                );
            }
            Some(Err(CallError::Plugin(message))) => {
                telemetry
                    .rule_evaluations
                    .with_label_values(&[&*slot.name, "error"])
                    .inc();
                tracing::warn!(plugin = %slot.name, error = %message, "evaluate returned an error");
            }
            Some(Err(_)) => telemetry
                .rule_evaluations
                .with_label_values(&[&*slot.name, "fault"])
                .inc(),
            None => {}
        }
        mark_seen(&slot, &generation);
        next = Instant::now() + jittered(generation.manifest.interval);
    }
}

/// Most events one rule evaluation receives.
const MAX_RULE_EVENTS: usize = 1000;

async fn sink(inner: Arc<Inner>, slot: Arc<Slot>) {
    let events = inner.deps.events.clone();
    let mut end = events.subscribe();
    let mut retry_at: Option<Instant> = None;
    let mut retries: u32 = 0;
    loop {
        let Some(generation) = serving(&slot, PluginKind::Sink) else {
            return;
        };
        let cursor = events.cursor(&slot.name);
        let backlog = events.backlog(&slot.name);
        inner
            .deps
            .telemetry
            .sink_backlog
            .with_label_values(&[&*slot.name])
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let restart = slot.restart_at();
        let blocked = retry_at.is_some_and(|t| Instant::now() < t)
            || matches!(slot.info.lock().status, Status::Failed | Status::Stopped)
            || restart.is_some_and(|r| Instant::now() < r);
        if backlog == 0 || blocked {
            let wake_at = [retry_at, restart].into_iter().flatten().min();
            tokio::select! {
                _ = inner.shutdown.wait() => return,
                _ = slot.wake.notified() => { retry_at = None; }
                changed = end.changed() => if changed.is_err() { return },
                _ = sleep_until_opt(wake_at) => {}
            }
            continue;
        }
        let (batch, skipped) = events.read(cursor, generation.manifest.batch_size);
        if skipped > 0 {
            tracing::warn!(plugin = %slot.name, skipped, "events fell off the event log before this sink read them");
        }
        let Some(next) = batch.last().map(|(seq, _)| seq + 1) else {
            continue;
        };
        let wanted: Vec<_> = batch
            .into_iter()
            .filter(|(_, e)| generation.manifest.wants_event(&e.event_type))
            .map(|(_, e)| e)
            .collect();
        if wanted.is_empty() {
            events.ack(&slot.name, next);
            continue;
        }
        let count = wanted.len() as u64;
        let t = &inner.deps.telemetry;
        match inner
            .call(&slot, &generation, async |i| i.deliver(&wanted).await)
            .await
        {
            Some(Ok(())) => {
                events.ack(&slot.name, next);
                t.sink_delivered
                    .with_label_values(&[&*slot.name])
                    .inc_by(count);
                retry_at = None;
                retries = 0;
            }
            Some(Err(CallError::Delivery {
                retryable: false,
                message,
            })) => {
                events.ack(&slot.name, next);
                t.sink_failures
                    .with_label_values(&[&*slot.name, "permanent"])
                    .inc();
                t.sink_dead_letter
                    .with_label_values(&[&*slot.name])
                    .inc_by(count);
                tracing::error!(plugin = %slot.name, events = count, error = %message, "sink failed permanently; the batch is dead-lettered");
                retries = 0;
            }
            Some(Err(
                CallError::Delivery {
                    retryable: true,
                    message,
                }
                | CallError::Plugin(message),
            )) => {
                retries += 1;
                let delay = super::supervisor::backoff(&inner.config, retries);
                t.sink_failures
                    .with_label_values(&[&*slot.name, "retryable"])
                    .inc();
                tracing::warn!(plugin = %slot.name, events = count, error = %message, retry_in = ?delay, "sink delivery failed; will retry");
                retry_at = Some(Instant::now() + delay);
            }
            // A fault: the batch is retried after the restart.
            Some(Err(CallError::Fault(_))) => {}
            // No instance to call and no restart due: don't spin.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        mark_seen(&slot, &generation);
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Whether the loop was woken because a new generation started serving
/// (it then runs at once, so the new version's output shows up quickly).
fn woken_for_new(slot: &Slot, generation: &Generation) -> bool {
    slot.last_run_generation() != generation.number
}

fn mark_seen(slot: &Slot, generation: &Generation) {
    slot.set_last_run_generation(generation.number);
}

impl Inner {
    /// One call into the serving instance: restarts it first when it crashed
    /// and its backoff is due, records timings and counters, and handles a
    /// fault. `None` when there is no instance to call (crashed and not yet
    /// due, or failed).
    pub(super) async fn call<R>(
        &self,
        slot: &Slot,
        generation: &Generation,
        f: impl AsyncFnOnce(&mut Instance) -> Result<R, CallError>,
    ) -> Option<Result<R, CallError>> {
        let mut guard = generation.instance.lock().await;
        if slot.is_stopped() {
            return None;
        }
        if guard.is_none() {
            if !self.restart_due(slot, generation) {
                return None;
            }
            match self
                .runtime
                .instantiate(&generation.prepared, generation.env.clone())
                .await
            {
                Ok(instance) => {
                    *guard = Some(instance);
                    self.on_restarted(slot, generation, None);
                }
                Err(error) => {
                    let fault = match error {
                        CallError::Fault(fault) => fault,
                        other => Fault::Init(other.to_string()),
                    };
                    self.on_fault(slot, generation, &fault);
                    return None;
                }
            }
        }
        let instance = guard.as_mut()?;
        let started = Instant::now();
        let result = f(instance).await;
        let elapsed = started.elapsed();
        let memory = instance.memory_held();
        let metrics = &generation.env.metrics;
        metrics.call_duration.observe(elapsed.as_secs_f64());
        match &result {
            Ok(_) | Err(CallError::Delivery { .. }) => metrics.calls_ok.inc(),
            Err(CallError::Plugin(_)) => metrics.calls_error.inc(),
            Err(CallError::Fault(_)) => metrics.calls_fault.inc(),
        }
        {
            let mut info = slot.info.lock();
            if info.generation == generation.number {
                info.calls += 1;
                info.total_call += elapsed;
                info.last_call = elapsed;
                info.max_call = info.max_call.max(elapsed);
                info.last_call_at_ms = Some(crate::time::now_ms());
                info.memory_bytes = memory;
                match &result {
                    Err(CallError::Plugin(message)) => {
                        info.errors += 1;
                        info.last_error =
                            Some(super::registry::ErrorInfo::new("error", message.clone()));
                    }
                    Err(CallError::Delivery { message, .. }) => {
                        info.errors += 1;
                        info.last_error =
                            Some(super::registry::ErrorInfo::new("delivery", message.clone()));
                    }
                    Ok(_) => info.call_ok(self.config.defaults.healthy_after),
                    Err(CallError::Fault(_)) => {}
                }
            }
        }
        if let Err(CallError::Fault(fault)) = &result {
            *guard = None;
            drop(guard);
            self.on_fault(slot, generation, fault);
        }
        Some(result)
    }
}

impl super::registry::Plugins {
    /// Waits until every plugin loop has returned after shutdown: each
    /// finishes the call it has in flight (a sink keeps delivering while the
    /// event log holds events for it) instead of being cut mid-call. The
    /// caller bounds the wait.
    pub async fn stopped(&self) {
        let slots: Vec<_> = self.inner.slots.read().values().cloned().collect();
        let drivers: Vec<_> = slots
            .iter()
            .filter_map(|slot| slot.driver.lock().take())
            .collect();
        for (_, driver) in drivers {
            let _ = driver.await;
        }
    }
}
