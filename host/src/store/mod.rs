//! The store: the latest value and a bounded history of every series, from every
//! source (system samplers, plugins, alerts), with per-source limits and two
//! separate budgets, so plugins can never take the room of the host's series.
//!
//! # Model
//!
//! A *source* (`system`, a plugin name, ...) hands the store a whole snapshot at
//! a time with [`Store::apply`]. A *series* is one exported name plus one label
//! set within one source; a *family* is all series of one exported name, of one
//! [`MetricKind`], across sources. Series a snapshot no longer contains turn
//! *stale*: they leave `/metrics` and [`Store::select`] at once, and their history
//! stays queryable until it ages out of the window (or their room is needed for
//! new series, oldest first).
//!
//! # Invariants
//!
//! - Every stored name and label is valid in the Prometheus text format, and
//!   every plugin series passes `promtool check metrics`' lint rules
//!   ([`lint`]); what does not is dropped, counted and described in the
//!   [`ApplyReport`], never stored.
//! - A family has one kind. Counters are exported with a `_total` suffix, and a
//!   gauge `foo` and a counter `foo` (exported `foo_total`) conflict: the second
//!   to arrive is dropped as `type_conflict` while the first has live series.
//! - Every label value is free of control characters (tab and newline aside)
//!   and every counter's value is a finite number ≥ 0, whatever the source; a
//!   counter that goes down is stored as is (Prometheus reads it as a reset).
//! - Series held (live and stale) never exceed the limits: the `max_series`
//!   of a plugin or derived source, and two budgets: the plugins together hold
//!   at most [`StoreConfig::max_series`], the host's own sources (samplers,
//!   alerts) at most [`StoreConfig::reserved_series`]. A budget's stale series
//!   are evicted to make room in that budget only; live ones never are. So a
//!   plugin, however many series it churns, never pushes out a host series.
//! - Every refused sample is counted per source and reason
//!   ([`Store::source_stats`], and `wasmon_series_refused_total` when
//!   [`Store::with_refused_counter`] is given one).
//! - The store knows nothing of any exposition format. [`ExportCache`] is an
//!   opaque per-series slot that `export::prometheus` fills and reads.
//!
//! # Locking
//!
//! One [`parking_lot::RwLock`] guards everything. `apply` holds the write lock
//! for one snapshot (a few µs for 100 samples); readers (`/metrics` render,
//! `select`, `history`) hold the read lock while they copy or format, and never
//! allocate per series when the render cache is warm, so a 10 000-series render
//! keeps writers waiting well under a millisecond.
//!
//! # Memory per series
//!
//! `size_of::<Series>()` = 160 bytes in the slab, the label text plus 8 bytes
//! per label, 16 bytes in its source's index and 4 in its family, the export
//! cache (the rendered `name{labels} ` prefix, about its text length), and the
//! history: the newest 16 buckets uncompressed (40 bytes each), older ones
//! sealed 16 at a time into XOR-compressed chunks ([`history`]'s codec), at
//! most `window / resolution + 1` buckets (361 at the default 10 s over 60
//! min) plus a chunk. Measured by `host/benches/history.rs` at 10 000 series
//! sampled every 10 s for 60 min: 40.1 MiB of history for realistic values
//! (11.7 B a bucket), 45.4 MiB for full-precision noise (13.2 B), against
//! 27.5 MiB for the plain f64 values and 110 MiB for the previous 32-byte
//! buckets; ten values a bucket (sampling every 1 s) cost 31.4 B a bucket
//! (108 MiB at 10 000 series).

mod history;
mod inner;
mod labels;
pub mod lint;
mod query;
mod read;
pub mod validate;

use crate::config::StoreConfig;
use crate::model::{Labels, Sample};
use inner::{Budget, Inner};
use parking_lot::RwLock;
pub use query::{Agg, HistoryQuery, SnapshotSeries, StepSeries, TooManyPoints};
pub use read::{FamilyView, SeriesView, StoreRead};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;
use validate::Problem;

/// Identifies a registered source; cheap to copy. The same name (and
/// namespace: host or plugin) always maps to the same id, even after
/// [`Store::remove_source`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(u32);

