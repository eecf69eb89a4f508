//! The rule loop: every `interval`, the rule's selected series, the services
//! and the events recorded since its last evaluation go to `evaluate`; the
//! alerts it returns feed the alert state machine (`crate::rules`). A shadow
//! version, if the rule has one, then evaluates the same input on a task of
//! its own, never awaited here (`plugins::shadow`): its alerts go to no sink
//! and change no alert state.

use super::{jittered, mark_seen, serving, wait, woken_for_new};
use crate::plugins::bindings::types;
use crate::plugins::manifest::PluginKind;
use crate::plugins::registry::{Inner, Slot};
use crate::plugins::runtime::CallError;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) async fn rule(inner: Arc<Inner>, slot: Arc<Slot>) {
    let mut next = Instant::now() + Duration::from_millis(fastrand::u64(0..100));
    // Events the rule has seen: it gets those recorded since its last evaluation.
    let mut seen = inner.deps.events.end();
    // The shadow's evaluation in flight, if any.
    let mut shadow_call: Option<tokio::task::JoinHandle<()>> = None;
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
        // The shadow, if any, gets the same input once the serving result is applied.
        let shadow = slot.shadow.current.load_full();
        let shadow_input = shadow.as_ref().map(|_| input.clone());
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
                let changes = inner.deps.alerts.update(
                    &slot.name,
                    alerts,
                    generation.manifest.for_duration,
                    generation.manifest.max_alerts,
                    now_ms,
                );
                inner.record_serving(&slot, &changes, now_ms);
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
        // On a task of its own: a slow or hung shadow never delays the
        // serving version's next evaluation. While the previous one still
        // runs, this input is skipped (and counted).
        if let (Some(shadow), Some(input)) = (shadow, shadow_input) {
            if shadow_call.as_ref().is_some_and(|c| !c.is_finished()) {
                telemetry
                    .rule_shadow_evaluations
                    .with_label_values(&[&*slot.name, "skipped"])
                    .inc();
            } else {
                let interval = generation.manifest.interval;
                let (inner, slot) = (inner.clone(), slot.clone());
                shadow_call = Some(tokio::spawn(async move {
                    inner
                        .evaluate_shadow(&slot, &shadow, input, now_ms, interval)
                        .await;
                }));
            }
        }
        mark_seen(&slot, &generation);
        next = Instant::now() + jittered(generation.manifest.interval);
    }
}

/// Most events one rule evaluation receives.
const MAX_RULE_EVENTS: usize = 1000;
