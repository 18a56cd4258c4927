//! Retry mode (Warren's delayed retries): a durable queue declared with
//! `x-delayed-retry-min` 300, `-multiplier` 2, `-max` 3000 (and the default
//! delivery limit, 20); N persistent messages published and all confirmed;
//! one consumer with manual acks and a prefetch rejects (requeue) the first
//! delivery of every message and acks the next one. Once a seeded number of
//! rejects (about half the messages) has been sent, many retries wait out
//! their 300 ms backoff, kept in the store with their due time; the broker is
//! SIGKILLed, restarted on the same data directory, and the consumer goes on
//! until every message has been acked (bounded).
//!
//! The checks: every message is acked in the end (none lost); none is
//! delivered again after its ack was followed by a `basic.qos` round trip
//! (acks not followed by one may come back: counted); a message whose first
//! delivery was rejected before the kill, the reject followed by a round trip,
//! comes back after the restart flagged redelivered with an
//! `x-delivery-count` of 1 or more (the retry state survived the crash); and no message comes back
//! before its reject time plus the 300 ms backoff (less a small tolerance).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};

use crate::amqp::{self, Rng, within};
use crate::broker::{Broker, describe_status};
use crate::consume::subscribe;
use crate::round::{Round, Verdict, say};

mod check;
use check::check;

/// The first retry's delay (`x-delayed-retry-min`), in milliseconds.
const MIN_MS: u64 = 300;
/// `x-delayed-retry-multiplier`.
const MULTIPLIER: u64 = 2;
/// `x-delayed-retry-max`, in milliseconds.
const MAX_MS: u64 = 3000;
/// How much earlier than its due time a retry may arrive (timer granularity).
const TOLERANCE: Duration = Duration::from_millis(20);
/// Settlements (acks and rejects) written before a synchronous round trip
/// (basic.qos) on the same channel: when its reply arrives, the broker has
/// processed them.
const SYNC_EVERY: usize = 32;
/// After the restart: how long, past the longest backoff, the consumer may
/// take to see every message acked.
const MARGIN: Duration = Duration::from_secs(15);
/// Before the kill, a consumer that receives nothing for this long gives up.
const IDLE: Duration = Duration::from_secs(10);
/// Before the kill, the rejects are spread over this long (twice the first
/// backoff), so that the first ones are retried and acked before the kill
/// while the later ones still wait.
const REJECT_PACE: Duration = Duration::from_millis(2 * MIN_MS);

/// Where a message stands for the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Never delivered to this client.
    Queued,
    /// Delivered; no settlement sent (the channel was gone).
    Delivered,
    /// Its first delivery was rejected (requeue); not delivered since.
    Rejected,
    /// Its ack was handed to lapin; whether it reached the broker is unknown.
    AckSent,
    /// Its ack was followed by a basic.qos round trip: the broker processed it.
    AckSynced,
}

/// The consumer's record of one message.
#[derive(Clone, Debug)]
struct Msg {
    state: State,
    /// When its first delivery was rejected.
    rejected_at: Option<Instant>,
    /// The reject was followed by a basic.qos round trip (or the message came
    /// back on the same channel): the broker processed it.
    reject_known: bool,
    /// The reject was sent before the kill and known processed before it.
    rejected_before_kill: bool,
    /// The reject was sent after the restart.
    rejected_after_restart: bool,
    /// Acked before the kill and not since: Some(whether a round trip followed
    /// the ack).
    acked_before_kill: Option<bool>,
    /// Deliveries after the restart.
    after: u32,
    /// The first delivery after the restart: redelivered flag and
    /// `x-delivery-count` (Err: the header's type when it is not an integer).
    first_after: Option<(bool, Result<Option<i64>, String>)>,
}

/// Counters and findings of both consuming phases.
#[derive(Default)]
struct Seen {
    deliveries: u64,
    rejects: u64,
    acks: u64,
    foreign: u64,
    /// Deliveries of a message whose ack had been followed by a round trip
    /// while the broker stayed up: failures.
    after_synced_ack: Vec<u64>,
    /// Deliveries after the restart of a message whose ack had been followed
    /// by a round trip before the kill: counted (as in consume mode, a crash
    /// may lose the latest acks).
    after_synced_ack_across: u64,
    /// Deliveries of a message whose ack may not have reached the broker.
    after_sent_ack: u64,
    /// Retries that came before reject time + backoff - tolerance: (seq, ms early).
    early: Vec<(u64, u128)>,
    /// Retries before the kill: how many, how many flagged redelivered, how
    /// many with `x-delivery-count` >= 1.
    retries_before: u64,
    retries_before_flagged: u64,
    retries_before_counted: u64,
}

