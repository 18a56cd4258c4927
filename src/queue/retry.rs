//! Delayed retries: a delivery that comes back unsettled (rejected or nacked
//! with requeue, or left unacked by a channel that closed) waits out a backoff
//! before it is ready again, instead of coming straight back.
//!
//! The arguments are RabbitMQ 4.3's (`x-delayed-retry-type`, `-min`, `-max`)
//! and LavinMQ's (`x-delayed-retry-min`, `-max`, `-multiplier`), with
//! Warren's `x-delayed-retry-jitter` (`full` or `equal`, so that the retries
//! of a failed batch spread out); policies set the same keys without `x-`.
//! The README's "Retries with backoff" says how they combine.
//!
//! A waiting message sits outside the ready list, ordered by due time, so it
//! blocks nothing behind it; the queue's timer task (`ttl.rs`) wakes at the
//! first due time and puts it back at its original place. A persistent
//! message in a durable queue has its record rewritten with the due time and
//! its attempt count (`records::Retry`), so a restart finds it waiting still.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use warren_codec::types::{AMQPValue, FieldTable};
use warren_exchanges::{integer, type_name};

use super::args::QueueArgs;
use super::ready::Entry;
use super::waiting::Parked;
use super::{Queue, QueueState, SeqId};
use crate::durable::records::wall_clock_ms;
use crate::error::AmqpError;
use crate::message::Message;
use crate::policy::QueuePolicy;

/// The delivery limit of a queue with delayed retries and no `x-delivery-limit`
/// (LavinMQ's, and RabbitMQ 4's quorum queue default).
pub const DEFAULT_RETRY_DELIVERY_LIMIT: u64 = 20;

/// The longest single retry delay: LavinMQ's cap, the u32 millisecond range.
const MAX_DELAY_MS: u64 = u32::MAX as u64;

/// The header that holds a published message until a moment (ms since the
/// epoch), as RabbitMQ 4.4's quorum queues read it.
pub const DELIVERY_TIME_HEADER: &str = "x-opt-delivery-time";

/// The header that tells a consumer how often the message came back.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";

/// The longest a published message is held: ten years, as the longest TTL.
const MAX_HOLD_MS: u64 = 315_360_000_000;

/// How long a message published with `x-opt-delivery-time` waits, if its
/// time is still ahead: an integer of any width in milliseconds since the
/// epoch, or a timestamp (seconds). Other types, past times: no wait.
pub fn delivery_delay_ms(message: &Message) -> Option<u64> {
    let headers = message.properties.headers().as_ref()?;
    let at = match headers.inner().get(DELIVERY_TIME_HEADER)? {
        AMQPValue::Timestamp(seconds) => i128::from(*seconds) * 1000,
        other => integer(other)?,
    };
    let wait = at - i128::from(wall_clock_ms());
    (wait > 0).then(|| u64::try_from(wait).unwrap_or(u64::MAX).min(MAX_HOLD_MS))
}

/// The message as delivered after `returns` returns: with `x-delivery-count`
/// where the queue counts deliveries (a copy sharing the body), else as is.
pub(super) fn with_delivery_count(
    args: &QueueArgs,
    returns: u64,
    message: Arc<Message>,
) -> Arc<Message> {
    if returns == 0 || !args.counts_deliveries() {
        return message;
    }
    let count = i64::try_from(returns).unwrap_or(i64::MAX);
    Arc::new(message.with_header(DELIVERY_COUNT_HEADER, AMQPValue::LongLongInt(count)))
}

/// Why a delivery came back to its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// basic.reject with requeue, or its channel or connection closed with it
    /// unacked: RabbitMQ counts these as failed deliveries.
    Failed,
    /// basic.nack with requeue, basic.recover, or the API's get with requeue:
    /// RabbitMQ's "returned".
    Returned,
}

/// Which returns wait (`x-delayed-retry-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOn {
    /// Every return (`all`; LavinMQ's behaviour).
    All,
    /// Only [`Return::Failed`] (`failed`).
    Failed,
    /// Only [`Return::Returned`] (`returned`).
    Returned,
}

