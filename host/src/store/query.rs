//! History queries for the HTTP API: one family's series aggregated into
//! steps ([`Store::query_history`]), and snapshots of the live series under
//! name prefixes with optional history ([`Store::snapshot`]). Both copy the
//! buckets they need under the read lock, count the answer before copying
//! (refusing one above the caller's cap), and aggregate after releasing it.

use super::Store;
use super::history::Bucket;
use super::inner::{Inner, Series};
use crate::model::{Labels, MetricKind};
use serde::Serialize;
use std::time::Duration;

/// How the buckets of one step become one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agg {
    /// Mean of every value recorded in the step (weighted by the values, not
    /// the buckets).
    Avg,
    /// Smallest value recorded in the step.
    Min,
    /// Largest value recorded in the step.
    Max,
    /// The value recorded last in the step's newest bucket.
    Last,
    /// The 95th percentile (nearest rank) of the step's *bucket means*: each
    /// bucket counts once whatever its number of values. With one value per
    /// bucket (sampling no faster than the resolution) it is the 95th
    /// percentile of the values; with a step of one bucket it is that
    /// bucket's mean. Values within a bucket are not kept, so a spike
    /// averaged away inside one bucket is not seen (use `max` for that).
    P95,
}

impl Agg {
    /// Every aggregation, as the API names them.
    pub const NAMES: [&'static str; 5] = ["avg", "min", "max", "last", "p95"];

    /// Parses `avg`, `min`, `max`, `last` or `p95`.
    pub fn parse(text: &str) -> Option<Agg> {
        Some(match text {
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "last" => Agg::Last,
            "p95" => Agg::P95,
            _ => return None,
        })
    }

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Agg::Avg => "avg",
            Agg::Min => "min",
            Agg::Max => "max",
            Agg::Last => "last",
            Agg::P95 => "p95",
        }
    }

    fn apply(self, buckets: &[Bucket], scratch: &mut Vec<f64>) -> f64 {
        match self {
            Agg::Avg => {
                let (sum, count) = buckets
                    .iter()
                    .fold((0.0, 0u64), |(s, n), b| (s + b.sum, n + u64::from(b.count)));
                sum / count.max(1) as f64
            }
            Agg::Min => buckets.iter().map(|b| b.min).fold(f64::NAN, f64::min),
            Agg::Max => buckets.iter().map(|b| b.max).fold(f64::NAN, f64::max),
            Agg::Last => buckets.last().map_or(f64::NAN, |b| b.last),
            Agg::P95 => {
                scratch.clear();
                scratch.extend(buckets.iter().map(|b| b.sum / f64::from(b.count.max(1))));
                scratch.sort_unstable_by(f64::total_cmp);
                // Nearest rank: the smallest value with at least 95 % at or below it.
                let rank = (scratch.len() * 95).div_ceil(100).max(1);
                scratch.get(rank - 1).copied().unwrap_or(f64::NAN)
            }
        }
    }
}

/// What [`Store::query_history`] answers for one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepSeries {
    /// All labels, the host-added `plugin` label included, sorted by name.
    pub labels: Labels,
    /// `[start of the step in Unix milliseconds, value]`, oldest first; steps
    /// with no value recorded are left out.
    pub points: Vec<(u64, f64)>,
}

/// One live series in a [`Store::snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotSeries {
    /// Exported metric name (counters end in `_total`).
    pub name: String,
    /// `gauge` or `counter`.
    pub kind: MetricKind,
    /// All labels, the host-added `plugin` label included, sorted by name.
    pub labels: Labels,
    /// Latest value.
    pub value: f64,
    /// Unix milliseconds of the latest value.
    pub updated_ms: u64,
    /// `[start of the bucket in Unix milliseconds, mean]` per bucket of the
    /// requested history, oldest first; absent when none was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<(u64, f64)>>,
}

/// A query whose answer would be bigger than the caller's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the answer would hold up to {points} points ({series} series × {per_series} points), above the cap of {cap}"
)]
pub struct TooManyPoints {
    /// Series that matched.
    pub series: usize,
    /// Most points one series may have.
    pub per_series: usize,
    /// Their product.
    pub points: usize,
    /// The cap it exceeds.
    pub cap: usize,
}

