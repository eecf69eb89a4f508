//! The store: the latest value and a bounded history of every series, from every
//! source (system samplers, plugins, alerts), with per-plugin and global
//! cardinality limits.
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
//! - Series held (live and stale) never exceed the limits: `max_series` of a
//!   plugin source, [`StoreConfig::max_series`] overall. Stale series are evicted
//!   to make room; live ones never are.
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
//! `size_of::<Series>()` = 136 bytes in the slab, the label text plus 8 bytes
//! per label, 16 bytes in its source's index and 4 in its family, the export
//! cache (the rendered `name{labels} ` prefix, about its text length), and the
//! history: 32 bytes per bucket that saw a value, at most `window / resolution + 1`
//! buckets (361, ≈ 11.3 KiB, at the default 10 s over 60 min), allocated by
//! doubling from 4. Measured with three short labels: ≈ 420 bytes for a new
//! series once rendered; ≈ 11.6 KiB once its hour of history is full.

mod history;
mod labels;
pub mod lint;
pub mod validate;

use crate::config::StoreConfig;
use crate::model::{Labels, MetricKind, Sample};
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use history::History;
use labels::LabelSet;
use parking_lot::{RwLock, RwLockReadGuard};
use serde::Serialize;
use std::hash::BuildHasher;
use std::sync::OnceLock;
use std::time::Duration;
use validate::{Problem, exported_label, exported_name};

/// Identifies a registered source; cheap to copy. The same name always maps to
/// the same id, even after [`Store::remove_source`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(u32);

/// What kind of producer a source is, which decides how its samples are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// The host's own samplers and alerts: trusted, may use the `wasmon_` and
    /// `monitoring_` prefixes, no labels added, not linted (names and labels
    /// must still be well formed).
    Host,
    /// A plugin: every new series is validated and linted, gets a
    /// `plugin="<source name>"` label, and the source holds at most `max_series`.
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
    /// The plugin already holds its `max_series`.
    SeriesLimit,
    /// The store already holds [`StoreConfig::max_series`].
    GlobalLimit,
    /// A bad label: invalid or reserved name, too long, too many, duplicated.
    InvalidLabel,
    /// The same series twice in one snapshot; the first is kept.
    Duplicate,
    /// The source was removed (or never registered with this store).
    UnknownSource,
}

impl DropReason {
    /// Every reason, in a stable order.
    pub const ALL: [DropReason; 9] = [
        DropReason::InvalidName,
        DropReason::ReservedName,
        DropReason::Lint,
        DropReason::TypeConflict,
        DropReason::SeriesLimit,
        DropReason::GlobalLimit,
        DropReason::InvalidLabel,
        DropReason::Duplicate,
        DropReason::UnknownSource,
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

/// Latest values and bounded history of every series; `Send + Sync`, shared
/// as `Arc<Store>`.
pub struct Store {
    inner: RwLock<Inner>,
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
        Store {
            inner: RwLock::new(Inner {
                resolution_ms,
                window_ms,
                span,
                max_series: config.max_series,
                hasher: DefaultHashBuilder::default(),
                sources: Vec::new(),
                source_ids: HashMap::new(),
                families: Vec::new(),
                free_families: Vec::new(),
                family_ids: HashMap::new(),
                order: Vec::new(),
                series: Vec::new(),
                free_series: Vec::new(),
                held: 0,
                live: 0,
                next_sweep_ms: 0,
                name_buf: String::new(),
                pending: Vec::new(),
            }),
        }
    }

    /// Registers (or re-registers, updating kind/limit) a source by name; same name -> same id.
    pub fn source(&self, name: &str, kind: SourceKind) -> SourceId {
        let mut inner = self.inner.write();
        if let Some(&id) = inner.source_ids.get(name) {
            if let Some(source) = inner.sources.get_mut(id as usize) {
                source.kind = kind;
                source.registered = true;
            }
            return SourceId(id);
        }
        let id = u32::try_from(inner.sources.len()).unwrap_or(u32::MAX);
        inner.sources.push(Source {
            name: name.into(),
            kind,
            registered: true,
            epoch: 0,
            table: HashTable::new(),
            live: 0,
        });
        inner.source_ids.insert(name.into(), id);
        SourceId(id)
    }

    /// Replaces the source's snapshot: series it does not return again leave /metrics and select()
    /// (their history ages out). Returns what was stored/dropped.
    ///
    /// `now_ms` is Unix milliseconds; a sample's own `timestamp_ms` places it in
    /// history (clamped to `now_ms`), and also drives aging of stale series.
    pub fn apply(&self, source: SourceId, samples: Vec<Sample>, now_ms: u64) -> ApplyReport {
        // Samples are dropped after the lock is released.
        let report = self.inner.write().apply(source.0, &samples, now_ms);
        drop(samples);
        report
    }

    /// Removes a source and every series it owns (a plugin was unloaded). Its
    /// id stays reserved for its name; applying to it drops everything as
    /// `unknown_source` until it is registered again.
    pub fn remove_source(&self, source: SourceId) {
        let mut inner = self.inner.write();
        let Some(src) = inner.sources.get_mut(source.0 as usize) else {
            return;
        };
        src.registered = false;
        let ids: Vec<u32> = src.table.iter().map(|&(_, id)| id).collect();
        for id in ids {
            inner.remove_series(id);
        }
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
        self.inner.read().live
    }

    /// Counts and approximate memory; walks every series, so meant for
    /// occasional self-metrics, not hot paths.
    pub fn stats(&self) -> StoreStats {
        let inner = self.inner.read();
        let mut stats = StoreStats {
            sources: inner.sources.iter().filter(|s| s.registered).count(),
            families: inner.order.len(),
            live_series: inner.live,
            held_series: inner.held,
            ..StoreStats::default()
        };
        let slot = std::mem::size_of::<Option<Series>>();
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

    /// Read access for exporters, in family-name order. Writers wait while the
    /// returned view lives: format, don't block.
    pub fn read(&self) -> StoreRead<'_> {
        StoreRead {
            inner: self.inner.read(),
        }
    }
}

/// A read-locked view of the store for exporters (see [`Store::read`]).
pub struct StoreRead<'a> {
    inner: RwLockReadGuard<'a, Inner>,
}