/// What kind of producer a source is, which decides how its samples are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The host's own samplers: trusted, may use the `wasmon_` and
    /// `monitoring_` prefixes, no labels added, not linted (names and labels
    /// must still be well formed). Counted in [`StoreConfig::reserved_series`].
    Host,
    /// A host source whose label sets come from plugins (the alerts, from
    /// rules): trusted names like [`Host`](Self::Host), labels checked like a
    /// plugin's, no label added; holds at most `max_series`, in the host's
    /// budget, so rules cannot fill the samplers' room through it.
    Derived {
        /// Most series (live and stale) this source may hold.
        max_series: usize,
    },
    /// A plugin: every new series is validated and linted, gets a
    /// `plugin="<source name>"` label, and the source holds at most
    /// `max_series`, in the plugins' budget ([`StoreConfig::max_series`]).
    Plugin {
        /// Most series (live and stale) this source may hold.
        max_series: usize,
    },
}

/// Why a sample was not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Not a valid Prometheus metric name (empty, bad characters, a colon, too long).
    InvalidName,
    /// A plugin used a `wasmon_` or `monitoring_` name.
    ReservedName,
    /// A naming rule of `promtool check metrics` would fail (see [`lint`]).
    Lint,
    /// The family already exists with the other kind.
    TypeConflict,
    /// The source already holds its `max_series`.
    SeriesLimit,
    /// The plugins already hold [`StoreConfig::max_series`] series together.
    GlobalLimit,
    /// A bad label: invalid or reserved name, too long, too many, duplicated.
    InvalidLabel,
    /// The same series twice in one snapshot; the first is kept.
    Duplicate,
    /// The source was removed (or never registered with this store).
    UnknownSource,
    /// The host's sources already hold [`StoreConfig::reserved_series`] series together.
    ReservedLimit,
    /// A label value has a control character (tab and newline aside).
    ControlCharacter,
    /// A counter's value is negative, NaN or infinite.
    InvalidValue,
}

impl DropReason {
    /// Every reason, in a stable order (the declaration's).
    pub const ALL: [DropReason; 12] = [
        DropReason::InvalidName,
        DropReason::ReservedName,
        DropReason::Lint,
        DropReason::TypeConflict,
        DropReason::SeriesLimit,
        DropReason::GlobalLimit,
        DropReason::InvalidLabel,
        DropReason::Duplicate,
        DropReason::UnknownSource,
        DropReason::ReservedLimit,
        DropReason::ControlCharacter,
        DropReason::InvalidValue,
    ];

    /// The reason as a metric label value, e.g. `series_limit`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::InvalidName => "invalid_name",
            DropReason::ReservedName => "reserved_name",
            DropReason::Lint => "lint",
            DropReason::TypeConflict => "type_conflict",
            DropReason::SeriesLimit => "series_limit",
            DropReason::GlobalLimit => "global_limit",
            DropReason::InvalidLabel => "invalid_label",
            DropReason::Duplicate => "duplicate",
            DropReason::UnknownSource => "unknown_source",
            DropReason::ReservedLimit => "reserved_limit",
            DropReason::ControlCharacter => "control_character",
            DropReason::InvalidValue => "invalid_value",
        }
    }
}

/// What [`Store::apply`] did with a snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    /// Samples stored (new series and updates).
    pub stored: usize,
    /// Samples dropped, by reason; reasons with no drops are left out.
    pub dropped: Vec<(DropReason, usize)>,
    /// The first problem, for humans:
    /// ``sample `fooBar`: metric names should be written in 'snake_case' not 'camelCase'``.
    pub first_problem: Option<String>,
}

impl ApplyReport {
    /// All samples dropped, whatever the reason.
    pub fn dropped_total(&self) -> usize {
        self.dropped.iter().map(|(_, n)| n).sum()
    }

    /// Samples dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> usize {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    fn drop(&mut self, problem: Problem, sample: &Sample) {
        let reason = problem.reason();
        match self.dropped.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.dropped.push((reason, 1)),
        }
        if self.first_problem.is_none() {
            self.first_problem = Some(problem.describe(sample));
        }
    }
}

/// The history of one series, as [`Store::history`] answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesHistory {
    /// Exported metric name.
    pub name: String,
    /// All labels, the host-added `plugin` label included, sorted by name.
    pub labels: Labels,
    /// One point per bucket that saw a value, oldest first.
    pub points: Vec<HistoryPoint>,
}

