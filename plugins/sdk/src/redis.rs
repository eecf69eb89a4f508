//! Redis through the host, against the server the manifest names:
//!
//! ```toml
//! [capabilities.redis]
//! url = "redis://127.0.0.1:6379/0"
//! timeout = "2s"
//! max_reply_bytes = "1MiB"
//! write = ["XADD"]            # writes granted by name; reads need no grant
//! ```
//!
//! [`command`] returns the reply as a [`Value`] tree: nested replies (XRANGE,
//! XINFO, maps) keep their structure.
//!
//! ```ignore
//! let clients = wasmon_sdk::redis::command("HGETALL", &["Clients_status"])?;
//! for (field, value) in clients.pairs() { /* ... */ }
//! ```

use crate::bindings::wasmon::plugin::redis as wit;

pub use wit::RedisError;

/// A reply from Redis, as a tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A nil reply (a missing key).
    Nil,
    /// An integer.
    Int(i64),
    /// A bulk string: bytes, not necessarily UTF-8.
    Data(Vec<u8>),
    /// A simple status, e.g. `OK`.
    Status(String),
    /// A double (RESP3).
    Double(f64),
    /// A boolean (RESP3).
    Boolean(bool),
    /// An array, set or push reply.
    Array(Vec<Value>),
    /// A map reply (RESP3), entries in order.
    Map(Vec<(Value, Value)>),
}

/// Runs `name` (one or two words: `GET`, `CLIENT LIST`, `XINFO STREAM`) with `args`.
pub fn command<A: AsRef<[u8]>>(name: &str, args: &[A]) -> Result<Value, RedisError> {
    let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_ref().to_vec()).collect();
    let reply = wit::command(name, &args)?;
    Ok(tree(&reply.nodes, 0))
}

/// Builds the value at `at`. A child index must be greater than its
/// parent's (the host's promise); any other index reads as nil, so no input
/// can loop.
fn tree(nodes: &[wit::Node], at: usize) -> Value {
    let child = |i: u32| {
        let i = i as usize;
        if i > at { tree(nodes, i) } else { Value::Nil }
    };
    match nodes.get(at) {
        None | Some(wit::Node::Nil) => Value::Nil,
        Some(wit::Node::Int(i)) => Value::Int(*i),
        Some(wit::Node::Data(d)) => Value::Data(d.clone()),
        Some(wit::Node::Status(s)) => Value::Status(s.clone()),
        Some(wit::Node::Double(d)) => Value::Double(*d),
        Some(wit::Node::Boolean(b)) => Value::Boolean(*b),
        Some(wit::Node::Array(items)) => Value::Array(items.iter().map(|i| child(*i)).collect()),
        Some(wit::Node::Pairs(entries)) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| (child(*k), child(*v)))
                .collect(),
        ),
    }
}

impl Value {
    /// The value as text: a bulk string (lossy UTF-8), a status, a number.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Data(d) => Some(String::from_utf8_lossy(d).into_owned()),
            Value::Status(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Double(d) => Some(d.to_string()),
            _ => None,
        }
    }

    /// The value as an integer: an integer, or text that parses as one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            other => other.as_text()?.trim().parse().ok(),
        }
    }

    /// The elements of an array (empty for anything else).
    pub fn items(&self) -> &[Value] {
        match self {
            Value::Array(items) => items,
            _ => &[],
        }
    }

    /// Field/value pairs as text: a map, or an array of alternating fields
    /// and values (`HGETALL` in RESP2). Non-text entries are skipped.
    pub fn pairs(&self) -> Vec<(String, String)> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_text()?, v.as_text()?)))
                .collect(),
            Value::Array(items) => items
                .chunks_exact(2)
                .filter_map(|kv| Some((kv[0].as_text()?, kv[1].as_text()?)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_list_becomes_a_tree() {
        let nodes = vec![
            wit::Node::Array(vec![1]),
            wit::Node::Array(vec![2, 3]),
            wit::Node::Data(b"1-0".to_vec()),
            wit::Node::Array(vec![4, 5]),
            wit::Node::Data(b"field".to_vec()),
            wit::Node::Data(b"value".to_vec()),
        ];
        let value = tree(&nodes, 0);
        assert_eq!(value.items().len(), 1);
        let entry = &value.items()[0];
        assert_eq!(entry.items()[0].as_text().as_deref(), Some("1-0"));
        assert_eq!(
            entry.items()[1].pairs(),
            vec![("field".into(), "value".into())]
        );
    }

    #[test]
    fn a_child_index_not_after_its_parent_reads_as_nil() {
        let nodes = vec![wit::Node::Array(vec![0, 1]), wit::Node::Int(3)];
        assert_eq!(
            tree(&nodes, 0),
            Value::Array(vec![Value::Nil, Value::Int(3)])
        );
    }
}
