//! Idempotency keys: the id of the event each recent `idempotency_key` was
//! recorded as, within `ingest.idempotency_window` and at most
//! `ingest.idempotency_max_keys` (the oldest go first). The keys are stored
//! in the log's records, so recovery rebuilds this table from the segments.

use std::collections::{HashMap, VecDeque};

/// Recent keys and the event ids they were recorded as.
pub struct Keys {
    ids: HashMap<String, (String, u64)>,
    /// Keys by the time they were claimed, oldest first.
    order: VecDeque<(u64, String)>,
    window_ms: u64,
    max: usize,
}

impl Keys {
    /// A table remembering keys for `window_ms`, at most `max` of them.
    pub fn new(window_ms: u64, max: usize) -> Keys {
        Keys {
            ids: HashMap::new(),
            order: VecDeque::new(),
            window_ms,
            max: max.max(1),
        }
    }

    /// The id recorded for `key` within the window, if any.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<&str> {
        self.ids
            .get(key)
            .filter(|(_, t)| now_ms.saturating_sub(*t) < self.window_ms)
            .map(|(id, _)| id.as_str())
    }

    /// Remembers `key` as event `id`, claimed at `time_ms`.
    pub fn insert(&mut self, key: String, id: String, time_ms: u64) {
        self.expire(time_ms);
        if self.ids.insert(key.clone(), (id, time_ms)).is_none() {
            self.order.push_back((time_ms, key));
        }
        while self.ids.len() > self.max {
            self.pop_oldest();
        }
    }

    /// Forgets `key` if it still names `id` (a claim whose append failed).
    pub fn remove(&mut self, key: &str, id: &str) {
        if self.ids.get(key).is_some_and(|(i, _)| i == id) {
            self.ids.remove(key);
            // Its place in `order` goes when it reaches the front.
        }
    }

    /// Forgets keys older than the window.
    pub fn expire(&mut self, now_ms: u64) {
        while let Some((t, _)) = self.order.front() {
            if now_ms.saturating_sub(*t) < self.window_ms {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((t, key)) = self.order.pop_front()
            && self.ids.get(&key).is_some_and(|(_, claimed)| *claimed == t)
        {
            self.ids.remove(&key);
        }
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_expire_and_are_bounded() {
        let mut keys = Keys::new(1000, 2);
        keys.insert("a".into(), "id-a".into(), 0);
        assert_eq!(keys.get("a", 999), Some("id-a"));
        assert_eq!(keys.get("a", 1000), None, "out of the window");
        keys.insert("b".into(), "id-b".into(), 10);
        keys.insert("c".into(), "id-c".into(), 20);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.get("a", 30), None, "the oldest went first");
        keys.remove("b", "other");
        assert_eq!(keys.get("b", 30), Some("id-b"));
        keys.remove("b", "id-b");
        assert_eq!(keys.get("b", 30), None);
        keys.expire(5000);
        assert_eq!(keys.len(), 0);
    }
}
