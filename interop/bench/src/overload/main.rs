//! `warren-overload`: publishers faster than consumers (ten times by default)
//! for a while, then the drain (issue 19's overload test), or a fill of one
//! queue to a depth (`--messages`, no consumers).
//!
//! Every few seconds it prints the broker's RSS (`--pid`), the queue's depth
//! and how much of it is in memory (management API), whether an alarm blocks
//! publishers, and the publish and deliver rates. After `--duration` the
//! publishers stop, the consumers stop pacing and the drain rate is measured;
//! at the end every confirmed id must have been delivered.
//!
//! Clients are warren-load's (`conn`, `wire`): raw AMQP over blocking sockets,
//! so that the client is not the limit of the drain.

#[allow(dead_code)]
#[path = "../load/conn.rs"]
mod conn;
#[allow(dead_code)]
#[path = "../load/wire.rs"]
mod wire;

mod clients;
mod sample;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Parser;

use clients::{Run, Seen};
use conn::{Conn, Target};
use sample::Mgmt;
use wire::Template;

/// Publishers faster than consumers, RSS and depth over time, the drain.
#[derive(Parser, Debug)]
#[command(name = "warren-overload", version, about, long_about = None)]
struct Cli {
    /// AMQP port on 127.0.0.1.
    #[arg(long, default_value_t = 5672)]
    port: u16,
    /// Management API port on 127.0.0.1.
    #[arg(long, default_value_t = 15672)]
    mgmt_port: u16,
    /// User (AMQP and management API).
    #[arg(long, default_value = "guest")]
    user: String,
    /// Password.
    #[arg(long, default_value = "guest")]
    password: String,
    /// Pid of the broker, for its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// `persistent` (durable queue, delivery-mode 2) or `transient`
    /// (non-durable queue, delivery-mode 1); confirms either way.
    #[arg(long, default_value = "persistent")]
    mode: String,
    /// Seconds the publishers publish.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Messages per second over all publishers.
    #[arg(long, default_value_t = 20_000.0)]
    publish_rate: f64,
    /// Messages per second over all consumers while publishing (default a
    /// tenth of --publish-rate).
    #[arg(long)]
    consume_rate: Option<f64>,
    /// Body bytes (at least 8: the id).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Publisher connections.
    #[arg(long, default_value_t = 1)]
    producers: u64,
    /// Consumer connections.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// basic.qos of each consumer (acks, multiple, every half of it).
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Unconfirmed publishes per publisher.
    #[arg(long, default_value_t = 2048)]
    confirm_window: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 5)]
    sample_secs: u64,
    /// The queue (default `overload-<mode>`).
    #[arg(long)]
    queue: Option<String>,
    /// Fill: publish this many messages flat out, no consumers, and leave
    /// them in the queue (the depth test).
    #[arg(long)]
    messages: Option<u64>,
    /// Drain: publish nothing, consume this many messages already in the
    /// queue at full speed (a `--messages` fill by `--producers` publishers)
    /// and check every id came.
    #[arg(long)]
    drain_existing: Option<u64>,
    /// Give the drain up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    drain_timeout: u64,
    /// The queue's `x-queue-type` (e.g. `quorum` on a cluster node; durable).
    #[arg(long)]
    queue_type: Option<String>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("warren-overload: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// One sample line: elapsed seconds, counts, depth, RSS, alarm, rates.
struct Sampler<'a> {
    cli: &'a Cli,
    mgmt: Mgmt,
    queue: String,
    start: Instant,
    last: (Instant, u64, u64),
}

