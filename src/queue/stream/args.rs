//! A stream's declare arguments and a stream consumer's arguments, with
//! RabbitMQ's refusals and texts (`docs/streams-rabbitmq-behaviour.md`).

use warren_codec::types::{AMQPValue, FieldTable};
use warren_exchanges::{integer, type_name};

use super::super::args::{non_negative, string};
use crate::durable::records::wall_clock_ms;
use crate::error::AmqpError;

/// Declare arguments RabbitMQ refuses on a stream, whatever their value.
const REFUSED: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-dead-letter-strategy",
    "x-max-length",
    "x-max-priority",
    "x-overflow",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-queue-mode",
    "x-queue-version",
    "x-quorum-initial-group-size",
    "x-queue-master-locator",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
];

/// The arguments a redeclare of a stream must repeat, in the order they are
/// compared (RabbitMQ names `x-max-length-bytes` before `x-queue-type`).
pub const EQUIVALENCE_KEYS: &[&str] = &[
    "x-max-length-bytes",
    "x-queue-type",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// A stream's `x-` arguments, typed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamArgs {
    /// `x-max-length-bytes`: retention by size.
    pub max_length_bytes: Option<u64>,
    /// `x-max-age` in milliseconds: retention by age.
    pub max_age_ms: Option<u64>,
    /// `x-stream-max-segment-size-bytes`.
    pub max_segment_size: Option<u64>,
    /// `x-stream-filter-size-bytes` (16 to 255).
    pub filter_size_bytes: Option<u8>,
}

impl StreamArgs {
    /// Parses a stream's declare arguments; `queue` is `queue 'q' in vhost '/'`.
    pub fn parse(table: &FieldTable, queue: &str) -> Result<Self, AmqpError> {
        let get = |key: &str| table.inner().get(key);
        if let Some(key) = REFUSED.iter().find(|k| get(k).is_some()) {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg '{key}' for {queue} of queue type rabbit_stream_queue"
            )));
        }
        let invalid = |key: &str, why: String| {
            AmqpError::precondition_failed(format!("invalid arg '{key}' for {queue}: {why}"))
        };
        let mut args = StreamArgs::default();
        if let Some(v) = get("x-max-length-bytes") {
            args.max_length_bytes =
                Some(non_negative(v).map_err(|e| invalid("x-max-length-bytes", e))?);
        }
        if let Some(v) = get("x-max-age") {
            let text = match v {
                AMQPValue::LongString(_) | AMQPValue::ShortString(_) => {
                    string(v).map_err(|e| invalid("x-max-age", e))?
                }
                other => {
                    return Err(invalid(
                        "x-max-age",
                        format!("{{unacceptable_type,{}}}", type_name(other)),
                    ));
                }
            };
            args.max_age_ms = Some(
                duration_ms(&text).ok_or_else(|| invalid("x-max-age", "invalid_max_age".into()))?,
            );
        }
        if let Some(v) = get("x-stream-max-segment-size-bytes") {
            args.max_segment_size =
                Some(non_negative(v).map_err(|e| invalid("x-stream-max-segment-size-bytes", e))?);
        }
        if let Some(v) = get("x-initial-cluster-size")
            && non_negative(v).map_err(|e| invalid("x-initial-cluster-size", e))? == 0
        {
            return Err(invalid("x-initial-cluster-size", "{value_zero,0}".into()));
        }
        if let Some(v) = get("x-queue-leader-locator") {
            let locator = string(v).map_err(|e| invalid("x-queue-leader-locator", e))?;
            if !matches!(
                locator.as_str(),
                "client-local" | "balanced" | "least-leaders" | "random"
            ) {
                return Err(invalid(
                    "x-queue-leader-locator",
                    "invalid_queue_locator_arg".into(),
                ));
            }
        }
        if let Some(v) = get("x-stream-filter-size-bytes") {
            let size = non_negative(v).map_err(|e| invalid("x-stream-filter-size-bytes", e))?;
            match u8::try_from(size) {
                Ok(size) if size >= 16 => args.filter_size_bytes = Some(size),
                _ => {
                    return Err(invalid(
                        "x-stream-filter-size-bytes",
                        format!("{{value_out_of_range,{size}}}"),
                    ));
                }
            }
        }
        Ok(args)
    }
}

