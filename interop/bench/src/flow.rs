//! The engine every scenario runs on: producers publishing to an exchange,
//! consumers on queues, shared counters, and a supervisor that ends the run
//! when everything published has been delivered, when nothing moved for the
//! stall timeout, or when any client saw an error. Every loop here ends on its
//! own: producers on a deadline or a count, consumers when told to stop, the
//! supervisor on completion, stall or the hard cap.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures_util::future::join_all;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long one RPC (connect, declare, bind, close, ...) may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the supervisor looks at the counters.
const TICK: Duration = Duration::from_millis(50);
/// Publishes a producer hands to lapin at once. lapin resolves a publish when
/// its IO thread has written it; awaiting each one before the next costs a
/// thread round trip per message and makes the client, not the broker, the
/// bottleneck. Each message's frames still go out together, with its own
/// delivery tag for confirms.
const PUBLISH_BATCH: u64 = 32;
/// Acks a consumer sends at once (each still acks one delivery tag; they are
/// flushed early whenever no delivery is waiting, so prefetch never starves).
const ACK_BATCH: usize = 32;

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

/// The CA certificate (PEM) `amqps://` connections trust (`--cacert`).
static TRUSTED_CA: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Trusts the CA in `pem` for every `amqps://` connection from now on.
pub fn trust(pem: String) {
    let _ = TRUSTED_CA.set(pem);
}

/// Opens one connection to `uri` (over TLS for `amqps://`).
pub async fn connect(uri: &str) -> anyhow::Result<Connection> {
    let tls = lapin::tcp::OwnedTLSConfig {
        identity: None,
        cert_chain: TRUSTED_CA.get().cloned(),
    };
    let runtime =
        lapin::runtime::default_runtime().map_err(|e| anyhow!("connect: no runtime: {e}"))?;
    within(
        "connect",
        Connection::connect_with_config(uri, ConnectionProperties::default(), tls, runtime),
    )
    .await
}

/// Closes connections, each within a few seconds, ignoring errors.
pub async fn close_all(conns: Vec<Connection>) {
    for c in conns {
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            c.close(200, ShortString::from("warren-bench done")),
        )
        .await;
    }
}

/// When a producer stops.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this long.
    For(Duration),
    /// After this many messages (per producer).
    Count(u64),
}

/// How consumers acknowledge.
#[derive(Clone, Copy, Debug)]
pub enum Ack {
    /// basic.consume with no-ack.
    Auto,
    /// basic.qos(prefetch), then one basic.ack per delivery.
    Manual { prefetch: u16 },
}

/// One run: who publishes what, and who consumes from where.
pub struct Flow {
    /// Exchange to publish to ("" is the default exchange).
    pub exchange: String,
    /// Routing keys, cycled by each producer (from its own offset).
    pub keys: Vec<String>,
    /// For each key, how many deliveries one message with it yields.
    pub weights: Vec<u64>,
    /// Number of producers, each on its own connection.
    pub producers: usize,
    /// Body size in bytes (at least 8: the first 8 carry the send time).
    pub body_size: usize,
    /// delivery-mode 2.
    pub persistent: bool,
    /// Publisher confirms with this many outstanding at most.
    pub confirm_window: Option<usize>,
    /// When producers stop.
    pub stop: Stop,
    /// Messages per second per producer, or as fast as possible.
    pub rate: Option<f64>,
    /// One consumer per entry, each on its own connection, on that queue.
    pub consumers: Vec<String>,
    /// How consumers acknowledge.
    pub ack: Ack,
    /// Record end-to-end latency of every delivery.
    pub latency: bool,
    /// Deliveries expected before any producer publishes (a backlog).
    pub preset_expected: u64,
}

/// When the supervisor gives up.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// No message published, confirmed or delivered for this long.
    pub stall: Duration,
    /// The whole run, whatever happens.
    pub hard_cap: Duration,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Everything published was delivered.
    Ok,
    /// Nothing moved for the stall timeout, or the hard cap passed.
    Stalled(String),
    /// A client saw an error (connection or channel closed, nack, ...).
    Failed(String),
}