/// The consumer over one connection (before the kill, then after the restart).
struct Phase<'a> {
    ch: &'a Channel,
    prefetch: u16,
    after_restart: bool,
    unsynced_acks: Vec<u64>,
    unsynced_rejects: Vec<u64>,
}

/// `x-delivery-count` of a delivery: `Ok(None)` when absent, `Err` naming the
/// type when it is not an integer.
fn delivery_count(d: &Delivery) -> Result<Option<i64>, String> {
    let Some(headers) = d.properties.headers().as_ref() else {
        return Ok(None);
    };
    match headers.inner().get("x-delivery-count") {
        None => Ok(None),
        Some(AMQPValue::LongLongInt(n)) => Ok(Some(*n)),
        Some(AMQPValue::LongInt(n)) => Ok(Some(i64::from(*n))),
        Some(AMQPValue::LongUInt(n)) => Ok(Some(i64::from(*n))),
        Some(AMQPValue::ShortInt(n)) => Ok(Some(i64::from(*n))),
        Some(AMQPValue::ShortUInt(n)) => Ok(Some(i64::from(*n))),
        Some(AMQPValue::ShortShortInt(n)) => Ok(Some(i64::from(*n))),
        Some(AMQPValue::ShortShortUInt(n)) => Ok(Some(i64::from(*n))),
        Some(other) => Err(format!("{other:?}")),
    }
}

impl Phase<'_> {
    /// Handles one delivery: records it, rejects a first delivery, acks any
    /// later one. Err: why consuming must stop.
    async fn handle(
        &mut self,
        d: Delivery,
        msgs: &mut [Msg],
        seen: &mut Seen,
    ) -> Result<(), String> {
        let now = Instant::now();
        let Some(seq) = amqp::parse(&d.data).filter(|s| (*s as usize) < msgs.len()) else {
            seen.foreign += 1;
            return Ok(());
        };
        seen.deliveries += 1;
        let m = &mut msgs[seq as usize];
        if self.after_restart {
            m.after += 1;
            if m.first_after.is_none() {
                m.first_after = Some((d.redelivered, delivery_count(&d)));
            }
        }
        match m.state {
            State::AckSynced if m.acked_before_kill.is_some() => seen.after_synced_ack_across += 1,
            State::AckSynced => seen.after_synced_ack.push(seq),
            State::AckSent => seen.after_sent_ack += 1,
            State::Rejected => {
                // The retry came back on the connection that sent the reject:
                // the reject was processed.
                if !self.after_restart || m.rejected_after_restart {
                    m.reject_known = true;
                }
                if !self.after_restart {
                    seen.retries_before += 1;
                    seen.retries_before_flagged += u64::from(d.redelivered);
                    seen.retries_before_counted +=
                        u64::from(matches!(delivery_count(&d), Ok(Some(c)) if c >= 1));
                }
            }
            State::Queued | State::Delivered => {}
        }
        // A retry must not come before its due time, when the reject is known
        // to have reached the broker (before the kill: it came back on the
        // same channel; after the restart: a round trip followed it before the
        // kill, or it was sent after the restart).
        if m.state == State::Rejected
            && m.reject_known
            && let Some(at) = m.rejected_at
        {
            let due = at + Duration::from_millis(MIN_MS);
            if now + TOLERANCE < due {
                seen.early.push((seq, (due - now).as_millis()));
            }
        }
        if m.state == State::Queued {
            m.state = State::Delivered;
            let reject = d.acker.reject(BasicRejectOptions { requeue: true });
            match tokio::time::timeout(Duration::from_secs(2), reject).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err("a reject was refused: the channel is closed".into()),
                Ok(Err(e)) => return Err(format!("basic.reject: {e}")),
                Err(_) => return Err("basic.reject: not written within 2 s".into()),
            }
            m.state = State::Rejected;
            m.rejected_at = Some(now);
            m.reject_known = false;
            m.rejected_after_restart = self.after_restart;
            seen.rejects += 1;
            self.unsynced_rejects.push(seq);
        } else {
            m.state = State::Delivered;
            m.acked_before_kill = None;
            let ack = d.acker.ack(BasicAckOptions::default());
            match tokio::time::timeout(Duration::from_secs(2), ack).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return Err("an ack was refused: the channel is closed".into()),
                Ok(Err(e)) => {
                    m.state = State::AckSent;
                    return Err(format!("basic.ack: {e}"));
                }
                Err(_) => {
                    m.state = State::AckSent;
                    return Err("basic.ack: not written within 2 s".into());
                }
            }
            m.state = State::AckSent;
            seen.acks += 1;
            self.unsynced_acks.push(seq);
        }
        if self.unsynced_acks.len() + self.unsynced_rejects.len() >= SYNC_EVERY {
            self.sync(msgs).await?;
        }
        Ok(())
    }

    /// A basic.qos round trip: every settlement sent before it was processed.
    async fn sync(&mut self, msgs: &mut [Msg]) -> Result<(), String> {
        let qos = self.ch.basic_qos(self.prefetch, BasicQosOptions::default());
        match tokio::time::timeout(Duration::from_secs(5), qos).await {
            Ok(Ok(())) => {
                for seq in self.unsynced_acks.drain(..) {
                    let m = &mut msgs[seq as usize];
                    if m.state == State::AckSent {
                        m.state = State::AckSynced;
                    }
                }
                for seq in self.unsynced_rejects.drain(..) {
                    msgs[seq as usize].reject_known = true;
                }
                Ok(())
            }
            Ok(Err(e)) => Err(format!("basic.qos (sync): {e}")),
            Err(_) => Err("basic.qos (sync): no answer within 5 s".into()),
        }
    }
}