impl<'a> StoreRead<'a> {
    /// Families with at least one live series, in name order.
    pub fn families(&self) -> impl Iterator<Item = FamilyView<'_>> {
        let inner: &Inner = &self.inner;
        inner
            .order
            .iter()
            .filter_map(move |&fid| inner.family(fid))
            .filter(|f| f.live > 0)
            .map(move |family| FamilyView { inner, family })
    }

    /// Whether a family of this exported name has live series.
    pub fn has_family(&self, name: &str) -> bool {
        self.inner
            .family_ids
            .get(name)
            .and_then(|&f| self.inner.family(f))
            .is_some_and(|f| f.live > 0)
    }
}

/// One family, read-locked.
pub struct FamilyView<'a> {
    inner: &'a Inner,
    family: &'a Family,
}

impl<'a> FamilyView<'a> {
    /// Exported name (counters end in `_total`).
    pub fn name(&self) -> &'a str {
        &self.family.name
    }

    /// Gauge or counter.
    pub fn kind(&self) -> MetricKind {
        self.family.kind
    }

    /// Help text, raw (not escaped); never empty.
    pub fn help(&self) -> &'a str {
        &self.family.help
    }

    /// The family's live series, in creation order.
    pub fn series(&self) -> impl Iterator<Item = SeriesView<'a>> + 'a {
        let inner = self.inner;
        inner
            .live_members(self.family)
            .map(move |series| SeriesView {
                series,
                host_label: inner.host_label(series),
            })
    }
}

/// One live series, read-locked.
pub struct SeriesView<'a> {
    series: &'a Series,
    host_label: Option<&'a str>,
}

impl<'a> SeriesView<'a> {
    /// All labels, the host-added `plugin` label included, sorted by name.
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        merge_host_label(&self.series.labels, self.host_label)
    }

    /// Latest value.
    pub fn value(&self) -> f64 {
        self.series.value
    }

    /// Unix milliseconds of the latest value.
    pub fn updated_ms(&self) -> u64 {
        self.series.updated_ms
    }

    /// The exporter's slot for this series (see [`ExportCache`]).
    pub fn export_cache(&self) -> &'a ExportCache {
        &self.series.export
    }
}

/// Stored labels with the host's `plugin` label merged in name order.
fn merge_host_label<'a>(
    labels: &'a LabelSet,
    host: Option<&'a str>,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    let mut host = host.map(|v| (validate::PLUGIN_LABEL, v));
    let mut rest = labels.iter().peekable();
    std::iter::from_fn(move || {
        let take_host = match (&host, rest.peek()) {
            (Some(h), Some(next)) => h.0 < next.0,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_host { host.take() } else { rest.next() }
    })
}