/// What a run measured.
#[derive(Debug)]
pub struct FlowResult {
    /// How it ended.
    pub verdict: Verdict,
    /// basic.publish frames written.
    pub published: u64,
    /// Publisher confirms received (acks).
    pub confirmed: u64,
    /// Publisher nacks received.
    pub nacked: u64,
    /// From the start until the last producer finished (its last confirm).
    pub pub_secs: f64,
    /// Deliveries received by all consumers.
    pub received: u64,
    /// Deliveries the published messages should yield.
    pub expected: u64,
    /// Deliveries flagged redelivered.
    pub redelivered: u64,
    /// From the start until the last delivery.
    pub con_secs: f64,
    /// End-to-end latency of each delivery, in nanoseconds (if recorded).
    pub latencies_ns: Vec<u64>,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    confirmed: AtomicU64,
    nacked: AtomicU64,
    expected: AtomicU64,
    received: AtomicU64,
    redelivered: AtomicU64,
}

impl Counters {
    fn progress(&self) -> u64 {
        self.published.load(Relaxed) + self.confirmed.load(Relaxed) + self.received.load(Relaxed)
    }

    fn describe(&self) -> String {
        format!(
            "published {}, confirmed {}, delivered {} of {} expected",
            self.published.load(Relaxed),
            self.confirmed.load(Relaxed),
            self.received.load(Relaxed),
            self.expected.load(Relaxed)
        )
    }
}

struct PubStats {
    elapsed: Duration,
}

struct ConStats {
    last: Option<Instant>,
    latencies_ns: Vec<u64>,
}

/// Runs a flow against `uri` and reports what it measured. Setup errors
/// (connect, qos, consume) come back as a `Failed` verdict.
pub async fn run(uri: &str, flow: &Flow, limits: Limits, epoch: Instant) -> FlowResult {
    let counters = Arc::new(Counters::default());
    counters.expected.store(flow.preset_expected, Relaxed);
    let mut conns = Vec::new();
    let (verdict, pub_secs, con) =
        match drive(uri, flow, limits, epoch, &counters, &mut conns).await {
            Ok(r) => r,
            Err(e) => (Verdict::Failed(format!("{e:#}")), 0.0, Vec::new()),
        };
    close_all(conns).await;
    let mut latencies_ns = Vec::new();
    let mut con_secs: f64 = 0.0;
    for (start, s) in con {
        if let Some(last) = s.last {
            con_secs = con_secs.max(last.duration_since(start).as_secs_f64());
        }
        latencies_ns.extend(s.latencies_ns);
    }
    FlowResult {
        verdict,
        published: counters.published.load(Relaxed),
        confirmed: counters.confirmed.load(Relaxed),
        nacked: counters.nacked.load(Relaxed),
        pub_secs,
        received: counters.received.load(Relaxed),
        expected: counters.expected.load(Relaxed),
        redelivered: counters.redelivered.load(Relaxed),
        con_secs,
        latencies_ns,
    }
}

type Drive = (Verdict, f64, Vec<(Instant, ConStats)>);

