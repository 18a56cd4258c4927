//! Field values as RabbitMQ sees them: its type names, its equality of
//! nested values, and how its reply texts print a value (Erlang `~tp`).
//!
//! RabbitMQ decodes a field table into `{Key, Type, Value}` triples
//! (rabbit_binary_parser); nested tables and arrays keep their type tags,
//! so nested values are equal only if type and value are. It has no short
//! string type, so `ShortString` is treated as `longstr` throughout.

use std::fmt::Write as _;

use amq_protocol_types::{AMQPValue, FieldArray, FieldTable};

/// RabbitMQ's atom for the type of a field value.
pub fn type_name(value: &AMQPValue) -> &'static str {
    match value {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

/// The integer value of any integer-typed field (not timestamps).
pub fn integer(v: &AMQPValue) -> Option<i128> {
    Some(match v {
        AMQPValue::ShortShortInt(n) => i128::from(*n),
        AMQPValue::ShortShortUInt(n) => i128::from(*n),
        AMQPValue::ShortInt(n) => i128::from(*n),
        AMQPValue::ShortUInt(n) => i128::from(*n),
        AMQPValue::LongInt(n) => i128::from(*n),
        AMQPValue::LongUInt(n) => i128::from(*n),
        AMQPValue::LongLongInt(n) => i128::from(*n),
        _ => return None,
    })
}

/// The bytes of a string or byte-array value, as RabbitMQ's texts print them.
pub fn text_bytes(value: &AMQPValue) -> Option<&[u8]> {
    match value {
        AMQPValue::ByteArray(b) => Some(b.as_slice()),
        other => string_bytes(other),
    }
}

/// The bytes of a string-typed value (`longstr`, or the internal `ShortString`).
pub(crate) fn string_bytes(value: &AMQPValue) -> Option<&[u8]> {
    match value {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        _ => None,
    }
}

/// How floats compare: by value for routing, by bits for binding identity
/// (so a NaN argument still identifies its own binding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Floats {
    ByValue,
    ByBits,
}

