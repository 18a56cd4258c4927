//! The scenarios (the same topologies as warren-bench's) and one run of one:
//! declare, connect consumers then producers, measure from the first publish
//! to the last expected delivery, clean up.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::conn::{Conn, Target};
use crate::consumer::{self, ConResult, ConSpec};
use crate::paired::{self, End};
use crate::probe::Probe;
use crate::publisher::{self, PubResult, PubSpec};
use crate::shared::Shared;
use crate::stats::{Behind, Latency, Row};
use crate::topic;
use crate::wire::Template;

/// A scenario's shape.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Its name on the command line.
    pub name: &'static str,
    /// Producers, one connection each.
    pub producers: usize,
    /// Queues.
    pub queues: usize,
    /// Consumers on each queue, one connection each.
    pub consumers_per_queue: usize,
    /// Exchange type, or None for the default exchange.
    pub exchange: Option<&'static str>,
    /// Body size in bytes.
    pub size: usize,
    /// Durable queues and delivery-mode 2.
    pub persistent: bool,
    /// Publisher confirms.
    pub confirm: bool,
    /// Manual acks with a prefetch.
    pub manual_ack: bool,
    /// Paced (at `--rate`, 1000 msg/s by default) and every delivery sampled.
    pub paced: bool,
}

const BASE: Spec = Spec {
    name: "",
    producers: 1,
    queues: 1,
    consumers_per_queue: 1,
    exchange: None,
    size: 16,
    persistent: false,
    confirm: false,
    manual_ack: false,
    paced: false,
};

/// Every scenario.
pub const SPECS: &[Spec] = &[
    Spec {
        name: "1p1c-transient",
        ..BASE
    },
    Spec {
        name: "1p1c-persistent-confirm",
        persistent: true,
        confirm: true,
        manual_ack: true,
        ..BASE
    },
    Spec {
        name: "4p4c-1k",
        producers: 4,
        consumers_per_queue: 4,
        size: 1024,
        ..BASE
    },
    Spec {
        name: "fanout-10",
        queues: 10,
        exchange: Some("fanout"),
        ..BASE
    },
    Spec {
        name: "topic-1000",
        queues: 5,
        exchange: Some("topic"),
        ..BASE
    },
    Spec {
        name: "latency",
        paced: true,
        ..BASE
    },
    Spec {
        name: "latency-persistent-confirm",
        paced: true,
        persistent: true,
        confirm: true,
        manual_ack: true,
        ..BASE
    },
];

/// What every run shares, from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The broker.
    pub target: Target,
    /// Broker pid for CPU and RSS.
    pub pid: Option<u32>,
    /// Seconds of publishing.
    pub duration: Duration,
    /// Confirms outstanding per producer.
    pub window: u64,
    /// basic.qos of manual-ack consumers.
    pub prefetch: u16,
    /// Total publish rate (None: flat out; paced scenarios default to 1000).
    pub rate: Option<f64>,
    /// Body size override.
    pub size: Option<usize>,
    /// Bytes per producer write.
    pub batch_bytes: usize,
    /// Deliveries the consumers may lag behind (0: unbounded).
    pub max_backlog: u64,
    /// Latency sampling override.
    pub sample_every: Option<u64>,
    /// No progress for this long ends a run as STALLED.
    pub stall: Duration,
    /// A run's hard cap.
    pub max_run: Duration,
    /// The queues' `x-queue-type` (`quorum`, `stream`), if not the broker's default.
    pub queue_type: Option<String>,
    /// CSV file for the latency per 10 ms of a paced run's schedule.
    pub timeline: Option<std::path::PathBuf>,
    /// One producer and one consumer driven by one thread ([`crate::paired`]).
    pub one_thread: bool,
}

/// Topology of one run: queue names, the exchange, routing keys and weights.
struct Topology {
    queues: Vec<String>,
    exchange: String,
    keys: Vec<String>,
    weights: Vec<u64>,
}

fn declare(
    admin: &mut Conn,
    spec: &Spec,
    prefix: &str,
    queue_type: Option<&str>,
) -> anyhow::Result<Topology> {
    let queues: Vec<String> = (0..spec.queues).map(|i| format!("{prefix}.q{i}")).collect();
    for q in &queues {
        admin.declare_queue(q, spec.persistent, queue_type)?;
    }
    let exchange = match spec.exchange {
        Some(kind) => {
            let x = format!("{prefix}.x");
            admin.declare_exchange(&x, kind)?;
            x
        }
        None => String::new(),
    };
    let (keys, weights) = match spec.exchange {
        None => (vec![queues[0].clone()], vec![1]),
        Some("topic") => {
            let plan = topic::plan(1000, spec.queues, 1024);
            for (q, pattern) in &plan.bindings {
                admin.bind(&queues[*q], &exchange, pattern)?;
            }
            (plan.keys, plan.weights)
        }
        Some(_) => {
            for q in &queues {
                admin.bind(q, &exchange, "")?;
            }
            (vec![String::new()], vec![spec.queues as u64])
        }
    };
    Ok(Topology {
        queues,
        exchange,
        keys,
        weights,
    })
}