async fn drive(
    uri: &str,
    flow: &Flow,
    limits: Limits,
    epoch: Instant,
    counters: &Arc<Counters>,
    conns: &mut Vec<Connection>,
) -> anyhow::Result<Drive> {
    if flow.producers > 0 && (flow.keys.is_empty() || flow.keys.len() != flow.weights.len()) {
        bail!("flow needs one weight per routing key");
    }
    // Subscribe every consumer before anything is published.
    let mut consumers = Vec::new();
    for queue in &flow.consumers {
        let conn = connect(uri).await?;
        let ch = within("channel.open", conn.create_channel()).await?;
        conns.push(conn);
        if let Ack::Manual { prefetch } = flow.ack {
            within(
                "basic.qos",
                ch.basic_qos(prefetch, BasicQosOptions::default()),
            )
            .await?;
        }
        let options = BasicConsumeOptions {
            no_ack: matches!(flow.ack, Ack::Auto),
            ..BasicConsumeOptions::default()
        };
        let consumer = within(
            "basic.consume",
            ch.basic_consume(
                queue.as_str().into(),
                "".into(),
                options,
                FieldTable::default(),
            ),
        )
        .await?;
        consumers.push(consumer);
    }
    let mut channels = Vec::new();
    for _ in 0..flow.producers {
        let conn = connect(uri).await?;
        let ch = within("channel.open", conn.create_channel()).await?;
        conns.push(conn);
        if flow.confirm_window.is_some() {
            within(
                "confirm.select",
                ch.confirm_select(ConfirmSelectOptions::default()),
            )
            .await?;
        }
        channels.push(ch);
    }

    let start = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut con_handles: Vec<Option<JoinHandle<anyhow::Result<ConStats>>>> = consumers
        .into_iter()
        .map(|c| {
            let job = ConsumeJob {
                consumer: c,
                ack: flow.ack,
                latency: flow.latency,
                counters: counters.clone(),
                epoch,
                stop: stop_rx.clone(),
            };
            Some(tokio::spawn(job.run()))
        })
        .collect();
    let keys: Arc<Vec<ShortString>> =
        Arc::new(flow.keys.iter().map(|k| k.as_str().into()).collect());
    let weights = Arc::new(flow.weights.clone());
    let mut pub_handles: Vec<Option<JoinHandle<anyhow::Result<PubStats>>>> = channels
        .into_iter()
        .enumerate()
        .map(|(i, ch)| {
            let job = PublishJob {
                channel: ch,
                exchange: flow.exchange.as_str().into(),
                keys: keys.clone(),
                weights: weights.clone(),
                offset: i * keys.len() / flow.producers.max(1),
                body_size: flow.body_size.max(8),
                persistent: flow.persistent,
                window: flow.confirm_window,
                stop: flow.stop,
                rate: flow.rate,
                counters: counters.clone(),
                epoch,
                start,
            };
            Some(tokio::spawn(job.run()))
        })
        .collect();

    let mut pub_secs: f64 = 0.0;
    let mut last_progress = counters.progress();
    let mut last_change = Instant::now();
    let verdict = 'watch: loop {
        tokio::time::sleep(TICK).await;
        for slot in pub_handles.iter_mut() {
            if let Some(h) = slot.take_if(|h| h.is_finished()) {
                match h.await {
                    Ok(Ok(s)) => pub_secs = pub_secs.max(s.elapsed.as_secs_f64()),
                    Ok(Err(e)) => break 'watch Verdict::Failed(format!("producer: {e:#}")),
                    Err(e) => break 'watch Verdict::Failed(format!("producer task: {e}")),
                }
            }
        }
        for slot in con_handles.iter_mut() {
            if let Some(h) = slot.take_if(|h| h.is_finished()) {
                let why = match h.await {
                    Ok(Ok(_)) => "ended before it was told to".to_string(),
                    Ok(Err(e)) => format!("{e:#}"),
                    Err(e) => format!("task: {e}"),
                };
                break 'watch Verdict::Failed(format!("consumer: {why}"));
            }
        }
        let producing = pub_handles.iter().any(Option::is_some);
        let delivered = flow.consumers.is_empty()
            || counters.received.load(Relaxed) >= counters.expected.load(Relaxed);
        if !producing && delivered {
            break Verdict::Ok;
        }
        let progress = counters.progress();
        if progress != last_progress {
            last_progress = progress;
            last_change = Instant::now();
        } else if last_change.elapsed() >= limits.stall {
            break Verdict::Stalled(format!(
                "nothing published, confirmed or delivered for {} s at t={:.1} s: {}",
                limits.stall.as_secs(),
                start.elapsed().as_secs_f64(),
                counters.describe()
            ));
        }
        if start.elapsed() >= limits.hard_cap {
            break Verdict::Stalled(format!(
                "hard cap of {} s reached: {}",
                limits.hard_cap.as_secs(),
                counters.describe()
            ));
        }
    };
    for h in pub_handles.iter_mut().filter_map(Option::take) {
        h.abort();
        pub_secs = pub_secs.max(start.elapsed().as_secs_f64());
    }
    let _ = stop_tx.send(true);
    let mut con_stats = Vec::new();
    for mut h in con_handles.into_iter().flatten() {
        match tokio::time::timeout(Duration::from_secs(5), &mut h).await {
            Ok(Ok(Ok(s))) => con_stats.push((start, s)),
            Ok(_) => {}
            Err(_) => h.abort(),
        }
    }
    Ok((verdict, pub_secs, con_stats))
}

struct PublishJob {
    channel: Channel,
    exchange: ShortString,
    keys: Arc<Vec<ShortString>>,
    weights: Arc<Vec<u64>>,
    offset: usize,
    body_size: usize,
    persistent: bool,
    window: Option<usize>,
    stop: Stop,
    rate: Option<f64>,
    counters: Arc<Counters>,
    epoch: Instant,
    start: Instant,
}

