//! What both crash modes do over AMQP: connect, declare the durable queue,
//! publish numbered persistent messages with confirms and record each one's
//! fate, and, after the restart, read back everything the queue holds.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use futures_util::future::join_all;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};

/// How long one RPC (connect, declare, close, ...) may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a publisher waits for one confirm while the broker is up.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// After the connection broke: how long the outstanding confirms together
/// may take to resolve (lapin fails them at once when it sees the socket go).
const DRAIN_AFTER_ERROR: Duration = Duration::from_secs(5);
/// Publishes handed to lapin at once. `join_all` polls up to 30 futures in
/// order, and lapin queues a publish's frames and takes its delivery tag on
/// the first poll, so sequence numbers go out in order.
const PUBLISH_BATCH: u64 = 16;

/// Runs one client operation with a timeout, naming it in the error.
pub async fn within<T>(what: &str, f: impl Future<Output = lapin::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(RPC_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(anyhow!("{what}: {e}")),
        Err(_) => Err(anyhow!(
            "{what}: no answer within {} s",
            RPC_TIMEOUT.as_secs()
        )),
    }
}

/// Opens one connection.
pub async fn connect(uri: &str) -> anyhow::Result<Connection> {
    within(
        "connect",
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
}

/// Closes a connection politely, ignoring errors (it may be dead).
pub async fn close(conn: Connection) {
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        conn.close(200, ShortString::from("warren-crash done")),
    )
    .await;
}

/// The body of message `seq`: 16 ASCII bytes, `seq 000000000042`.
pub fn body(seq: u64) -> Vec<u8> {
    format!("seq {seq:012}").into_bytes()
}

/// The sequence number in a body, if it is one of ours.
pub fn parse(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .strip_prefix("seq ")?
        .parse()
        .ok()
}

/// Declares a durable queue.
pub async fn declare_durable(ch: &Channel, queue: &str) -> anyhow::Result<()> {
    declare_durable_with(ch, queue, FieldTable::default()).await
}

/// Publishes `n` messages to `queue` before a consume phase: every one
/// must be confirmed, else the round cannot be staged.
pub async fn fill(ch: &Channel, queue: &str, n: u64, window: usize) -> anyhow::Result<Published> {
    let p = publish(ch, queue, n, window, |_, _| {}).await;
    if p.count(Fate::Confirmed) != n {
        anyhow::bail!(
            "only {} of {n} publishes were confirmed before the consume phase: {}",
            p.count(Fate::Confirmed),
            p.error.as_deref().unwrap_or("no error")
        );
    }
    Ok(p)
}

/// Declares a durable exchange of type `kind` with `arguments`, the durable
/// queue `queue`, and binds them with `key`.
pub async fn declare_exchange_to_queue(
    ch: &Channel,
    exchange: &str,
    kind: &str,
    arguments: FieldTable,
    queue: &str,
    key: &str,
) -> anyhow::Result<()> {
    within(
        "exchange.declare",
        ch.exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Custom(kind.into()),
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        ),
    )
    .await?;
    declare_durable(ch, queue).await?;
    within(
        "queue.bind",
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ),
    )
    .await
}

/// Declares a durable queue with arguments.
pub async fn declare_durable_with(
    ch: &Channel,
    queue: &str,
    arguments: FieldTable,
) -> anyhow::Result<()> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    within(
        "queue.declare",
        ch.queue_declare(queue.into(), options, arguments),
    )
    .await
    .map(drop)
}

/// A header table with one entry.
pub fn header(name: &str, value: AMQPValue) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(name.into(), value);
    t
}

/// What became of one published message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Never handed to the client library (the connection was gone).
    NotSent,
    /// Sent; no confirm came back.
    Unconfirmed,
    /// The broker confirmed it (basic.ack).
    Confirmed,
    /// The broker refused it (basic.nack).
    Nacked,
}

