//! RabbitMQ's rule for declaring an existing exchange or queue again with other
//! properties (rabbit_misc:assert_args_equivalence), shared by both:
//! `inequivalent arg 'x' for queue 'q' in vhost '/': received ... but current is ...`.
//! Two values print bare (`'2000'`); when one side is missing, the other prints
//! with its type (`the value '2000' of type 'signedint'`) and the missing one as `none`.

use warren_codec::types::AMQPValue;
use warren_exchanges::{integer, type_name};

use crate::error::AmqpError;

/// The 406 for a property that differs; `received` and `current` are already shown.
pub fn inequivalent(arg: &str, resource: &str, received: &str, current: &str) -> AmqpError {
    AmqpError::precondition_failed(format!(
        "inequivalent arg '{arg}' for {resource}: received {received} but current is {current}"
    ))
}

/// The 406 for a flag (durable, auto_delete, ...) that differs, or Ok.
pub fn assert_flag(
    arg: &str,
    resource: &str,
    current: bool,
    received: bool,
) -> Result<(), AmqpError> {
    if current == received {
        return Ok(());
    }
    Err(inequivalent(
        arg,
        resource,
        &format!("'{received}'"),
        &format!("'{current}'"),
    ))
}

/// The 406 for an argument that differs, or Ok. Integers of any width compare
/// by value and both string types by bytes, as RabbitMQ compares type classes.
pub fn assert_arg(
    arg: &str,
    resource: &str,
    current: Option<&AMQPValue>,
    received: Option<&AMQPValue>,
) -> Result<(), AmqpError> {
    let (shown_received, shown_current) = match (received, current) {
        (None, None) => return Ok(()),
        (Some(r), Some(c)) if same(r, c) => return Ok(()),
        (Some(r), Some(c)) => (
            format!("'{}'", plain_value(r)),
            format!("'{}'", plain_value(c)),
        ),
        (r, c) => (typed(r), typed(c)),
    };
    Err(inequivalent(arg, resource, &shown_received, &shown_current))
}

fn typed(value: Option<&AMQPValue>) -> String {
    match value {
        Some(v) => format!("the value '{}' of type '{}'", plain_value(v), type_name(v)),
        None => "none".to_owned(),
    }
}

/// Same type class and value.
pub fn same(a: &AMQPValue, b: &AMQPValue) -> bool {
    if let (Some(x), Some(y)) = (integer(a), integer(b)) {
        return x == y;
    }
    match (string_bytes(a), string_bytes(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a == b,
        _ => false,
    }
}

pub use warren_exchanges::text_bytes as string_bytes;

/// A value as RabbitMQ prints it here: strings bare, other terms as Erlang does.
fn plain_value(value: &AMQPValue) -> String {
    if let Some(bytes) = string_bytes(value) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    match value {
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::Void => "undefined".to_owned(),
        other => integer(other).map_or_else(|| format!("{other:?}"), |i| i.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: &str = "queue 'q' in vhost '/'";

    #[test]
    fn texts_follow_rabbitmq() {
        let e = assert_arg("x-message-ttl", Q, None, Some(&AMQPValue::LongInt(1000)))
            .expect_err("missing");
        assert_eq!(
            e.text,
            "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received the value '1000' of type 'signedint' but current is none"
        );
        let e = assert_arg(
            "x-message-ttl",
            Q,
            Some(&AMQPValue::LongInt(1000)),
            Some(&AMQPValue::LongInt(2000)),
        )
        .expect_err("differs");
        assert!(
            e.text.ends_with("received '2000' but current is '1000'"),
            "{}",
            e.text
        );
        assert!(
            assert_arg(
                "x",
                Q,
                Some(&AMQPValue::LongInt(5)),
                Some(&AMQPValue::LongLongInt(5))
            )
            .is_ok()
        );
        let e = assert_flag("durable", Q, false, true).expect_err("flag");
        assert!(e.text.ends_with("received 'true' but current is 'false'"));
    }
}