impl PublishJob {
    async fn run(self) -> anyhow::Result<PubStats> {
        let mut body = vec![0u8; self.body_size];
        let props = if self.persistent {
            BasicProperties::default().with_delivery_mode(2)
        } else {
            BasicProperties::default()
        };
        let mut outstanding = VecDeque::new();
        let mut sent: u64 = 0;
        loop {
            let mut batch = match self.stop {
                Stop::For(d) if self.start.elapsed() >= d => break,
                Stop::Count(n) if sent >= n => break,
                Stop::Count(n) => (n - sent).min(PUBLISH_BATCH),
                Stop::For(_) => PUBLISH_BATCH,
            };
            if let Some(rate) = self.rate {
                // Paced: one message at a time, each stamped when it is sent.
                batch = 1;
                let due = self.start + Duration::from_secs_f64(sent as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            if let Some(window) = self.window {
                let window = window.max(batch as usize);
                while outstanding.len() + batch as usize > window {
                    if let Some(oldest) = outstanding.pop_front() {
                        self.settle(oldest.await)?;
                    }
                }
            }
            let stamp = self.epoch.elapsed().as_nanos() as u64;
            body[..8].copy_from_slice(&stamp.to_le_bytes());
            let first = self.offset + sent as usize;
            let publishes = (0..batch as usize).map(|j| {
                self.channel.basic_publish(
                    self.exchange.clone(),
                    self.keys[(first + j) % self.keys.len()].clone(),
                    BasicPublishOptions::default(),
                    &body,
                    props.clone(),
                )
            });
            for (j, confirm) in join_all(publishes).await.into_iter().enumerate() {
                let confirm = confirm.context("basic.publish")?;
                sent += 1;
                self.counters.published.fetch_add(1, Relaxed);
                let k = (first + j) % self.keys.len();
                self.counters.expected.fetch_add(self.weights[k], Relaxed);
                if self.window.is_some() {
                    outstanding.push_back(confirm);
                }
            }
        }
        while let Some(c) = outstanding.pop_front() {
            self.settle(c.await)?;
        }
        Ok(PubStats {
            elapsed: self.start.elapsed(),
        })
    }

    fn settle(&self, c: lapin::Result<lapin::Confirmation>) -> anyhow::Result<()> {
        let c = c.context("waiting for a publisher confirm")?;
        if c.is_nack() {
            self.counters.nacked.fetch_add(1, Relaxed);
            bail!("broker nacked a publish (basic.nack)");
        }
        self.counters.confirmed.fetch_add(1, Relaxed);
        Ok(())
    }
}

struct ConsumeJob {
    consumer: Consumer,
    ack: Ack,
    latency: bool,
    counters: Arc<Counters>,
    epoch: Instant,
    stop: watch::Receiver<bool>,
}

impl ConsumeJob {
    async fn run(mut self) -> anyhow::Result<ConStats> {
        let mut stats = ConStats {
            last: None,
            latencies_ns: Vec::new(),
        };
        let ack_batch = match self.ack {
            Ack::Auto => 1,
            Ack::Manual { prefetch } => (usize::from(prefetch) / 2).clamp(1, ACK_BATCH),
        };
        let mut acks = Vec::with_capacity(ack_batch);
        loop {
            let next = match self.consumer.next().now_or_never() {
                Some(d) => d,
                None => {
                    // Nothing waiting: send the acks held back, then sleep.
                    flush_acks(&mut acks).await?;
                    tokio::select! {
                        d = self.consumer.next() => d,
                        _ = self.stop.changed() => break,
                    }
                }
            };
            let d = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => return Err(anyhow!("delivery: {e}")),
                None => bail!("the broker cancelled the consumer"),
            };
            let now = Instant::now();
            if self.latency
                && let Some(b) = d.data.get(..8)
            {
                let mut sent = [0u8; 8];
                sent.copy_from_slice(b);
                let now_ns = now.duration_since(self.epoch).as_nanos() as u64;
                stats
                    .latencies_ns
                    .push(now_ns.saturating_sub(u64::from_le_bytes(sent)));
            }
            if d.redelivered {
                self.counters.redelivered.fetch_add(1, Relaxed);
            }
            stats.last = Some(now);
            self.counters.received.fetch_add(1, Relaxed);
            if let Ack::Manual { .. } = self.ack {
                acks.push(d.acker);
                if acks.len() >= ack_batch {
                    flush_acks(&mut acks).await?;
                }
            }
        }
        flush_acks(&mut acks).await?;
        Ok(stats)
    }
}

/// Sends one basic.ack per held delivery, all handed to lapin at once.
async fn flush_acks(acks: &mut Vec<lapin::Acker>) -> anyhow::Result<()> {
    if acks.is_empty() {
        return Ok(());
    }
    let sends = acks
        .drain(..)
        .map(|a| async move { a.ack(BasicAckOptions::default()).await });
    for r in join_all(sends).await {
        r.context("basic.ack")?;
    }
    Ok(())
}
