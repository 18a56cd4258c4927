//! warren-delayed-bench: delayed messages under load (`x-delayed-message`).
//!
//! 1. Publishes `--waiting` messages with a delay of an hour, pipelined with
//!    confirms, and reports the publish rate and the broker's RSS (its
//!    `--pid`) before and after: what millions of waiting messages cost.
//! 2. Then publishes `--due` messages with delays of 1 to 3 s while a
//!    consumer reads them, and reports lateness (arrival minus due time)
//!    p50 / p99 / max: how on time they come with the others waiting.
//!
//! Works against RabbitMQ with the delayed-message plugin too.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

/// Delayed messages under load.
#[derive(Parser)]
struct Cli {
    /// The broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    /// The broker's pid, for its RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Messages left waiting (an hour's delay).
    #[arg(long, default_value_t = 100_000)]
    waiting: u64,
    /// Messages due within seconds, whose lateness is measured.
    #[arg(long, default_value_t = 10_000)]
    due: u64,
    /// Body size in bytes (at least 8: the due time rides in the body).
    #[arg(long, default_value_t = 16)]
    body: usize,
    /// Publisher confirms outstanding at most.
    #[arg(long, default_value_t = 1000)]
    window: usize,
    /// Persistent messages (delivery mode 2).
    #[arg(long)]
    persistent: bool,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn rss_kib(pid: Option<u32>) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Publishes `n` messages; message `i` has delay `delay(i)` and its due time
/// (ms since the epoch) in its first 8 body bytes. Returns messages/s.
async fn publish(
    ch: &lapin::Channel,
    cli: &Cli,
    n: u64,
    delay: impl Fn(u64) -> u64,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut outstanding = VecDeque::new();
    for i in 0..n {
        let ms = delay(i);
        let mut body = vec![0u8; cli.body.max(8)];
        body[..8].copy_from_slice(&(now_ms() + ms).to_be_bytes());
        let mut headers = FieldTable::default();
        headers.insert(
            "x-delay".into(),
            AMQPValue::LongLongInt(i64::try_from(ms).unwrap_or(i64::MAX)),
        );
        let props = BasicProperties::default()
            .with_headers(headers)
            .with_delivery_mode(if cli.persistent { 2 } else { 1 });
        let confirm = ch
            .basic_publish(
                "bench.delayed".into(),
                "k".into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
        outstanding.push_back(confirm);
        if outstanding.len() >= cli.window
            && let Some(c) = outstanding.pop_front()
        {
            c.await?;
        }
    }
    for c in outstanding {
        c.await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let conn = Connection::connect(&cli.uri, ConnectionProperties::default())
        .await
        .context("connect")?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-delayed-type".into(),
        AMQPValue::LongString("direct".into()),
    );
    ch.exchange_declare(
        "bench.delayed".into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await?;
    ch.queue_declare(
        "bench.delayed.q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    ch.queue_bind(
        "bench.delayed.q".into(),
        "bench.delayed".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;

    let before = rss_kib(cli.pid);
    let rate = publish(&ch, &cli, cli.waiting, |_| 3_600_000).await?;
    let after = rss_kib(cli.pid);
    println!(
        "waiting: {} messages published at {rate:.0} msg/s; broker RSS {} -> {} MiB",
        cli.waiting,
        before.map_or("?".into(), |k| (k / 1024).to_string()),
        after.map_or("?".into(), |k| (k / 1024).to_string()),
    );

    let consumer_ch = conn.create_channel().await?;
    let mut consumer = consumer_ch
        .basic_consume(
            "bench.delayed.q".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let due = cli.due;
    let reader = tokio::spawn(async move {
        let mut late = Vec::with_capacity(usize::try_from(due).unwrap_or(0));
        while (late.len() as u64) < due {
            match tokio::time::timeout(Duration::from_secs(30), consumer.next()).await {
                Ok(Some(Ok(d))) => {
                    let mut at = [0u8; 8];
                    at.copy_from_slice(&d.data[..8]);
                    late.push(now_ms().saturating_sub(u64::from_be_bytes(at)));
                }
                _ => break,
            }
        }
        late
    });
    let rate = publish(&ch, &cli, cli.due, |i| 1000 + (i * 7919) % 2000).await?;
    let mut late = reader.await?;
    if (late.len() as u64) < cli.due {
        bail!("only {} of {} due messages arrived", late.len(), cli.due);
    }
    late.sort_unstable();
    let at = |q: f64| late[((late.len() - 1) as f64 * q) as usize];
    println!(
        "due: {} messages published at {rate:.0} msg/s with {} waiting; lateness p50 {} ms, p99 {} ms, max {} ms; broker RSS {} MiB",
        cli.due,
        cli.waiting,
        at(0.5),
        at(0.99),
        at(1.0),
        rss_kib(cli.pid).map_or("?".into(), |k| (k / 1024).to_string()),
    );
    ch.exchange_delete("bench.delayed".into(), ExchangeDeleteOptions::default())
        .await?;
    ch.queue_delete("bench.delayed.q".into(), QueueDeleteOptions::default())
        .await?;
    Ok(())
}
