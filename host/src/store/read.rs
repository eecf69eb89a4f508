//! Read access for exporters: a read-locked view of the store's families and
//! live series, in family-name order (see [`Store::read`](super::Store::read)).

use super::ExportCache;
use super::inner::{Family, Inner, Series, merge_host_label};
use crate::model::MetricKind;
use parking_lot::RwLockReadGuard;

/// A read-locked view of the store for exporters (see [`Store::read`](super::Store::read)).
pub struct StoreRead<'a> {
    pub(super) inner: RwLockReadGuard<'a, Inner>,
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
