//! The store's data behind its lock: sources, families, series, the two
//! series budgets, and everything `apply` does to them.

use super::history::History;
use super::labels::LabelSet;
use super::validate::{self, Problem, exported_label, exported_name};
use super::{ApplyReport, DropReason, ExportCache, SourceKind};
use crate::model::{Labels, MetricKind, Sample};
use hashbrown::{DefaultHashBuilder, HashMap, HashTable};
use std::hash::BuildHasher;

mod room;

/// The two budgets series are counted in, and the two namespaces of source
/// names: the host's own sources (samplers, alerts) and the plugins. A plugin
/// named like a host source (`system`, `gpu`, `alerts`) is another source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Budget {
    /// `store.reserved_series`: host and derived sources.
    Host = 0,
    /// `store.max_series`: plugin sources.
    Plugins = 1,
}

impl SourceKind {
    pub(super) fn budget(self) -> Budget {
        match self {
            SourceKind::Host | SourceKind::Derived { .. } => Budget::Host,
            SourceKind::Plugin { .. } => Budget::Plugins,
        }
    }

    /// The source's own limit, if it has one.
    pub(super) fn limit(self) -> Option<usize> {
        match self {
            SourceKind::Host => None,
            SourceKind::Derived { max_series } | SourceKind::Plugin { max_series } => {
                Some(max_series)
            }
        }
    }
}

pub(super) struct Source {
    pub(super) name: Box<str>,
    pub(super) kind: SourceKind,
    pub(super) registered: bool,
    /// Bumped per snapshot; series seen in it carry the same number.
    epoch: u32,
    /// `(hash, series id)` of every series the source holds, live or stale.
    pub(super) table: HashTable<(u64, u32)>,
    pub(super) live: usize,
    /// Samples refused since the source was first registered, by
    /// [`DropReason`] (its discriminant is the index).
    pub(super) refused: [u64; DropReason::ALL.len()],
}

impl Source {
    pub(super) fn is_plugin(&self) -> bool {
        matches!(self.kind, SourceKind::Plugin { .. })
    }
}

pub(super) struct Family {
    pub(super) name: Box<str>,
    pub(super) kind: MetricKind,
    pub(super) help: Box<str>,
    /// Whether `help` came from a sample rather than being generated.
    help_given: bool,
    /// Series ids, live and stale.
    pub(super) members: Vec<u32>,
    pub(super) live: usize,
}

pub(super) struct Series {
    family: u32,
    /// Position in the family's `members`.
    slot: u32,
    pub(super) source: u32,
    hash: u64,
    pub(super) labels: LabelSet,
    pub(super) value: f64,
    pub(super) updated_ms: u64,
    seen_epoch: u32,
    pub(super) live: bool,
    pub(super) history: History,
    pub(super) export: ExportCache,
}

pub(super) struct Inner {
    pub(super) resolution_ms: u64,
    pub(super) window_ms: u64,
    /// Buckets in the window.
    span: u32,
    /// The most series each [`Budget`] may hold, by its index.
    pub(super) caps: [usize; 2],
    hasher: DefaultHashBuilder,
    pub(super) sources: Vec<Source>,
    /// Source ids by name, one namespace per [`Budget`].
    source_ids: [HashMap<Box<str>, u32>; 2],
    families: Vec<Option<Family>>,
    free_families: Vec<u32>,
    pub(super) family_ids: HashMap<Box<str>, u32>,
    /// Family ids sorted by name.
    pub(super) order: Vec<u32>,
    pub(super) series: Vec<Option<Series>>,
    free_series: Vec<u32>,
    /// Series held (live and stale) per [`Budget`].
    pub(super) held: [usize; 2],
    /// Live series per [`Budget`].
    pub(super) live: [usize; 2],
    next_sweep_ms: u64,
    /// Scratch: an exported name being looked up.
    name_buf: String,
    /// Scratch: indices of samples that matched no series.
    pending: Vec<usize>,
}

impl Inner {
    pub(super) fn new(resolution_ms: u64, window_ms: u64, span: u32, caps: [usize; 2]) -> Inner {
        Inner {
            resolution_ms,
            window_ms,
            span,
            caps,
            hasher: DefaultHashBuilder::default(),
            sources: Vec::new(),
            source_ids: [HashMap::new(), HashMap::new()],
            families: Vec::new(),
            free_families: Vec::new(),
            family_ids: HashMap::new(),
            order: Vec::new(),
            series: Vec::new(),
            free_series: Vec::new(),
            held: [0; 2],
            live: [0; 2],
            next_sweep_ms: 0,
            name_buf: String::new(),
            pending: Vec::new(),
        }
    }

    /// Registers (or re-registers) a source; see [`Store::source`](super::Store::source).
    pub(super) fn register(&mut self, name: &str, kind: SourceKind) -> u32 {
        let ids = &mut self.source_ids[kind.budget() as usize];
        if let Some(&id) = ids.get(name) {
            if let Some(source) = self.sources.get_mut(id as usize) {
                source.kind = kind;
                source.registered = true;
            }
            return id;
        }
        let id = u32::try_from(self.sources.len()).unwrap_or(u32::MAX);
        ids.insert(name.into(), id);
        self.sources.push(Source {
            name: name.into(),
            kind,
            registered: true,
            epoch: 0,
            table: HashTable::new(),
            live: 0,
            refused: [0; DropReason::ALL.len()],
        });
        id
    }