struct Source {
    name: Box<str>,
    kind: SourceKind,
    registered: bool,
    /// Bumped per snapshot; series seen in it carry the same number.
    epoch: u32,
    /// `(hash, series id)` of every series the source holds, live or stale.
    table: HashTable<(u64, u32)>,
    live: usize,
}

impl Source {
    fn is_plugin(&self) -> bool {
        matches!(self.kind, SourceKind::Plugin { .. })
    }
}

struct Family {
    name: Box<str>,
    kind: MetricKind,
    help: Box<str>,
    /// Whether `help` came from a sample rather than being generated.
    help_given: bool,
    /// Series ids, live and stale.
    members: Vec<u32>,
    live: usize,
}

struct Series {
    family: u32,
    /// Position in the family's `members`.
    slot: u32,
    source: u32,
    hash: u64,
    labels: LabelSet,
    value: f64,
    updated_ms: u64,
    seen_epoch: u32,
    live: bool,
    history: History,
    export: ExportCache,
}

struct Inner {
    resolution_ms: u64,
    window_ms: u64,
    /// Buckets in the window.
    span: u32,
    max_series: usize,
    hasher: DefaultHashBuilder,
    sources: Vec<Source>,
    source_ids: HashMap<Box<str>, u32>,
    families: Vec<Option<Family>>,
    free_families: Vec<u32>,
    family_ids: HashMap<Box<str>, u32>,
    /// Family ids sorted by name.
    order: Vec<u32>,
    series: Vec<Option<Series>>,
    free_series: Vec<u32>,
    held: usize,
    live: usize,
    next_sweep_ms: u64,
    /// Scratch: an exported name being looked up.
    name_buf: String,
    /// Scratch: indices of samples that matched no series.
    pending: Vec<usize>,
}

impl Inner {
    fn family(&self, fid: u32) -> Option<&Family> {
        self.families.get(fid as usize).and_then(Option::as_ref)
    }

    fn family_name(&self, fid: u32) -> &str {
        self.family(fid).map_or("", |f| &f.name)
    }

    fn get(&self, id: u32) -> Option<&Series> {
        self.series.get(id as usize).and_then(Option::as_ref)
    }