/// How the delay is randomised (`x-delayed-retry-jitter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// The computed delay exactly.
    #[default]
    None,
    /// Uniform between 0 and the computed delay.
    Full,
    /// Half the computed delay, plus uniform up to the other half.
    Equal,
}

/// A queue's delayed-retry settings, parsed and in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryArgs {
    /// Which returns wait.
    pub on: RetryOn,
    /// The first retry's delay in milliseconds.
    pub min_ms: u64,
    /// The cap on one delay (`None`: only the u32 range).
    pub max_ms: Option<u64>,
    /// `None`: linear (min × attempt); 1: constant; n ≥ 2: min × n^(attempt-1).
    pub multiplier: Option<u64>,
    /// Randomisation of each delay.
    pub jitter: Jitter,
}

/// The retry settings as given, before they are resolved (from declare
/// arguments or a policy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetrySettings {
    /// `delayed-retry-type`: `Some(None)` for `disabled`.
    pub on: Option<Option<RetryOn>>,
    /// `delayed-retry-min`.
    pub min_ms: Option<u64>,
    /// `delayed-retry-max`.
    pub max_ms: Option<u64>,
    /// `delayed-retry-multiplier`.
    pub multiplier: Option<u64>,
    /// `delayed-retry-jitter`.
    pub jitter: Option<Jitter>,
}

impl RetrySettings {
    /// The `x-delayed-retry-*` declare arguments; `queue` names the queue in
    /// the 406 for a bad one.
    pub fn from_arguments(table: &FieldTable, queue: &str) -> Result<Self, AmqpError> {
        let invalid = |key: &str, why: String| {
            AmqpError::precondition_failed(format!("invalid arg '{key}' for {queue}: {why}"))
        };
        let get = |key: &str| table.inner().get(key);
        let mut settings = RetrySettings::default();
        if let Some(v) = get("x-delayed-retry-type") {
            let name = text(v).ok_or_else(|| {
                invalid(
                    "x-delayed-retry-type",
                    format!("{{unacceptable_type,{}}}", type_name(v)),
                )
            })?;
            settings.on = Some(parse_on(&name).ok_or_else(|| {
                invalid(
                    "x-delayed-retry-type",
                    format!("\"expected disabled, all, failed or returned, got '{name}'\""),
                )
            })?);
        }
        for (key, slot, least) in [
            ("x-delayed-retry-min", &mut settings.min_ms, 1),
            ("x-delayed-retry-max", &mut settings.max_ms, 1),
            ("x-delayed-retry-multiplier", &mut settings.multiplier, 1),
        ] {
            if let Some(v) = get(key) {
                let n = integer(v).ok_or_else(|| {
                    invalid(key, format!("\"expected integer, got {}\"", type_name(v)))
                })?;
                if n < least {
                    return Err(invalid(key, format!("{{value_too_small,{n}}}")));
                }
                *slot = Some(u64::try_from(n).unwrap_or(u64::MAX));
            }
        }
        if let Some(v) = get("x-delayed-retry-jitter") {
            let name = text(v).unwrap_or_default();
            settings.jitter = Some(parse_jitter(&name).ok_or_else(|| {
                invalid(
                    "x-delayed-retry-jitter",
                    format!("\"expected none, full or equal, got '{name}'\""),
                )
            })?);
        }
        Ok(settings)
    }

    /// A policy's `delayed-retry-*` keys (validated when it was set).
    pub fn from_policy(policy: &QueuePolicy) -> Self {
        RetrySettings {
            on: policy.delayed_retry_type.as_deref().and_then(parse_on),
            min_ms: policy.delayed_retry_min,
            max_ms: policy.delayed_retry_max,
            multiplier: policy.delayed_retry_multiplier,
            jitter: policy
                .delayed_retry_jitter
                .as_deref()
                .and_then(parse_jitter),
        }
    }