/// The parameters of [`Store::query_history`].
#[derive(Debug, Clone)]
pub struct HistoryQuery<'a> {
    /// Exported metric name.
    pub name: &'a str,
    /// Labels every series must have with these values (`plugin` included).
    pub matchers: &'a [(String, String)],
    /// How far back from now; capped at the store's window.
    pub window: Duration,
    /// Width of one point; raised to the resolution at least.
    pub step: Duration,
    /// How a step's buckets become one value.
    pub agg: Agg,
    /// Most points (series × points per series) the answer may hold.
    pub max_points: usize,
}

impl Store {
    /// The bucket width and the window of the history.
    pub fn history_limits(&self) -> (Duration, Duration) {
        let inner = self.inner.read();
        (
            Duration::from_millis(inner.resolution_ms),
            Duration::from_millis(inner.window_ms),
        )
    }

    /// The history of every series (live or stale) of family `query.name`
    /// matching `query.matchers`, one point per step, sorted by labels.
    pub fn query_history(
        &self,
        query: &HistoryQuery<'_>,
    ) -> Result<Vec<StepSeries>, TooManyPoints> {
        self.query_history_at(query, crate::time::now_ms())
    }

    /// [`query_history`](Self::query_history) as seen at `now_ms`.
    pub fn query_history_at(
        &self,
        query: &HistoryQuery<'_>,
        now_ms: u64,
    ) -> Result<Vec<StepSeries>, TooManyPoints> {
        let (copied, resolution_ms) = {
            let inner = self.inner.read();
            let window_ms = (query.window.as_millis() as u64).min(inner.window_ms);
            let from = inner.bucket(now_ms.saturating_sub(window_ms));
            let Some(family) = inner
                .family_ids
                .get(query.name)
                .and_then(|&f| inner.family(f))
            else {
                return Ok(Vec::new());
            };
            let matching = || {
                family
                    .members
                    .iter()
                    .filter_map(|&id| inner.get(id))
                    .filter(|s| {
                        query
                            .matchers
                            .iter()
                            .all(|(n, v)| inner.label_value(s, n) == Some(v.as_str()))
                    })
            };
            let step_ms = (query.step.as_millis() as u64).max(inner.resolution_ms);
            let per_series = usize::try_from(window_ms / step_ms + 2).unwrap_or(usize::MAX);
            check_cap(matching().count(), per_series, query.max_points)?;
            let copied: Vec<(Labels, Vec<Bucket>)> = matching()
                .map(|s| {
                    (
                        inner.labels_of(s),
                        s.history.since(from).collect::<Vec<_>>(),
                    )
                })
                .filter(|(_, b)| !b.is_empty())
                .collect();
            (copied, inner.resolution_ms)
        };
        let step_ms = (query.step.as_millis() as u64).max(resolution_ms);
        let mut scratch = Vec::new();
        let mut out: Vec<StepSeries> = copied
            .into_iter()
            .map(|(labels, buckets)| StepSeries {
                labels,
                points: steps(&buckets, resolution_ms, step_ms, query.agg, &mut scratch),
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// The live series whose exported name starts with one of `prefixes`,
    /// by name then labels, each with its mean per bucket over the last
    /// `history` when given (capped at the window). Refused when the answer
    /// would hold more than `max_points` history points.
    pub fn snapshot(
        &self,
        prefixes: &[String],
        history: Option<Duration>,
        max_points: usize,
    ) -> Result<Vec<SnapshotSeries>, TooManyPoints> {
        self.snapshot_at(prefixes, history, max_points, crate::time::now_ms())
    }

    /// [`snapshot`](Self::snapshot) as seen at `now_ms`.
    pub fn snapshot_at(
        &self,
        prefixes: &[String],
        history: Option<Duration>,
        max_points: usize,
        now_ms: u64,
    ) -> Result<Vec<SnapshotSeries>, TooManyPoints> {
        let copied = {
            let inner = self.inner.read();
            let families = families_with_prefixes(&inner, prefixes);
            let live = || {
                families
                    .iter()
                    .filter_map(|&f| inner.family(f))
                    .flat_map(|f| inner.live_members(f).map(move |s| (f, s)))
            };
            let window = history.map(|h| (h.as_millis() as u64).min(inner.window_ms));
            let from = window.map(|w| inner.bucket(now_ms.saturating_sub(w)));
            if let Some(w) = window {
                let per_series = usize::try_from(w / inner.resolution_ms + 2).unwrap_or(usize::MAX);
                check_cap(live().count(), per_series, max_points)?;
            }
            let copy = |s: &Series| -> Option<Vec<(u64, f64)>> {
                let from = from?;
                Some(
                    s.history
                        .since(from)
                        .map(|b| {
                            let t = u64::from(b.index) * inner.resolution_ms;
                            (t, b.sum / f64::from(b.count.max(1)))
                        })
                        .collect(),
                )
            };
            live()
                .map(|(f, s)| SnapshotSeries {
                    name: f.name.to_string(),
                    kind: f.kind,
                    labels: inner.labels_of(s),
                    value: s.value,
                    updated_ms: s.updated_ms,
                    history: copy(s),
                })
                .collect::<Vec<_>>()
        };
        let mut out = copied;
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.labels.cmp(&b.labels)));
        Ok(out)
    }
}

fn check_cap(series: usize, per_series: usize, cap: usize) -> Result<(), TooManyPoints> {
    let points = series.saturating_mul(per_series);
    if points > cap {
        return Err(TooManyPoints {
            series,
            per_series,
            points,
            cap,
        });
    }
    Ok(())
}

/// Ids of the families whose name starts with one of `prefixes`, in name order.
fn families_with_prefixes(inner: &Inner, prefixes: &[String]) -> Vec<u32> {
    let mut families: Vec<u32> = Vec::new();
    for prefix in prefixes {
        let start = inner
            .order
            .partition_point(|&f| inner.family_name(f) < prefix.as_str());
        families.extend(
            inner.order[start..]
                .iter()
                .take_while(|&&f| inner.family_name(f).starts_with(prefix.as_str())),
        );
    }
    families.sort_unstable_by(|&a, &b| inner.family_name(a).cmp(inner.family_name(b)));
    families.dedup();
    families
}

/// Groups `buckets` (sorted) into steps of `step_ms` aligned on Unix time and
/// aggregates each.
fn steps(
    buckets: &[Bucket],
    resolution_ms: u64,
    step_ms: u64,
    agg: Agg,
    scratch: &mut Vec<f64>,
) -> Vec<(u64, f64)> {
    let start_of = |b: &Bucket| (u64::from(b.index) * resolution_ms) / step_ms * step_ms;
    buckets
        .chunk_by(|a, b| start_of(a) == start_of(b))
        .filter_map(|group| {
            let t = start_of(group.first()?);
            Some((t, agg.apply(group, scratch)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crate::model::Sample;
    use crate::store::SourceKind;

    const T0: u64 = 1_800_000_000_000; // a multiple of 10 s

    /// A store with 1 s buckets; series `x{k="a"}` gets `values[i]` at
    /// `T0 + i * 250 ms` (four values a bucket), `x{k="b"}` the same + 100.
    fn store(values: &[f64]) -> Store {
        let store = Store::new(&StoreConfig {
            history_window: Duration::from_secs(60),
            history_resolution: Duration::from_secs(1),
            ..StoreConfig::default()
        });
        let source = store.source("p", SourceKind::Plugin { max_series: 10 });
        for (i, v) in values.iter().enumerate() {
            let now = T0 + i as u64 * 250;
            let sample = |k: &str, v: f64| {
                let mut s = Sample::gauge("x", v);
                s.labels = vec![("k".to_string(), k.to_string())];
                s
            };
            store.apply(source, vec![sample("a", *v), sample("b", v + 100.0)], now);
        }
        store
    }

    fn query<'a>(matchers: &'a [(String, String)], step: u64, agg: Agg) -> HistoryQuery<'a> {
        HistoryQuery {
            name: "x",
            matchers,
            window: Duration::from_secs(60),
            step: Duration::from_secs(step),
            agg,
            max_points: 1000,
        }
    }

    #[test]
    fn steps_aggregate_every_value_by_the_chosen_agg() {
        // Bucket 0: 1 2 3 4; bucket 1: 10 0 5 7; bucket 2: 100 100 100 100.
        let values = [1., 2., 3., 4., 10., 0., 5., 7., 100., 100., 100., 100.];
        let store = store(&values);
        let now = T0 + 20_000;
        let a = [("k".to_string(), "a".to_string())];
        let one = |step, agg| {
            let got = store.query_history_at(&query(&a, step, agg), now).unwrap();
            assert_eq!(got.len(), 1);
            got[0].points.clone()
        };
        assert_eq!(one(2, Agg::Min), [(T0, 0.0), (T0 + 2000, 100.0)]);
        assert_eq!(one(2, Agg::Max), [(T0, 10.0), (T0 + 2000, 100.0)]);
        assert_eq!(one(2, Agg::Avg), [(T0, 4.0), (T0 + 2000, 100.0)]);
        assert_eq!(one(2, Agg::Last), [(T0, 7.0), (T0 + 2000, 100.0)]);
        // p95 over the bucket means 2.5 and 5.5: the larger.
        assert_eq!(one(2, Agg::P95), [(T0, 5.5), (T0 + 2000, 100.0)]);
        // A step of one bucket: p95 is the bucket's mean.
        assert_eq!(
            one(1, Agg::P95),
            [(T0, 2.5), (T0 + 1000, 5.5), (T0 + 2000, 100.0)]
        );
        // Both series without a matcher, sorted by labels.
        let both = store
            .query_history_at(&query(&[], 10, Agg::Max), now)
            .unwrap();
        let labels: Vec<&str> = both.iter().map(|s| s.labels[0].1.as_str()).collect();
        assert_eq!(labels, ["a", "b"]);
        assert_eq!(both[1].points, [(T0, 200.0)]);
    }

    #[test]
    fn p95_takes_the_nearest_rank() {
        let buckets: Vec<Bucket> = (1..=20)
            .map(|i| {
                let mut b = Bucket::new_for_tests(i, f64::from(i));
                b.index = i;
                b
            })
            .collect();
        assert_eq!(Agg::P95.apply(&buckets, &mut Vec::new()), 19.0);
        assert_eq!(Agg::P95.apply(&buckets[..1], &mut Vec::new()), 1.0);
        assert!(Agg::P95.apply(&[], &mut Vec::new()).is_nan());
    }

    #[test]
    fn an_answer_above_the_cap_is_refused_before_copying() {
        let store = store(&[1.0; 8]);
        let mut q = query(&[], 1, Agg::Avg);
        q.max_points = 100; // 2 series × (60 + 2) points
        let err = store.query_history_at(&q, T0 + 5000).unwrap_err();
        assert_eq!(
            (err.series, err.per_series, err.points, err.cap),
            (2, 62, 124, 100)
        );
        q.max_points = 124;
        assert_eq!(store.query_history_at(&q, T0 + 5000).unwrap().len(), 2);
        // Snapshots: live series by prefix, history on request, same cap.
        let snap = store
            .snapshot_at(&["x".to_string()], None, 0, T0 + 5000)
            .unwrap();
        assert_eq!(snap.len(), 2);
        assert!(snap[0].history.is_none());
        let snap = store
            .snapshot_at(
                &["x".to_string()],
                Some(Duration::from_secs(60)),
                124,
                T0 + 5000,
            )
            .unwrap();
        assert_eq!(snap[0].history.as_ref().map(Vec::len), Some(2));
        assert!(
            store
                .snapshot_at(
                    &["x".to_string()],
                    Some(Duration::from_secs(60)),
                    123,
                    T0 + 5000
                )
                .is_err()
        );
        assert!(
            store
                .snapshot_at(&["y".to_string()], None, 0, T0)
                .unwrap()
                .is_empty()
        );
    }
}
