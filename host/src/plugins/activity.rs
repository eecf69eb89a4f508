//! How many calls into guests are in flight, and the epoch ticker that runs
//! only while there are some (the granularity of time budgets and yields).

use anyhow::{Context, Result};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::Engine;

/// How often the epoch advances: the granularity of time budgets and of yields.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How many calls into guests are in flight in one engine. The epoch ticker
/// sleeps while there are none, so an idle host does not wake up every tick.
#[derive(Debug, Default)]
pub struct Activity {
    state: parking_lot::Mutex<ActivityState>,
    wake: parking_lot::Condvar,
}

#[derive(Debug, Default)]
struct ActivityState {
    calls: usize,
    /// The ticker is to exit.
    stopped: bool,
}

impl Activity {
    /// Counts a call in flight until the guard is dropped.
    pub(super) fn enter(self: &Arc<Self>) -> ActiveCall {
        let mut state = self.state.lock();
        state.calls += 1;
        if state.calls == 1 {
            self.wake.notify_all();
        }
        ActiveCall(self.clone())
    }

    /// Blocks while no call is in flight; false once stopped.
    fn wait_for_calls(&self) -> bool {
        let mut state = self.state.lock();
        while state.calls == 0 && !state.stopped {
            self.wake.wait(&mut state);
        }
        !state.stopped
    }

    fn stop(&self) {
        self.state.lock().stopped = true;
        self.wake.notify_all();
    }
}

/// A call in flight; see [`Activity`].
pub(super) struct ActiveCall(Arc<Activity>);

impl Drop for ActiveCall {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.calls = state.calls.saturating_sub(1);
    }
}

/// A thread that advances the engine's epoch every [`EPOCH_TICK`] while a
/// call is in flight.
pub(super) struct EpochTicker {
    activity: Arc<Activity>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(super) fn start(engine: Engine, activity: Arc<Activity>) -> Result<EpochTicker> {
        let gate = activity.clone();
        let thread = std::thread::Builder::new()
            .name("wasmon-epoch".into())
            .spawn(move || {
                while gate.wait_for_calls() {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(anyhow::Error::from)
            .context("failed to start the epoch ticker")?;
        Ok(EpochTicker {
            activity,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.activity.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