    fn live_members<'a>(&'a self, family: &'a Family) -> impl Iterator<Item = &'a Series> + 'a {
        family
            .members
            .iter()
            .filter_map(|&id| self.get(id))
            .filter(|s| s.live)
    }

    fn bucket(&self, time_ms: u64) -> u32 {
        u32::try_from(time_ms / self.resolution_ms).unwrap_or(u32::MAX)
    }

    /// The value of the host's `plugin` label for a series, if its source is a plugin.
    fn host_label(&self, series: &Series) -> Option<&str> {
        self.sources
            .get(series.source as usize)
            .filter(|s| s.is_plugin())
            .map(|s| &*s.name)
    }

    fn label_value<'a>(&'a self, series: &'a Series, name: &str) -> Option<&'a str> {
        match self.host_label(series) {
            Some(plugin) if name == validate::PLUGIN_LABEL => Some(plugin),
            _ => series.labels.get(name),
        }
    }

    fn labels_of(&self, series: &Series) -> Labels {
        merge_host_label(&series.labels, self.host_label(series))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn apply(&mut self, source: u32, samples: &[Sample], now_ms: u64) -> ApplyReport {
        let mut report = ApplyReport::default();
        let Some(src) = self
            .sources
            .get_mut(source as usize)
            .filter(|s| s.registered)
        else {
            for sample in samples {
                report.drop(Problem::UnknownSource, sample);
            }
            return report;
        };
        src.epoch = src.epoch.wrapping_add(1);
        let epoch = src.epoch;
        let plugin = src.is_plugin();
        let limit = match src.kind {
            SourceKind::Plugin { max_series } => Some(max_series),
            SourceKind::Host => None,
        };

        // Pass 1: update the series that exist (no allocation, no validation).
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        for (i, sample) in samples.iter().enumerate() {
            let Some(id) = self.find(source, sample, plugin) else {
                pending.push(i);
                continue;
            };
            match self.update(id, epoch, sample, now_ms) {
                Ok(()) => report.stored += 1,
                Err(problem) => report.drop(problem, sample),
            }
        }

        // Series the snapshot no longer has go stale.
        self.mark_unseen_stale(source, epoch);

        // Pass 2: validate and create the new ones.
        for (n, &i) in pending.iter().enumerate() {
            let Some(sample) = samples.get(i) else {
                continue;
            };
            let left = pending.len() - n;
            match self.insert(source, sample, plugin, limit, left, epoch, now_ms) {
                Ok(()) => report.stored += 1,
                Err(problem) => report.drop(problem, sample),
            }
        }
        self.pending = pending;

        if now_ms >= self.next_sweep_ms {
            self.sweep(now_ms);
            self.next_sweep_ms = now_ms.saturating_add(self.resolution_ms);
        }
        report
    }

    /// The series of `source` this sample updates, if it exists.
    fn find(&mut self, source: u32, sample: &Sample, plugin: bool) -> Option<u32> {
        let name = exported_name(&mut self.name_buf, &sample.name, sample.kind);
        let &fid = self.family_ids.get(name)?;
        if self.family(fid)?.kind != sample.kind {
            return None;
        }
        let hash = series_hash(
            &self.hasher,
            fid,
            sample
                .labels
                .iter()
                .map(|(n, v)| (exported_label(n, plugin), v.as_str())),
        );
        let table = &self.sources.get(source as usize)?.table;
        let series = &self.series;
        table
            .find(hash, |&(h, id)| {
                h == hash
                    && series
                        .get(id as usize)
                        .and_then(Option::as_ref)
                        .is_some_and(|s| s.family == fid && same_labels(&s.labels, sample, plugin))
            })
            .map(|&(_, id)| id)
    }

    fn update(&mut self, id: u32, epoch: u32, sample: &Sample, now_ms: u64) -> Result<(), Problem> {
        let span = self.span;
        let time_ms = sample.timestamp_ms.unwrap_or(now_ms).min(now_ms);
        let index = self.bucket(time_ms);
        let Some(series) = self.series.get_mut(id as usize).and_then(Option::as_mut) else {
            return Err(Problem::UnknownSource);
        };
        if series.seen_epoch == epoch {
            return Err(Problem::Duplicate);
        }
        series.seen_epoch = epoch;
        series.value = sample.value;
        series.updated_ms = series.updated_ms.max(time_ms);
        series.history.record(index, sample.value, span);
        let (fid, source, revived) = (series.family, series.source, !series.live);
        series.live = true;
        let Some(family) = self.families.get_mut(fid as usize).and_then(Option::as_mut) else {
            return Ok(());
        };
        if !family.help_given
            && let Some(help) = validate::help(sample.help.as_deref())
        {
            family.help = help.into();
            family.help_given = true;
        }
        if revived {
            family.live += 1;
            self.live += 1;
            if let Some(src) = self.sources.get_mut(source as usize) {
                src.live += 1;
            }
        }
        Ok(())
    }

    fn mark_unseen_stale(&mut self, source: u32, epoch: u32) {
        let Some(src) = self.sources.get_mut(source as usize) else {
            return;
        };
        if src.live == 0 {
            return;
        }
        let mut went_stale = 0;
        for &(_, id) in src.table.iter() {
            let Some(series) = self.series.get_mut(id as usize).and_then(Option::as_mut) else {
                continue;
            };
            if series.live && series.seen_epoch != epoch {
                series.live = false;
                went_stale += 1;
                if let Some(family) = self
                    .families
                    .get_mut(series.family as usize)
                    .and_then(Option::as_mut)
                {
                    family.live -= 1;
                }
            }
        }
        src.live -= went_stale;
        self.live -= went_stale;
    }

    /// Creates the series for a sample that matched none. `left` is how many
    /// new samples remain in this snapshot, this one included (how much room
    /// to make at once).
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        source: u32,
        sample: &Sample,
        plugin: bool,
        limit: Option<usize>,
        left: usize,
        epoch: u32,
        now_ms: u64,
    ) -> Result<(), Problem> {
        let checked = validate::check(sample, plugin)?;
        // Pass 1 found no series for it, so one found now was created by an
        // earlier sample of this snapshot.
        if self.find(source, sample, plugin).is_some() {
            return Err(Problem::Duplicate);
        }
        // A family of the other kind (this name, or its `_total` sibling) with
        // live series wins; one with only stale series gives way.
        for name in sibling_names(&checked.name, sample.kind) {
            let held = self
                .family_ids
                .get(name.as_str())
                .and_then(|&fid| self.family(fid).map(|f| (fid, f.kind, f.live)));
            if let Some((fid, kind, live)) = held
                && kind != sample.kind
            {
                if live > 0 {
                    return Err(Problem::TypeConflict(kind));
                }
                self.remove_family(fid);
            }
        }
        self.make_room(source, limit, left)?;

        let fid = match self.family_ids.get(checked.name.as_str()) {
            Some(&fid) => fid,
            None => self.create_family(&checked.name, sample, source),
        };
        let hash = series_hash(&self.hasher, fid, checked.labels.iter().copied());
        let time_ms = sample.timestamp_ms.unwrap_or(now_ms).min(now_ms);
        let mut history = History::default();
        history.record(self.bucket(time_ms), sample.value, self.span);
        let Some(family) = self.families.get_mut(fid as usize).and_then(Option::as_mut) else {
            return Err(Problem::UnknownSource);
        };
        if !family.help_given
            && let Some(help) = validate::help(sample.help.as_deref())
        {
            family.help = help.into();
            family.help_given = true;
        }
        let id = match self.free_series.pop() {
            Some(id) => id,
            None => {
                self.series.push(None);
                u32::try_from(self.series.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let slot = u32::try_from(family.members.len()).unwrap_or(u32::MAX);
        family.members.push(id);
        family.live += 1;
        let series = Series {
            family: fid,
            slot,
            source,
            hash,
            labels: LabelSet::from_sorted(&checked.labels),
            value: sample.value,
            updated_ms: time_ms,
            seen_epoch: epoch,
            live: true,
            history,
            export: ExportCache::default(),
        };
        if let Some(entry) = self.series.get_mut(id as usize) {
            *entry = Some(series);
        }
        if let Some(src) = self.sources.get_mut(source as usize) {
            src.table.insert_unique(hash, (hash, id), |&(h, _)| h);
            src.live += 1;
        }
        self.held += 1;
        self.live += 1;
        Ok(())
    }

    /// Ensures one more series fits the source's and the store's limits,
    /// evicting stale series (oldest first) when that helps.
    fn make_room(&mut self, source: u32, limit: Option<usize>, left: usize) -> Result<(), Problem> {
        if let Some(max) = limit {
            let (held, live) = self
                .sources
                .get(source as usize)
                .map_or((0, 0), |s| (s.table.len(), s.live));
            if held >= max {
                if held > live {
                    self.evict_stale(Some(source), held + left - max);
                }
                let held = self
                    .sources
                    .get(source as usize)
                    .map_or(0, |s| s.table.len());
                if held >= max {
                    return Err(Problem::SeriesLimit(max));
                }
            }
        }
        if self.held >= self.max_series {
            if self.held > self.live {
                self.evict_stale(None, self.held + left - self.max_series);
            }
            if self.held >= self.max_series {
                return Err(Problem::GlobalLimit(self.max_series));
            }
        }
        Ok(())
    }

    /// Removes up to `count` stale series, least recently updated first, of
    /// one source or of all.
    fn evict_stale(&mut self, source: Option<u32>, count: usize) {
        let mut stale: Vec<(u64, u32)> = match source {
            Some(source) => {
                let Some(src) = self.sources.get(source as usize) else {
                    return;
                };
                src.table
                    .iter()
                    .filter_map(|&(_, id)| self.get(id).map(|s| (s, id)))
                    .filter(|(s, _)| !s.live)
                    .map(|(s, id)| (s.updated_ms, id))
                    .collect()
            }
            None => self
                .series
                .iter()
                .enumerate()
                .filter_map(|(id, s)| s.as_ref().map(|s| (s, id)))
                .filter(|(s, _)| !s.live)
                .map(|(s, id)| (s.updated_ms, u32::try_from(id).unwrap_or(u32::MAX)))
                .collect(),
        };
        if count < stale.len() {
            stale.select_nth_unstable(count);
            stale.truncate(count);
        }
        for (_, id) in stale {
            self.remove_series(id);
        }
    }

    /// Drops stale series whose history has aged out of the window.
    fn sweep(&mut self, now_ms: u64) {
        if self.held == self.live {
            return;
        }
        let oldest = self.bucket(now_ms).saturating_sub(self.span);
        let expired: Vec<u32> = self
            .series
            .iter()
            .enumerate()
            .filter_map(|(id, s)| s.as_ref().map(|s| (s, id)))
            .filter(|(s, _)| !s.live && s.history.newest().is_none_or(|n| n < oldest))
            .map(|(_, id)| u32::try_from(id).unwrap_or(u32::MAX))
            .collect();
        for id in expired {
            self.remove_series(id);
        }
    }

    fn create_family(&mut self, name: &str, sample: &Sample, source: u32) -> u32 {
        let (help, help_given) = match validate::help(sample.help.as_deref()) {
            Some(help) => (help.into(), true),
            None => {
                let by = self.sources.get(source as usize).map_or("", |s| &*s.name);
                let what = if self
                    .sources
                    .get(source as usize)
                    .is_some_and(Source::is_plugin)
                {
                    "plugin"
                } else {
                    "host source"
                };
                let kind = sample.kind.as_str();
                (
                    format!("A {kind} from {what} {by} (it gave no help text).").into(),
                    false,
                )
            }
        };
        let family = Family {
            name: name.into(),
            kind: sample.kind,
            help,
            help_given,
            members: Vec::new(),
            live: 0,
        };
        let fid = match self.free_families.pop() {
            Some(fid) => {
                if let Some(slot) = self.families.get_mut(fid as usize) {
                    *slot = Some(family);
                }
                fid
            }
            None => {
                self.families.push(Some(family));
                u32::try_from(self.families.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.family_ids.insert(name.into(), fid);
        let at = self.order.partition_point(|&f| self.family_name(f) < name);
        self.order.insert(at, fid);
        fid
    }

    /// Removes a family and every series in it.
    fn remove_family(&mut self, fid: u32) {
        let members = self
            .family(fid)
            .map(|f| f.members.clone())
            .unwrap_or_default();
        for id in members {
            self.remove_series(id);
        }
        // The last series' removal removed the family; an empty one is removed here.
        if self.families.get(fid as usize).is_some_and(Option::is_some) {
            self.drop_family(fid);
        }
    }

    fn drop_family(&mut self, fid: u32) {
        let Some(family) = self.families.get_mut(fid as usize).and_then(Option::take) else {
            return;
        };
        self.family_ids.remove(&family.name);
        self.order.retain(|&f| f != fid);
        self.free_families.push(fid);
    }

    fn remove_series(&mut self, id: u32) {
        let Some(series) = self.series.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        self.free_series.push(id);
        self.held -= 1;
        if series.live {
            self.live -= 1;
        }
        if let Some(src) = self.sources.get_mut(series.source as usize) {
            if let Ok(entry) = src.table.find_entry(series.hash, |&(_, s)| s == id) {
                entry.remove();
            }
            if series.live {
                src.live -= 1;
            }
        }
        let Some(family) = self
            .families
            .get_mut(series.family as usize)
            .and_then(Option::as_mut)
        else {
            return;
        };
        if series.live {
            family.live -= 1;
        }
        let slot = series.slot as usize;
        if slot < family.members.len() {
            family.members.swap_remove(slot);
            if let Some(&moved) = family.members.get(slot)
                && let Some(m) = self.series.get_mut(moved as usize).and_then(Option::as_mut)
            {
                m.slot = series.slot;
            }
        }
        if family.members.is_empty() {
            self.drop_family(series.family);
        }
    }
}

/// The names that conflict with a new family `name` of `kind` if held with the
/// other kind: the name itself, and the counter/gauge sibling (`foo` and `foo_total`).
fn sibling_names(name: &str, kind: MetricKind) -> impl Iterator<Item = String> {
    let sibling = match kind {
        MetricKind::Counter => name.strip_suffix("_total").map(str::to_string),
        MetricKind::Gauge => Some(format!("{name}_total")),
    };
    std::iter::once(name.to_string()).chain(sibling)
}

/// Hash of a series identity: its family and its labels, independent of label order.
fn series_hash<'a>(
    hasher: &DefaultHashBuilder,
    family: u32,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
) -> u64 {
    let labels = labels.fold(0u64, |acc, pair| acc.wrapping_add(hasher.hash_one(pair)));
    hasher.hash_one((family, labels))
}

/// Whether a sample's labels (as exported) are exactly a stored set. Stored
/// names are unique, so "same count and each stored pair present" is a bijection
/// and a sample with duplicate names never matches.
fn same_labels(stored: &LabelSet, sample: &Sample, plugin: bool) -> bool {
    stored.len() == sample.labels.len()
        && stored.iter().all(|(name, value)| {
            sample
                .labels
                .iter()
                .any(|(n, v)| v == value && exported_label(n, plugin) == name)
        })
}

#[cfg(test)]
mod tests;