impl Sampler<'_> {
    fn header() {
        println!(
            "{:>7} {:>11} {:>11} {:>11} {:>9} {:>11} {:>8} {:>5} {:>9} {:>9}",
            "t_s",
            "confirmed",
            "delivered",
            "depth",
            "in_ram",
            "paged_out",
            "rss_MiB",
            "alarm",
            "pub/s",
            "del/s"
        );
    }

    /// Prints a line; returns the queue's depth (None if the API failed).
    fn line(&mut self, run: &Run) -> Option<u64> {
        let now = Instant::now();
        let (confirmed, delivered) = (
            run.confirmed.load(Ordering::Relaxed),
            run.delivered.load(Ordering::Relaxed),
        );
        let dt = (now - self.last.0).as_secs_f64().max(1e-3);
        let pub_rate = (confirmed - self.last.1) as f64 / dt;
        let del_rate = (delivered - self.last.2) as f64 / dt;
        self.last = (now, confirmed, delivered);
        let depth = self.mgmt.depth(&self.queue).ok();
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let rss = self
            .cli
            .pid
            .and_then(sample::rss_kib)
            .map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
        let alarm = self
            .mgmt
            .alarm()
            .map_or("?", |on| if on { "ON" } else { "-" });
        println!(
            "{:>7.0} {:>11} {:>11} {:>11} {:>9} {:>11} {:>8} {:>5} {:>9.0} {:>9.0}",
            (now - self.start).as_secs_f64(),
            confirmed,
            delivered,
            opt(depth.map(|d| d.messages)),
            opt(depth.and_then(|d| d.ram)),
            opt(depth.and_then(|d| d.paged_out)),
            rss,
            alarm,
            pub_rate,
            del_rate
        );
        let _ = std::io::stdout().flush();
        depth.map(|d| d.messages)
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let persistent = match cli.mode.as_str() {
        "persistent" => true,
        "transient" => false,
        other => bail!("--mode is persistent or transient, not {other:?}"),
    };
    if cli.producers == 0 || cli.publish_rate <= 0.0 || cli.sample_secs == 0 {
        bail!("--producers, --publish-rate and --sample-secs must be positive");
    }
    let fill = cli.messages;
    let target = Target {
        addr: format!("127.0.0.1:{}", cli.port),
        user: cli.user.clone(),
        password: cli.password.clone(),
        vhost: "/".into(),
    };
    let queue = cli
        .queue
        .clone()
        .unwrap_or_else(|| format!("overload-{}", cli.mode));
    let mut admin = Conn::open(&target, "warren-overload admin")?;
    let existing = cli.drain_existing;
    if fill.is_none() && existing.is_none() {
        admin.delete_queue(&queue)?;
    }
    admin.declare_queue(&queue, persistent, cli.queue_type.as_deref())?;
    let run = Run::default();
    if existing.is_some() {
        run.unpaced.store(true, Ordering::Release);
    }
    let consume_rate = cli.consume_rate.unwrap_or(cli.publish_rate / 10.0);
    run.consume_rate_bits
        .store(consume_rate.to_bits(), Ordering::Relaxed);
    let consumers = if fill.is_some() { 0 } else { cli.consumers };
    let mut sampler = Sampler {
        cli: &cli,
        mgmt: Mgmt::new(
            format!("127.0.0.1:{}", cli.mgmt_port),
            &cli.user,
            &cli.password,
        ),
        queue: queue.clone(),
        start: Instant::now(),
        last: (Instant::now(), 0, 0),
    };
    println!(
        "# {} {} B, publish {} msg/s{}, consume {} msg/s paced, {} s",
        cli.mode,
        cli.size,
        if fill.is_some() {
            "flat out".to_string()
        } else {
            format!("{:.0}", cli.publish_rate)
        },
        fill.map_or(String::new(), |n| format!(" up to {n} messages")),
        if consumers == 0 { 0.0 } else { consume_rate },
        cli.duration
    );
    let mut outcome = Ok(true);
    thread::scope(|scope| -> anyhow::Result<()> {
        let mut consumer_threads = Vec::new();
        for i in 0..consumers {
            let mut c = Conn::open(&target, &format!("overload consumer {i}"))?;
            c.consume(&queue, false, cli.prefetch)?;
            let (mut stream, leftover) = c.into_parts()?;
            let (run, ack_every) = (&run, u64::from(cli.prefetch / 2).max(1));
            consumer_threads.push(scope.spawn(move || {
                clients::consume(&mut stream, &leftover, ack_every, consumers, run)
            }));
        }
        let mut producer_threads = Vec::new();
        for p in (0..cli.producers).filter(|_| existing.is_none()) {
            let mut c = Conn::open(&target, &format!("overload producer {p}"))?;
            c.confirm_select()?;
            let template = Template::new("", &queue, cli.size, persistent, c.frame_max)?;
            let (stream, leftover) = c.into_parts()?;
            let rate = fill
                .is_none()
                .then(|| cli.publish_rate / cli.producers as f64);
            let limit = fill.map(|n| n / cli.producers);
            let (run, window) = (&run, cli.confirm_window);
            producer_threads.push(scope.spawn(move || {
                clients::publish(stream, leftover, &template, p, rate, window, limit, run)
            }));
        }
        Sampler::header();
        sampler.start = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(cli.duration);
        let every = Duration::from_secs(cli.sample_secs);
        let mut next = Instant::now() + every;
        while existing.is_none()
            && Instant::now() < deadline
            && !producer_threads.iter().all(|h| h.is_finished())
        {
            thread::sleep(Duration::from_millis(50));
            if Instant::now() >= next {
                sampler.line(&run);
                next += every;
            }
        }
        run.stop_publishing.store(true, Ordering::Release);
        let confirmed: Vec<u64> = match existing {
            Some(n) => vec![n / cli.producers; cli.producers as usize],
            None => producer_threads
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .collect(),
        };
        let total: u64 = confirmed.iter().sum();
        let publish_secs = sampler.start.elapsed().as_secs_f64();
        sampler.line(&run);
        if existing.is_none() {
            println!(
                "# published: {} confirmed in {publish_secs:.0} s ({:.0} msg/s)",
                total,
                total as f64 / publish_secs
            );
        }
        if consumer_threads.is_empty() {
            return Ok(());
        }
        // The drain: consumers at full speed until every confirmed message came.
        run.unpaced.store(true, Ordering::Release);
        // A drain of what is there already started with the consumers.
        let (drain_start, delivered_at) = match existing {
            Some(_) => (sampler.start, 0),
            None => (Instant::now(), run.delivered.load(Ordering::Relaxed)),
        };
        let drain_deadline = drain_start + Duration::from_secs(cli.drain_timeout);
        let mut next = Instant::now() + every;
        let mut drained = None;
        while Instant::now() < drain_deadline {
            thread::sleep(Duration::from_millis(50));
            if run.delivered.load(Ordering::Relaxed) >= total
                && sampler.mgmt.depth(&queue).is_ok_and(|d| d.messages == 0)
            {
                drained = Some(drain_start.elapsed());
                break;
            }
            if Instant::now() >= next {
                sampler.line(&run);
                next += every;
            }
        }
        sampler.line(&run);
        let delivered = run.delivered.load(Ordering::Relaxed) - delivered_at;
        match drained {
            Some(d) => println!(
                "# drain: {delivered} messages in {:.1} s ({:.0} msg/s)",
                d.as_secs_f64(),
                delivered as f64 / d.as_secs_f64().max(1e-3)
            ),
            None => println!(
                "# drain: NOT FINISHED after {} s ({delivered} delivered)",
                cli.drain_timeout
            ),
        }
        run.stop_consuming.store(true, Ordering::Release);
        let mut seen = Seen::default();
        for h in consumer_threads {
            if let Ok(s) = h.join() {
                seen.merge(&s);
            }
        }
        let missing: u64 = confirmed
            .iter()
            .enumerate()
            .map(|(p, &n)| seen.missing(p, n))
            .sum();
        println!("# check: {total} confirmed, {missing} of them never delivered");
        if missing > 0 || drained.is_none() {
            outcome = Ok(false);
        }
        Ok(())
    })?;
    if let Some(f) = run.failure() {
        println!("# FAILED: {f}");
        outcome = Ok(false);
    }
    if fill.is_none() {
        let left = admin.delete_queue(&queue)?;
        if left > 0 {
            println!("# the queue still held {left} messages");
        }
    }
    let _ = admin.close();
    outcome
}
