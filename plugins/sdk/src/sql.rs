//! Named SQL queries through the host, against the PostgreSQL database the
//! manifest names. A plugin runs a query by its name; it never sends SQL:
//!
//! ```toml
//! [capabilities.sql]
//! url_env = "PIXCRAWLER_DB_URL"      # or url = "postgresql://user:pass@host:5432/db"
//! timeout = "5s"                     # statement_timeout of each query
//! max_rows = 1000                    # more rows: a too-many-rows error
//! ca_file = "/etc/ssl/db-ca.pem"     # TLS verified against this CA (or ?sslmode=require)
//! [capabilities.sql.queries]
//! active_chunks = "SELECT count(*) FROM chunks WHERE status = $1"
//! ```
//!
//! ```ignore
//! use wasmon_sdk::sql::{self, Value};
//! let rows = sql::query("active_chunks", &[Value::from("processing")])?;
//! let active = rows.scalar().and_then(Value::as_f64).unwrap_or(0.0);
//! ```
//!
//! Each query runs in a `READ ONLY` transaction: a query that writes fails
//! with [`SqlError::Query`] ("cannot execute UPDATE in a read-only
//! transaction"). `numeric` columns arrive as [`Value::Float`] (the nearest
//! double); cast to `text` in the query to keep every digit.

use crate::bindings::wasmon::plugin::sql as wit;

pub use wit::SqlError;
pub use wit::Value;

/// What a query returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    /// The column names, in order.
    pub columns: Vec<String>,
    /// Each row's values, in column order.
    pub rows: Vec<Vec<Value>>,
}

/// Runs the manifest's query `name` with `params` bound to `$1`, `$2`, ...
pub fn query(name: &str, params: &[Value]) -> Result<Rows, SqlError> {
    let rows = wit::query(name, params)?;
    Ok(Rows {
        columns: rows.columns,
        rows: rows.rows,
    })
}

impl Rows {
    /// The first column of the first row (`SELECT count(*) ...`).
    pub fn scalar(&self) -> Option<&Value> {
        self.rows.first()?.first()
    }

    /// The index of the column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

impl Value {
    /// The value as a number: an int, a float, a boolean (0/1), or text
    /// that parses as one; `None` for null, bytes and timestamps.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Boolean(b) => Some(f64::from(u8::from(*b))),
            Value::Text(t) => t.trim().parse().ok(),
            _ => None,
        }
    }

    /// The value as text: text as it is, numbers and booleans formatted,
    /// timestamps as microseconds; `None` for null and bytes.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Boolean(b) => Some(b.to_string()),
            Value::Timestamp(us) => Some(us.to_string()),
            Value::Null | Value::Bytes(_) => None,
        }
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Value {
        Value::Text(text.to_string())
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Text(text)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Boolean(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_numbers_and_text() {
        assert_eq!(Value::Int(40).as_f64(), Some(40.0));
        assert_eq!(Value::from(" 2.5 ").as_f64(), Some(2.5));
        assert_eq!(Value::Null.as_f64(), None);
        assert_eq!(Value::Float(1.5).as_text().as_deref(), Some("1.5"));
        let rows = Rows {
            columns: vec!["n".into()],
            rows: vec![vec![Value::Int(3)]],
        };
        assert_eq!(rows.scalar(), Some(&Value::Int(3)));
        assert_eq!(rows.column("n"), Some(0));
    }
}
