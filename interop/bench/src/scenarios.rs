//! The eight scenarios: each declares its own uniquely named queues and
//! exchanges, runs one or two [`Flow`]s while the broker and this process are
//! sampled, and deletes what it declared.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

use crate::flow::{self, Ack, Flow, FlowResult, Limits, Stop, Verdict, within};
use crate::probe::{Probe, ProbeStats};
use crate::report::{Outcome, Percentiles, Status};
use crate::topic;

/// Every scenario, in the order `all` runs them.
pub const NAMES: [&str; 8] = [
    "1p1c-transient",
    "1p1c-persistent-confirm",
    "4p4c-1k",
    "fanout-10",
    "topic-1000",
    "latency",
    "backlog",
    "backlog-persistent",
];

/// What every scenario needs to know.
pub struct Settings {
    /// Broker URI (checked to be loopback).
    pub uri: String,
    /// How long throughput producers publish.
    pub duration: Duration,
    /// Messages the backlog scenarios publish.
    pub messages: u64,
    /// Broker process to sample.
    pub broker_pid: Option<u32>,
    /// Outstanding publisher confirms per producer.
    pub confirm_window: usize,
    /// basic.qos prefetch of manual-ack consumers.
    pub prefetch: u16,
    /// basic.qos prefetch of the consumer draining backlog-persistent.
    pub drain_prefetch: u16,
    /// Messages per second in the latency scenario.
    pub rate: f64,
    /// When a flow is given up.
    pub limits: Limits,
    /// Reference instant for the timestamps in message bodies.
    pub epoch: Instant,
}

/// Runs one scenario by name. Never panics on broker misbehaviour: problems
/// come back as a `Failed` or `Stalled` outcome.
pub async fn run(s: &Settings, name: &str) -> Outcome {
    let mut topo = Topology::new(name);
    let result = match name {
        "backlog" => backlog(s, &mut topo, false).await,
        "backlog-persistent" => backlog(s, &mut topo, true).await,
        _ => throughput(s, name, &mut topo).await,
    };
    let mut outcome = result.unwrap_or_else(|e| failed(name, format!("{e:#}")));
    outcome.notes.extend(topo.cleanup(&s.uri).await);
    outcome
}

fn failed(name: &str, why: String) -> Outcome {
    Outcome {
        scenario: name.to_string(),
        status: Status::Failed(why),
        published: 0,
        pub_secs: 0.0,
        delivered: 0,
        expected: 0,
        con_secs: 0.0,
        latency: None,
        broker: None,
        client: None,
        wall_secs: 0.0,
        notes: Vec::new(),
    }
}

