//! XID error counting: a thread that owns NVML event sets (one per device,
//! registered for critical XID errors where supported) and polls them.
//!
//! A thread because an `EventSet` borrows the `Nvml` it came from, which the
//! sampler cannot hold beside the `Nvml` itself; the thread keeps its own
//! `Arc<Nvml>`, so NVML stays initialised until it has stopped. Counting
//! starts when NVML is loaded; devices that appear later are not watched until
//! the next load.

use nvml_wrapper::Nvml;
use nvml_wrapper::bitmasks::event::EventTypes;
use nvml_wrapper::enums::event::XidError;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the event sets are polled.
const POLL: Duration = Duration::from_millis(200);

/// Most events taken from one set per poll, so a flood cannot pin the thread.
const MAX_EVENTS_PER_POLL: usize = 64;

/// How long [`XidWatcher::start`] waits for the registrations.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// XID errors of one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct XidCount {
    /// Critical XID errors since NVML was loaded.
    pub total: u64,
    /// The last XID (none when NVML did not say which).
    pub last: Option<u64>,
}

/// Counts per device UUID; the thread stops when this is dropped.
pub(super) struct XidWatcher {
    stop: Arc<AtomicBool>,
    counts: Arc<Mutex<HashMap<String, XidCount>>>,
}

impl XidWatcher {
    /// Registers the devices `uuids` for XID events on a new thread and
    /// returns once that is done; none when no device supports them.
    pub(super) fn start(nvml: Arc<Nvml>, uuids: Vec<String>) -> Option<XidWatcher> {
        if uuids.is_empty() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let (ready, registered) = std::sync::mpsc::sync_channel(1);
        let thread = {
            let (stop, counts) = (stop.clone(), counts.clone());
            std::thread::Builder::new()
                .name("wasmon-gpu-xid".into())
                .spawn(move || watch(&nvml, uuids, &ready, &stop, &counts))
        };
        if let Err(error) = thread {
            tracing::warn!(sampler = "gpu", %error, "cannot start the XID watcher; XID errors are not counted");
            return None;
        }
        let watcher = XidWatcher { stop, counts };
        match registered.recv_timeout(REGISTER_TIMEOUT) {
            Ok(watched) if !watched.is_empty() => {
                tracing::debug!(
                    sampler = "gpu",
                    devices = watched.len(),
                    "watching XID events"
                );
                Some(watcher)
            }
            // Dropping the watcher stops the thread.
            _ => None,
        }
    }

    /// The count of the device `uuid`, if its XID events are watched.
    pub(super) fn count(&self, uuid: &str) -> Option<XidCount> {
        self.counts.lock().get(uuid).copied()
    }
}

impl Drop for XidWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The thread: registers, reports which devices it watches, then polls until stopped.
fn watch(
    nvml: &Nvml,
    uuids: Vec<String>,
    ready: &std::sync::mpsc::SyncSender<Vec<String>>,
    stop: &AtomicBool,
    counts: &Mutex<HashMap<String, XidCount>>,
) {
    let mut sets = Vec::new();
    for uuid in uuids {
        let Ok(device) = nvml.device_by_uuid(uuid.as_str()) else {
            continue;
        };
        let supported = device
            .supported_event_types()
            .is_ok_and(|types| types.contains(EventTypes::CRITICAL_XID_ERROR));
        if !supported {
            continue;
        }
        let registered = nvml
            .create_event_set()
            .map_err(|e| e.to_string())
            .and_then(|set| {
                device
                    .register_events(EventTypes::CRITICAL_XID_ERROR, set)
                    .map_err(|e| e.to_string())
            });
        match registered {
            Ok(set) => {
                counts.lock().insert(uuid.clone(), XidCount::default());
                sets.push((uuid, set));
            }
            Err(error) => {
                tracing::debug!(sampler = "gpu", %uuid, %error, "cannot watch XID events");
            }
        }
    }
    let watched = sets.iter().map(|(uuid, _)| uuid.clone()).collect();
    if ready.send(watched).is_err() || sets.is_empty() {
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        for (uuid, set) in &sets {
            for _ in 0..MAX_EVENTS_PER_POLL {
                let Ok(event) = set.wait(0) else {
                    break;
                };
                let xid = match event.event_data {
                    Some(XidError::Value(xid)) => Some(xid),
                    _ => None,
                };
                tracing::warn!(sampler = "gpu", %uuid, ?xid, "GPU XID error");
                let mut counts = counts.lock();
                let count = counts.entry(uuid.clone()).or_default();
                count.total += 1;
                count.last = xid.or(count.last);
            }
        }
        std::thread::sleep(POLL);
    }
}