    /// The settings in force under a policy's `delayed-retry-*` keys, as
    /// RabbitMQ resolves them for quorum queues: the policy's type wins, the
    /// lower minimum and maximum win; Warren's multiplier and jitter are the
    /// queue's own where it sets them.
    pub fn with_policy(&self, policy: &RetrySettings) -> RetrySettings {
        let lower = |own: Option<u64>, policy: Option<u64>| match (own, policy) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        RetrySettings {
            on: policy.on.or(self.on),
            min_ms: lower(self.min_ms, policy.min_ms),
            max_ms: lower(self.max_ms, policy.max_ms),
            multiplier: self.multiplier.or(policy.multiplier),
            jitter: self.jitter.or(policy.jitter),
        }
    }

    /// Resolves the settings: enabled by a type other than `disabled` (then
    /// the maximum defaults to the minimum, as in RabbitMQ), or by a minimum
    /// alone (LavinMQ's form: every return waits, no cap but the u32 range).
    /// A type without a minimum is off, as RabbitMQ leaves it.
    pub fn resolve(&self) -> Option<RetryArgs> {
        let min_ms = self.min_ms?;
        let (on, max_ms) = match self.on {
            Some(None) => return None,
            Some(Some(on)) => (on, Some(self.max_ms.unwrap_or(min_ms))),
            None => (RetryOn::All, self.max_ms),
        };
        Some(RetryArgs {
            on,
            min_ms,
            max_ms,
            multiplier: self.multiplier,
            jitter: self.jitter.unwrap_or_default(),
        })
    }
}

/// `disabled`, `all`, `failed`, `returned`.
pub fn parse_on(name: &str) -> Option<Option<RetryOn>> {
    match name {
        "disabled" => Some(None),
        "all" => Some(Some(RetryOn::All)),
        "failed" => Some(Some(RetryOn::Failed)),
        "returned" => Some(Some(RetryOn::Returned)),
        _ => None,
    }
}

/// `none`, `full`, `equal`.
pub fn parse_jitter(name: &str) -> Option<Jitter> {
    match name {
        "none" => Some(Jitter::None),
        "full" => Some(Jitter::Full),
        "equal" => Some(Jitter::Equal),
        _ => None,
    }
}

fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

impl RetryArgs {
    /// Whether a return for `why` waits.
    pub fn applies(&self, why: Return) -> bool {
        match self.on {
            RetryOn::All => true,
            RetryOn::Failed => why == Return::Failed,
            RetryOn::Returned => why == Return::Returned,
        }
    }

    /// The backoff before the `attempt`th retry (1 for the first), capped,
    /// without jitter.
    pub fn backoff_ms(&self, attempt: u64) -> u64 {
        let attempt = attempt.max(1);
        let base = match self.multiplier {
            None => self.min_ms.saturating_mul(attempt),
            Some(1) => self.min_ms,
            Some(m) => {
                let exponent = u32::try_from(attempt - 1).unwrap_or(u32::MAX);
                self.min_ms.saturating_mul(m.saturating_pow(exponent))
            }
        };
        base.min(self.max_ms.unwrap_or(MAX_DELAY_MS))
            .min(MAX_DELAY_MS)
    }

    /// The delay before the `attempt`th retry, with jitter drawn from
    /// `random`, a number in [0, 1).
    pub fn delay_ms(&self, attempt: u64, random: f64) -> u64 {
        let backoff = self.backoff_ms(attempt);
        let spread = |range: u64| ((range as f64) * random.clamp(0.0, 1.0)) as u64;
        match self.jitter {
            Jitter::None => backoff,
            Jitter::Full => spread(backoff).min(backoff),
            Jitter::Equal => {
                let half = backoff / 2;
                half + spread(backoff - half).min(backoff - half)
            }
        }
    }
}

