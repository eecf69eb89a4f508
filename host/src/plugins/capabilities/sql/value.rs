//! Typed values between the plugin and PostgreSQL: parameters bound with the
//! type the server inferred for `$N` (checked first, so a mismatch names the
//! parameter), and cells read from the binary wire format.
//!
//! | PostgreSQL | `value` |
//! |---|---|
//! | `boolean` | `boolean` |
//! | `smallint`, `integer`, `bigint`, `oid` | `int` |
//! | `real`, `double precision` | `float` |
//! | `numeric` | `float` (nearest double; `NaN`, `±Infinity` as such) |
//! | `text`, `varchar`, `char`, `name`, `json`, `jsonb`, `uuid` | `text` |
//! | `bytea` | `bytes` |
//! | `timestamp`, `timestamptz`, `date` | `timestamp` (µs since the Unix epoch, UTC) |
//!
//! Any other column type is refused before the query runs, naming the
//! column: cast it in the query (`interval_col::text`).

use crate::plugins::bindings::sql::Value;
use bytes::{BufMut, BytesMut};
use std::error::Error;
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

type BoxError = Box<dyn Error + Sync + Send>;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// Microseconds in a day.
const DAY_US: i64 = 86_400_000_000;

/// Whether a column of type `ty` can be read.
pub fn readable(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::BOOL
            | Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::OID
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::NUMERIC
            | Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::UNKNOWN
            | Type::JSON
            | Type::JSONB
            | Type::UUID
            | Type::BYTEA
            | Type::TIMESTAMP
            | Type::TIMESTAMPTZ
            | Type::DATE
    )
}

/// Whether `value` can be bound to a parameter of type `ty`; the error says why not.
pub fn check_param(value: &Value, ty: &Type) -> Result<(), String> {
    let ok = match value {
        Value::Null => true,
        Value::Boolean(_) => *ty == Type::BOOL,
        Value::Int(i) => match *ty {
            Type::INT2 => i16::try_from(*i).is_ok(),
            Type::INT4 => i32::try_from(*i).is_ok(),
            Type::OID => u32::try_from(*i).is_ok(),
            Type::INT8 | Type::FLOAT4 | Type::FLOAT8 => true,
            _ => false,
        },
        Value::Float(_) => matches!(*ty, Type::FLOAT4 | Type::FLOAT8),
        Value::Text(_) => matches!(
            *ty,
            Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::JSON
                | Type::JSONB
        ),
        Value::Bytes(_) => *ty == Type::BYTEA,
        Value::Timestamp(_) => matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} does not fit the parameter's type {ty} (cast the parameter in the query, e.g. $1::text)",
            kind(value)
        ))
    }
}

/// The name of a value's kind, as the WIT spells it.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Timestamp(_) => "timestamp",
    }
}

/// A parameter; bind it only after [`check_param`] passed.
#[derive(Debug)]
pub struct Param(pub Value);

