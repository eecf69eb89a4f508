//! Retention: whole segments go, oldest first. Over `storage.max_bytes`, a
//! segment every sink has passed goes; when none has, `when_full` decides:
//! `reject` refuses the append, `drop_oldest` deletes the oldest segment
//! anyway. Past `storage.max_age`, a segment goes whether read or not. What
//! a sink had not read when its segment went is counted per sink
//! (`wasmon_event_log_dropped_total{sink,reason}`, `full` or `retention`).
//! The segment being written (the last) never goes; it is rolled first.

use super::log::{Disk, Shared, State};

/// Frees room for `size` more bytes; whether they fit now.
pub fn make_room(shared: &Shared, disk: &Disk, size: u64) -> bool {
    let mut state = shared.state.lock();
    loop {
        if state.disk_bytes() + size <= disk.max_bytes {
            return true;
        }
        if state.segments.len() < 2 {
            return false;
        }
        let min = state.min_cursor();
        let passed = state.segments[0].last.is_none_or(|l| l < min);
        if passed {
            delete_oldest(shared, &mut state, "retention");
        } else if disk.drop_oldest {
            delete_oldest(shared, &mut state, "full");
        } else {
            return false;
        }
    }
}

/// Deletes segments older than `storage.max_age`, and passed ones while
/// over `storage.max_bytes`; whether the segment being written is itself
/// too old (the writer then rolls it, so it can go next time).
pub fn by_age(shared: &Shared, disk: &Disk, now_ms: u64) -> bool {
    let cutoff = now_ms.saturating_sub(disk.max_age_ms);
    let mut state = shared.state.lock();
    while state.segments.len() > 1 && state.segments[0].newest_ms < cutoff {
        delete_oldest(shared, &mut state, "retention");
    }
    let roll = state
        .segments
        .last()
        .is_some_and(|s| s.events > 0 && s.newest_ms < cutoff);
    drop(state);
    // Passed segments only: never counts as a drop.
    make_room_passed(shared, disk);
    roll
}

fn make_room_passed(shared: &Shared, disk: &Disk) {
    let mut state = shared.state.lock();
    while state.disk_bytes() > disk.max_bytes && state.segments.len() > 1 {
        let min = state.min_cursor();
        if state.segments[0].last.is_some_and(|l| l >= min) {
            break;
        }
        delete_oldest(shared, &mut state, "retention");
    }
}

/// Removes the oldest segment, counting for each sink what it had not read.
fn delete_oldest(shared: &Shared, state: &mut State, reason: &str) {
    if state.segments.is_empty() {
        return;
    }
    let segment = state.segments.remove(0);
    let mut lost = 0;
    for (sink, &cursor) in &state.cursors {
        if !state.registered.contains(sink) {
            continue;
        }
        let n = segment.unread_by(cursor);
        lost += n;
        shared.metrics.dropped(sink, reason, n);
    }
    shared.metrics.set_bytes(state.disk_bytes());
    match std::fs::remove_file(&segment.path) {
        Ok(()) => tracing::info!(
            segment = %segment.path.display(),
            events = segment.events,
            unread = lost,
            reason,
            "event log segment deleted"
        ),
        Err(error) => tracing::warn!(
            segment = %segment.path.display(),
            %error,
            "cannot delete an event log segment"
        ),
    }
}
