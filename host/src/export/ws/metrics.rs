//! The `metrics` channel of one client: the series it selected, and what it
//! was last sent of each, so each update carries only what changed.

use crate::live::{MetricsData, MetricsSelection, SeriesKey, SeriesValue};
use crate::store::Store;
use std::collections::BTreeMap;

/// Most series one client follows; a selection matching more is cut (and
/// says so: `truncated`).
pub(super) const MAX_SERIES: usize = 10_000;

/// A client's selection and what it was last sent.
pub(super) struct Follow {
    selection: MetricsSelection,
    /// Each series sent, with the time and value of its last sample sent.
    sent: BTreeMap<SeriesKey, (u64, u64)>,
}

impl Follow {
    pub(super) fn new(selection: MetricsSelection) -> Follow {
        Follow {
            selection,
            sent: BTreeMap::new(),
        }
    }

    pub(super) fn selection(&self) -> &MetricsSelection {
        &self.selection
    }

    /// What changed since the last call: new series and series with a new
    /// sample, and those that left. A `snapshot` sends every series.
    pub(super) fn update(&mut self, store: &Store, snapshot: bool) -> MetricsData {
        let mut data = MetricsData::default();
        let mut now: BTreeMap<SeriesKey, (u64, u64)> = BTreeMap::new();
        let labels = &self.selection.labels;
        for sample in store.select(&self.selection.name) {
            if !labels
                .iter()
                .all(|(name, value)| sample.label_value(name) == Some(value.as_str()))
            {
                continue;
            }
            if now.len() >= MAX_SERIES {
                data.truncated = true;
                break;
            }
            let key = SeriesKey {
                name: sample.name,
                labels: sample.labels.into_iter().collect(),
            };
            let stamp = (sample.timestamp_ms.unwrap_or(0), sample.value.to_bits());
            if snapshot || self.sent.get(&key) != Some(&stamp) {
                data.series.push(SeriesValue {
                    name: key.name.clone(),
                    labels: key.labels.clone(),
                    value: sample.value,
                    timestamp_ms: stamp.0,
                });
            }
            now.insert(key, stamp);
        }
        if !snapshot {
            data.removed = self
                .sent
                .keys()
                .filter(|k| !now.contains_key(*k))
                .cloned()
                .collect();
        }
        self.sent = now;
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crate::model::Sample;
    use crate::store::SourceKind;

    #[test]
    fn updates_carry_only_what_changed_in_the_selection() {
        let store = Store::new(&StoreConfig::default());
        let source = store.source("system", SourceKind::Host);
        let apply = |a: f64, b: f64, c: Option<f64>, now: u64| {
            let mut samples = vec![
                Sample::gauge("x_load", a).label("cpu", "0"),
                Sample::gauge("x_load", b).label("cpu", "1"),
                Sample::gauge("y_other", 1.0),
            ];
            if let Some(c) = c {
                samples.push(Sample::gauge("x_temp", c).label("cpu", "0"));
            }
            store.apply(source, samples, now);
        };
        apply(1.0, 2.0, Some(40.0), 1_000);
        let mut follow = Follow::new(MetricsSelection {
            name: vec!["x_*".into()],
            labels: [("cpu".to_string(), "0".to_string())].into(),
        });
        let first = follow.update(&store, true);
        let names: Vec<&str> = first.series.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["x_load", "x_temp"]);
        assert!(follow.update(&store, false).series.is_empty());
        apply(5.0, 6.0, None, 2_000);
        let next = follow.update(&store, false);
        assert_eq!(next.series.len(), 1);
        assert_eq!(next.series[0].value, 5.0);
        assert_eq!(next.removed.len(), 1);
        assert_eq!(next.removed[0].name, "x_temp");
    }
}