/// Type-and-value equality of two field values, recursively.
pub(crate) fn typed_eq(a: &AMQPValue, b: &AMQPValue, floats: Floats) -> bool {
    use AMQPValue as V;
    let float_eq = |x: f64, y: f64| match floats {
        Floats::ByValue => x == y,
        Floats::ByBits => x.to_bits() == y.to_bits(),
    };
    match (a, b) {
        (V::Boolean(x), V::Boolean(y)) => x == y,
        (V::ShortShortInt(x), V::ShortShortInt(y)) => x == y,
        (V::ShortShortUInt(x), V::ShortShortUInt(y)) => x == y,
        (V::ShortInt(x), V::ShortInt(y)) => x == y,
        (V::ShortUInt(x), V::ShortUInt(y)) => x == y,
        (V::LongInt(x), V::LongInt(y)) => x == y,
        (V::LongUInt(x), V::LongUInt(y)) => x == y,
        (V::LongLongInt(x), V::LongLongInt(y)) => x == y,
        (V::Float(x), V::Float(y)) => float_eq(f64::from(*x), f64::from(*y)),
        (V::Double(x), V::Double(y)) => float_eq(*x, *y),
        (V::DecimalValue(x), V::DecimalValue(y)) => x == y,
        (V::Timestamp(x), V::Timestamp(y)) => x == y,
        (V::ByteArray(x), V::ByteArray(y)) => x == y,
        (V::FieldTable(x), V::FieldTable(y)) => tables_eq(x, y, floats),
        (V::FieldArray(x), V::FieldArray(y)) => arrays_eq(x, y, floats),
        (V::Void, V::Void) => true,
        _ => match (string_bytes(a), string_bytes(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Same keys, and typed-equal values under each key.
pub(crate) fn tables_eq(a: &FieldTable, b: &FieldTable, floats: Floats) -> bool {
    a.inner().len() == b.inner().len()
        && a.inner()
            .iter()
            .zip(b.inner())
            .all(|((ka, va), (kb, vb))| ka == kb && typed_eq(va, vb, floats))
}

/// Same length, and typed-equal values at each position.
pub(crate) fn arrays_eq(a: &FieldArray, b: &FieldArray, floats: Floats) -> bool {
    a.as_slice().len() == b.as_slice().len()
        && a.as_slice()
            .iter()
            .zip(b.as_slice())
            .all(|(x, y)| typed_eq(x, y, floats))
}

/// Whether two argument tables make the same binding.
pub(crate) fn identical_tables(a: &FieldTable, b: &FieldTable) -> bool {
    tables_eq(a, b, Floats::ByBits)
}

/// The value as Erlang's `~tp` prints RabbitMQ's decoded form of it.
///
/// Good for the short values that appear in reply texts; unlike Erlang it
/// never wraps long terms over several lines.
pub(crate) fn erlang_term(value: &AMQPValue) -> String {
    let mut out = String::new();
    write_term(&mut out, value);
    out
}

fn write_term(out: &mut String, value: &AMQPValue) {
    // Writing to a String cannot fail; the results are ignored for that reason.
    match value {
        AMQPValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        AMQPValue::ShortShortInt(n) => _ = write!(out, "{n}"),
        AMQPValue::ShortShortUInt(n) => _ = write!(out, "{n}"),
        AMQPValue::ShortInt(n) => _ = write!(out, "{n}"),
        AMQPValue::ShortUInt(n) => _ = write!(out, "{n}"),
        AMQPValue::LongInt(n) => _ = write!(out, "{n}"),
        AMQPValue::LongUInt(n) => _ = write!(out, "{n}"),
        AMQPValue::LongLongInt(n) => _ = write!(out, "{n}"),
        AMQPValue::Timestamp(n) => _ = write!(out, "{n}"),
        AMQPValue::Float(f) => write_float(out, f64::from(*f)),
        AMQPValue::Double(f) => write_float(out, *f),
        AMQPValue::DecimalValue(d) => _ = write!(out, "{{{},{}}}", d.scale, d.value),
        AMQPValue::ShortString(s) => write_binary(out, s.as_str().as_bytes()),
        AMQPValue::LongString(s) => write_binary(out, s.as_bytes()),
        AMQPValue::ByteArray(b) => write_binary(out, b.as_slice()),
        AMQPValue::Void => out.push_str("undefined"),
        AMQPValue::FieldTable(t) => {
            out.push('[');
            for (i, (k, v)) in t.inner().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                write_binary(out, k.as_str().as_bytes());
                out.push(',');
                out.push_str(type_name(v));
                out.push(',');
                write_term(out, v);
                out.push('}');
            }
            out.push(']');
        }
        AMQPValue::FieldArray(a) => {
            out.push('[');
            for (i, v) in a.as_slice().iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('{');
                out.push_str(type_name(v));
                out.push(',');
                write_term(out, v);
                out.push('}');
            }
            out.push(']');
        }
    }
}

/// Erlang's printable characters (io_lib:printable_list, latin1 range).
fn printable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{a0}'..='\u{ff}' | '\n' | '\r' | '\t' | '\u{b}' | '\u{8}' | '\u{c}' | '\u{1b}')
}

/// `bytes` as Erlang prints a binary (see [`write_binary`]).
pub(crate) fn erlang_binary(bytes: &str) -> String {
    let mut out = String::new();
    write_binary(&mut out, bytes.as_bytes());
    out
}

/// `<<"text">>`, `<<"tëxt"/utf8>>`, or `<<1,2,3>>` when not printable.
pub(crate) fn write_binary(out: &mut String, bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes)
        && text.chars().all(printable)
    {
        out.push_str("<<\"");
        escape_into(out, text.chars());
        out.push('"');
        if !text.is_ascii() {
            out.push_str("/utf8");
        }
        out.push_str(">>");
        return;
    }
    if bytes.iter().all(|&b| printable(char::from(b))) {
        out.push_str("<<\"");
        escape_into(out, bytes.iter().map(|&b| char::from(b)));
        out.push_str("\">>");
        return;
    }
    out.push_str("<<");
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        _ = write!(out, "{b}");
    }
    out.push_str(">>");
}

fn escape_into(out: &mut String, chars: impl Iterator<Item = char>) {
    for c in chars {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{1b}' => out.push_str("\\e"),
            c => out.push(c),
        }
    }
}

