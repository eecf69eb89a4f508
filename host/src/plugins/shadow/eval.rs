//! The shadow's turn in the rule loop: after the serving version's result is
//! applied, the shadow evaluates the same `rule-input` in its own instance,
//! under its own manifest's budget, on a task of its own (the rule loop does
//! not wait: a hung shadow never delays the serving version; an input that
//! arrives while it still runs is skipped and counted). Its alerts feed its
//! own, detached alert state machine; then the diff observes both sides.
//!
//! A shadow fault discards the shadow's instance only: the shadow is
//! `crashed` with the supervisor's backoff (its own `SlotInfo`), `failed`
//! after its `max_restarts`, reported in `GET /api/plugins/{name}/shadow`, a
//! log line and `wasmon_rule_shadow_faults_total{rule,reason}`.

use super::Shadow;
use crate::model::AlertChange;
use crate::plugins::Fault;
use crate::plugins::bindings::types;
use crate::plugins::registry::{Inner, Slot};
use crate::plugins::runtime::CallError;
use crate::plugins::supervisor::{FaultOutcome, start_fault};
use std::time::{Duration, Instant};

impl Inner {
    /// Records the serving version's alert changes in its bounded history.
    pub(in crate::plugins) fn record_serving(
        &self,
        slot: &Slot,
        changes: &[AlertChange],
        now_ms: u64,
    ) {
        if !changes.is_empty() {
            slot.shadow.history.lock().record(changes, now_ms);
        }
    }

    /// The shadow's evaluation of `input` (none while it is crashed and its
    /// restart is not due, or failed), then the diff.
    pub(in crate::plugins) async fn evaluate_shadow(
        &self,
        slot: &Slot,
        shadow: &Shadow,
        input: types::RuleInput,
        now_ms: u64,
        interval: Duration,
    ) {
        self.run_shadow(slot, shadow, input, now_ms).await;
        self.observe_diff(slot, shadow, now_ms, interval);
    }

    async fn run_shadow(&self, slot: &Slot, shadow: &Shadow, input: types::RuleInput, now_ms: u64) {
        let rule = &*slot.name;
        let t = &self.deps.telemetry;
        let generation = &shadow.generation;
        let mut guard = generation.instance.lock().await;
        if guard.is_none() {
            {
                let mut info = shadow.info.lock();
                let number = info.generation;
                if !info.begin_restart(number) {
                    return; // crashed and not due yet, or failed
                }
            }
            match self
                .runtime
                .instantiate(&generation.prepared, generation.env.clone())
                .await
            {
                Ok(instance) => {
                    *guard = Some(instance);
                    shadow.info.lock().restarted(false);
                    t.rule_shadow_up.with_label_values(&[rule]).set(1);
                    tracing::info!(plugin = rule, "shadow restarted");
                }
                Err(error) => {
                    self.shadow_fault(slot, shadow, &start_fault(error));
                    return;
                }
            }
        }
        let Some(instance) = guard.as_mut() else {
            return;
        };
        let started = Instant::now();
        let result = instance.evaluate(input).await;
        shadow.info.lock().record_call(
            started.elapsed(),
            &result,
            self.config.defaults.healthy_after,
        );
        let evaluations = &t.rule_shadow_evaluations;
        match result {
            Ok(alerts) => {
                evaluations.with_label_values(&[rule, "ok"]).inc();
                let manifest = &generation.manifest;
                shadow.alerts.update(
                    rule,
                    alerts,
                    manifest.for_duration,
                    manifest.max_alerts,
                    now_ms,
                );
            }
            Err(CallError::Fault(fault)) => {
                evaluations.with_label_values(&[rule, "fault"]).inc();
                *guard = None;
                drop(guard);
                self.shadow_fault(slot, shadow, &fault);
            }
            Err(CallError::Plugin(message) | CallError::Delivery { message, .. }) => {
                evaluations.with_label_values(&[rule, "error"]).inc();
                tracing::debug!(plugin = rule, error = %message, "shadow evaluate returned an error");
            }
        }
    }

    /// Compares both sides' firing alerts after an evaluation.
    pub(in crate::plugins) fn observe_diff(
        &self,
        slot: &Slot,
        shadow: &Shadow,
        now_ms: u64,
        interval: Duration,
    ) {
        let rule = &*slot.name;
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        let entered = shadow.diff.lock().observe(
            shadow.alerts.firing(rule),
            self.deps.alerts.firing(rule),
            now_ms,
            interval_ms,
        );
        for kind in entered {
            self.deps
                .telemetry
                .rule_shadow_diff
                .with_label_values(&[rule, kind.as_str()])
                .inc();
        }
    }

    fn shadow_fault(&self, slot: &Slot, shadow: &Shadow, fault: &Fault) {
        let rule = &*slot.name;
        let t = &self.deps.telemetry;
        t.rule_shadow_faults
            .with_label_values(&[rule, fault.reason()])
            .inc();
        t.rule_shadow_up.with_label_values(&[rule]).set(0);
        let outcome = {
            let mut info = shadow.info.lock();
            let number = info.generation;
            info.fault(
                number,
                shadow.generation.manifest.max_restarts,
                &self.config,
                fault,
            )
        };
        match outcome {
            Some(FaultOutcome::Crashed(delay)) => {
                tracing::warn!(plugin = rule, reason = fault.reason(), error = %fault, restart_in = ?delay, "shadow crashed; the serving version is unaffected");
            }
            Some(FaultOutcome::Failed) => {
                tracing::error!(plugin = rule, reason = fault.reason(), error = %fault, "shadow failed: too many faults in a row; the serving version is unaffected");
            }
            None => {}
        }
    }
}
