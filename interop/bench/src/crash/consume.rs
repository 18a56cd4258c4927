//! Consume mode: N persistent messages published and confirmed into a
//! durable queue, then consumed with manual acks and a prefetch; most are
//! acked, some held unacked; the broker is SIGKILLed at a seeded delivery
//! count, restarted on the same data directory, the queue read back. Nothing
//! unacked may be lost, and whatever had been delivered but not acked must
//! come back flagged redelivered. Acked messages may come back (an ack is not
//! confirmed to the client); they are counted, split by whether the ack is
//! known to have reached the broker, and are not failures.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;

use crate::amqp::{self, Recovered, Rng, sample, within};
use crate::broker::describe_status;
use crate::round::{Round, Verdict, say};

/// Acks written before a synchronous round trip (basic.qos) on the same
/// channel: when its reply arrives, the broker has processed those acks.
const SYNC_EVERY: usize = 64;
/// A consumer that receives nothing for this long gives up.
const IDLE: Duration = Duration::from_secs(10);

/// Where each message stood when the broker died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Never delivered to this client.
    Queued,
    /// Delivered and deliberately left unacked.
    Held,
    /// Delivered; its ack was never sent (the channel was already gone).
    Unacked,
    /// Its ack was handed to lapin; whether it reached the broker is unknown.
    AckSent,
    /// Its ack was followed by a basic.qos round trip on the same channel:
    /// the broker processed it.
    AckSynced,
}

/// Opens a channel with the round's prefetch and a manual-ack consumer on
/// its queue.
pub async fn subscribe(
    conn: &lapin::Connection,
    r: &Round,
) -> anyhow::Result<(lapin::Channel, lapin::Consumer)> {
    subscribe_with(conn, &r.queue, r.prefetch, FieldTable::default()).await
}

/// Opens a channel with `prefetch` and a manual-ack consumer on `queue`
/// with the consume `arguments` (`x-stream-offset` in stream mode).
pub async fn subscribe_with(
    conn: &lapin::Connection,
    queue: &str,
    prefetch: u16,
    arguments: FieldTable,
) -> anyhow::Result<(lapin::Channel, lapin::Consumer)> {
    let ch = within("channel.open", conn.create_channel()).await?;
    within(
        "basic.qos",
        ch.basic_qos(prefetch, BasicQosOptions::default()),
    )
    .await?;
    let consumer = within(
        "basic.consume",
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            arguments,
        ),
    )
    .await?;
    Ok((ch, consumer))
}

/// Runs one consume-mode round.
pub async fn run(r: &Round) -> anyhow::Result<Verdict> {
    let mut rng = Rng::new(r.seed);
    let n = r.messages;
    let kill_at = rng.range((n / 10).max(1), (n * 9 / 10).max(1));
    // Half the kills land at once, half up to 5 ms later.
    let delay = Duration::from_micros(match rng.range(0, 1) {
        0 => 0,
        _ => rng.range(1, 5000),
    });
    // Hold about one delivery in `hold_every`, never more than half the
    // prefetch (the rest keeps the consumer moving).
    let hold_every = rng.range(8, 30);
    let max_held = usize::from(r.prefetch / 2).max(1);
    let mut v = Verdict::default();
    let mut broker = r.start_broker().await?;

    // Fill the queue; every message must be confirmed.
    let conn = amqp::connect(&broker.uri()).await?;
    let ch = within("channel.open", conn.create_channel()).await?;
    amqp::declare_durable(&ch, &r.queue).await?;
    let p = amqp::fill(&ch, &r.queue, n, r.window).await;
    amqp::close(conn).await;
    let p = p?;
    say(format!(
        "{n} messages published and confirmed in {:.2} s",
        p.elapsed.as_secs_f64()
    ));

    // Consume, ack most, hold some, kill -9 mid-stream.
    let conn = amqp::connect(&broker.uri()).await?;
    let (ch, mut consumer) = subscribe(&conn, r).await?;
    let switch = broker.kill_switch();
    let mut state = vec![State::Queued; n as usize];
    let mut received = 0u64;
    let mut held = 0usize;
    let mut early_redelivered = 0u64;
    let mut foreign = 0u64;
    let mut unsynced: Vec<u64> = Vec::new();
    let ended = loop {
        let d = match tokio::time::timeout(IDLE, consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => break format!("delivery: {e}"),
            Ok(None) => break "the consumer stream ended".to_string(),
            Err(_) => break format!("no delivery for {} s", IDLE.as_secs()),
        };
        let Some(seq) = amqp::parse(&d.data).filter(|s| *s < n) else {
            foreign += 1;
            continue;
        };
        received += 1;
        if d.redelivered {
            early_redelivered += 1;
        }
        if received == kill_at {
            switch.fire(delay);
        }
        let s = seq as usize;
        state[s] = State::Unacked;
        if held < max_held && rng.range(1, hold_every) == 1 {
            state[s] = State::Held;
            held += 1;
            continue;
        }
        let ack = d.acker.ack(BasicAckOptions::default());
        match tokio::time::timeout(Duration::from_secs(2), ack).await {
            Ok(Ok(true)) => {
                state[s] = State::AckSent;
                unsynced.push(seq);
            }
            // The acker refused: the channel is gone, nothing was sent.
            Ok(Ok(false)) => break "an ack was refused: the channel is closed".to_string(),
            Ok(Err(e)) => {
                state[s] = State::AckSent;
                break format!("basic.ack: {e}");
            }
            Err(_) => {
                state[s] = State::AckSent;
                break "basic.ack: not written within 2 s".to_string();
            }
        }
        if unsynced.len() >= SYNC_EVERY {
            let qos = ch.basic_qos(r.prefetch, BasicQosOptions::default());
            match tokio::time::timeout(Duration::from_secs(5), qos).await {
                Ok(Ok(())) => {
                    for seq in unsynced.drain(..) {
                        state[seq as usize] = State::AckSynced;
                    }
                }
                Ok(Err(e)) => break format!("basic.qos (ack sync): {e}"),
                Err(_) => break "basic.qos (ack sync): no answer within 5 s".to_string(),
            }
        }
    };
    if !switch.fired() {
        v.fail(format!(
            "consuming ended after {received} of {n} deliveries, before the planned kill: {ended}"
        ));
    }
    switch.fire(Duration::ZERO);
    let status = broker.wait_exit(Duration::from_secs(10)).await?;
    drop(consumer);
    drop(ch);
    drop(conn);
    let in_state = |x: State| state.iter().filter(|s| **s == x).count();
    say(format!(
        "kill -9 {} µs after delivery #{kill_at} ({}), prefetch {}: {received} delivered; \
         {} acked ({} known to have reached the broker), {} held unacked, {} delivered but not \
         yet acked, {} never delivered",
        delay.as_micros(),
        describe_status(status),
        r.prefetch,
        in_state(State::AckSent) + in_state(State::AckSynced),
        in_state(State::AckSynced),
        in_state(State::Held),
        in_state(State::Unacked),
        in_state(State::Queued)
    ));
    say(format!("the consumer saw: {ended}"));
    if early_redelivered > 0 {
        say(format!(
            "note: {early_redelivered} deliveries before the kill were flagged redelivered"
        ));
    }
    if foreign > 0 {
        v.fail(format!(
            "{foreign} deliveries before the kill with bodies that are not ours"
        ));
    }

    broker.restart().await?;
    say(format!(
        "restarted: pid {} on the same port and data directory",
        broker.pid().unwrap_or(0)
    ));
    let rec = amqp::recover(&broker.uri(), &r.queue).await;
    broker.stop().await;
    check(&state, &rec, &mut v);
    Ok(v)
}