/// The publisher's record.
pub struct Published {
    /// Fate of each message, by sequence number.
    pub fate: Vec<Fate>,
    /// Messages handed to lapin (written, or queued to be written).
    pub sent: u64,
    /// Messages confirmed (basic.ack) so far.
    pub confirmed: u64,
    /// The first error seen (the connection breaking, a timeout).
    pub error: Option<String>,
    /// From the first publish to the last confirm.
    pub elapsed: Duration,
}

impl Published {
    /// The messages that met `fate` and came back a number of times (their
    /// entry in `count`, indexed by sequence number) that `keep` accepts.
    pub fn seqs(&self, fate: Fate, count: &[u32], keep: impl Fn(u32) -> bool) -> Vec<u64> {
        (0..self.fate.len())
            .filter(|s| self.fate[*s] == fate && keep(count[*s]))
            .map(|s| s as u64)
            .collect()
    }

    /// How many messages met `fate`.
    pub fn count(&self, fate: Fate) -> u64 {
        self.fate.iter().filter(|f| **f == fate).count() as u64
    }
}

/// Publishes messages `0..n` (persistent, default exchange, to `queue`) on a
/// channel put in confirm mode, with up to `window` confirms outstanding.
/// `on_progress(sent, confirmed)` is called after each message is handed to
/// lapin and after each confirm is seen (confirms that have arrived are
/// collected after every batch, not only when the window is full). Stops at
/// the first error and then records what the outstanding confirms say; never
/// fails itself.
pub async fn publish(
    ch: &Channel,
    queue: &str,
    n: u64,
    window: usize,
    on_progress: impl FnMut(u64, u64),
) -> Published {
    publish_to(ch, "", queue, |_| None, n, window, on_progress).await
}

/// [`publish`] to `exchange` with routing key `key`; message `seq` carries
/// the headers `headers(seq)` when that is `Some` (`x-delay` in delayed
/// mode, `x-deduplication-header` in dedup mode).
pub async fn publish_to(
    ch: &Channel,
    exchange: &str,
    key: &str,
    headers: impl Fn(u64) -> Option<FieldTable>,
    n: u64,
    window: usize,
    on_progress: impl FnMut(u64, u64),
) -> Published {
    let props = BasicProperties::default().with_delivery_mode(2);
    let message = |seq: u64| match headers(seq) {
        None => (body(seq), props.clone()),
        Some(h) => (body(seq), props.clone().with_headers(h)),
    };
    publish_messages(ch, exchange, key, message, n, window, on_progress).await
}

