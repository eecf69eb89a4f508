//! Unit tests of the event log: the in-memory contract, then the durable
//! log on a temporary directory (reopen, damage, cursors, retention, keys).

use super::*;
use crate::config::{Durability, StorageConfig, WhenFull};
use crate::model::Event;
use crate::units::ByteSize;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn event(n: u64) -> Event {
    Event::new(format!("test.{n}"), "test")
}

fn dropped() -> prometheus::IntCounterVec {
    prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["sink", "reason"]).unwrap()
}

#[test]
fn cursors_start_at_the_end_and_advance_on_ack() {
    let log = EventLog::new(10);
    log.append(event(0));
    assert_eq!(log.cursor("s"), 1);
    log.append(event(1));
    log.append(event(2));
    let (batch, skipped) = log.read(log.cursor("s"), 10);
    assert_eq!(skipped, 0);
    assert_eq!(
        batch.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(log.backlog("s"), 2);
    log.ack("s", 3);
    assert_eq!(log.backlog("s"), 0);
    log.ack("s", 2);
    assert_eq!(log.cursor("s"), 3, "a cursor never moves back");
}

#[test]
fn eviction_is_counted_only_when_a_sink_had_not_read() {
    let counter = dropped();
    let log = EventLog::new(2).with_drop_counter(counter.clone());
    for n in 0..5 {
        log.append(event(n));
    }
    assert_eq!(log.cursor("s"), 5);
    for n in 5..9 {
        log.append(event(n));
    }
    assert_eq!(counter.with_label_values(&["s", "retention"]).get(), 2);
    let (batch, skipped) = log.read(5, 10);
    assert_eq!(skipped, 2);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0].0, 7);
}

#[test]
fn backlog_never_counts_evicted_events() {
    let log = EventLog::new(100);
    assert_eq!(log.cursor_or("s", 0), 0);
    assert!(log.is_empty());
    log.append_all((0..1000).map(event));
    assert_eq!(log.len(), 100);
    assert_eq!(log.backlog("s"), 100, "only what the log still holds");
    log.ack("s", 950);
    assert_eq!(log.backlog("s"), 50);
    log.ack("s", 1000);
    assert_eq!(log.backlog("s"), 0);
    assert_eq!(log.backlog("unknown"), 0);
}

#[test]
fn the_memory_tail_is_bounded_by_bytes_too() {
    let one = event(0).approx_bytes();
    let log = EventLog::new(100).with_max_bytes(one * 5 + one / 2);
    log.append_all((0..20).map(event));
    let (kept, _) = log.read(0, 100);
    assert_eq!(kept.len(), 5);
    assert_eq!(kept[0].0, 15);
}

#[test]
fn recent_pages_newest_first() {
    let log = EventLog::new(100);
    assert_eq!(log.append_all((0..10).map(event)), 10);
    let even = |e: &Event| {
        e.event_type
            .trim_start_matches("test.")
            .parse::<u64>()
            .unwrap()
            % 2
            == 0
    };
    let (page, total) = log.recent(100, 1, 2, even);
    assert_eq!(total, 5);
    let types: Vec<_> = page.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["test.6", "test.4"]);
    let (page, total) = log.recent(3, 0, 10, |_| true);
    assert_eq!((page.len(), total), (3, 3), "only the window is searched");
    assert_eq!(log.append(event(10)), 10);
}

/// A temporary data directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "wasmon-events-{name}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn segments(&self) -> Vec<PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(self.0.join("events"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        files.sort();
        files
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn storage(dir: &Path) -> StorageConfig {
    StorageConfig {
        data_dir: dir.to_path_buf(),
        durability: Durability::Fsync,
        ..StorageConfig::default()
    }
}

fn open_with(config: &StorageConfig, metrics: LogMetrics) -> EventLog {
    EventLog::open(
        config,
        Duration::from_secs(3600),
        1000,
        metrics,
        crate::live::Live::new(1),
    )
    .unwrap()
}