/// One bucket of history.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// Start of the bucket, Unix milliseconds.
    pub time_ms: u64,
    /// Smallest value in the bucket.
    pub min: f64,
    /// Largest value in the bucket.
    pub max: f64,
    /// Mean of the values in the bucket.
    pub avg: f64,
    /// The value recorded last in the bucket.
    pub last: f64,
    /// How many values the bucket saw.
    pub count: u32,
}

/// Counts describing what the store holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Registered sources.
    pub sources: usize,
    /// Families with at least one series (live or stale).
    pub families: usize,
    /// Series exported now.
    pub live_series: usize,
    /// Series held, live and stale.
    pub held_series: usize,
    /// Series held by plugin sources.
    pub plugin_series: usize,
    /// The plugins' budget, [`StoreConfig::max_series`].
    pub max_series: usize,
    /// Series held by the host's own sources (samplers, alerts).
    pub host_series: usize,
    /// The host's budget, [`StoreConfig::reserved_series`].
    pub reserved_series: usize,
    /// Heap bytes of all history buckets.
    pub history_bytes: usize,
    /// Approximate bytes held for all series (structs, labels, indexes, caches, history).
    pub approx_bytes: usize,
}

/// An opaque per-series slot for an exporter: bytes derived from the series'
/// identity (name and labels), computed once and dropped with the series. The
/// store never reads it; `export::prometheus` owns its content (the rendered
/// `name{labels} ` prefix). A series' identity never changes, so it never goes
/// stale.
#[derive(Debug, Default)]
pub struct ExportCache(OnceLock<Box<[u8]>>);

impl ExportCache {
    /// The cached bytes, computing them with `init` on first use.
    pub fn get_or_init(&self, init: impl FnOnce() -> Vec<u8>) -> &[u8] {
        self.0.get_or_init(|| init().into_boxed_slice())
    }

    fn heap_bytes(&self) -> usize {
        self.0.get().map_or(0, |b| b.len())
    }
}

/// One source as [`Store::source_stats`] describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SourceStats {
    /// Its name: a plugin's, or `system`, `gpu`, `alerts`.
    pub name: String,
    /// `host`, `derived` (host names, labels from plugins: the alerts) or `plugin`.
    pub kind: &'static str,
    /// Whether it is registered (a removed plugin's source is not).
    pub registered: bool,
    /// Series exported now.
    pub live_series: usize,
    /// Series held, live and stale.
    pub held_series: usize,
    /// Its own limit, if it has one.
    pub max_series: Option<usize>,
    /// Samples refused since it was first registered, all reasons.
    pub refused_total: u64,
    /// Samples refused by reason (`series_limit`, `global_limit`, ...); only
    /// reasons that happened.
    pub refused: BTreeMap<&'static str, u64>,
}

