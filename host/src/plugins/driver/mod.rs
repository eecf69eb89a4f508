//! The loop that drives one plugin, per kind: collectors collect on their
//! interval (with jitter), rules evaluate on theirs, sinks deliver as events
//! arrive. Each loop re-reads the slot's serving generation every turn, so a
//! hot swap takes effect at the next call while the call in flight finishes on
//! the old instance. Faults discard the instance; the loop restarts it when its
//! backoff is due.

mod rule;
mod sink;

use super::fault::Fault;
use super::manifest::PluginKind;
use super::registry::{Generation, Inner, Slot};
use super::runtime::{CallError, Instance};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs the loop for a plugin of `kind` until shutdown, until the plugin is
/// unloaded, or until its kind changes.
pub(super) async fn run(inner: Arc<Inner>, slot: Arc<Slot>, kind: PluginKind) {
    match kind {
        PluginKind::Collector => collector(inner, slot).await,
        PluginKind::Rule => rule::rule(inner, slot).await,
        PluginKind::Sink => sink::sink(inner, slot).await,
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
                    slot.samples_applied(&inner.deps.telemetry, generation.number, &report);
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