/// Runs one retry-mode round.
pub async fn run(r: &Round) -> anyhow::Result<Verdict> {
    let mut rng = Rng::new(r.seed);
    let n = r.messages;
    // Kill once about half the messages have been rejected.
    let kill_at = rng.range((n * 4 / 10).max(1), (n * 6 / 10).max(1));
    let delay = Duration::from_micros(match rng.range(0, 1) {
        0 => 0,
        _ => rng.range(1, 5000),
    });
    let mut v = Verdict::default();
    let mut broker = r.start_broker().await?;

    let conn = amqp::connect(&broker.uri()).await?;
    let ch = within("channel.open", conn.create_channel()).await?;
    let mut args = FieldTable::default();
    for (k, val) in [
        ("x-delayed-retry-min", MIN_MS),
        ("x-delayed-retry-multiplier", MULTIPLIER),
        ("x-delayed-retry-max", MAX_MS),
    ] {
        args.insert(k.into(), AMQPValue::LongLongInt(val as i64));
    }
    amqp::declare_durable_with(&ch, &r.queue, args).await?;
    let p = amqp::fill(&ch, &r.queue, n, r.window).await;
    amqp::close(conn).await;
    let p = p?;
    say(format!(
        "{n} messages published and confirmed in {:.2} s into a queue with retries \
         {MIN_MS} ms x{MULTIPLIER} up to {MAX_MS} ms",
        p.elapsed.as_secs_f64()
    ));

    let mut msgs = vec![
        Msg {
            state: State::Queued,
            rejected_at: None,
            reject_known: false,
            rejected_before_kill: false,
            rejected_after_restart: false,
            acked_before_kill: None,
            after: 0,
            first_after: None,
        };
        n as usize
    ];
    let mut seen = Seen::default();

    // Before the kill: reject first deliveries, ack retries, kill -9 after
    // `kill_at` rejects.
    let conn = amqp::connect(&broker.uri()).await?;
    let (ch, mut consumer) = subscribe(&conn, r).await?;
    let switch = broker.kill_switch();
    let mut phase = Phase {
        ch: &ch,
        prefetch: r.prefetch,
        after_restart: false,
        unsynced_acks: Vec::new(),
        unsynced_rejects: Vec::new(),
    };
    let consuming = Instant::now();
    let ended = loop {
        let d = match tokio::time::timeout(IDLE, consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => break format!("delivery: {e}"),
            Ok(None) => break "the consumer stream ended".to_string(),
            Err(_) => break format!("no delivery for {} s", IDLE.as_secs()),
        };
        let rejects = seen.rejects;
        if let Err(e) = phase.handle(d, &mut msgs, &mut seen).await {
            break e;
        }
        if seen.rejects >= kill_at {
            switch.fire(delay);
        } else if seen.rejects > rejects {
            let pace = REJECT_PACE.mul_f64(seen.rejects as f64 / kill_at as f64);
            tokio::time::sleep_until((consuming + pace).into()).await;
        }
    };
    if !switch.fired() {
        v.fail(format!(
            "consuming ended after {} rejects, before the planned kill at {kill_at}: {ended}",
            seen.rejects
        ));
    }
    switch.fire(Duration::ZERO);
    let status = broker.wait_exit(Duration::from_secs(10)).await?;
    drop(phase);
    drop(consumer);
    drop(ch);
    drop(conn);
    let killed = Instant::now();
    for m in &mut msgs {
        m.rejected_before_kill = m.rejected_at.is_some() && m.reject_known;
        m.acked_before_kill = match m.state {
            State::AckSent => Some(false),
            State::AckSynced => Some(true),
            _ => None,
        };
    }
    let in_state = |msgs: &[Msg], x: State| msgs.iter().filter(|m| m.state == x).count();
    let waiting = in_state(&msgs, State::Rejected);
    let waiting_known = msgs
        .iter()
        .filter(|m| m.state == State::Rejected && m.reject_known)
        .count();
    say(format!(
        "kill -9 {} µs after reject #{kill_at} ({}), prefetch {}: {} rejected ({} known \
         processed), {} retries back before the kill ({} flagged redelivered, {} with \
         x-delivery-count >= 1); at the kill: {waiting} waiting to be retried ({waiting_known} \
         known processed), {} acked ({} known processed), {} delivered unsettled, {} never \
         delivered",
        delay.as_micros(),
        describe_status(status),
        r.prefetch,
        seen.rejects,
        msgs.iter().filter(|m| m.rejected_before_kill).count(),
        seen.retries_before,
        seen.retries_before_flagged,
        seen.retries_before_counted,
        in_state(&msgs, State::AckSent) + in_state(&msgs, State::AckSynced),
        in_state(&msgs, State::AckSynced),
        in_state(&msgs, State::Delivered),
        in_state(&msgs, State::Queued)
    ));
    say(format!("the consumer saw: {ended}"));
    let early_before = seen.early.len();

    broker.restart().await?;
    let restarted = Instant::now();
    say(format!(
        "restarted: pid {} after {} ms down; consuming until every message is acked",
        broker.pid().unwrap_or(0),
        (restarted - killed).as_millis()
    ));
    let after = after_restart(&broker, r, &mut msgs, &mut seen).await;
    // Anything still in the queue once every message was acked came back
    // after its ack.
    let rec = amqp::recover(&broker.uri(), &r.queue).await;
    broker.stop().await;
    let (left, left_foreign) = amqp::tally(msgs.len(), &rec.deliveries);
    seen.foreign += left_foreign;
    for (seq, c) in left.iter().enumerate() {
        if *c > 0 {
            match msgs[seq].state {
                State::AckSynced if msgs[seq].acked_before_kill.is_some() => {
                    seen.after_synced_ack_across += u64::from(*c);
                }
                State::AckSynced => seen.after_synced_ack.push(seq as u64),
                _ => seen.after_sent_ack += u64::from(*c),
            }
        }
    }
    check(&msgs, &seen, early_before, &after, &rec, &mut v);
    Ok(v)
}

