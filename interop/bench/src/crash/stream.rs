//! Stream mode: a durable stream (`x-queue-type: stream`) with small
//! segments (`x-stream-max-segment-size-bytes` 64 KiB), crashed and read
//! back [`CYCLES`] times in one round on the same data directory. Each cycle
//! publishes N messages (padded bodies, persistent or not, seeded) with
//! confirms while the broker is SIGKILLed at a seeded point as in publish
//! mode; restarts it; appends one confirmed marker message; and reads the
//! whole stream from `x-stream-offset: first` with a manual-ack consumer
//! (prefetch [`PREFETCH`], every delivery acked) up to the marker.
//!
//! Checks, every cycle, over the whole log: every confirmed message (of this
//! cycle or an earlier one, markers included) is there exactly once, with
//! the exact body published; nothing appears that was never sent, nothing
//! twice, and the ids run in publish order; every delivery carries the
//! header `x-stream-offset` (AMQP long), the offsets are dense (each the
//! previous plus one) from the same first offset every cycle; and every
//! (offset, message) pair read in the previous cycle still holds: the crash
//! and the appends after it changed no offset already read.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::BasicAckOptions;
use lapin::types::{AMQPValue, FieldTable};

use crate::amqp::{self, Fate, Rng, sample, within};
use crate::consume::subscribe_with;
use crate::publish::{KillPlan, land_kill};
use crate::round::{Round, Verdict, say};

/// Crash cycles per round, on the same stream.
const CYCLES: u64 = 3;
/// `x-stream-max-segment-size-bytes`: small, so a round spans many segments.
const SEGMENT_BYTES: i64 = 64 * 1024;
/// basic.qos prefetch of the reading consumer.
const PREFETCH: u16 = 500;
/// A reader that receives nothing for this long before the marker gives up.
const IDLE: Duration = Duration::from_secs(10);
/// Padding after a body's 16-byte `seq` head: 0 to this many bytes.
const MAX_PAD: u64 = 240;
/// The length of [`amqp::body`]'s `seq 000000000042` head.
const HEAD: usize = 16;

/// What the log may hold of one id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Never sent: must not be there.
    Never,
    /// Sent, not confirmed (or nacked): at most once.
    Maybe,
    /// Confirmed: exactly once.
    Once,
}

/// Message `id` of a round seeded `seed`: its body (the `seq` head, then a
/// seeded padding) and properties (delivery mode 1 or 2, seeded).
fn message(seed: u64, id: u64) -> (Vec<u8>, BasicProperties) {
    let mut rng = Rng::new(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut body = amqp::body(id);
    let pad = rng.range(0, MAX_PAD) as usize;
    body.extend((0..pad).map(|i| b'a' + ((id as usize + i) % 26) as u8));
    let mode = if rng.range(0, 1) == 1 { 2 } else { 1 };
    (body, BasicProperties::default().with_delivery_mode(mode))
}

/// One delivery of a read.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Its `x-stream-offset` header, if it is there and an AMQP long.
    offset: Option<i64>,
    /// The id in its body, if the body is one of ours.
    id: Option<u64>,
    /// Whether the body is exactly the one published under that id.
    intact: bool,
}

/// One read of the whole stream.
struct Log {
    /// Every delivery, in order.
    entries: Vec<Entry>,
    /// Why reading stopped before the marker.
    error: Option<String>,
}