/// [`publish_to`] with each message's body and properties chosen by
/// `message(seq)` (stream mode: padded bodies, persistent or not); the fates
/// are still indexed `0..n`.
pub async fn publish_messages(
    ch: &Channel,
    exchange: &str,
    key: &str,
    message: impl Fn(u64) -> (Vec<u8>, BasicProperties),
    n: u64,
    window: usize,
    mut on_progress: impl FnMut(u64, u64),
) -> Published {
    let mut p = Published {
        fate: vec![Fate::NotSent; usize::try_from(n).unwrap_or(usize::MAX)],
        sent: 0,
        confirmed: 0,
        error: None,
        elapsed: Duration::ZERO,
    };
    let started = Instant::now();
    if let Err(e) = within(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await
    {
        p.error = Some(format!("{e:#}"));
        return p;
    }
    let exchange = ShortString::from(exchange);
    let key = ShortString::from(key);
    let mut outstanding: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
    let mut seq = 0;
    'publishing: while seq < n {
        let batch = (n - seq).min(PUBLISH_BATCH);
        while outstanding.len() + batch as usize > window.max(batch as usize) {
            let Some((s, c)) = outstanding.pop_front() else {
                break;
            };
            let settled = settle(&mut p, s, c, CONFIRM_TIMEOUT).await;
            on_progress(p.sent, p.confirmed);
            if let Err(e) = settled {
                p.error = Some(e);
                break 'publishing;
            }
        }
        let messages: Vec<(Vec<u8>, BasicProperties)> = (seq..seq + batch).map(&message).collect();
        let sends = messages.iter().map(|(b, props)| {
            ch.basic_publish(
                exchange.clone(),
                key.clone(),
                BasicPublishOptions::default(),
                b,
                props.clone(),
            )
        });
        let results = join_all(sends).await;
        let mut failed = false;
        for (s, r) in (seq..).zip(results) {
            match r {
                Ok(confirm) => {
                    p.fate[s as usize] = Fate::Unconfirmed;
                    p.sent += 1;
                    outstanding.push_back((s, confirm));
                    on_progress(p.sent, p.confirmed);
                }
                Err(e) => {
                    if p.error.is_none() {
                        p.error = Some(format!("basic.publish of #{s}: {e}"));
                    }
                    failed = true;
                }
            }
        }
        seq += batch;
        if failed {
            break;
        }
        // Collect the confirms that have already arrived.
        while let Some((_, c)) = outstanding.front_mut() {
            let Some(result) = c.now_or_never() else {
                break;
            };
            if let Some((s, _)) = outstanding.pop_front() {
                let settled = record(&mut p, s, result);
                on_progress(p.sent, p.confirmed);
                if let Err(e) = settled {
                    p.error = Some(e);
                    break 'publishing;
                }
            }
        }
    }
    // Whatever is still outstanding: wait for it, less patiently once the
    // connection is known to be broken.
    let deadline = Instant::now()
        + if p.error.is_some() {
            DRAIN_AFTER_ERROR
        } else {
            CONFIRM_TIMEOUT
        };
    while let Some((s, c)) = outstanding.pop_front() {
        let left = deadline.saturating_duration_since(Instant::now());
        let settled = settle(&mut p, s, c, left).await;
        on_progress(p.sent, p.confirmed);
        if let Err(e) = settled
            && p.error.is_none()
        {
            p.error = Some(e);
        }
    }
    p.elapsed = started.elapsed();
    p
}

/// Waits for one confirm and records it; an error or a timeout leaves the
/// message unconfirmed and is returned.
async fn settle(
    p: &mut Published,
    seq: u64,
    confirm: PublisherConfirm,
    timeout: Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, confirm).await {
        Ok(result) => record(p, seq, result),
        Err(_) => Err(format!(
            "confirm of #{seq}: none within {:.0} s",
            timeout.as_secs_f64()
        )),
    }
}

/// Records one resolved confirm; an error leaves the message unconfirmed
/// and is returned.
fn record(p: &mut Published, seq: u64, result: lapin::Result<Confirmation>) -> Result<(), String> {
    match result {
        Ok(c) if c.is_ack() => {
            p.fate[seq as usize] = Fate::Confirmed;
            p.confirmed += 1;
            Ok(())
        }
        Ok(_) => {
            p.fate[seq as usize] = Fate::Nacked;
            Ok(())
        }
        Err(e) => Err(format!("confirm of #{seq}: {e}")),
    }
}

/// How often each of `n` published messages came back (by sequence number),
/// and how many deliveries carried a body that is not ours.
pub fn tally(n: usize, deliveries: &[Readback]) -> (Vec<u32>, u64) {
    let mut count = vec![0u32; n];
    let mut foreign = 0u64;
    for d in deliveries {
        match d.seq.filter(|s| (*s as usize) < n) {
            Some(seq) => count[seq as usize] += 1,
            None => foreign += 1,
        }
    }
    (count, foreign)
}

/// One delivery read back after the restart.
#[derive(Clone, Copy, Debug)]
pub struct Readback {
    /// The sequence number, or None for a body that is not ours.
    pub seq: Option<u64>,
    /// The delivery's redelivered flag.
    pub redelivered: bool,
}