/// RabbitMQ's duration syntax (`x-max-age`, an interval `x-stream-offset`):
/// a positive integer followed by exactly one of `Y` (365 days), `M` (30
/// days), `D`, `h`, `m`, `s`; in milliseconds.
pub fn duration_ms(text: &str) -> Option<u64> {
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    if n == 0 {
        return None;
    }
    let unit_ms: u64 = match unit {
        'Y' => 365 * 86_400_000,
        'M' => 30 * 86_400_000,
        'D' => 86_400_000,
        'h' => 3_600_000,
        'm' => 60_000,
        's' => 1000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

/// Where a stream consumer starts (`x-stream-offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// `first`: the first message still in the stream.
    First,
    /// `last`: the start of the last committed chunk.
    Last,
    /// `next`, or no argument: only messages published from now on.
    #[default]
    Next,
    /// A numeric offset (clamped to the stream's range).
    Offset(u64),
    /// A timestamp or an interval: the first chunk at or after this wall
    /// clock time (ms since the epoch).
    Timestamp(u64),
}

/// A stream consumer's arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumeArgs {
    /// `x-stream-offset`.
    pub start: StartAt,
    /// `x-stream-filter`: the filter values wanted (empty: no filter).
    pub filter: Vec<Vec<u8>>,
    /// `x-stream-match-unfiltered`.
    pub match_unfiltered: bool,
    /// Warren's `x-stream-consumer-name`: the broker keeps this consumer's
    /// offset and a consumer of the same name resumes from it.
    pub name: Option<String>,
}

impl ConsumeArgs {
    /// Parses basic.consume's arguments on stream `queue` (`queue 'q' in vhost '/'`).
    pub fn parse(table: &FieldTable, queue: &str) -> Result<Self, AmqpError> {
        let get = |key: &str| table.inner().get(key);
        let invalid = |key: &str, why: String| {
            AmqpError::precondition_failed(format!("invalid arg '{key}' for {queue}: {why}"))
        };
        if get("x-priority").is_some() {
            return Err(AmqpError::precondition_failed(format!(
                "invalid arg 'x-priority' for {queue} of queue type rabbit_stream_queue"
            )));
        }
        let mut args = ConsumeArgs::default();
        if let Some(v) = get("x-stream-offset") {
            args.start = start_at(v).ok_or_else(|| {
                invalid(
                    "x-stream-offset",
                    format!("{{invalid_stream_offset_arg,{}}}", erlang_term(v)),
                )
            })?;
        }
        match get("x-stream-filter") {
            None => {}
            Some(AMQPValue::FieldArray(values)) => {
                for v in values.as_slice() {
                    args.filter.push(filter_value(v).ok_or_else(|| {
                        invalid(
                            "x-stream-filter",
                            format!("{{unacceptable_type,{}}}", type_name(v)),
                        )
                    })?);
                }
            }
            Some(v) => args.filter.push(filter_value(v).ok_or_else(|| {
                invalid(
                    "x-stream-filter",
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                )
            })?),
        }
        match get("x-stream-match-unfiltered") {
            None => {}
            Some(AMQPValue::Boolean(b)) => args.match_unfiltered = *b,
            Some(v) => {
                return Err(invalid(
                    "x-stream-match-unfiltered",
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                ));
            }
        }
        if let Some(v) = get("x-stream-consumer-name") {
            let name = string(v).map_err(|e| invalid("x-stream-consumer-name", e))?;
            if name.is_empty() || name.len() > 255 {
                return Err(invalid(
                    "x-stream-consumer-name",
                    "\"a name of 1 to 255 bytes\"".into(),
                ));
            }
            args.name = Some(name);
        }
        Ok(args)
    }
}

/// A filter value (`x-stream-filter`, `x-stream-filter-value`): a string.
pub fn filter_value(v: &AMQPValue) -> Option<Vec<u8>> {
    match v {
        AMQPValue::LongString(s) => Some(s.as_bytes().to_vec()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes().to_vec()),
        _ => None,
    }
}

fn start_at(v: &AMQPValue) -> Option<StartAt> {
    match v {
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => {
            let text = string(v).ok()?;
            match text.as_str() {
                "first" => Some(StartAt::First),
                "last" => Some(StartAt::Last),
                "next" => Some(StartAt::Next),
                interval => {
                    let ms = duration_ms(interval)?;
                    Some(StartAt::Timestamp(wall_clock_ms().saturating_sub(ms)))
                }
            }
        }
        AMQPValue::Timestamp(seconds) => Some(StartAt::Timestamp(seconds.saturating_mul(1000))),
        other => {
            // A negative offset starts at the beginning, as RabbitMQ.
            let n = integer(other)?;
            Some(StartAt::Offset(u64::try_from(n.max(0)).unwrap_or(u64::MAX)))
        }
    }
}

