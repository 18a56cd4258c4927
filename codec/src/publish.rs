//! basic.publish as the broker takes it in: the exchange name and the routing
//! key stay slices of the received frame ([`ShortStr`]), checked once as UTF-8,
//! instead of a `String` allocated and copied per message (issue 19: the
//! routing key's `String` alone cost about 170 instructions in `malloc`).

use std::borrow::Borrow;
use std::fmt;
use std::ops::{Deref, Range};

use amq_protocol::protocol::basic;
use bytes::Bytes;
use bytestring::ByteString;

/// The class and method ids of basic.publish at the start of a method payload.
pub const PUBLISH_IDS: [u8; 4] = [0, 60, 0, 40];

/// A short string's text (an exchange name, a routing key) that shares the
/// buffer it was read from. Always UTF-8 (checked when made); reads as a `str`.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShortStr(ByteString);

impl ShortStr {
    /// A short string of static text (no allocation).
    pub const fn from_static(text: &'static str) -> ShortStr {
        ShortStr(ByteString::from_static(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `bytes` as text, if they are UTF-8 (shared, not copied).
    pub fn from_utf8(bytes: Bytes) -> Option<ShortStr> {
        ByteString::try_from(bytes).ok().map(ShortStr)
    }
}

impl Deref for ShortStr {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ShortStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for ShortStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<String> for ShortStr {
    /// Takes the string's buffer (no copy).
    fn from(text: String) -> ShortStr {
        ShortStr(ByteString::from(text))
    }
}

impl From<&str> for ShortStr {
    /// A copy of the text.
    fn from(text: &str) -> ShortStr {
        ShortStr(ByteString::from(text))
    }
}

impl From<ShortStr> for String {
    fn from(text: ShortStr) -> String {
        String::from(text.0)
    }
}

/// basic.publish's arguments; the ticket (deprecated, always 0) is not kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Publish {
    /// The exchange published to ("" is the default exchange).
    pub exchange: ShortStr,
    /// The routing key.
    pub routing_key: ShortStr,
    /// Return the message if no queue takes it.
    pub mandatory: bool,
    /// RabbitMQ refuses this (not implemented); kept to answer so.
    pub immediate: bool,
}

impl Publish {
    /// Reads a basic.publish method payload (ids, ticket:u16, exchange and
    /// routing key as short strings, one octet of flags, nothing after).
    /// `None` for anything else: the generic parser then gives the error.
    pub fn decode(payload: &Bytes) -> Option<Publish> {
        Self::decode_within(payload, 0..payload.len())
    }

    /// [`Publish::decode`] of the payload at `range` of `frame`: the names are
    /// slices of `frame` itself, not of a slice of it (one reference count less).
    pub fn decode_within(frame: &Bytes, range: Range<usize>) -> Option<Publish> {
        let base = range.start;
        let payload = frame.get(range)?;
        if payload.get(..4)? != PUBLISH_IDS {
            return None;
        }
        let mut at = 6;
        let exchange = short_str(frame, payload, base, &mut at)?;
        let routing_key = short_str(frame, payload, base, &mut at)?;
        let [flags] = payload.get(at..)? else {
            return None;
        };
        Some(Publish {
            exchange,
            routing_key,
            mandatory: flags & 1 != 0,
            immediate: flags & 2 != 0,
        })
    }

    /// The method in amq-protocol's form (copies the strings; off the hot path).
    pub fn into_method(self) -> basic::Publish {
        basic::Publish {
            exchange: String::from(self.exchange).into(),
            routing_key: String::from(self.routing_key).into(),
            mandatory: self.mandatory,
            immediate: self.immediate,
        }
    }
}

impl From<basic::Publish> for Publish {
    fn from(publish: basic::Publish) -> Publish {
        Publish {
            exchange: String::from(publish.exchange).into(),
            routing_key: String::from(publish.routing_key).into(),
            mandatory: publish.mandatory,
            immediate: publish.immediate,
        }
    }
}

/// The short string at `*at` in `payload`, moving `at` past it.
/// The short string at `at` of `payload` (which starts at `base` of `frame`).
fn short_str(frame: &Bytes, payload: &[u8], base: usize, at: &mut usize) -> Option<ShortStr> {
    let len = usize::from(*payload.get(*at)?);
    let (start, end) = (*at + 1, *at + 1 + len);
    if end > payload.len() {
        return None;
    }
    *at = end;
    if len == 0 {
        // The default exchange: no reference to the buffer to count.
        return Some(ShortStr::default());
    }
    ShortStr::from_utf8(frame.slice(base + start..base + end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method;
    use amq_protocol::protocol::{AMQPClass, parse_class};
    use nom::{Parser, combinator::all_consuming};

    fn encoded(exchange: &str, key: &str, mandatory: bool, immediate: bool) -> Vec<u8> {
        let publish = basic::Publish {
            exchange: exchange.into(),
            routing_key: key.into(),
            mandatory,
            immediate,
        };
        method::encode(
            &AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
            Vec::new(),
        )
        .expect("encode")
    }

    /// What amq-protocol's generated parser makes of `payload`, if a publish.
    fn generic(payload: &[u8]) -> Option<basic::Publish> {
        match all_consuming(parse_class).parse(payload).ok()?.1 {
            AMQPClass::Basic(basic::AMQPMethod::Publish(p)) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn reads_publish_exactly_as_the_generated_parser_does() {
        let long = "k".repeat(255);
        for (exchange, key, mandatory, immediate) in [
            ("", "q", false, false),
            ("amq.topic", "a.b.c", true, false),
            ("x", "", false, true),
            ("ü-x", long.as_str(), true, true),
        ] {
            let bytes = Bytes::from(encoded(exchange, key, mandatory, immediate));
            let publish = Publish::decode(&bytes).expect("decodes");
            assert_eq!(publish.exchange, exchange);
            assert_eq!(publish.routing_key, key);
            assert_eq!(Some(publish.into_method()), generic(&bytes));
        }
        let good = encoded("ex", "rk", true, false);
        for cut in 0..good.len() {
            assert_eq!(Publish::decode(&Bytes::copy_from_slice(&good[..cut])), None);
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(
            Publish::decode(&Bytes::from(longer)),
            None,
            "a byte too many"
        );
        // Every one-byte change decodes the same by hand and generically
        // (bad UTF-8, lengths past the end, other ids).
        for at in 0..good.len() {
            for byte in [0u8, 1, 2, 3, 40, 60, 0x7f, 0xc3, 0xff] {
                let mut changed = good.clone();
                changed[at] = byte;
                let fast = Publish::decode(&Bytes::from(changed.clone())).map(Publish::into_method);
                assert_eq!(fast, generic(&changed), "byte {at} = {byte}");
            }
        }
    }

    #[test]
    fn names_share_the_frame() {
        let bytes = Bytes::from(encoded("ex", "rk", false, false));
        let publish = Publish::decode(&bytes).expect("decodes");
        let frame = bytes.as_ptr_range();
        assert!(frame.contains(&publish.routing_key.as_ptr()));
        assert!(frame.contains(&publish.exchange.as_ptr()));
    }
}