/// Runs one stream-mode round.
pub async fn run(r: &Round) -> anyhow::Result<Verdict> {
    let mut rng = Rng::new(r.seed);
    let n = r.messages;
    let mut v = Verdict::default();
    let mut broker = r.start_broker().await?;
    let conn = amqp::connect(&broker.uri()).await?;
    let ch = within("channel.open", conn.create_channel()).await?;
    let mut args = amqp::header("x-queue-type", AMQPValue::LongString("stream".into()));
    args.insert(
        "x-stream-max-segment-size-bytes".into(),
        AMQPValue::LongLongInt(SEGMENT_BYTES),
    );
    amqp::declare_durable_with(&ch, &r.queue, args).await?;
    amqp::close(conn).await;

    // What the log may hold, by id: cycle c publishes ids c(N+1) ..
    // c(N+1)+N-1, then its marker c(N+1)+N after the restart.
    let mut expect: Vec<Expect> = Vec::new();
    let mut before: Vec<(i64, u64)> = Vec::new();
    let mut first: Option<i64> = None;
    for cycle in 0..CYCLES {
        let base = cycle * (n + 1);
        let plan = KillPlan::draw(&mut rng, n);
        say(format!(
            "cycle {}/{CYCLES}: publishing ids {base}..{}",
            cycle + 1,
            base + n - 1
        ));
        let conn = amqp::connect(&broker.uri()).await?;
        let ch = within("channel.open", conn.create_channel()).await?;
        let switch = broker.kill_switch();
        let p = amqp::publish_messages(
            &ch,
            "",
            &r.queue,
            |s| message(r.seed, base + s),
            n,
            r.window,
            plan.trigger(&switch),
        )
        .await;
        land_kill(&mut broker, &switch, &p, plan.planned(), &mut v).await?;
        drop(ch);
        drop(conn);
        expect.extend(p.fate.iter().map(|f| match f {
            Fate::Confirmed => Expect::Once,
            Fate::NotSent => Expect::Never,
            Fate::Unconfirmed | Fate::Nacked => Expect::Maybe,
        }));
        broker.restart().await?;
        let marker = base + n;
        let marked = append(&broker.uri(), &r.queue, r.seed, marker).await;
        expect.push(if marked.is_ok() {
            Expect::Once
        } else {
            Expect::Maybe
        });
        if let Err(e) = marked {
            v.fail(format!("appending the marker after the restart: {e:#}"));
            break;
        }
        let log = read(&broker.uri(), &r.queue, r.seed, marker).await;
        let read_ok = log.error.is_none();
        before = check(&log, &expect, &before, &mut first, &mut v);
        if !read_ok {
            break;
        }
    }
    broker.stop().await;
    Ok(v)
}

/// Publishes the marker `id` with a confirm on a new connection; an error
/// unless it was confirmed.
async fn append(uri: &str, queue: &str, seed: u64, id: u64) -> anyhow::Result<()> {
    let conn = amqp::connect(uri).await?;
    let ch = within("channel.open", conn.create_channel()).await;
    let p = match ch {
        Ok(ch) => Some(
            amqp::publish_messages(&ch, "", queue, |_| message(seed, id), 1, 1, |_, _| {}).await,
        ),
        Err(_) => None,
    };
    amqp::close(conn).await;
    match p {
        Some(p) if p.confirmed == 1 => Ok(()),
        Some(p) => anyhow::bail!(
            "not confirmed: {}",
            p.error.as_deref().unwrap_or("the broker nacked it")
        ),
        None => anyhow::bail!("could not open a channel"),
    }
}

/// Reads `queue` from its first offset up to the delivery of `marker`.
async fn read(uri: &str, queue: &str, seed: u64, marker: u64) -> Log {
    let mut log = Log {
        entries: Vec::new(),
        error: None,
    };
    match amqp::connect(uri).await {
        Ok(conn) => {
            if let Err(e) = read_into(&conn, queue, seed, marker, &mut log).await {
                log.error = Some(format!("{e:#}"));
            }
            amqp::close(conn).await;
        }
        Err(e) => log.error = Some(format!("{e:#}")),
    }
    log
}

async fn read_into(
    conn: &lapin::Connection,
    queue: &str,
    seed: u64,
    marker: u64,
    log: &mut Log,
) -> anyhow::Result<()> {
    let from = amqp::header("x-stream-offset", AMQPValue::LongString("first".into()));
    let (_ch, mut consumer) = subscribe_with(conn, queue, PREFETCH, from).await?;
    loop {
        let d = match tokio::time::timeout(IDLE, consumer.next()).await {
            Ok(Some(Ok(d))) => d,
            Ok(Some(Err(e))) => anyhow::bail!("reading the stream: {e}"),
            Ok(None) => anyhow::bail!("reading the stream: the broker cancelled the consumer"),
            Err(_) => anyhow::bail!(
                "nothing delivered for {} s after {} deliveries, before the marker (id {marker})",
                IDLE.as_secs(),
                log.entries.len()
            ),
        };
        let offset = offset_of(d.properties.headers().as_ref());
        let id = d.data.get(..HEAD).and_then(amqp::parse);
        let intact = id.is_some_and(|id| d.data == message(seed, id).0);
        within("basic.ack", d.acker.ack(BasicAckOptions::default())).await?;
        log.entries.push(Entry { offset, id, intact });
        if id == Some(marker) {
            return Ok(());
        }
    }
}

