//! How many times a message has already failed: the broker's
//! `x-delivery-count` header (quorum queues), or a count this consumer keeps
//! for redelivered messages (classic queues only flag `redelivered`).
//!
//! A message is known by its `message_id` property when it has one, else by
//! a keyed hash of its routing key and body. The table is bounded: past
//! [`Redeliveries::CAPACITY`] entries the oldest is forgotten, which can only
//! grant a message a few more attempts, never fewer.

use lapin::message::Delivery;
use lapin::types::AMQPValue;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};

/// Failed attempts per message this consumer saw.
pub(super) struct Redeliveries {
    failures: HashMap<u64, u32>,
    order: VecDeque<u64>,
    hasher: RandomState,
}

impl Redeliveries {
    /// Most messages whose failures are remembered.
    pub(super) const CAPACITY: usize = 16_384;

    pub(super) fn new() -> Redeliveries {
        Redeliveries {
            failures: HashMap::new(),
            order: VecDeque::new(),
            hasher: RandomState::new(),
        }
    }

    /// The key of a delivery.
    pub(super) fn key(&self, delivery: &Delivery) -> u64 {
        match delivery.properties.message_id() {
            Some(id) => self.hasher.hash_one((0u8, id.as_str())),
            None => self
                .hasher
                .hash_one((1u8, delivery.routing_key.as_str(), &delivery.data)),
        }
    }

    /// Attempts of this message that failed before this delivery.
    pub(super) fn prior_failures(&mut self, key: u64, delivery: &Delivery) -> u32 {
        let header = delivery_count(delivery).unwrap_or(0);
        if !delivery.redelivered && header == 0 {
            // A new message: whatever an equal one left behind is stale.
            if !self.failures.is_empty() {
                self.failures.remove(&key);
            }
            return 0;
        }
        let own = self.failures.get(&key).copied().unwrap_or(0);
        own.max(header)
    }

    /// Records that the message failed `failures` times so far.
    pub(super) fn record(&mut self, key: u64, failures: u32) {
        if self.failures.insert(key, failures).is_none() {
            self.order.push_back(key);
            while self.order.len() > Self::CAPACITY {
                if let Some(oldest) = self.order.pop_front() {
                    self.failures.remove(&oldest);
                }
            }
        }
    }

    /// Forgets a settled message.
    pub(super) fn forget(&mut self, key: u64) {
        if !self.failures.is_empty() && self.failures.remove(&key).is_some() {
            self.order.retain(|k| *k != key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures.len()
    }
}

/// The `x-delivery-count` header a quorum queue sets on a redelivery.
fn delivery_count(delivery: &Delivery) -> Option<u32> {
    let headers = delivery.properties.headers().as_ref()?;
    let value = headers.inner().get("x-delivery-count")?;
    let n: i64 = match value {
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::LongLongInt(n) => *n,
        _ => return None,
    };
    u32::try_from(n.max(0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::BasicProperties;
    use lapin::types::FieldTable;

    fn delivery(body: &[u8], redelivered: bool, properties: BasicProperties) -> Delivery {
        let mut d = Delivery::mock(1, "".into(), "rk".into(), redelivered, body.to_vec());
        d.properties = properties;
        d
    }

    #[test]
    fn counts_failures_of_redelivered_messages() {
        let mut r = Redeliveries::new();
        let first = delivery(b"m", false, BasicProperties::default());
        let key = r.key(&first);
        assert_eq!(r.prior_failures(key, &first), 0);
        r.record(key, 1);
        let again = delivery(b"m", true, BasicProperties::default());
        assert_eq!(r.key(&again), key);
        assert_eq!(r.prior_failures(key, &again), 1);
        r.record(key, 2);
        assert_eq!(r.prior_failures(key, &again), 2);
        r.forget(key);
        assert_eq!(r.prior_failures(key, &again), 0);
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn a_new_message_with_the_same_body_starts_from_zero() {
        let mut r = Redeliveries::new();
        let d = delivery(b"m", false, BasicProperties::default());
        let key = r.key(&d);
        r.record(key, 3);
        assert_eq!(r.prior_failures(key, &d), 0);
    }

    #[test]
    fn the_quorum_header_counts_too_and_message_ids_key() {
        let mut r = Redeliveries::new();
        let mut headers = FieldTable::default();
        headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(4));
        let props = BasicProperties::default()
            .with_headers(headers)
            .with_message_id("id-1".into());
        let d = delivery(b"a", true, props.clone());
        let key = r.key(&d);
        assert_eq!(r.prior_failures(key, &d), 4);
        let other_body = delivery(b"b", true, props);
        assert_eq!(r.key(&other_body), key);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut r = Redeliveries::new();
        for k in 0..(Redeliveries::CAPACITY as u64 + 10) {
            r.record(k, 1);
        }
        assert_eq!(r.len(), Redeliveries::CAPACITY);
    }
}