/// Erlang's shortest round-trip float printing: the shorter of fixed
/// (`100.0`) and scientific (`1.0e3`) notation, fixed on a tie.
fn write_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        // Erlang cannot hold these; RabbitMQ would have refused the frame.
        _ = write!(out, "{f}");
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.25e-7".
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let scientific = if mantissa.contains('.') {
        format!("{mantissa}e{exponent}")
    } else {
        format!("{mantissa}.0e{exponent}")
    };
    let mut fixed = format!("{f}");
    if !fixed.contains('.') {
        fixed.push_str(".0");
    }
    out.push_str(if scientific.len() < fixed.len() {
        &scientific
    } else {
        &fixed
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol_types::{DecimalValue, ShortString};

    fn term(v: AMQPValue) -> String {
        erlang_term(&v)
    }

    #[test]
    fn prints_binaries_like_erlang() {
        assert_eq!(term(AMQPValue::LongString("some".into())), r#"<<"some">>"#);
        assert_eq!(term(AMQPValue::LongString("".into())), r#"<<"">>"#);
        assert_eq!(
            term(AMQPValue::LongString("a\"b\\c\n".into())),
            r#"<<"a\"b\\c\n">>"#
        );
        assert_eq!(
            term(AMQPValue::LongString("héllo".into())),
            r#"<<"héllo"/utf8>>"#
        );
        assert_eq!(
            term(AMQPValue::ByteArray(vec![0u8, 1, 255].into())),
            "<<0,1,255>>"
        );
    }

    #[test]
    fn prints_numbers_like_erlang() {
        assert_eq!(term(AMQPValue::LongInt(-5)), "-5");
        assert_eq!(term(AMQPValue::Double(1.5)), "1.5");
        assert_eq!(term(AMQPValue::Double(1.0)), "1.0");
        assert_eq!(term(AMQPValue::Double(100.0)), "100.0");
        assert_eq!(term(AMQPValue::Double(1000.0)), "1.0e3");
        assert_eq!(term(AMQPValue::Double(1.0e20)), "1.0e20");
        assert_eq!(term(AMQPValue::Double(0.001)), "0.001");
        assert_eq!(term(AMQPValue::Double(1.5e-7)), "1.5e-7");
        assert_eq!(term(AMQPValue::Float(0.5)), "0.5");
        assert_eq!(
            term(AMQPValue::DecimalValue(DecimalValue {
                scale: 2,
                value: 150
            })),
            "{2,150}"
        );
        assert_eq!(term(AMQPValue::Boolean(true)), "true");
        assert_eq!(term(AMQPValue::Void), "undefined");
    }

    #[test]
    fn prints_tables_and_arrays_with_type_tags() {
        let mut t = FieldTable::default();
        t.insert(ShortString::from("k"), AMQPValue::LongString("v".into()));
        t.insert(ShortString::from("n"), AMQPValue::LongInt(1));
        assert_eq!(
            term(AMQPValue::FieldTable(t)),
            r#"[{<<"k">>,longstr,<<"v">>},{<<"n">>,signedint,1}]"#
        );
        let a = FieldArray::from(vec![AMQPValue::Boolean(false), AMQPValue::Void]);
        assert_eq!(
            term(AMQPValue::FieldArray(a)),
            "[{bool,false},{void,undefined}]"
        );
    }

    #[test]
    fn nested_equality_is_typed() {
        let eq = |a, b| typed_eq(&a, &b, Floats::ByValue);
        assert!(eq(AMQPValue::LongInt(1), AMQPValue::LongInt(1)));
        assert!(!eq(AMQPValue::LongInt(1), AMQPValue::LongLongInt(1)));
        assert!(eq(
            AMQPValue::ShortString("a".into()),
            AMQPValue::LongString("a".into())
        ));
        assert!(!eq(
            AMQPValue::ByteArray(b"a".to_vec().into()),
            AMQPValue::LongString("a".into())
        ));
        assert!(!eq(
            AMQPValue::Double(f64::NAN),
            AMQPValue::Double(f64::NAN)
        ));
        assert!(typed_eq(
            &AMQPValue::Double(f64::NAN),
            &AMQPValue::Double(f64::NAN),
            Floats::ByBits
        ));
    }
}