/// The `x-stream-offset` header, if it is there and an AMQP long (`l`).
fn offset_of(headers: Option<&FieldTable>) -> Option<i64> {
    headers?
        .inner()
        .iter()
        .find(|(k, _)| k.as_str() == "x-stream-offset")
        .and_then(|(_, v)| match v {
            AMQPValue::LongLongInt(o) => Some(*o),
            _ => None,
        })
}

/// The checks on one read; returns its (offset, id) pairs, the next
/// cycle's `before`. `first` is the first offset of the first read.
fn check(
    log: &Log,
    expect: &[Expect],
    before: &[(i64, u64)],
    first: &mut Option<i64>,
    v: &mut Verdict,
) -> Vec<(i64, u64)> {
    let mut count = vec![0u32; expect.len()];
    let (mut foreign, mut damaged, mut no_offset) = (0u64, Vec::new(), 0u64);
    let mut gaps = Vec::new();
    let mut inversions = Vec::new();
    let mut pairs = Vec::new();
    let (mut last_offset, mut last_id): (Option<i64>, Option<u64>) = (None, None);
    for e in &log.entries {
        match e.offset {
            Some(o) => {
                if let Some(l) = last_offset
                    && o != l + 1
                {
                    gaps.push(format!("{o} after {l}"));
                }
                last_offset = Some(o);
            }
            None => no_offset += 1,
        }
        let Some(id) = e.id.filter(|id| (*id as usize) < expect.len()) else {
            foreign += 1;
            continue;
        };
        count[id as usize] += 1;
        if !e.intact {
            damaged.push(id);
        }
        if let Some(l) = last_id
            && id <= l
        {
            inversions.push(format!("#{id} after #{l}"));
        }
        last_id = Some(id);
        if let Some(o) = e.offset {
            pairs.push((o, id));
        }
    }
    let ids = |want: Expect, keep: &dyn Fn(u32) -> bool| -> Vec<u64> {
        (0..expect.len())
            .filter(|i| expect[*i] == want && keep(count[*i]))
            .map(|i| i as u64)
            .collect()
    };
    let lost = ids(Expect::Once, &|c| c == 0);
    let unsent_back = ids(Expect::Never, &|c| c > 0);
    let maybe_back = ids(Expect::Maybe, &|c| c > 0).len();
    let twice: Vec<u64> = (0..count.len() as u64)
        .filter(|i| count[*i as usize] > 1)
        .collect();
    let now: HashMap<i64, u64> = pairs.iter().copied().collect();
    let (mut changed, mut missing) = (Vec::new(), Vec::new());
    for (o, id) in before {
        match now.get(o) {
            Some(x) if x == id => {}
            Some(x) => changed.push(format!("offset {o}: #{id} then, #{x} now")),
            None => missing.push(format!("offset {o} (#{id})")),
        }
    }
    let offsets = match (log.entries.first(), log.entries.last()) {
        (Some(a), Some(b)) => format!(
            "offsets {}..{}",
            a.offset.map_or("?".into(), |o| o.to_string()),
            b.offset.map_or("?".into(), |o| o.to_string())
        ),
        _ => "no deliveries".into(),
    };
    say(format!(
        "read {} deliveries up to the marker ({offsets}): confirmed {} back, {} lost; \
         unconfirmed back: {maybe_back} of {}; {} pairs of the previous read checked",
        log.entries.len(),
        ids(Expect::Once, &|c| c > 0).len(),
        lost.len(),
        expect.iter().filter(|e| **e == Expect::Maybe).count(),
        before.len()
    ));
    if let Some(e) = &log.error {
        v.fail(format!("reading the stream after the restart: {e}"));
    }
    if let Some(o) = log.entries.first().and_then(|e| e.offset) {
        match *first {
            None => *first = Some(o),
            Some(f) if f != o => v.fail(format!(
                "the stream starts at offset {o}, the previous read started at {f}"
            )),
            Some(_) => {}
        }
    }
    let list = |what: &[String]| -> String {
        let mut s: Vec<String> = what.iter().take(5).cloned().collect();
        if what.len() > 5 {
            s.push(format!("... ({} in all)", what.len()));
        }
        s.join(", ")
    };
    let failures = [
        (
            !lost.is_empty(),
            format!("{} confirmed messages lost: {}", lost.len(), sample(&lost)),
        ),
        (
            !twice.is_empty(),
            format!("messages in the stream twice: {}", sample(&twice)),
        ),
        (
            !unsent_back.is_empty(),
            format!(
                "messages that were never sent are in the stream: {}",
                sample(&unsent_back)
            ),
        ),
        (
            foreign > 0,
            format!("{foreign} deliveries with bodies that are not ours"),
        ),
        (
            !damaged.is_empty(),
            format!("bodies not as published: {}", sample(&damaged)),
        ),
        (
            no_offset > 0,
            format!("{no_offset} deliveries without an x-stream-offset long header"),
        ),
        (
            !gaps.is_empty(),
            format!("offsets not dense: {}", list(&gaps)),
        ),
        (
            !inversions.is_empty(),
            format!("messages out of publish order: {}", list(&inversions)),
        ),
        (
            !changed.is_empty(),
            format!(
                "offsets that changed message since the previous read: {}",
                list(&changed)
            ),
        ),
        (
            !missing.is_empty(),
            format!(
                "offsets of the previous read that are gone: {}",
                list(&missing)
            ),
        ),
    ];
    for (failed, what) in failures {
        if failed {
            v.fail(what);
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: i64, id: u64) -> Entry {
        Entry {
            offset: Some(offset),
            id: Some(id),
            intact: true,
        }
    }

    fn log(entries: Vec<Entry>) -> Log {
        Log {
            entries,
            error: None,
        }
    }

    #[test]
    fn messages_are_seeded_and_parse_back() {
        let (body, props) = message(9, 42);
        assert_eq!(message(9, 42).0, body);
        assert!(body.len() >= HEAD && body.len() <= HEAD + MAX_PAD as usize);
        assert_eq!(body.get(..HEAD).and_then(amqp::parse), Some(42));
        assert!(matches!(props.delivery_mode(), Some(1 | 2)));
    }

    #[test]
    fn a_clean_read_passes_and_returns_its_pairs() {
        let expect = [Expect::Once, Expect::Maybe, Expect::Never, Expect::Once];
        let mut v = Verdict::default();
        let mut first = None;
        let read = log(vec![entry(0, 0), entry(1, 1), entry(2, 3)]);
        let pairs = check(&read, &expect, &[(0, 0)], &mut first, &mut v);
        assert!(v.failures.is_empty(), "{:?}", v.failures);
        assert_eq!(pairs, vec![(0, 0), (1, 1), (2, 3)]);
        assert_eq!(first, Some(0));
    }

    #[test]
    fn gaps_losses_and_changed_offsets_fail() {
        let expect = [Expect::Once, Expect::Never, Expect::Once, Expect::Once];
        let mut v = Verdict::default();
        let mut first = Some(0);
        // #1 was never sent, #2 is lost, offset 2 is skipped, and offset 1
        // held #3 in the previous read.
        let read = log(vec![entry(0, 0), entry(1, 1), entry(3, 3)]);
        check(&read, &expect, &[(1, 3)], &mut first, &mut v);
        let all = v.failures.join("\n");
        for what in [
            "confirmed messages lost: 2",
            "never sent",
            "offsets not dense: 3 after 1",
            "changed message",
        ] {
            assert!(all.contains(what), "{what} not in:\n{all}");
        }
    }
}