impl ToSql for Param {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match &self.0 {
            Value::Null => return Ok(IsNull::Yes),
            Value::Boolean(b) => out.put_u8(u8::from(*b)),
            Value::Int(i) => match *ty {
                Type::INT2 => out.put_i16(i16::try_from(*i)?),
                Type::INT4 => out.put_i32(i32::try_from(*i)?),
                Type::OID => out.put_u32(u32::try_from(*i)?),
                Type::FLOAT4 => out.put_f32(*i as f32),
                Type::FLOAT8 => out.put_f64(*i as f64),
                _ => out.put_i64(*i),
            },
            Value::Float(f) => match *ty {
                Type::FLOAT4 => out.put_f32(*f as f32),
                _ => out.put_f64(*f),
            },
            Value::Text(t) => {
                if *ty == Type::JSONB {
                    out.put_u8(1);
                }
                out.put_slice(t.as_bytes());
            }
            Value::Bytes(b) => out.put_slice(b),
            Value::Timestamp(us) => out.put_i64(us.saturating_sub(PG_EPOCH_US)),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A cell; read only columns [`readable`] accepts.
#[derive(Debug)]
pub struct Cell(pub Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Cell, BoxError> {
        let value = match *ty {
            Type::BOOL => Value::Boolean(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::OID => Value::Int(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
            Type::NUMERIC => Value::Float(numeric(raw)?),
            Type::JSONB => {
                Value::Text(std::str::from_utf8(raw.get(1..).unwrap_or_default())?.into())
            }
            Type::UUID => Value::Text(uuid::Uuid::from_slice(raw)?.to_string()),
            Type::BYTEA => Value::Bytes(raw.to_vec()),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                Value::Timestamp(i64::from_sql(&Type::INT8, raw)?.saturating_add(PG_EPOCH_US))
            }
            Type::DATE => Value::Timestamp(
                i64::from(i32::from_sql(&Type::INT4, raw)?)
                    .saturating_mul(DAY_US)
                    .saturating_add(PG_EPOCH_US),
            ),
            _ if readable(ty) => Value::Text(std::str::from_utf8(raw)?.into()),
            _ => return Err(format!("type {ty} is not converted").into()),
        };
        Ok(Cell(value))
    }

    fn from_sql_null(_: &Type) -> Result<Cell, BoxError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A binary `numeric` as the nearest double: base-10000 digits with a
/// weight, written as decimal text and parsed (so rounding is correct).
fn numeric(raw: &[u8]) -> Result<f64, BoxError> {
    let word = |i: usize| -> Result<u16, BoxError> {
        let bytes = raw.get(i * 2..i * 2 + 2).ok_or("truncated numeric")?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    match sign {
        0xC000 => return Ok(f64::NAN),
        0xD000 => return Ok(f64::INFINITY),
        0xF000 => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    if ndigits == 0 {
        return Ok(0.0);
    }
    let mut text = String::with_capacity(ndigits * 4 + 16);
    if sign == 0x4000 {
        text.push('-');
    }
    text.push_str("0.");
    for i in 0..ndigits {
        text.push_str(&format!("{:04}", word(4 + i)?));
    }
    text.push_str(&format!("e{}", 4 * (weight + 1)));
    Ok(text.parse::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(ndigits: u16, weight: i16, sign: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [ndigits, weight as u16, sign, 0] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_become_the_nearest_double() {
        assert_eq!(numeric(&encode(2, 0, 0, &[1234, 5000])).unwrap(), 1234.5);
        assert_eq!(numeric(&encode(1, 1, 0x4000, &[42])).unwrap(), -420000.0);
        assert_eq!(numeric(&encode(1, -1, 0, &[2500])).unwrap(), 0.25);
        assert_eq!(numeric(&encode(0, 0, 0, &[])).unwrap(), 0.0);
        assert!(numeric(&encode(0, 0, 0xC000, &[])).unwrap().is_nan());
        assert!(numeric(&encode(3, 0, 0, &[1])).is_err());
    }

    #[test]
    fn timestamps_are_unix_microseconds() {
        let raw = 0i64.to_be_bytes();
        let Cell(v) = Cell::from_sql(&Type::TIMESTAMPTZ, &raw).unwrap();
        assert!(matches!(v, Value::Timestamp(PG_EPOCH_US)), "{v:?}");
        let Cell(v) = Cell::from_sql(&Type::DATE, &1i32.to_be_bytes()).unwrap();
        assert!(
            matches!(v, Value::Timestamp(t) if t == PG_EPOCH_US + DAY_US),
            "{v:?}"
        );
    }

    #[test]
    fn parameters_are_checked_against_the_inferred_type() {
        assert!(check_param(&Value::Int(7), &Type::INT4).is_ok());
        assert!(check_param(&Value::Int(1 << 40), &Type::INT4).is_err());
        assert!(check_param(&Value::Text("x".into()), &Type::INT8).is_err());
        assert!(check_param(&Value::Null, &Type::INTERVAL).is_ok());
        assert!(check_param(&Value::Text("processing".into()), &Type::VARCHAR).is_ok());
        assert!(!readable(&Type::INTERVAL));
    }
}
