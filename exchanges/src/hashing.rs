//! What the hashing exchanges (`x-consistent-hash`, `x-modulus-hash`) hash,
//! and the hash itself. The hash must give the same number for the same
//! input in every run and every build (a key's partition survives a
//! restart), so it is written here rather than taken from `std`, whose
//! `DefaultHasher` promises no stability across releases.

use std::hash::Hasher;

use amq_protocol_types::{AMQPValue, FieldTable};

use crate::error::DeclareError;
use crate::value;

/// The declare argument naming the header an `x-consistent-hash` exchange hashes.
pub const HASH_HEADER: &str = "hash-header";
/// The declare argument naming the property an `x-consistent-hash` exchange hashes.
pub const HASH_PROPERTY: &str = "hash-property";
/// The properties `hash-property` may name, as the plugin spells them.
pub const HASH_PROPERTIES: [&str; 3] = ["correlation_id", "message_id", "timestamp"];

/// The message properties routing may look at besides routing keys and headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageProperties<'a> {
    /// `message_id`.
    pub message_id: Option<&'a str>,
    /// `correlation_id`.
    pub correlation_id: Option<&'a str>,
    /// `timestamp` (seconds since the epoch).
    pub timestamp: Option<u64>,
}

/// What an `x-consistent-hash` exchange hashes (its `hash-header` /
/// `hash-property` declare arguments; by default the routing key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashOn {
    /// The message's own routing key (not its CC/BCC keys, as the plugin).
    #[default]
    RoutingKey,
    /// The value of this header.
    Header(String),
    /// This property: `message_id`, `correlation_id` or `timestamp`.
    Property(String),
}

impl HashOn {
    /// Reads the declare arguments with the plugin's rules and texts
    /// (`hash-header` and `hash-property` are mutually exclusive).
    pub fn parse(arguments: &FieldTable) -> Result<HashOn, DeclareError> {
        let text = |name: &'static str| -> Result<Option<String>, DeclareError> {
            match arguments.inner().get(name) {
                None => Ok(None),
                Some(v) => match value::text_bytes(v) {
                    Some(bytes) => Ok(Some(String::from_utf8_lossy(bytes).into_owned())),
                    None => Err(DeclareError::NotAString {
                        argument: name,
                        type_name: value::type_name(v),
                    }),
                },
            }
        };
        match (text(HASH_HEADER)?, text(HASH_PROPERTY)?) {
            (None, None) => Ok(HashOn::RoutingKey),
            (Some(header), None) => Ok(HashOn::Header(header)),
            (None, Some(property)) if HASH_PROPERTIES.contains(&property.as_str()) => {
                Ok(HashOn::Property(property))
            }
            (None, Some(property)) => Err(DeclareError::UnsupportedProperty(property)),
            (Some(_), Some(_)) => Err(DeclareError::HeaderAndProperty),
        }
    }

    /// The hash of what this says to hash in a message. A missing header or
    /// property hashes as "absent": such messages all go to one partition,
    /// as the plugin sends them all to one queue.
    pub(crate) fn hash<'k>(
        &self,
        mut routing_keys: impl Iterator<Item = &'k str>,
        headers: Option<&FieldTable>,
        properties: &MessageProperties<'_>,
    ) -> u64 {
        let mut h = StableHasher::default();
        match self {
            HashOn::RoutingKey => match routing_keys.next() {
                Some(key) => hash_text(&mut h, key.as_bytes()),
                None => h.write_u8(0),
            },
            HashOn::Header(name) => match headers.and_then(|t| t.inner().get(name.as_str())) {
                Some(v) => hash_value(&mut h, v),
                None => h.write_u8(0),
            },
            HashOn::Property(name) => {
                let text = match name.as_str() {
                    "message_id" => properties.message_id,
                    "correlation_id" => properties.correlation_id,
                    // The plugin hashes the timestamp's decimal text.
                    _ => {
                        match properties.timestamp {
                            Some(t) => hash_text(&mut h, t.to_string().as_bytes()),
                            None => h.write_u8(0),
                        }
                        return h.finish();
                    }
                };
                match text {
                    Some(text) => hash_text(&mut h, text.as_bytes()),
                    None => h.write_u8(0),
                }
            }
        }
        h.finish()
    }

    /// How explain names it: `routing key`, `header 'h'`, `property 'message_id'`.
    pub fn describe(&self) -> String {
        match self {
            HashOn::RoutingKey => "routing key".to_owned(),
            HashOn::Header(h) => format!("header '{h}'"),
            HashOn::Property(p) => format!("property '{p}'"),
        }
    }
}

/// Present text: a tag byte then the bytes, so it never equals "absent".
fn hash_text(h: &mut StableHasher, bytes: &[u8]) {
    h.write_u8(1);
    h.write(bytes);
}