/// How the consumer after the restart ended.
struct After {
    /// Why it stopped before every message was acked, if it did.
    error: Option<String>,
    /// How long it took until every message was acked.
    took: Duration,
}

/// After the restart: consume until every message is acked (bounded).
async fn after_restart(broker: &Broker, r: &Round, msgs: &mut [Msg], seen: &mut Seen) -> After {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(MAX_MS) + MARGIN;
    let conn = match amqp::connect(&broker.uri()).await {
        Ok(c) => c,
        Err(e) => {
            return After {
                error: Some(format!("{e:#}")),
                took: started.elapsed(),
            };
        }
    };
    let (ch, mut consumer) = match subscribe(&conn, r).await {
        Ok(x) => x,
        Err(e) => {
            amqp::close(conn).await;
            return After {
                error: Some(format!("{e:#}")),
                took: started.elapsed(),
            };
        }
    };
    let mut phase = Phase {
        ch: &ch,
        prefetch: r.prefetch,
        after_restart: true,
        unsynced_acks: Vec::new(),
        unsynced_rejects: Vec::new(),
    };
    let acked = |msgs: &[Msg]| {
        msgs.iter()
            .all(|m| matches!(m.state, State::AckSent | State::AckSynced))
    };
    let mut error = None;
    while !acked(msgs) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, consumer.next()).await {
            Ok(Some(Ok(d))) => {
                if let Err(e) = phase.handle(d, msgs, seen).await {
                    error = Some(e);
                    break;
                }
            }
            Ok(Some(Err(e))) => {
                error = Some(format!("delivery: {e}"));
                break;
            }
            Ok(None) => {
                error = Some("the consumer stream ended".into());
                break;
            }
            Err(_) => {
                error = Some(format!(
                    "not every message acked within {} s of the restart",
                    (deadline - started).as_secs()
                ));
                break;
            }
        }
    }
    let took = started.elapsed();
    if let Err(e) = phase.sync(msgs).await
        && error.is_none()
    {
        error = Some(e);
    }
    // Late duplicates: whatever still arrives in a short while is recorded.
    while let Ok(Some(Ok(d))) =
        tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
    {
        if phase.handle(d, msgs, seen).await.is_err() {
            break;
        }
    }
    let _ = phase.sync(msgs).await;
    drop(phase);
    drop(consumer);
    drop(ch);
    amqp::close(conn).await;
    After { error, took }
}