/// Runs one scenario; setup failures come back as a FAILED row.
pub fn run(s: &Settings, spec: &Spec) -> Row {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let prefix = format!("warren-load.{}.{}.{ms}", spec.name, std::process::id());
    let mut row = Row {
        scenario: spec.name.to_string(),
        ..Default::default()
    };
    let mut admin = match Conn::open(&s.target, "warren-load admin") {
        Ok(c) => c,
        Err(e) => {
            row.status = format!("FAILED setup: {e:#}");
            return row;
        }
    };
    let topo = declare(&mut admin, spec, &prefix, s.queue_type.as_deref());
    let result = topo
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|t| measure(s, spec, t, &mut row));
    if let Err(e) = result {
        row.status = format!("FAILED {e:#}");
    }
    if let Ok(t) = &topo {
        for q in &t.queues {
            match admin.delete_queue(q) {
                Ok(0) => {}
                Ok(n) => row.notes.push(format!("{q} still held {n} messages")),
                Err(e) => row.notes.push(format!("deleting {q}: {e:#}")),
            }
        }
        if !t.exchange.is_empty() && admin.delete_exchange(&t.exchange).is_err() {
            row.notes.push("could not delete the exchange".into());
        }
    }
    let _ = admin.close();
    row
}

/// Stops a run's threads however `measure` returns (a setup error after
/// some consumers started would otherwise leave them reading).
struct StopOnDrop(Arc<Shared>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

fn measure(s: &Settings, spec: &Spec, t: &Topology, row: &mut Row) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::new(Instant::now()));
    let _stop = StopOnDrop(shared.clone());
    let sample_every = s.sample_every.unwrap_or(if spec.paced { 1 } else { 64 });
    let ack_every = if spec.manual_ack {
        u64::from(s.prefetch / 2).max(1)
    } else {
        0
    };
    if s.one_thread && (spec.producers != 1 || spec.queues * spec.consumers_per_queue != 1) {
        anyhow::bail!("--one-thread needs a scenario with one producer and one consumer");
    }
    let mut consumers: Vec<JoinHandle<ConResult>> = Vec::new();
    let mut held: Option<End<ConSpec>> = None;
    for (i, q) in t.queues.iter().enumerate() {
        for j in 0..spec.consumers_per_queue {
            let name = format!("consumer-{i}.{j}");
            let mut c = Conn::open(&s.target, &name)?;
            let prefetch = if spec.manual_ack { s.prefetch } else { 0 };
            c.consume(q, !spec.manual_ack, prefetch)
                .with_context(|| format!("consume {q}"))?;
            let (stream, left) = c.into_parts()?;
            let cs = ConSpec {
                ack_every,
                sample_every,
            };
            if s.one_thread {
                held = Some(End {
                    stream,
                    leftover: left,
                    spec: cs,
                });
            } else {
                consumers.push(consumer::spawn(stream, left, cs, shared.clone(), name)?);
            }
        }
    }
    let size = s.size.unwrap_or(spec.size);
    let rate = match (s.rate, spec.paced) {
        (Some(r), _) => Some(r / spec.producers as f64),
        (None, true) => Some(1000.0 / spec.producers as f64),
        (None, false) => None,
    };
    let mut ready = Vec::new();
    for i in 0..spec.producers {
        let name = format!("producer-{i}");
        let mut c = Conn::open(&s.target, &name)?;
        if spec.confirm {
            c.confirm_select()?;
        }
        let templates = t
            .keys
            .iter()
            .map(|k| Template::new(&t.exchange, k, size, spec.persistent, c.frame_max))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let ps = PubSpec {
            templates,
            weights: t.weights.clone(),
            window: spec.confirm.then_some(s.window),
            rate,
            duration: s.duration,
            batch_bytes: s.batch_bytes,
            max_backlog: s.max_backlog,
        };
        let (stream, left) = c.into_parts()?;
        ready.push((stream, left, ps, name));
    }
    let broker = s.pid.map(Probe::start).transpose()?;
    let client = Probe::start(std::process::id())?;
    let t0 = Instant::now();
    let start_ns = shared.now_ns();
    let mut producers: Vec<JoinHandle<PubResult>> = Vec::new();
    let finished = Arc::new(AtomicBool::new(false));
    let mut pair = None;
    for (stream, left, ps, name) in ready {
        match held.take() {
            Some(con) => {
                let pro = End {
                    stream,
                    leftover: left,
                    spec: ps,
                };
                pair = Some(paired::spawn(pro, con, shared.clone(), finished.clone())?);
            }
            None => producers.push(publisher::spawn(stream, left, ps, shared.clone(), name)?),
        }
    }
    let published = || match &pair {
        Some(_) => finished.load(std::sync::atomic::Ordering::Acquire),
        None => producers.iter().all(JoinHandle::is_finished),
    };
    row.status = supervise(s, &shared, &published, t0);
    let wall = t0.elapsed();
    row.broker = broker.map(Probe::finish);
    row.client = Some(client.finish());
    shared.stop();
    let mut pub_results = Vec::new();
    let mut con_results = Vec::new();
    if let Some(pair) = pair {
        let (p, c) = pair.join().unwrap_or_default();
        pub_results.push(p);
        con_results.push(c);
    }
    pub_results.extend(producers.into_iter().map(|p| p.join().unwrap_or_default()));
    con_results.extend(consumers.into_iter().map(|c| c.join().unwrap_or_default()));
    let mut finished_ns = start_ns;
    let mut behind = Behind::default();
    for r in pub_results {
        behind.merge(&r.behind);
        row.published += r.confirmed;
        finished_ns = finished_ns.max(r.finished_ns);
    }
    let mut latencies = Vec::new();
    let mut acks = 0;
    let single = con_results.len() == 1;
    for r in con_results {
        latencies.extend(r.latencies);
        acks += r.acks;
    }
    if let (Some(path), Some(rate), true) = (&s.timeline, rate, single) {
        // One consumer sees the messages in the order they were due, so the
        // k-th sample was due at k * sample_every / rate.
        let per_slot = ((rate * spec.producers as f64) / 100.0 / sample_every as f64).max(1.0);
        let csv = crate::stats::timeline_csv(spec.name, &latencies, per_slot);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, csv.as_bytes()));
        if let Err(e) = written {
            row.notes.push(format!("timeline not written: {e}"));
        }
    }
    row.delivered = shared.delivered.load(std::sync::atomic::Ordering::Relaxed);
    row.expected = shared.expected.load(std::sync::atomic::Ordering::Relaxed);
    row.pub_secs = (finished_ns - start_ns) as f64 / 1e9;
    let last = shared
        .last_delivery_ns
        .load(std::sync::atomic::Ordering::Relaxed);
    row.del_secs = last.saturating_sub(start_ns) as f64 / 1e9;
    row.wall_secs = wall.as_secs_f64();
    row.latency = Latency::of(latencies);
    row.behind = rate.is_some().then_some(behind);
    row.notes.push(format!(
        "{} producer(s) x {} B{}{}; {} consumer(s){}; rate {}; latency of every {}th delivery; max backlog {}{}",
        spec.producers,
        size,
        if spec.persistent { ", persistent" } else { ", transient" },
        if spec.confirm {
            format!(", confirms (window {})", s.window)
        } else {
            String::new()
        },
        spec.queues * spec.consumers_per_queue,
        if spec.manual_ack {
            format!(", manual ack (prefetch {}, {acks} acks sent)", s.prefetch)
        } else {
            ", no-ack".to_string()
        },
        rate.map_or("flat out".to_string(), |r| format!(
            "{:.0} msg/s",
            r * spec.producers as f64
        )),
        sample_every,
        if s.max_backlog == 0 {
            "unbounded".to_string()
        } else {
            format!("{} deliveries", s.max_backlog)
        },
        if s.one_thread {
            "; producer and consumer in one thread"
        } else {
            ""
        }
    ));
    Ok(())
}

/// Waits until the producers are done and every expected delivery arrived,
/// or a failure, a stall, or the hard cap. Returns the status.
fn supervise(s: &Settings, shared: &Shared, published: &dyn Fn() -> bool, t0: Instant) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut progress = (u64::MAX, u64::MAX);
    let mut since = Instant::now();
    loop {
        thread::sleep(Duration::from_millis(5));
        if let Some(f) = shared.failure() {
            return format!("FAILED {f}");
        }
        let now = (
            shared.published.load(Relaxed),
            shared.delivered.load(Relaxed),
        );
        if published() && now.1 >= shared.expected.load(Relaxed) {
            return "ok".to_string();
        }
        if now != progress {
            progress = now;
            since = Instant::now();
        } else if since.elapsed() > s.stall {
            return format!(
                "STALLED: no progress for {} s ({} published, {} delivered)",
                s.stall.as_secs(),
                now.0,
                now.1
            );
        }
        if t0.elapsed() > s.duration + s.max_run {
            return "STALLED: hard cap reached".to_string();
        }
    }
}