/// The checks on what came back.
fn check(state: &[State], rec: &Recovered, v: &mut Verdict) {
    let n = state.len();
    let mut count = vec![0u32; n];
    let mut redelivered = vec![false; n];
    let mut foreign = 0u64;
    let mut in_order = true;
    let mut last = None;
    for d in &rec.deliveries {
        let Some(seq) = d.seq.filter(|s| (*s as usize) < n) else {
            foreign += 1;
            continue;
        };
        let s = seq as usize;
        count[s] += 1;
        redelivered[s] |= d.redelivered;
        if last.is_some_and(|l| seq < l) {
            in_order = false;
        }
        last = Some(seq);
    }
    let seqs = |pred: &dyn Fn(usize) -> bool| -> Vec<u64> {
        (0..n).filter(|s| pred(*s)).map(|s| s as u64).collect()
    };
    let delivered_unacked = |s: usize| matches!(state[s], State::Held | State::Unacked);
    let lost = seqs(&|s| {
        matches!(state[s], State::Queued | State::Held | State::Unacked) && count[s] == 0
    });
    let unflagged = seqs(&|s| delivered_unacked(s) && count[s] > 0 && !redelivered[s]);
    let duplicates = seqs(&|s| count[s] > 1);
    let owed = seqs(&|s| matches!(state[s], State::Queued | State::Held | State::Unacked)).len();
    let du_total = seqs(&delivered_unacked).len();
    let du_flagged = seqs(&|s| delivered_unacked(s) && count[s] > 0 && redelivered[s]).len();
    let queued_back = seqs(&|s| state[s] == State::Queued && count[s] > 0).len();
    let queued_flagged = seqs(&|s| state[s] == State::Queued && redelivered[s]).len();
    let synced_back = seqs(&|s| state[s] == State::AckSynced && count[s] > 0);
    let sent_back = seqs(&|s| state[s] == State::AckSent && count[s] > 0).len();

    match rec.depth {
        Some(depth) => say(format!(
            "after the restart: queue depth {depth}, read back {} ({})",
            rec.deliveries.len(),
            if in_order {
                "in publish order"
            } else {
                "not in publish order (not checked)"
            }
        )),
        None => say("after the restart: no queue depth"),
    }
    say(format!(
        "not acked: {} of {owed} back; delivered-but-unacked: {du_flagged} of {du_total} back \
         flagged redelivered; never delivered: {queued_back} back ({queued_flagged} flagged \
         redelivered)",
        owed - lost.len()
    ));
    say(format!(
        "acked messages back (allowed, not failures): {} whose ack had reached the broker, \
         {sent_back} whose ack may not have",
        synced_back.len()
    ));
    if let Some(e) = &rec.error {
        v.fail(format!("reading the queue back after the restart: {e}"));
    }
    if !lost.is_empty() {
        v.fail(format!(
            "{} of {owed} unacked messages lost: {}",
            lost.len(),
            sample(&lost)
        ));
    }
    if !unflagged.is_empty() {
        v.fail(format!(
            "delivered-but-unacked messages came back without redelivered=true: {}",
            sample(&unflagged)
        ));
    }
    if !duplicates.is_empty() {
        v.fail(format!(
            "messages delivered more than once after the restart: {}",
            sample(&duplicates)
        ));
    }
    if foreign > 0 {
        v.fail(format!(
            "{foreign} deliveries after the restart with bodies that are not ours"
        ));
    }
    rec.check_depth(v);
}