/// A value as RabbitMQ prints it in `invalid_stream_offset_arg`:
/// `{longstr,<<"0s">>}`.
fn erlang_term(v: &AMQPValue) -> String {
    let shown = match v {
        AMQPValue::LongString(_) | AMQPValue::ShortString(_) => {
            format!("<<\"{}\">>", string(v).unwrap_or_default())
        }
        AMQPValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    };
    format!("{{{},{shown}}}", type_name(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    fn text(s: &str) -> AMQPValue {
        AMQPValue::LongString(s.into())
    }

    #[test]
    fn max_age_takes_rabbitmq_units_only() {
        assert_eq!(duration_ms("7D"), Some(7 * 86_400_000));
        assert_eq!(duration_ms("1Y"), Some(365 * 86_400_000));
        assert_eq!(duration_ms("1M"), Some(30 * 86_400_000));
        assert_eq!(duration_ms("30s"), Some(30_000));
        for bad in [
            "1h30m", "0s", "1d", "1H", "1y", "10", "1 h", "1.5h", "1W", "", "abc", "-1h",
        ] {
            assert_eq!(duration_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn refusals_read_as_rabbitmq() {
        let q = "queue 's' in vhost '/'";
        let e = StreamArgs::parse(&table(&[("x-message-ttl", AMQPValue::LongInt(5))]), q)
            .expect_err("refused");
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 's' in vhost '/' of queue type rabbit_stream_queue"
        );
        let e = StreamArgs::parse(&table(&[("x-max-age", text("1h30m"))]), q).expect_err("bad");
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - invalid arg 'x-max-age' for queue 's' in vhost '/': invalid_max_age"
        );
        let e = StreamArgs::parse(&table(&[("x-max-age", AMQPValue::LongInt(10))]), q)
            .expect_err("bad");
        assert!(e.reply_text().ends_with("{unacceptable_type,signedint}"));
        let e = StreamArgs::parse(&table(&[("x-max-length-bytes", AMQPValue::LongInt(-1))]), q)
            .expect_err("bad");
        assert!(e.reply_text().ends_with("{value_negative,-1}"));
        let ok = StreamArgs::parse(
            &table(&[
                ("x-max-length-bytes", AMQPValue::LongInt(1000)),
                ("x-max-age", text("1D")),
                ("x-stream-max-segment-size-bytes", AMQPValue::LongInt(500)),
                ("x-foo", AMQPValue::LongInt(1)),
            ]),
            q,
        )
        .expect("ok");
        assert_eq!(ok.max_age_ms, Some(86_400_000));
        assert_eq!(ok.max_segment_size, Some(500));
    }

    #[test]
    fn offsets_parse_as_rabbitmq() {
        let q = "queue 'c1' in vhost '/'";
        let parse = |v: AMQPValue| ConsumeArgs::parse(&table(&[("x-stream-offset", v)]), q);
        assert_eq!(parse(text("first")).expect("ok").start, StartAt::First);
        assert_eq!(parse(text("last")).expect("ok").start, StartAt::Last);
        assert_eq!(
            parse(AMQPValue::LongInt(3)).expect("ok").start,
            StartAt::Offset(3)
        );
        assert_eq!(
            parse(AMQPValue::LongInt(-1)).expect("ok").start,
            StartAt::Offset(0)
        );
        assert_eq!(
            parse(AMQPValue::Timestamp(1000)).expect("ok").start,
            StartAt::Timestamp(1_000_000)
        );
        assert!(matches!(
            parse(text("1h")).expect("ok").start,
            StartAt::Timestamp(_)
        ));
        let e = parse(text("0s")).expect_err("bad");
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 'c1' in vhost '/': {invalid_stream_offset_arg,{longstr,<<\"0s\">>}}"
        );
        assert!(parse(AMQPValue::Boolean(true)).is_err());
        let e = ConsumeArgs::parse(&table(&[("x-priority", AMQPValue::LongInt(1))]), q)
            .expect_err("refused");
        assert!(
            e.reply_text()
                .ends_with("of queue type rabbit_stream_queue")
        );
    }
}
