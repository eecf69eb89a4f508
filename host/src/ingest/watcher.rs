//! The heartbeat watcher (seed 000): every `heartbeat.check_interval` it
//! marks services whose last heartbeat is older than `heartbeat.timeout`
//! down, and evicts services silent for `ingest.service_ttl` (see
//! [`Services::evict`](super::Services::evict)). It starts with the host and
//! stops at shutdown. With `heartbeat.enabled = false`
//! (`MONITOR_HEARTBEAT_ENABLED=0`, for k8s where something else watches
//! liveness) services stay as their last heartbeat left them, and only the
//! eviction runs.

use super::Ingest;
use crate::config::HeartbeatConfig;
use crate::shutdown::Shutdown;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Starts the watcher; it ends at shutdown.
pub fn spawn_watcher(
    ingest: Arc<Ingest>,
    config: &HeartbeatConfig,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    let every = config.check_interval;
    let expire = config.enabled;
    if expire {
        tracing::info!(
            timeout_s = config.timeout.as_secs_f64(),
            check_interval_s = every.as_secs_f64(),
            "heartbeat watcher started"
        );
    } else {
        tracing::info!("heartbeat watcher disabled (heartbeat.enabled = false)");
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.wait() => break,
            }
            let now_ms = crate::time::now_ms();
            if expire {
                ingest.expire(now_ms);
            }
            ingest.evict(now_ms);
        }
        if expire {
            tracing::info!("heartbeat watcher stopped");
        }
    })
}
