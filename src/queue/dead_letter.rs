//! Dead-lettering: a message a queue rejects, expires or drops is republished to
//! the queue's `x-dead-letter-exchange`, as RabbitMQ 3.13 does it.
//!
//! The republished message carries the `x-death` header (one entry per queue
//! and reason, newest first), `x-first-death-*` (set by the first death only)
//! and `x-last-death-*` headers, and loses its `expiration` property (kept in
//! the death entry as `original-expiration`). Its exchange becomes the
//! dead-letter exchange and its routing key the dead-letter routing key when
//! the queue has one. The body is shared, never copied.
//!
//! Dead-lettering is at most once and happens after the queue's lock is
//! released: a message routed back into a queue whose death history shows a
//! cycle without a `rejected` death is dropped, as in RabbitMQ; a missing
//! dead-letter exchange drops the message silently.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use warren_codec::ContentHeader;
use warren_codec::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};

use super::Queue;
use crate::message::{Message, dead_letter_properties};
use warren_exchanges::{integer, text_bytes as string_bytes};

/// Why a message was dead-lettered (the `reason` of its death).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// basic.reject or basic.nack with requeue=false.
    Rejected,
    /// Its TTL passed.
    Expired,
    /// Dropped or refused by a length limit.
    Maxlen,
    /// Returned more often than `x-delivery-limit` allows.
    DeliveryLimit,
}

impl Reason {
    /// The reason as the `x-death` header names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message a queue let go, to be dead-lettered once its lock is released.
pub(super) type Dead = (Arc<Message>, Reason);

/// One entry of the `x-death` header.
#[derive(Debug, Clone, PartialEq)]
struct Death {
    queue: String,
    reason: String,
    count: i64,
    /// Seconds since the epoch of the first such death.
    time: u64,
    exchange: String,
    routing_keys: Vec<String>,
    original_expiration: Option<String>,
}

impl Death {
    /// An entry as found in a message's header; `None` for one RabbitMQ would
    /// not recover (a field missing or of the wrong type), which is dropped.
    fn parse(value: &AMQPValue) -> Option<Death> {
        let AMQPValue::FieldTable(t) = value else {
            return None;
        };
        let t = t.inner();
        let text =
            |key: &str| string_bytes(t.get(key)?).map(|b| String::from_utf8_lossy(b).into_owned());
        let time = match t.get("time")? {
            AMQPValue::Timestamp(ts) => *ts,
            other => u64::try_from(integer(other)?).ok()?,
        };
        let AMQPValue::FieldArray(keys) = t.get("routing-keys")? else {
            return None;
        };
        Some(Death {
            queue: text("queue")?,
            reason: text("reason")?,
            count: i64::try_from(integer(t.get("count")?)?).ok()?,
            time,
            exchange: text("exchange")?,
            routing_keys: keys
                .as_slice()
                .iter()
                .filter_map(|k| string_bytes(k).map(|b| String::from_utf8_lossy(b).into_owned()))
                .collect(),
            original_expiration: text("original-expiration"),
        })
    }

