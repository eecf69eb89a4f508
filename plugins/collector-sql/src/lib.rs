//! `collector-sql`: any named SQL query as gauges, through the host's
//! read-only `sql` capability (seed 003's `chunk_tracker.py`: the chunks
//! with `status = 'processing'`). The SQL lives in the manifest's
//! `[capabilities.sql.queries]`; `[config]` maps each query to a metric:
//!
//! ```toml
//! [capabilities.sql]
//! url_env = "PIXCRAWLER_DB_URL"
//! [capabilities.sql.queries]
//! active_chunks = "SELECT count(*) FROM chunks WHERE status = $1"
//!
//! [[config.metrics]]
//! query = "active_chunks"              # a name from [capabilities.sql.queries]
//! name = "pixcrawler_active_chunks"    # the gauge
//! help = "Chunks being processed."
//! params = ["processing"]              # $1, $2, ...: strings, integers, floats, booleans
//! value_column = "count"               # default: the first column not in label_columns
//! label_columns = []                   # columns that become labels (one gauge per row)
//! labels = { source = "pixcrawler" }   # constant labels
//! ```
//!
//! Every query also reports `sql_query_success{query}` (1 or 0). A failed
//! query is logged once per new error (not on every interval) and its gauges
//! are left out, so they go stale; a row whose value is null or not a number
//! is skipped.

use serde::Deserialize;
use std::collections::BTreeMap;
use wasmon_sdk::sql::{self, SqlError, Value};
use wasmon_sdk::{Collector, Error, Sample};

/// `[config]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// One entry per gauge.
    metrics: Vec<Metric>,
}

/// One query → gauge mapping.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metric {
    /// The query's name in `[capabilities.sql.queries]`.
    query: String,
    /// The gauge's name.
    name: String,
    /// Its help text.
    #[serde(default)]
    help: Option<String>,
    /// The query's parameters.
    #[serde(default)]
    params: Vec<Param>,
    /// The column holding the value.
    #[serde(default)]
    value_column: Option<String>,
    /// Columns reported as labels.
    #[serde(default)]
    label_columns: Vec<String>,
    /// Constant labels.
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A parameter as written in TOML.
#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Param {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl From<&Param> for Value {
    fn from(p: &Param) -> Value {
        match p {
            Param::Bool(b) => Value::Boolean(*b),
            Param::Int(i) => Value::Int(*i),
            Param::Float(f) => Value::Float(*f),
            Param::Text(t) => Value::Text(t.clone()),
        }
    }
}

/// The collector.
pub struct SqlCollector {
    metrics: Vec<Metric>,
    /// The last error logged per query, so a lasting failure logs once.
    last_error: BTreeMap<String, String>,
}

impl Collector for SqlCollector {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        if config.metrics.is_empty() {
            return Err(Error::new(
                "invalid [config]: `metrics` is empty; map at least one query to a gauge",
            ));
        }
        for (i, m) in config.metrics.iter().enumerate() {
            if m.name.is_empty() || m.query.is_empty() {
                return Err(Error::new(format!(
                    "invalid [config] at `metrics[{i}]`: `query` and `name` must not be empty"
                )));
            }
        }
        Ok(SqlCollector {
            metrics: config.metrics,
            last_error: BTreeMap::new(),
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let mut samples = Vec::new();
        for metric in &self.metrics {
            let params: Vec<Value> = metric.params.iter().map(Value::from).collect();
            let ok = match sql::query(&metric.query, &params) {
                Ok(rows) => {
                    self.last_error.remove(&metric.query);
                    gauges(metric, &rows, &mut samples);
                    true
                }
                Err(e) => {
                    let text = describe(&e);
                    if self.last_error.get(&metric.query) != Some(&text) {
                        wasmon_sdk::warn!("query {}: {text}", metric.query);
                        self.last_error.insert(metric.query.clone(), text);
                    }
                    false
                }
            };
            samples.push(
                Sample::gauge("sql_query_success", if ok { 1.0 } else { 0.0 })
                    .with_label("query", metric.query.as_str())
                    .with_help("Whether the named SQL query succeeded (1) or failed (0)."),
            );
        }
        Ok(samples)
    }
}

/// The gauges of one query's rows.
fn gauges(metric: &Metric, rows: &sql::Rows, out: &mut Vec<Sample>) {
    let value_at = match &metric.value_column {
        Some(name) => rows.column(name),
        None => (0..rows.columns.len()).find(|i| !metric.label_columns.contains(&rows.columns[*i])),
    };
    let Some(value_at) = value_at else {
        return;
    };
    let label_at: Vec<(String, Option<usize>)> = metric
        .label_columns
        .iter()
        .map(|c| (c.clone(), rows.column(c)))
        .collect();
    for row in &rows.rows {
        let Some(value) = row.get(value_at).and_then(Value::as_f64) else {
            continue;
        };
        let mut sample = Sample::gauge(metric.name.as_str(), value);
        if let Some(help) = &metric.help {
            sample = sample.with_help(help.as_str());
        }
        for (name, text) in &metric.labels {
            sample = sample.with_label(name.as_str(), text.as_str());
        }
        for (name, at) in &label_at {
            let text = at
                .and_then(|i| row.get(i))
                .and_then(Value::as_text)
                .unwrap_or_default();
            sample = sample.with_label(name.as_str(), text);
        }
        out.push(sample);
    }
}

/// An error as one line.
fn describe(e: &SqlError) -> String {
    match e {
        SqlError::NotGranted(m) => format!("not-granted: {m}"),
        SqlError::Connection(m) => format!("connection: {m}"),
        SqlError::Query(m) => format!("query: {m}"),
        SqlError::TooManyRows(n) => format!("too-many-rows: more than {n} rows"),
        SqlError::Timeout(m) => format!("timeout: {m}"),
    }
}

wasmon_sdk::export_collector!(SqlCollector);