fn open(config: &StorageConfig) -> EventLog {
    open_with(config, LogMetrics::default())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

fn ids(log: &EventLog) -> Vec<(u64, String)> {
    log.read(0, 100_000)
        .0
        .iter()
        .map(|(s, e)| (*s, e.id.clone()))
        .collect()
}

#[test]
fn durable_events_survive_a_reopen_with_their_ids_and_numbers() {
    let dir = TempDir::new("reopen");
    let config = storage(&dir.0);
    let log = open(&config);
    let events: Vec<Event> = (0..50).map(event).collect();
    assert_eq!(block_on(log.append_durable(events)).unwrap(), 50);
    log.append(event(50));
    assert_eq!(log.cursor_or("sink", 0), 0);
    log.ack("sink", 20);
    let before = ids(&log);
    assert_eq!(before.len(), 50, "the durable ones at least");
    drop(log);

    let log = open(&config);
    let after = ids(&log);
    assert_eq!(after.len(), 51, "the unwaited append was written at close");
    assert_eq!(&after[..50], &before[..50]);
    assert_eq!(log.cursor("sink"), 20, "the cursor was persisted");
    assert_eq!(log.end(), 51);
    assert_eq!(log.append(event(51)), 51, "numbering goes on");
}

#[test]
fn older_events_are_read_from_the_segments() {
    let dir = TempDir::new("older");
    let config = StorageConfig {
        memory_events: 10,
        max_bytes: ByteSize(1 << 20),
        ..storage(&dir.0)
    };
    let log = open(&config);
    for chunk in 0..10 {
        block_on(log.append_durable((chunk * 100..chunk * 100 + 100).map(event).collect()))
            .unwrap();
    }
    assert!(dir.segments().len() > 1, "rolled over several segments");
    let mut from = 0;
    let mut seen = Vec::new();
    while from < log.end() {
        let (batch, skipped) = log.read(from, 37);
        assert_eq!(skipped, 0);
        assert!(!batch.is_empty(), "stuck at {from}");
        from = batch.last().unwrap().0 + 1;
        seen.extend(batch.into_iter().map(|(s, e)| (s, e.event_type.clone())));
    }
    assert_eq!(seen.len(), 1000);
    for (i, (seq, kind)) in seen.iter().enumerate() {
        assert_eq!(
            (*seq, kind.as_str()),
            (i as u64, format!("test.{i}").as_str())
        );
    }
}

#[test]
fn a_torn_tail_and_a_flipped_byte_are_repaired_at_open() {
    let dir = TempDir::new("damage");
    let config = storage(&dir.0);
    let log = open(&config);
    block_on(log.append_durable((0..20).map(event).collect())).unwrap();
    let before = ids(&log);
    drop(log);
    let segment = dir.segments().pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 7);
    bytes[len / 2] ^= 0x40;
    std::fs::write(&segment, &bytes).unwrap();

    let corrupt = prometheus::IntCounter::new("c", "c").unwrap();
    let log = open_with(
        &config,
        LogMetrics {
            corrupt: Some(corrupt.clone()),
            ..LogMetrics::default()
        },
    );
    assert_eq!(corrupt.get(), 1);
    let after = ids(&log);
    assert_eq!(after.len(), 18, "one damaged, one torn: {after:?}");
    assert!(
        after.iter().all(|a| before.contains(a)),
        "ids and numbers unchanged"
    );
    block_on(log.append_durable(vec![event(99)])).unwrap();
    drop(log);
    let log = open(&config);
    assert_eq!(
        ids(&log).len(),
        19,
        "the repaired segment takes new records"
    );
}

#[test]
fn reject_refuses_when_full_and_drop_oldest_counts() {
    for policy in [WhenFull::Reject, WhenFull::DropOldest] {
        let dir = TempDir::new("full");
        let config = StorageConfig {
            max_bytes: ByteSize(64 * 1024),
            when_full: policy,
            ..storage(&dir.0)
        };
        let counter = dropped();
        let log = open_with(
            &config,
            LogMetrics {
                dropped: Some(counter.clone()),
                ..LogMetrics::default()
            },
        );
        assert_eq!(log.cursor_or("slow", 0), 0, "a sink that reads nothing");
        let mut accepted = 0;
        let mut refused = None;
        for n in 0..2000 {
            match block_on(log.append_durable(vec![event(n)])) {
                Ok(_) => accepted += 1,
                Err(error) => {
                    refused = Some(error);
                    break;
                }
            }
        }
        assert!(log.disk_bytes() <= 64 * 1024);
        match policy {
            WhenFull::Reject => {
                assert!(
                    matches!(refused, Some(AppendError::Full { .. })),
                    "{refused:?}"
                );
                let (kept, _) = log.read(0, 10_000);
                assert_eq!(kept.len(), accepted, "nothing accepted was lost");
                // The sink catches up: room again.
                log.ack("slow", log.end());
                block_on(log.append_durable(vec![event(0)])).unwrap();
            }
            WhenFull::DropOldest => {
                assert_eq!(refused, None);
                assert!(counter.with_label_values(&["slow", "full"]).get() > 0);
            }
        }
    }
}

#[test]
fn idempotency_keys_are_rebuilt_from_the_records() {
    let dir = TempDir::new("keys");
    let config = storage(&dir.0);
    let log = open(&config);
    let e = event(1);
    let id = e.id.clone();
    let now = crate::time::now_ms();
    assert_eq!(log.claim_key("k1", &id, now), None);
    block_on(log.append_durable_keyed(vec![(e, Some("k1".into()))])).unwrap();
    assert_eq!(
        log.claim_key("k1", "other", now).as_deref(),
        Some(id.as_str())
    );
    drop(log);
    let log = open(&config);
    assert_eq!(
        log.claim_key("k1", "other", now).as_deref(),
        Some(id.as_str())
    );
    assert_eq!(log.claim_key("k2", "new", now), None);
    log.release_key("k2", "new");
    assert_eq!(log.claim_key("k2", "newer", now), None);
}

#[test]
fn concurrent_appends_share_commits_and_stay_in_order() {
    let dir = TempDir::new("group");
    let config = storage(&dir.0);
    let log = std::sync::Arc::new(open(&config));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    block_on(log.append_durable(vec![event(t * 1000 + n)])).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let seqs: Vec<u64> = log.read(0, 1000).0.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..400).collect::<Vec<_>>());
}

#[test]
fn a_failed_write_fails_only_that_append_and_the_log_goes_on() {
    let dir = TempDir::new("fail");
    let config = storage(&dir.0);
    // A directory where the first segment would go: creating it fails, as
    // a full disk or an I/O error would.
    let blocker = dir.0.join("events").join(format!("{:020}.seg", 0));
    std::fs::create_dir_all(&blocker).unwrap();
    let log = open(&config);
    let error = block_on(log.append_durable(vec![event(0)])).unwrap_err();
    assert!(matches!(error, AppendError::Io(_)), "{error:?}");
    assert!(log.read(0, 10).0.is_empty(), "nothing of it is published");
    block_on(log.append_durable(vec![event(1)])).unwrap();
    assert_eq!(log.read(0, 10).0.len(), 1);
    drop(log);
    // The unreadable "segment" is left out; the host still starts.
    let log = open(&config);
    assert_eq!(ids(&log).len(), 1);
    assert_eq!(log.end(), 2, "numbers are not reused");
}