/// Queues and exchanges a scenario declared, named so that no two runs (nor a
/// run and an application) can collide.
struct Topology {
    prefix: String,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl Topology {
    fn new(scenario: &str) -> Topology {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Topology {
            prefix: format!("warren-bench.{scenario}.{}.{millis}", std::process::id()),
            queues: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    async fn queue(&mut self, ch: &Channel, durable: bool) -> anyhow::Result<String> {
        let name = format!("{}.q{}", self.prefix, self.queues.len());
        self.queues.push(name.clone());
        let options = QueueDeclareOptions {
            durable,
            ..QueueDeclareOptions::default()
        };
        within(
            "queue.declare",
            ch.queue_declare(name.as_str().into(), options, FieldTable::default()),
        )
        .await?;
        Ok(name)
    }

    async fn exchange(&mut self, ch: &Channel, kind: ExchangeKind) -> anyhow::Result<String> {
        let name = format!("{}.x{}", self.prefix, self.exchanges.len());
        self.exchanges.push(name.clone());
        within(
            "exchange.declare",
            ch.exchange_declare(
                name.as_str().into(),
                kind,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(name)
    }

    /// Deletes everything declared, on a fresh connection (the scenario's own
    /// may be closed by an error). Returns notes on anything unexpected.
    async fn cleanup(&self, uri: &str) -> Vec<String> {
        if self.queues.is_empty() && self.exchanges.is_empty() {
            return Vec::new();
        }
        let mut notes = Vec::new();
        let conn = match flow::connect(uri).await {
            Ok(c) => c,
            Err(e) => return vec![format!("cleanup: cannot connect: {e:#}")],
        };
        match within("channel.open", conn.create_channel()).await {
            Ok(ch) => {
                for q in &self.queues {
                    let r = within(
                        "queue.delete",
                        ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()),
                    )
                    .await;
                    match r {
                        Ok(0) => {}
                        Ok(n) => notes.push(format!("queue {q} still held {n} messages")),
                        Err(e) => {
                            notes.push(format!("cleanup of {q}: {e:#}"));
                            break;
                        }
                    }
                }
                for x in &self.exchanges {
                    let r = within(
                        "exchange.delete",
                        ch.exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default()),
                    )
                    .await;
                    if let Err(e) = r {
                        notes.push(format!("cleanup of {x}: {e:#}"));
                        break;
                    }
                }
            }
            Err(e) => notes.push(format!("cleanup: {e:#}")),
        }
        flow::close_all(vec![conn]).await;
        notes
    }
}

/// The broker's and this process's probes over the measured part of a run.
struct Probes {
    broker: Option<Probe>,
    client: Option<Probe>,
    start: Instant,
}

impl Probes {
    fn start(s: &Settings) -> anyhow::Result<Probes> {
        let broker = match s.broker_pid {
            Some(pid) => Some(
                Probe::start(pid)
                    .with_context(|| format!("cannot read /proc/{pid} (--broker-pid)"))?,
            ),
            None => None,
        };
        Ok(Probes {
            broker,
            client: Probe::start(std::process::id()).ok(),
            start: Instant::now(),
        })
    }

    fn finish(self) -> (Option<ProbeStats>, Option<ProbeStats>, f64) {
        (
            self.broker.map(Probe::finish),
            self.client.map(Probe::finish),
            self.start.elapsed().as_secs_f64(),
        )
    }
}

/// A flow that publishes `keys` to `exchange` and consumes from `consumers`,
/// with the defaults of the simple transient scenarios.
fn base_flow(s: &Settings, exchange: &str, keys: Vec<String>, weights: Vec<u64>) -> Flow {
    Flow {
        exchange: exchange.to_string(),
        keys,
        weights,
        producers: 1,
        body_size: 16,
        persistent: false,
        confirm_window: None,
        stop: Stop::For(s.duration),
        rate: None,
        consumers: Vec::new(),
        ack: Ack::Auto,
        latency: true,
        preset_expected: 0,
    }
}

/// Scenarios 1 to 6: set up, run one flow, report.
async fn throughput(s: &Settings, name: &str, topo: &mut Topology) -> anyhow::Result<Outcome> {
    let admin = flow::connect(&s.uri).await?;
    let ch = within("channel.open", admin.create_channel()).await?;
    let mut notes = Vec::new();
    let setup = async {
        let flow = match name {
            "1p1c-transient" | "latency" => {
                let q = topo.queue(&ch, false).await?;
                let mut f = base_flow(s, "", vec![q.clone()], vec![1]);
                f.consumers = vec![q];
                if name == "latency" {
                    f.rate = Some(s.rate);
                }
                f
            }
            "1p1c-persistent-confirm" => {
                let q = topo.queue(&ch, true).await?;
                let mut f = base_flow(s, "", vec![q.clone()], vec![1]);
                f.consumers = vec![q];
                f.persistent = true;
                f.confirm_window = Some(s.confirm_window);
                f.ack = Ack::Manual {
                    prefetch: s.prefetch,
                };
                f
            }
            "4p4c-1k" => {
                let q = topo.queue(&ch, false).await?;
                let mut f = base_flow(s, "", vec![q.clone()], vec![1]);
                f.producers = 4;
                f.consumers = vec![q; 4];
                f.body_size = 1024;
                f
            }
            "fanout-10" => {
                let x = topo.exchange(&ch, ExchangeKind::Fanout).await?;
                let mut f = base_flow(s, &x, vec![String::new()], vec![10]);
                for _ in 0..10 {
                    let q = topo.queue(&ch, false).await?;
                    bind(&ch, &q, &x, "").await?;
                    f.consumers.push(q);
                }
                f
            }
            "topic-1000" => {
                const QUEUES: usize = 5;
                let plan = topic::plan(1000, QUEUES, 1024);
                let x = topo.exchange(&ch, ExchangeKind::Topic).await?;
                let mut queues = Vec::new();
                for _ in 0..QUEUES {
                    queues.push(topo.queue(&ch, false).await?);
                }
                for (qi, pattern) in &plan.bindings {
                    bind(&ch, &queues[*qi], &x, pattern).await?;
                }
                let fan = plan.weights.iter().sum::<u64>() as f64 / plan.weights.len() as f64;
                notes.push(format!(
                    "{} bindings over {QUEUES} queues; {} routing keys cycled, each reaching \
                     {fan:.2} queues on average ({} reach none)",
                    plan.bindings.len(),
                    plan.keys.len(),
                    plan.weights.iter().filter(|w| **w == 0).count()
                ));
                let mut f = base_flow(s, &x, plan.keys, plan.weights);
                f.consumers = queues;
                f
            }
            other => anyhow::bail!("unknown scenario {other}"),
        };
        anyhow::Ok(flow)
    };
    let flow = setup.await;
    flow::close_all(vec![admin]).await;
    let flow = flow?;

    let probes = Probes::start(s)?;
    let r = flow::run(&s.uri, &flow, s.limits, s.epoch).await;
    let (broker, client, wall) = probes.finish();
    if name == "latency" && r.pub_secs > 0.0 {
        notes.push(format!(
            "target {:.0} msg/s, achieved {:.0} msg/s; latency = receive time - send time \
             written in the body, same clock",
            s.rate,
            r.published as f64 / r.pub_secs
        ));
    }
    notes.extend(flow_notes(&r));
    Ok(outcome(name, r, broker, client, wall, notes))
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> anyhow::Result<()> {
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

fn flow_notes(r: &FlowResult) -> Vec<String> {
    let mut notes = Vec::new();
    if r.received > r.expected {
        notes.push(format!(
            "{} deliveries more than the {} expected (duplicates or misrouting)",
            r.received - r.expected,
            r.expected
        ));
    }
    if r.redelivered > 0 {
        notes.push(format!("{} deliveries flagged redelivered", r.redelivered));
    }
    if r.nacked > 0 {
        notes.push(format!("{} publishes nacked", r.nacked));
    }
    if r.con_secs > r.pub_secs + 0.5 && r.pub_secs > 0.0 {
        notes.push(format!(
            "consumers finished {:.1} s after the producers: the producers outran them and a \
             backlog built up (latency then includes queueing time)",
            r.con_secs - r.pub_secs
        ));
    }
    notes
}

fn status(v: Verdict) -> Status {
    match v {
        Verdict::Ok => Status::Ok,
        Verdict::Stalled(s) => Status::Stalled(s),
        Verdict::Failed(s) => Status::Failed(s),
    }
}

fn outcome(
    name: &str,
    r: FlowResult,
    broker: Option<ProbeStats>,
    client: Option<ProbeStats>,
    wall_secs: f64,
    notes: Vec<String>,
) -> Outcome {
    Outcome {
        scenario: name.to_string(),
        status: status(r.verdict),
        published: r.published,
        pub_secs: r.pub_secs,
        delivered: r.received,
        expected: r.expected,
        con_secs: r.con_secs,
        latency: Percentiles::of(r.latencies_ns),
        broker,
        client,
        wall_secs,
        notes,
    }
}

/// Scenarios 7 and 8: publish N messages with confirms and nobody consuming,
/// check the queue depth, then drain it with one manual-ack consumer.
/// `persistent` (backlog-persistent): a durable queue, delivery-mode 2, and
/// the drain's prefetch from `--drain-prefetch`; otherwise a transient queue
/// and messages, and `--prefetch`.
async fn backlog(s: &Settings, topo: &mut Topology, persistent: bool) -> anyhow::Result<Outcome> {
    let name = if persistent {
        "backlog-persistent"
    } else {
        "backlog"
    };
    let prefetch = if persistent {
        s.drain_prefetch
    } else {
        s.prefetch
    };
    let admin = flow::connect(&s.uri).await?;
    let ch = within("channel.open", admin.create_channel()).await?;
    let q = match topo.queue(&ch, persistent).await {
        Ok(q) => q,
        Err(e) => {
            flow::close_all(vec![admin]).await;
            return Err(e);
        }
    };
    let mut notes = Vec::new();
    let probes = Probes::start(s)?;

    let mut publish = base_flow(s, "", vec![q.clone()], vec![1]);
    publish.persistent = persistent;
    publish.stop = Stop::Count(s.messages);
    publish.confirm_window = Some(s.confirm_window);
    publish.latency = false;
    let p = flow::run(&s.uri, &publish, s.limits, s.epoch).await;
    let published = p.confirmed;
    let pub_secs = p.pub_secs;
    if let Some(b) = &probes.broker {
        notes.push(format!(
            "broker RSS with the backlog in the queue: {:.0} MiB",
            b.rss_now_kib() as f64 / 1024.0
        ));
    }
    let depth = within(
        "queue.declare (passive)",
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        ),
    )
    .await;
    flow::close_all(vec![admin]).await;
    match &depth {
        Ok(d) if u64::from(d.message_count()) == published => {
            notes.push(format!(
                "queue depth after publishing: {published} (as confirmed)"
            ));
        }
        Ok(d) => notes.push(format!(
            "queue depth after publishing is {}, but {published} publishes were confirmed",
            d.message_count()
        )),
        Err(e) => notes.push(format!("could not read the queue depth: {e:#}")),
    }
    let mut notes_tail = flow_notes(&p);
    if !matches!(p.verdict, Verdict::Ok) {
        let (broker, client, wall) = probes.finish();
        let mut o = outcome(name, p, broker, client, wall, notes);
        o.notes.insert(0, "failed while publishing".to_string());
        o.notes.append(&mut notes_tail);
        return Ok(o);
    }

    let mut drain = base_flow(s, "", Vec::new(), Vec::new());
    drain.producers = 0;
    drain.consumers = vec![q];
    drain.ack = Ack::Manual { prefetch };
    drain.latency = false;
    drain.preset_expected = depth.map_or(published, |d| u64::from(d.message_count()));
    let d = flow::run(&s.uri, &drain, s.limits, s.epoch).await;
    let (broker, client, wall) = probes.finish();
    notes.push(format!(
        "publish: {published} x 16 B {}, confirms in a window of {}, no consumer; \
         drain: one consumer, manual ack, prefetch {prefetch}",
        if persistent {
            "persistent (delivery-mode 2) to a durable queue"
        } else {
            "transient"
        },
        s.confirm_window
    ));
    notes.append(&mut notes_tail);
    notes.extend(flow_notes(&d));
    Ok(Outcome {
        scenario: name.to_string(),
        status: status(d.verdict),
        published,
        pub_secs,
        delivered: d.received,
        expected: d.expected,
        con_secs: d.con_secs,
        latency: None,
        broker,
        client,
        wall_secs: wall,
        notes,
    })
}
