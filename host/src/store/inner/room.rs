//! Room for new series: the limits, eviction of stale series, ageing out,
//! and removing series and families.

use super::{Budget, Family, Inner, Source};
use crate::model::Sample;
use crate::store::SourceKind;
use crate::store::validate::{self, Problem};

impl Inner {
    /// Ensures one more series fits the source's own limit and its budget,
    /// evicting stale series (oldest first) of the source, then of the
    /// budget, when that helps. A budget's stale series never make room in
    /// the other budget, so plugins never push out the host's series.
    pub(super) fn make_room(
        &mut self,
        source: u32,
        kind: SourceKind,
        left: usize,
    ) -> Result<(), Problem> {
        if let Some(max) = kind.limit() {
            let (held, live) = self
                .sources
                .get(source as usize)
                .map_or((0, 0), |s| (s.table.len(), s.live));
            if held >= max {
                if held > live {
                    self.evict_stale(Scope::Source(source), held + left - max);
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
        let budget = kind.budget();
        let b = budget as usize;
        let cap = self.caps[b];
        if self.held[b] >= cap {
            if self.held[b] > self.live[b] {
                self.evict_stale(Scope::Budget(budget), self.held[b] + left - cap);
            }
            if self.held[b] >= cap {
                return Err(match budget {
                    Budget::Plugins => Problem::GlobalLimit(cap),
                    Budget::Host => Problem::ReservedLimit(cap),
                });
            }
        }
        Ok(())
    }

    /// Removes up to `count` stale series, least recently updated first, of
    /// one source or of one budget.
    fn evict_stale(&mut self, scope: Scope, count: usize) {
        let mut stale: Vec<(u64, u32)> = match scope {
            Scope::Source(source) => {
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
            Scope::Budget(budget) => self
                .series
                .iter()
                .enumerate()
                .filter_map(|(id, s)| s.as_ref().map(|s| (s, id)))
                .filter(|(s, _)| !s.live && self.budget_of(s.source) == budget as usize)
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
    pub(super) fn sweep(&mut self, now_ms: u64) {
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

    pub(super) fn create_family(&mut self, name: &str, sample: &Sample, source: u32) -> u32 {
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
    pub(super) fn remove_family(&mut self, fid: u32) {
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

    pub(super) fn remove_series(&mut self, id: u32) {
        let Some(series) = self.series.get_mut(id as usize).and_then(Option::take) else {
            return;
        };
        self.free_series.push(id);
        let budget = self.budget_of(series.source);
        self.held[budget] -= 1;
        if series.live {
            self.live[budget] -= 1;
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

/// Whose stale series [`Inner::evict_stale`] may remove.
#[derive(Clone, Copy)]
enum Scope {
    Source(u32),
    Budget(Budget),
}