    fn to_value(&self) -> AMQPValue {
        let mut t = FieldTable::default();
        t.insert("count".into(), AMQPValue::LongLongInt(self.count));
        t.insert("reason".into(), long_string(&self.reason));
        t.insert("queue".into(), long_string(&self.queue));
        t.insert("time".into(), AMQPValue::Timestamp(self.time));
        t.insert("exchange".into(), long_string(&self.exchange));
        let keys: Vec<AMQPValue> = self.routing_keys.iter().map(|k| long_string(k)).collect();
        t.insert(
            "routing-keys".into(),
            AMQPValue::FieldArray(FieldArray::from(keys)),
        );
        if let Some(exp) = &self.original_expiration {
            t.insert("original-expiration".into(), long_string(exp));
        }
        AMQPValue::FieldTable(t)
    }
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// The keys in a message's `CC` header.
fn cc_keys(headers: &BTreeMap<ShortString, AMQPValue>) -> Vec<String> {
    match headers.get("CC") {
        Some(AMQPValue::FieldArray(keys)) => keys
            .as_slice()
            .iter()
            .filter_map(|k| match k {
                AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// A dead-lettered copy of `message` and its death history (queue and reason,
/// newest first) for cycle detection. `None` if the properties cannot be
/// encoded again (the message is then dropped).
fn dead_lettered(
    message: &Message,
    reason: Reason,
    queue: &str,
    dlx: &str,
    dlrk: Option<&str>,
    now_secs: u64,
) -> Option<(Message, Vec<(String, String)>)> {
    let mut headers = message
        .properties
        .headers()
        .as_ref()
        .map(|h| h.inner().clone())
        .unwrap_or_default();
    let (had_deaths, mut deaths) = match headers.get("x-death") {
        Some(AMQPValue::FieldArray(entries)) => (
            true,
            entries
                .as_slice()
                .iter()
                .filter_map(Death::parse)
                .collect::<Vec<_>>(),
        ),
        _ => (false, Vec::new()),
    };
    match deaths
        .iter()
        .position(|d| d.queue == queue && d.reason == reason.as_str())
    {
        Some(i) => {
            let mut death = deaths.remove(i);
            death.count = death.count.saturating_add(1);
            deaths.insert(0, death);
        }
        None => {
            let mut routing_keys = vec![message.routing_key.to_string()];
            if message.cc_routed {
                routing_keys.extend(cc_keys(&headers));
            }
            deaths.insert(
                0,
                Death {
                    queue: queue.to_owned(),
                    reason: reason.as_str().to_owned(),
                    count: 1,
                    time: now_secs,
                    exchange: message.exchange.to_string(),
                    routing_keys,
                    original_expiration: message.expiration_ms().map(|ms| ms.to_string()),
                },
            );
        }
    }
    let history = deaths
        .iter()
        .map(|d| (d.queue.clone(), d.reason.clone()))
        .collect();
    let entries: Vec<AMQPValue> = deaths.iter().map(Death::to_value).collect();
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(entries)),
    );
    let mut set = |key: &str, value: &str| {
        headers.insert(key.into(), long_string(value));
    };
    if !had_deaths {
        set("x-first-death-reason", reason.as_str());
        set("x-first-death-queue", queue);
        set("x-first-death-exchange", &message.exchange);
    }
    set("x-last-death-reason", reason.as_str());
    set("x-last-death-queue", queue);
    set("x-last-death-exchange", &message.exchange);
    let properties = dead_letter_properties(&message.properties, FieldTable::from(headers));
    let header = ContentHeader::from_properties(message.body.len() as u64, &properties).ok()?;
    let copy = Message {
        exchange: dlx.into(),
        routing_key: dlrk.map_or_else(|| message.routing_key.clone(), Into::into),
        header,
        properties: properties.into(),
        body: message.body.clone(),
        cc_routed: dlrk.is_none() && message.cc_routed,
        frames: Default::default(),
    };
    Some((copy, history))
}

/// RabbitMQ's cycle rule: a message dead-lettered into `target` cycles when
/// `target` is in its death history and no death from the newest back to that
/// one was a rejection.
fn is_cycle(target: &str, history: &[(String, String)]) -> bool {
    for (queue, reason) in history {
        if reason == Reason::Rejected.as_str() {
            return false;
        }
        if queue == target {
            return true;
        }
    }
    false
}

/// Where a queue's dead letters go: its dead-letter exchange and routing key
/// in force, copied out of the lock when something died.
#[derive(Debug, Clone)]
pub(super) struct DeadLetterTarget {
    exchange: String,
    routing_key: Option<String>,
}

impl DeadLetterTarget {
    /// The target the arguments in force name, if they name an exchange.
    pub(super) fn of(args: &super::QueueArgs) -> Option<Self> {
        Some(DeadLetterTarget {
            exchange: args.dead_letter_exchange.clone()?,
            routing_key: args.dead_letter_routing_key.clone(),
        })
    }
}

impl Queue {
    /// Hands the messages this queue let go to its host for republishing to
    /// `target`. Never called with the queue's lock held.
    pub(super) fn dead_letter(&self, dead: Vec<Dead>, target: &DeadLetterTarget) {
        let Some(host) = self.host.upgrade() else {
            return;
        };
        let dlx = target.exchange.as_str();
        let dlrk = target.routing_key.as_deref();
        let now_secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let letters = dead
            .into_iter()
            .filter_map(|(message, reason)| {
                let (copy, history) =
                    dead_lettered(&message, reason, &self.name, dlx, dlrk, now_secs)?;
                Some(DeadLetter {
                    message: Arc::new(copy),
                    reason,
                    history,
                })
            })
            .collect::<Vec<_>>();
        if !letters.is_empty() {
            host.dead_letter(dlx, letters);
        }
    }
}

/// A dead-lettered copy on its way to the dead-letter exchange.
#[derive(Debug)]
pub struct DeadLetter {
    /// The copy: `x-death` added, exchange and routing key rewritten.
    pub message: Arc<Message>,
    /// Why it died.
    pub reason: Reason,
    /// Its death history (queue and reason, newest first).
    pub history: Vec<(String, String)>,
}

impl DeadLetter {
    /// Whether delivering it into `queue` closes a dead-letter cycle, which
    /// RabbitMQ drops: `queue` is in its history with no rejection since.
    pub fn cycles_into(&self, queue: &str) -> bool {
        self.reason != Reason::Rejected && is_cycle(queue, &self.history)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_codec::protocol::BasicProperties;

    fn message(properties: BasicProperties) -> Message {
        let header = ContentHeader::from_properties(3, &properties).expect("header");
        Message {
            exchange: "x".into(),
            routing_key: "rk".into(),
            header,
            properties: properties.into(),
            body: bytes::Bytes::from_static(b"abc"),
            cc_routed: true,
            frames: Default::default(),
        }
    }

    fn deaths(m: &Message) -> Vec<Death> {
        let headers = m.properties.headers().clone().expect("headers");
        let Some(AMQPValue::FieldArray(a)) = headers.inner().get("x-death") else {
            panic!("no x-death");
        };
        a.as_slice()
            .iter()
            .map(|v| Death::parse(v).expect("valid"))
            .collect()
    }

    fn header(m: &Message, key: &str) -> Option<String> {
        let headers = m.properties.headers().clone()?;
        string_bytes(headers.inner().get(key)?).map(|b| String::from_utf8_lossy(b).into_owned())
    }

    #[test]
    fn first_death_records_everything_and_drops_expiration() {
        let mut cc = FieldTable::default();
        cc.insert(
            "CC".into(),
            AMQPValue::FieldArray(vec![long_string("cc1")].into()),
        );
        let m = message(
            BasicProperties::default()
                .with_expiration("+0500".into())
                .with_headers(cc)
                .with_priority(3),
        );
        let (d, history) =
            dead_lettered(&m, Reason::Expired, "q", "dlx", None, 1000).expect("encodes");
        assert_eq!(d.exchange, "dlx");
        assert_eq!(d.routing_key, "rk");
        assert!(d.properties.expiration().is_none());
        assert_eq!(*d.properties.priority(), Some(3));
        assert_eq!(d.header.properties().expect("parses"), d.properties);
        assert_eq!(
            deaths(&d),
            [Death {
                queue: "q".into(),
                reason: "expired".into(),
                count: 1,
                time: 1000,
                exchange: "x".into(),
                routing_keys: vec!["rk".into(), "cc1".into()],
                original_expiration: Some("500".into()),
            }]
        );
        assert_eq!(history, [("q".to_owned(), "expired".to_owned())]);
        for (key, value) in [
            ("x-first-death-reason", "expired"),
            ("x-first-death-queue", "q"),
            ("x-first-death-exchange", "x"),
            ("x-last-death-reason", "expired"),
            ("x-last-death-queue", "q"),
            ("x-last-death-exchange", "x"),
        ] {
            assert_eq!(header(&d, key).as_deref(), Some(value), "{key}");
        }
    }

    #[test]
    fn later_deaths_count_per_queue_and_reason_newest_first() {
        let m = message(BasicProperties::default());
        let (d1, _) = dead_lettered(&m, Reason::Rejected, "a", "dlx", Some("b"), 1).expect("1");
        assert!(!d1.cc_routed);
        let (d2, _) = dead_lettered(&d1, Reason::Expired, "b", "", None, 2).expect("2");
        let (d3, history) = dead_lettered(&d2, Reason::Rejected, "a", "dlx", None, 3).expect("3");
        let ds = deaths(&d3);
        assert_eq!(ds.len(), 2);
        assert_eq!((ds[0].queue.as_str(), ds[0].count, ds[0].time), ("a", 2, 1));
        assert_eq!((ds[1].queue.as_str(), ds[1].count), ("b", 1));
        assert_eq!(ds[1].exchange, "dlx");
        assert_eq!(ds[1].routing_keys, ["b"]);
        assert_eq!(header(&d3, "x-first-death-queue").as_deref(), Some("a"));
        assert_eq!(
            header(&d3, "x-first-death-reason").as_deref(),
            Some("rejected")
        );
        assert_eq!(
            header(&d3, "x-last-death-reason").as_deref(),
            Some("rejected")
        );
        assert_eq!(header(&d2, "x-last-death-queue").as_deref(), Some("b"));
        assert_eq!(history[0], ("a".to_owned(), "rejected".to_owned()));
    }

    #[test]
    fn cycles_without_a_rejection_are_detected() {
        let h = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(q, r)| (q.to_string(), r.to_string()))
                .collect()
        };
        assert!(is_cycle("a", &h(&[("a", "expired")])));
        assert!(is_cycle("a", &h(&[("b", "maxlen"), ("a", "expired")])));
        assert!(!is_cycle("a", &h(&[("b", "rejected"), ("a", "expired")])));
        assert!(!is_cycle("a", &h(&[("a", "rejected")])));
        assert!(!is_cycle("c", &h(&[("a", "expired")])));
    }
}