impl Queue {
    /// A delivery came back for `why`: if the queue's retries apply, it
    /// waits out its backoff (and `None` is returned); else it is handed back
    /// to go straight to the ready list.
    pub(super) fn retry_later(
        &self,
        st: &mut QueueState,
        seq: SeqId,
        entry: Entry,
        why: Return,
        now: Instant,
    ) -> Option<Entry> {
        let Some(retry) = st.args.retry.filter(|r| r.applies(why)) else {
            return Some(entry);
        };
        let delay = retry.delay_ms(entry.returns, fastrand::f64());
        if delay == 0 {
            return Some(entry);
        }
        let due = now + Duration::from_millis(delay);
        st.ready.store_waiting(seq, &entry, delay);
        st.waiting.insert(due, seq, entry);
        None
    }

    /// Puts the messages due at `now` back at their places in the ready list
    /// (one kept on disk only is read back).
    pub(super) fn release_due(&self, st: &mut QueueState, now: Instant) {
        if st.waiting.len() == 0 {
            return;
        }
        for (seq, parked) in st.waiting.take_due(now) {
            let entry = match parked {
                Parked::Memory(entry) => entry,
                Parked::Stored(meta) => match st.ready.load(seq, meta) {
                    Some(entry) => entry,
                    None => {
                        tracing::error!(queue = %self.name, seq, "a waiting message is missing from the store");
                        continue;
                    }
                },
            };
            st.ready.insert(seq, entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(min: u64, max: Option<u64>, multiplier: Option<u64>, jitter: Jitter) -> RetryArgs {
        RetryArgs {
            on: RetryOn::All,
            min_ms: min,
            max_ms: max,
            multiplier,
            jitter,
        }
    }

    #[test]
    fn backoff_is_linear_constant_or_exponential_and_capped() {
        let linear = args(100, None, None, Jitter::None);
        assert_eq!(
            (1..=4).map(|n| linear.backoff_ms(n)).collect::<Vec<_>>(),
            [100, 200, 300, 400]
        );
        let constant = args(100, None, Some(1), Jitter::None);
        assert_eq!(constant.backoff_ms(7), 100);
        let exponential = args(100, Some(1000), Some(2), Jitter::None);
        assert_eq!(
            (1..=6)
                .map(|n| exponential.backoff_ms(n))
                .collect::<Vec<_>>(),
            [100, 200, 400, 800, 1000, 1000]
        );
        let huge = args(u64::MAX / 2, None, Some(10), Jitter::None);
        assert_eq!(huge.backoff_ms(100), MAX_DELAY_MS);
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        let full = args(1000, None, Some(1), Jitter::Full);
        assert_eq!(full.delay_ms(1, 0.0), 0);
        assert_eq!(full.delay_ms(1, 0.5), 500);
        assert!(full.delay_ms(1, 0.999_999) <= 1000);
        let equal = args(1000, None, Some(1), Jitter::Equal);
        assert_eq!(equal.delay_ms(1, 0.0), 500);
        assert!(equal.delay_ms(1, 0.999_999) <= 1000);
    }

    #[test]
    fn rabbitmq_and_lavinmq_forms_resolve() {
        let rabbit = RetrySettings {
            on: Some(Some(RetryOn::Failed)),
            min_ms: Some(1000),
            ..RetrySettings::default()
        };
        let resolved = rabbit.resolve().expect("enabled");
        assert_eq!(
            (resolved.on, resolved.max_ms),
            (RetryOn::Failed, Some(1000))
        );
        let lavin = RetrySettings {
            min_ms: Some(50),
            ..RetrySettings::default()
        };
        let resolved = lavin.resolve().expect("enabled");
        assert_eq!((resolved.on, resolved.max_ms), (RetryOn::All, None));
        let disabled = RetrySettings {
            on: Some(None),
            min_ms: Some(50),
            ..RetrySettings::default()
        };
        assert_eq!(disabled.resolve(), None);
        assert_eq!(RetrySettings::default().resolve(), None);
        assert!(RetryArgs::applies(
            &rabbit.resolve().expect("on"),
            Return::Failed
        ));
        assert!(!RetryArgs::applies(
            &rabbit.resolve().expect("on"),
            Return::Returned
        ));
    }
}