/// What the queue held after the restart.
pub struct Recovered {
    /// Its depth as queue.declare (passive) reported it.
    pub depth: Option<u32>,
    /// Every delivery, in order.
    pub deliveries: Vec<Readback>,
    /// Why reading stopped early: the queue is missing, the connection broke.
    pub error: Option<String>,
}

impl Recovered {
    /// Fails the round when reading the queue back after the restart failed,
    /// or when `foreign` deliveries (see [`tally`]) had bodies not ours.
    pub fn check_read_back(&self, foreign: u64, v: &mut crate::round::Verdict) {
        if let Some(e) = &self.error {
            v.fail(format!("reading the queue back after the restart: {e}"));
        }
        if foreign > 0 {
            v.fail(format!(
                "{foreign} deliveries with bodies that are not ours"
            ));
        }
    }

    /// Fails the round when the queue reported more messages than it delivered.
    pub fn check_depth(&self, v: &mut crate::round::Verdict) {
        if let Some(depth) = self.depth
            && self.error.is_none()
            && depth as usize > self.deliveries.len()
        {
            v.fail(format!(
                "the queue reported {depth} messages but delivered only {}",
                self.deliveries.len()
            ));
        }
    }
}

/// Reads everything `queue` holds with a no-ack consumer: until the depth
/// the passive declare reported has arrived and nothing more comes for half a
/// second, or nothing at all comes for 5 s. Then deletes the queue.
pub async fn recover(uri: &str, queue: &str) -> Recovered {
    let mut r = Recovered {
        depth: None,
        deliveries: Vec::new(),
        error: None,
    };
    let conn = match connect(uri).await {
        Ok(c) => c,
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    if let Err(e) = read_back(&conn, queue, &mut r).await {
        r.error = Some(format!("{e:#}"));
    }
    close(conn).await;
    r
}

async fn read_back(conn: &Connection, queue: &str, r: &mut Recovered) -> anyhow::Result<()> {
    let ch = within("channel.open", conn.create_channel()).await?;
    let passive = QueueDeclareOptions {
        passive: true,
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let q = within(
        "queue.declare (passive) after the restart",
        ch.queue_declare(queue.into(), passive, FieldTable::default()),
    )
    .await?;
    let depth = q.message_count();
    r.depth = Some(depth);
    let options = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = within(
        "basic.consume",
        ch.basic_consume(queue.into(), "".into(), options, FieldTable::default()),
    )
    .await?;
    loop {
        let wait = if r.deliveries.len() >= depth as usize {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(5)
        };
        match tokio::time::timeout(wait, consumer.next()).await {
            Ok(Some(Ok(d))) => r.deliveries.push(Readback {
                seq: parse(&d.data),
                redelivered: d.redelivered,
            }),
            Ok(Some(Err(e))) => anyhow::bail!("reading back: {e}"),
            Ok(None) => anyhow::bail!("reading back: the broker cancelled the consumer"),
            Err(_) => break,
        }
    }
    within(
        "queue.delete",
        ch.queue_delete(queue.into(), QueueDeleteOptions::default()),
    )
    .await?;
    Ok(())
}

/// Splitmix64: a small seeded generator, so that a round can be replayed from
/// its seed (the kill lands at the same message count; its timing still
/// varies with the machine).
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// A short list of sequence numbers for a report: `3, 4, 9, ... (120 in all)`.
pub fn sample(seqs: &[u64]) -> String {
    let mut s: Vec<String> = seqs.iter().take(8).map(u64::to_string).collect();
    if seqs.len() > 8 {
        s.push(format!("... ({} in all)", seqs.len()));
    }
    s.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip() {
        assert_eq!(body(42), b"seq 000000000042");
        assert_eq!(parse(&body(123_456)), Some(123_456));
        assert_eq!(parse(b"hello"), None);
    }

    #[test]
    fn rng_is_seeded_and_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            let x = a.range(10, 20);
            assert_eq!(x, b.range(10, 20));
            assert!((10..=20).contains(&x));
        }
        assert_eq!(a.range(5, 5), 5);
    }
}
