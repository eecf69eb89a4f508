//! The heartbeat watcher (seed 000): every `heartbeat.check_interval` it
//! marks services whose last heartbeat is older than `heartbeat.timeout`
//! down. It starts with the host and stops at shutdown; with
//! `heartbeat.enabled = false` (`MONITOR_HEARTBEAT_ENABLED=0`, for k8s where
//! something else watches liveness) it does not run and services stay as
//! their last heartbeat left them.

use super::Ingest;
use crate::config::HeartbeatConfig;
use crate::shutdown::Shutdown;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Starts the watcher, unless `config.enabled` is false (the task then ends at once).
pub fn spawn_watcher(
    ingest: Arc<Ingest>,
    config: &HeartbeatConfig,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    if !config.enabled {
        tracing::info!("heartbeat watcher disabled (heartbeat.enabled = false)");
        return tokio::spawn(async {});
    }
    let every = config.check_interval;
    tracing::info!(
        timeout_s = config.timeout.as_secs_f64(),
        check_interval_s = every.as_secs_f64(),
        "heartbeat watcher started"
    );
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.wait() => break,
            }
            ingest.expire(crate::time::now_ms());
        }
        tracing::info!("heartbeat watcher stopped");
    })
}
