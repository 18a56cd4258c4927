//! warren-stream-bench: stream queues (`x-queue-type=stream`) under load,
//! over AMQP 0-9-1, against Warren or RabbitMQ (3.9+).
//!
//! 1. **publish**: one producer appends `--messages` messages with
//!    publisher confirms (`--window` outstanding): rate, broker CPU per
//!    message, RSS before and after.
//! 2. **fan-out**: `--consumers` consumers attach at `next` (each on its own
//!    connection, prefetch `--prefetch`, acking with `multiple` every half
//!    prefetch), then `--fanout-messages` are published: deliveries per
//!    second over all consumers, broker CPU per delivery.
//! 3. **replay**: one consumer reads the whole stream from `first`: rate,
//!    broker CPU per message, RSS (a stream's size must not show in RSS).
//!
//! The broker's CPU and RSS come from `/proc/<--pid>`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::StreamExt;
use futures_util::future::join_all;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

/// Stream queues under load.
#[derive(Parser, Clone)]
struct Cli {
    /// The broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    /// The broker's pid, for its CPU time and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Messages the publish phase appends.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Messages published while the fan-out consumers read.
    #[arg(long, default_value_t = 200_000)]
    fanout_messages: u64,
    /// Fan-out consumers.
    #[arg(long, default_value_t = 10)]
    consumers: usize,
    /// Body size in bytes.
    #[arg(long, default_value_t = 16)]
    body: usize,
    /// Publisher confirms outstanding at most.
    #[arg(long, default_value_t = 1000)]
    window: usize,
    /// Consumer prefetch.
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Skip the publish phase: replay what the stream holds.
    #[arg(long)]
    replay_only: bool,
}

const STREAM: &str = "bench.stream";

/// The broker's CPU seconds (user + system) and RSS in KiB.
fn probe(pid: Option<u32>) -> (f64, u64) {
    let Some(pid) = pid else {
        return (0.0, 0);
    };
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command (which may hold spaces) start at state.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    (cpu, rss)
}

/// One phase's figures.
struct Phase {
    name: &'static str,
    messages: u64,
    secs: f64,
    cpu_secs: f64,
    rss_before: u64,
    rss_after: u64,
}

impl Phase {
    fn print(&self) {
        let rate = self.messages as f64 / self.secs;
        println!(
            "{:<8} {:>10} msgs {:>8.2} s {:>10.0} msg/s  broker CPU {:>6.2} us/msg  RSS {} -> {} MiB",
            self.name,
            self.messages,
            self.secs,
            rate,
            self.cpu_secs * 1e6 / self.messages.max(1) as f64,
            self.rss_before / 1024,
            self.rss_after / 1024,
        );
    }
}

/// Measures `work` (which returns how many messages it moved).
async fn measure<F: std::future::Future<Output = anyhow::Result<u64>>>(
    name: &'static str,
    pid: Option<u32>,
    work: F,
) -> anyhow::Result<Phase> {
    let (cpu0, rss_before) = probe(pid);
    let started = Instant::now();
    let messages = work.await?;
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, rss_after) = probe(pid);
    Ok(Phase {
        name,
        messages,
        secs,
        cpu_secs: cpu1 - cpu0,
        rss_before,
        rss_after,
    })
}

async fn connect(uri: &str) -> anyhow::Result<Connection> {
    Connection::connect(uri, ConnectionProperties::default())
        .await
        .context("connect")
}

/// Publishes `n` messages with confirms, `window` outstanding, handing
/// lapin a batch of publishes at a time (awaiting each one alone makes the
/// client the limit).
async fn publish(ch: &Channel, n: u64, body: &[u8], window: usize) -> anyhow::Result<u64> {
    let batch = window.clamp(1, 64) as u64;
    let mut outstanding = VecDeque::with_capacity(window + 64);
    let mut sent = 0;
    while sent < n {
        let count = batch.min(n - sent);
        let publishes = (0..count).map(|_| {
            ch.basic_publish(
                "".into(),
                STREAM.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
        });
        for confirm in join_all(publishes).await {
            outstanding.push_back(confirm?);
        }
        sent += count;
        while outstanding.len() >= window {
            if let Some(c) = outstanding.pop_front() {
                c.await?;
            }
        }
    }
    for c in outstanding {
        c.await?;
    }
    Ok(n)
}

/// A consumer of the stream from `offset` on its own connection; returns
/// the task that reads `n` messages and acks them.
async fn reader(
    uri: &str,
    offset: &str,
    prefetch: u16,
    n: u64,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<u64>>> {
    let conn = connect(uri).await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString(offset.into()),
    );
    let mut consumer = ch
        .basic_consume(
            STREAM.into(),
            "".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await?;
    let ack_every = u64::from(prefetch / 2).max(1);
    Ok(tokio::spawn(async move {
        let _conn = conn;
        let mut got = 0u64;
        while got < n {
            let delivery =
                match tokio::time::timeout(Duration::from_secs(30), consumer.next()).await {
                    Ok(Some(Ok(d))) => d,
                    Ok(Some(Err(e))) => bail!("consumer: {e}"),
                    _ => bail!("stalled after {got} of {n} messages"),
                };
            got += 1;
            if got.is_multiple_of(ack_every) || got == n {
                delivery
                    .acker
                    .ack(BasicAckOptions { multiple: true })
                    .await?;
            }
        }
        Ok(got)
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let conn = connect(&cli.uri).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let body = vec![b'x'; cli.body];
    let mut total = 0;
    if !cli.replay_only {
        let _ = ch
            .queue_delete(STREAM.into(), QueueDeleteOptions::default())
            .await;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        ch.queue_declare(
            STREAM.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
        let phase = measure(
            "publish",
            cli.pid,
            publish(&ch, cli.messages, &body, cli.window),
        )
        .await?;
        phase.print();
        total += cli.messages;

        let mut readers = Vec::new();
        for _ in 0..cli.consumers {
            readers.push(reader(&cli.uri, "next", cli.prefetch, cli.fanout_messages).await?);
        }
        // Let every consumer attach before the first publish.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let phase = measure("fan-out", cli.pid, async {
            let fanout_ch = conn.create_channel().await?;
            fanout_ch
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            publish(&fanout_ch, cli.fanout_messages, &body, cli.window).await?;
            let mut delivered = 0;
            for r in readers {
                delivered += r.await??;
            }
            Ok(delivered)
        })
        .await?;
        phase.print();
        total += cli.fanout_messages;
    } else {
        let q = ch
            .queue_declare(
                STREAM.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        total = u64::from(q.message_count());
    }
    let phase = measure("replay", cli.pid, async {
        reader(&cli.uri, "first", cli.prefetch, total)
            .await?
            .await?
    })
    .await?;
    phase.print();
    Ok(())
}