    /// The source's id by kind and name, if it was ever registered.
    pub(super) fn source_id(&self, budget: Budget, name: &str) -> Option<u32> {
        self.source_ids[budget as usize].get(name).copied()
    }

    /// Unregisters a source and removes every series it owns.
    pub(super) fn unregister(&mut self, source: u32) {
        let Some(src) = self.sources.get_mut(source as usize) else {
            return;
        };
        src.registered = false;
        let ids: Vec<u32> = src.table.iter().map(|&(_, id)| id).collect();
        for id in ids {
            self.remove_series(id);
        }
    }

    pub(super) fn family(&self, fid: u32) -> Option<&Family> {
        self.families.get(fid as usize).and_then(Option::as_ref)
    }

    pub(super) fn family_name(&self, fid: u32) -> &str {
        self.family(fid).map_or("", |f| &f.name)
    }

    pub(super) fn get(&self, id: u32) -> Option<&Series> {
        self.series.get(id as usize).and_then(Option::as_ref)
    }

    pub(super) fn live_members<'a>(
        &'a self,
        family: &'a Family,
    ) -> impl Iterator<Item = &'a Series> + 'a {
        family
            .members
            .iter()
            .filter_map(|&id| self.get(id))
            .filter(|s| s.live)
    }

    pub(super) fn bucket(&self, time_ms: u64) -> u32 {
        u32::try_from(time_ms / self.resolution_ms).unwrap_or(u32::MAX)
    }

    fn budget_of(&self, source: u32) -> usize {
        self.sources
            .get(source as usize)
            .map_or(Budget::Host, |s| s.kind.budget()) as usize
    }

    /// The value of the host's `plugin` label for a series, if its source is a plugin.
    pub(super) fn host_label(&self, series: &Series) -> Option<&str> {
        self.sources
            .get(series.source as usize)
            .filter(|s| s.is_plugin())
            .map(|s| &*s.name)
    }

    pub(super) fn label_value<'a>(&'a self, series: &'a Series, name: &str) -> Option<&'a str> {
        match self.host_label(series) {
            Some(plugin) if name == validate::PLUGIN_LABEL => Some(plugin),
            _ => series.labels.get(name),
        }
    }

    pub(super) fn labels_of(&self, series: &Series) -> Labels {
        merge_host_label(&series.labels, self.host_label(series))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    pub(super) fn apply(&mut self, source: u32, samples: &[Sample], now_ms: u64) -> ApplyReport {
        let mut report = ApplyReport::default();
        let Some(src) = self
            .sources
            .get_mut(source as usize)
            .filter(|s| s.registered)
        else {
            for sample in samples {
                report.drop(Problem::UnknownSource, sample);
            }
            self.count_refused(source, &report);
            return report;
        };
        src.epoch = src.epoch.wrapping_add(1);
        let epoch = src.epoch;
        let plugin = src.is_plugin();

        // Pass 1: update the series that exist (no allocation; only the value is checked).
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
            match self.insert(source, sample, left, epoch, now_ms) {
                Ok(()) => report.stored += 1,
                Err(problem) => report.drop(problem, sample),
            }
        }
        self.pending = pending;

        if now_ms >= self.next_sweep_ms {
            self.sweep(now_ms);
            self.next_sweep_ms = now_ms.saturating_add(self.resolution_ms);
        }
        self.count_refused(source, &report);
        report
    }

    fn count_refused(&mut self, source: u32, report: &ApplyReport) {
        if let Some(src) = self.sources.get_mut(source as usize) {
            for &(reason, n) in &report.dropped {
                if let Some(count) = src.refused.get_mut(reason as usize) {
                    *count += n as u64;
                }
            }
        }
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

    /// Records a new value of an existing series. A counter's bad value is
    /// refused, but the series counts as reported: it keeps its last value and
    /// stays live.
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
        validate::value(sample)?;
        series.value = sample.value;
        series.updated_ms = series.updated_ms.max(time_ms);
        series.history.record(index, sample.value, span);
        let (fid, source, revived) = (series.family, series.source, !series.live);
        series.live = true;
        let budget = self.budget_of(source);
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
            self.live[budget] += 1;
            if let Some(src) = self.sources.get_mut(source as usize) {
                src.live += 1;
            }
        }
        Ok(())
    }

    fn mark_unseen_stale(&mut self, source: u32, epoch: u32) {
        let budget = self.budget_of(source);
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
        self.live[budget] -= went_stale;
    }

    /// Creates the series for a sample that matched none. `left` is how many
    /// new samples remain in this snapshot, this one included (how much room
    /// to make at once).
    fn insert(
        &mut self,
        source: u32,
        sample: &Sample,
        left: usize,
        epoch: u32,
        now_ms: u64,
    ) -> Result<(), Problem> {
        let Some(kind) = self.sources.get(source as usize).map(|s| s.kind) else {
            return Err(Problem::UnknownSource);
        };
        let plugin = matches!(kind, SourceKind::Plugin { .. });
        let checked = validate::check(sample, kind)?;
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
        self.make_room(source, kind, left)?;

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
        let budget = kind.budget() as usize;
        self.held[budget] += 1;
        self.live[budget] += 1;
        Ok(())
    }
}

/// Stored labels with the host's `plugin` label merged in name order.
pub(super) fn merge_host_label<'a>(
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