/// Latest values and bounded history of every series; `Send + Sync`, shared
/// as `Arc<Store>`.
pub struct Store {
    inner: RwLock<Inner>,
    /// `wasmon_series_refused_total{source,kind,reason}`, when given.
    refused: Option<prometheus::IntCounterVec>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Store {
    /// An empty store. The history resolution is raised to at least 1 s and at
    /// most the window.
    pub fn new(config: &StoreConfig) -> Store {
        let window_ms = config.history_window.as_millis().max(1000) as u64;
        let resolution_ms = (config.history_resolution.as_millis() as u64).clamp(1000, window_ms);
        let span = u32::try_from(window_ms.div_ceil(resolution_ms)).unwrap_or(u32::MAX);
        let mut caps = [0; 2];
        caps[Budget::Host as usize] = config.reserved_series;
        caps[Budget::Plugins as usize] = config.max_series;
        Store {
            inner: RwLock::new(Inner::new(resolution_ms, window_ms, span, caps)),
            refused: None,
        }
    }

    /// Counts every refused sample in `counter`, labelled `source` (the
    /// source's name), `kind` (`host`, `derived`, `plugin`) and `reason`
    /// ([`DropReason::as_str`]).
    pub fn with_refused_counter(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.refused = Some(counter);
        self
    }

    /// Registers (or re-registers, updating kind/limit) a source by name; same
    /// name -> same id. Host and derived sources share one namespace, plugins
    /// have another: a plugin named `system` is not the system sampler.
    pub fn source(&self, name: &str, kind: SourceKind) -> SourceId {
        SourceId(self.inner.write().register(name, kind))
    }

    /// The plugins' budget ([`StoreConfig::max_series`]) and the host's
    /// ([`StoreConfig::reserved_series`]).
    pub fn budgets(&self) -> (usize, usize) {
        let inner = self.inner.read();
        (
            inner.caps[Budget::Plugins as usize],
            inner.caps[Budget::Host as usize],
        )
    }

    /// Replaces the source's snapshot: series it does not return again leave /metrics and select()
    /// (their history ages out). Returns what was stored/dropped.
    ///
    /// `now_ms` is Unix milliseconds; a sample's own `timestamp_ms` places it in
    /// history (clamped to `now_ms`), and also drives aging of stale series.
    pub fn apply(&self, source: SourceId, samples: Vec<Sample>, now_ms: u64) -> ApplyReport {
        // Samples are dropped, and refusals counted, after the lock is released.
        let (report, label) = {
            let mut inner = self.inner.write();
            let report = inner.apply(source.0, &samples, now_ms);
            let label = (self.refused.is_some() && !report.dropped.is_empty())
                .then(|| inner.sources.get(source.0 as usize))
                .flatten()
                .map(|s| (s.name.to_string(), kind_name(s.kind)));
            (report, label)
        };
        drop(samples);
        if let (Some(counter), Some((name, kind))) = (&self.refused, label) {
            for (reason, n) in &report.dropped {
                counter
                    .with_label_values(&[name.as_str(), kind, reason.as_str()])
                    .inc_by(*n as u64);
            }
        }
        report
    }

    /// Removes a source and every series it owns (a plugin was unloaded). Its
    /// id stays reserved for its name; applying to it drops everything as
    /// `unknown_source` until it is registered again.
    pub fn remove_source(&self, source: SourceId) {
        self.inner.write().unregister(source.0);
    }

    /// Latest sample of every live series whose *exported* name matches a selector: exact name, or a
    /// prefix when the selector ends with `*` (`"probe_*"`); `"*"` matches all. Labels include host-added ones.
    ///
    /// Samples come out grouped by family in name order, with labels sorted, the
    /// family's help, and the time of the last update.
    pub fn select(&self, selectors: &[String]) -> Vec<Sample> {
        let inner = self.inner.read();
        let mut families: Vec<u32> = Vec::new();
        for selector in selectors {
            match selector.strip_suffix('*') {
                Some(prefix) => {
                    let start = inner
                        .order
                        .partition_point(|&f| inner.family_name(f) < prefix);
                    families.extend(
                        inner.order[start..]
                            .iter()
                            .take_while(|&&f| inner.family_name(f).starts_with(prefix)),
                    );
                }
                None => families.extend(inner.family_ids.get(selector.as_str())),
            }
        }
        families.sort_unstable_by(|&a, &b| inner.family_name(a).cmp(inner.family_name(b)));
        families.dedup();
        let mut out = Vec::new();
        for family in families.into_iter().filter_map(|fid| inner.family(fid)) {
            for series in inner.live_members(family) {
                out.push(Sample {
                    name: family.name.to_string(),
                    kind: family.kind,
                    labels: inner.labels_of(series),
                    value: series.value,
                    help: Some(family.help.to_string()),
                    timestamp_ms: Some(series.updated_ms),
                });
            }
        }
        out
    }

    /// Bucketed history (min/max/avg/count per bucket of `history_resolution`) of series named `name`
    /// whose labels include all `matchers`, over the last `window` (capped at history_window).
    ///
    /// Stale series are included until their history ages out. "Now" is the wall clock.
    pub fn history(
        &self,
        name: &str,
        matchers: &[(String, String)],
        window: Duration,
    ) -> Vec<SeriesHistory> {
        self.history_at(name, matchers, window, crate::time::now_ms())
    }

    /// [`history`](Self::history) as seen at `now_ms`.
    pub fn history_at(
        &self,
        name: &str,
        matchers: &[(String, String)],
        window: Duration,
        now_ms: u64,
    ) -> Vec<SeriesHistory> {
        let inner = self.inner.read();
        let Some(family) = inner.family_ids.get(name).and_then(|&f| inner.family(f)) else {
            return Vec::new();
        };
        let window_ms = (window.as_millis() as u64).min(inner.window_ms);
        let from = inner.bucket(now_ms.saturating_sub(window_ms));
        let mut out = Vec::new();
        for series in family.members.iter().filter_map(|&id| inner.get(id)) {
            let matches = matchers
                .iter()
                .all(|(n, v)| inner.label_value(series, n) == Some(v.as_str()));
            if !matches {
                continue;
            }
            let points: Vec<HistoryPoint> = series
                .history
                .since(from)
                .map(|b| HistoryPoint {
                    time_ms: u64::from(b.index) * inner.resolution_ms,
                    min: b.min,
                    max: b.max,
                    avg: b.sum / f64::from(b.count.max(1)),
                    last: b.last,
                    count: b.count,
                })
                .collect();
            if points.is_empty() {
                continue;
            }
            out.push(SeriesHistory {
                name: family.name.to_string(),
                labels: inner.labels_of(series),
                points,
            });
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Live series: those exported now.
    pub fn series_count(&self) -> usize {
        self.inner.read().live.iter().sum()
    }

    /// Counts and approximate memory; walks every series, so meant for
    /// occasional self-metrics, not hot paths.
    pub fn stats(&self) -> StoreStats {
        let inner = self.inner.read();
        let mut stats = StoreStats {
            sources: inner.sources.iter().filter(|s| s.registered).count(),
            families: inner.order.len(),
            live_series: inner.live.iter().sum(),
            held_series: inner.held.iter().sum(),
            plugin_series: inner.held[Budget::Plugins as usize],
            max_series: inner.caps[Budget::Plugins as usize],
            host_series: inner.held[Budget::Host as usize],
            reserved_series: inner.caps[Budget::Host as usize],
            ..StoreStats::default()
        };
        let slot = std::mem::size_of::<Option<inner::Series>>();
        for series in inner.series.iter().flatten() {
            stats.history_bytes += series.history.heap_bytes();
            stats.approx_bytes += slot
                + series.labels.heap_bytes()
                + series.export.heap_bytes()
                + series.history.heap_bytes()
                + 16
                + 4;
        }
        stats
    }

    /// Every source ever registered (a removed plugin's too, with
    /// `registered: false`), host sources first, then by name.
    pub fn sources(&self) -> Vec<SourceStats> {
        let inner = self.inner.read();
        let mut out: Vec<SourceStats> = inner.sources.iter().map(source_stats).collect();
        out.sort_by(|a, b| (a.kind == "plugin", &a.name).cmp(&(b.kind == "plugin", &b.name)));
        out
    }

    /// One source by name: a plugin's when `plugin`, else a host source's.
    pub fn source_stats(&self, name: &str, plugin: bool) -> Option<SourceStats> {
        let inner = self.inner.read();
        let budget = if plugin {
            Budget::Plugins
        } else {
            Budget::Host
        };
        let id = inner.source_id(budget, name)?;
        inner.sources.get(id as usize).map(source_stats)
    }

    /// Read access for exporters, in family-name order. Writers wait while the
    /// returned view lives: format, don't block.
    pub fn read(&self) -> StoreRead<'_> {
        StoreRead {
            inner: self.inner.read(),
        }
    }
}

/// `host`, `derived` or `plugin`.
fn kind_name(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Host => "host",
        SourceKind::Derived { .. } => "derived",
        SourceKind::Plugin { .. } => "plugin",
    }
}

fn source_stats(source: &inner::Source) -> SourceStats {
    let refused: BTreeMap<&'static str, u64> = DropReason::ALL
        .iter()
        .zip(source.refused)
        .filter(|(_, n)| *n > 0)
        .map(|(reason, n)| (reason.as_str(), n))
        .collect();
    SourceStats {
        name: source.name.to_string(),
        kind: kind_name(source.kind),
        registered: source.registered,
        live_series: source.live,
        held_series: source.table.len(),
        max_series: source.kind.limit(),
        refused_total: refused.values().sum(),
        refused,
    }
}

#[cfg(test)]
mod budget_tests;
#[cfg(test)]
mod tests;
