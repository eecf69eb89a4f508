//! `system.health_changed`: a watcher, started with the first WebSocket
//! client, that looks at the host's health every [`INTERVAL`] and publishes
//! when it changes (if anyone listens on `system`).
//!
//! The health is [`crate::health::Report`], the one `/readyz` and
//! `/api/system/health/full` answer: `unhealthy` when a critical component
//! (plugin, data source, sampler) is down, `degraded` when another is, else
//! `healthy`.

use crate::health::{ComponentKind, ComponentStatus, Report};
use crate::live::{Channel, HealthData, Payload};
use crate::state::AppState;
use std::sync::Arc;
use std::time::Duration;

/// How often the watcher looks.
const INTERVAL: Duration = Duration::from_secs(1);

/// Starts the watcher; it ends when the host shuts down.
pub(super) fn spawn(app: Arc<AppState>) {
    tokio::spawn(async move {
        let live = app.events.live().clone();
        let mut last: Option<HealthData> = None;
        let mut tick = tokio::time::interval(INTERVAL);
        loop {
            tokio::select! {
                () = live.closed() => return,
                _ = tick.tick() => {}
            }
            let mut now = probe(&app);
            now.previous = last.as_ref().map(|h| h.status.clone());
            let changed = last.as_ref().is_none_or(|l| {
                (&l.status, &l.plugins_down, l.ready) != (&now.status, &now.plugins_down, now.ready)
            });
            // The first look only sets the baseline: it is no change.
            if changed && last.is_some() {
                let data = now.clone();
                live.emit(Channel::System, || Payload::SystemHealthChanged(data));
            }
            if changed {
                last = Some(now);
            }
        }
    });
}

/// The health now.
fn probe(app: &AppState) -> HealthData {
    let report = Report::of(app);
    let plugins_down = report
        .plugins
        .iter()
        .filter(|p| p.status == ComponentStatus::Unhealthy)
        .map(|p| {
            let status = serde_json::to_value(p.plugin_status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (p.name.clone(), status)
        })
        .collect();
    // Plugins by their name, other components as `sampler gpu (...)`.
    let critical_down = report
        .critical_down()
        .map(|d| match d.kind {
            ComponentKind::Plugin => d.name.clone(),
            _ => d.to_string(),
        })
        .collect();
    HealthData {
        status: report.status.as_str().to_string(),
        previous: None,
        ready: report.ready,
        plugins_down,
        critical_down,
    }
}