/// A header value: strings by their bytes, integers by their decimal text
/// (any integer type), anything else by its type and Erlang-term printing.
fn hash_value(h: &mut StableHasher, v: &AMQPValue) {
    if let Some(bytes) = value::text_bytes(v) {
        hash_text(h, bytes);
    } else if let Some(n) = value::integer(v) {
        hash_text(h, n.to_string().as_bytes());
    } else {
        h.write_u8(2);
        h.write(value::type_name(v).as_bytes());
        h.write(value::erlang_term(v).as_bytes());
    }
}

/// The hash of all the routing keys, in order (`x-modulus-hash` hashes the
/// message's routing keys with its CC/BCC ones, as RabbitMQ does).
pub(crate) fn hash_routing_keys<'k>(routing_keys: impl Iterator<Item = &'k str>) -> u64 {
    let mut h = StableHasher::default();
    for key in routing_keys {
        hash_text(&mut h, key.as_bytes());
    }
    h.finish()
}

/// FNV-1a over the bytes, finished with MurmurHash3's 64-bit mixer so every
/// output bit depends on every input bit (FNV alone has weak low bits, and
/// `x-modulus-hash` takes the hash modulo small numbers). Fixed constants:
/// stable across runs and builds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StableHasher(u64);

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for StableHasher {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        mix(self.0)
    }
}

/// MurmurHash3's fmix64.
pub(crate) fn mix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol_types::ShortString;

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert(ShortString::from(*k), v.clone());
        }
        t
    }

    #[test]
    fn the_hash_is_fixed_across_builds() {
        // Changing these numbers moves every key to another partition after an upgrade.
        assert_eq!(hash_routing_keys(["a"].into_iter()), 0x30cc_dd7f_603d_5594);
        assert_eq!(
            hash_routing_keys(std::iter::empty()),
            mix(0xcbf2_9ce4_8422_2325)
        );
    }

    #[test]
    fn arguments_follow_the_plugin() {
        let s = |v: &str| AMQPValue::LongString(v.into());
        assert_eq!(
            HashOn::parse(&FieldTable::default()),
            Ok(HashOn::RoutingKey)
        );
        assert_eq!(
            HashOn::parse(&table(&[(HASH_HEADER, s("h"))])),
            Ok(HashOn::Header("h".into()))
        );
        assert_eq!(
            HashOn::parse(&table(&[(HASH_PROPERTY, s("message_id"))])),
            Ok(HashOn::Property("message_id".into()))
        );
        assert_eq!(
            HashOn::parse(&table(&[(HASH_PROPERTY, s("user_id"))]))
                .expect_err("unsupported")
                .to_string(),
            "Unsupported property: user_id"
        );
        assert_eq!(
            HashOn::parse(&table(&[
                (HASH_HEADER, s("h")),
                (HASH_PROPERTY, s("timestamp"))
            ]))
            .expect_err("both")
            .to_string(),
            "hash-header and hash-property are mutually exclusive"
        );
        assert!(HashOn::parse(&table(&[(HASH_HEADER, AMQPValue::LongInt(1))])).is_err());
    }

    #[test]
    fn what_is_hashed() {
        let none = MessageProperties::default();
        let on_header = HashOn::Header("h".into());
        let with = |v: AMQPValue| table(&[("h", v)]);
        let a = on_header.hash(
            std::iter::empty(),
            Some(&with(AMQPValue::LongString("x".into()))),
            &none,
        );
        let b = on_header.hash(
            ["other"].into_iter(),
            Some(&with(AMQPValue::LongString("x".into()))),
            &none,
        );
        assert_eq!(a, b, "the routing key does not count");
        // Integers of any width hash alike; a missing header is one fixed value.
        assert_eq!(
            on_header.hash(
                std::iter::empty(),
                Some(&with(AMQPValue::LongInt(7))),
                &none
            ),
            on_header.hash(
                std::iter::empty(),
                Some(&with(AMQPValue::LongLongInt(7))),
                &none
            )
        );
        assert_eq!(
            on_header.hash(std::iter::empty(), None, &none),
            on_header.hash(std::iter::empty(), Some(&FieldTable::default()), &none)
        );
        let on_ts = HashOn::Property("timestamp".into());
        let ts = MessageProperties {
            timestamp: Some(5),
            ..none
        };
        assert_ne!(
            on_ts.hash(std::iter::empty(), None, &ts),
            on_ts.hash(std::iter::empty(), None, &none)
        );
        // Only the first routing key counts: CC keys do not move the message.
        let rk = HashOn::RoutingKey;
        assert_eq!(
            rk.hash(["k", "cc"].into_iter(), None, &none),
            rk.hash(["k"].into_iter(), None, &none)
        );
    }
}
