//! `system.health_changed`: a watcher, started with the first WebSocket
//! client, that looks at the plugins every [`INTERVAL`] and publishes when
//! the health changes (if anyone listens on `system`).
//!
//! Health here: `unhealthy` when a plugin marked `critical` is not running,
//! `degraded` when another plugin is not running (crashed, restarting,
//! failed, invalid), else `healthy`.

use crate::app::AppState;
use crate::live::{Channel, HealthData, Payload};
use crate::plugins::Status;
use std::collections::BTreeMap;
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
    let mut plugins_down = BTreeMap::new();
    let mut critical_down = Vec::new();
    for plugin in app.plugins.list() {
        if matches!(plugin.status, Status::Running | Status::Loading) {
            continue;
        }
        let status = serde_json::to_value(plugin.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if plugin.critical {
            critical_down.push(plugin.name.clone());
        }
        plugins_down.insert(plugin.name, status);
    }
    let status = if !critical_down.is_empty() {
        "unhealthy"
    } else if !plugins_down.is_empty() {
        "degraded"
    } else {
        "healthy"
    };
    HealthData {
        status: status.to_string(),
        previous: None,
        ready: app.plugins.is_ready(),
        plugins_down,
        critical_down,
    }
}
