//! `warren-chaos`: the client and checker of the cluster fault test (issue 18;
//! `interop/cluster/chaos.sh` runs the nemesis). One publisher and one consumer per node
//! URI work a quorum queue while nodes are killed, paused and restarted around them:
//!
//! - publishers send unique ids (publisher << 40 | sequence) with confirms, one in flight
//!   at a time per publisher, reconnecting to their node whenever it goes away; an id is
//!   *confirmed* only on an ack;
//! - consumers ack every delivery after recording its id, reconnecting likewise;
//! - after `--duration`, publishing stops and the consumers drain until nothing new
//!   arrives for `--drain` seconds (or every confirmed id arrived).
//!
//! The verdict: every confirmed id delivered at least once (`lost` = 0), no delivered id
//! that was never published (`invented` = 0); duplicates (redeliveries after a failover)
//! are counted, not failures (at-least-once). It also reports the longest time no publisher
//! had a confirm (the worst failover seen by publishers). Exit code 0 when the verdict
//! holds, 1 when not, 2 on a usage error.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};

/// The cluster fault test's client and checker.
#[derive(Parser, Debug)]
#[command(name = "warren-chaos", version, about, long_about = None)]
struct Cli {
    /// One AMQP URI per node (repeat).
    #[arg(long = "uri", required = true)]
    uris: Vec<String>,
    /// The quorum queue.
    #[arg(long, default_value = "chaos")]
    queue: String,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Seconds without a new delivery that end the drain.
    #[arg(long, default_value_t = 20)]
    drain: u64,
    /// Pause between two publishes of one publisher, in milliseconds.
    #[arg(long, default_value_t = 5)]
    interval_ms: u64,
}

/// What the run saw.
#[derive(Default)]
struct Ledger {
    published: HashSet<u64>,
    confirmed: HashSet<u64>,
    nacked: u64,
    delivered: HashMap<u64, u32>,
    last_confirm: Option<Instant>,
    longest_gap: Duration,
    last_delivery: Option<Instant>,
    reconnects: u64,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

async fn connect(uri: &str) -> Option<Connection> {
    let connecting = Connection::connect(uri, ConnectionProperties::default());
    tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .ok()?
        .ok()
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

async fn declare(uris: &[String], queue: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for uri in uris {
            if let Some(conn) = connect(uri).await
                && let Ok(ch) = conn.create_channel().await
            {
                let options = QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                };
                if ch
                    .queue_declare(queue.into(), options, quorum_args())
                    .await
                    .is_ok()
                {
                    let _ = conn.close(200, "declared".into()).await;
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            anyhow::bail!("could not declare the quorum queue on any node");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Publishes ids until `stop`, one confirm in flight, reconnecting as needed.
async fn publish(
    index: u64,
    uri: String,
    queue: String,
    until: Instant,
    gap: Duration,
    ledger: Shared,
) {
    let mut seq = 0u64;
    while Instant::now() < until {
        let Some(conn) = connect(&uri).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let Ok(ch) = conn.create_channel().await else {
            continue;
        };
        if ch
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .is_err()
        {
            continue;
        }
        while Instant::now() < until {
            seq += 1;
            let id = (index << 40) | seq;
            lock(&ledger).published.insert(id);
            let sent = ch
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &id.to_be_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await;
            let confirm = match sent {
                Ok(confirm) => tokio::time::timeout(Duration::from_secs(30), confirm).await,
                Err(_) => break,
            };
            match confirm {
                Ok(Ok(c)) if c.is_ack() => {
                    let mut l = lock(&ledger);
                    l.confirmed.insert(id);
                    let now = Instant::now();
                    if let Some(last) = l.last_confirm {
                        l.longest_gap = l.longest_gap.max(now - last);
                    }
                    l.last_confirm = Some(now);
                }
                Ok(Ok(_)) => lock(&ledger).nacked += 1,
                // Lost with its connection, or no answer: unconfirmed.
                _ => break,
            }
            tokio::time::sleep(gap).await;
        }
        lock(&ledger).reconnects += 1;
        let _ = conn.close(200, "bye".into()).await;
    }
}

/// Consumes and acks until `stop` says so, reconnecting as needed.
async fn consume(uri: String, queue: String, ledger: Shared, stop: Arc<tokio::sync::Notify>) {
    loop {
        let run = async {
            let Some(conn) = connect(&uri).await else {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            };
            let Ok(ch) = conn.create_channel().await else {
                return;
            };
            if ch.basic_qos(50, BasicQosOptions::default()).await.is_err() {
                return;
            }
            let Ok(mut consumer) = ch
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
            else {
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            };
            while let Some(Ok(delivery)) = consumer.next().await {
                if let Ok(bytes) = <[u8; 8]>::try_from(delivery.data.as_slice()) {
                    let id = u64::from_be_bytes(bytes);
                    let mut l = lock(&ledger);
                    *l.delivered.entry(id).or_default() += 1;
                    l.last_delivery = Some(Instant::now());
                }
                if delivery.ack(BasicAckOptions::default()).await.is_err() {
                    break;
                }
            }
            lock(&ledger).reconnects += 1;
        };
        tokio::select! {
            () = run => {}
            () = stop.notified() => return,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(error) = declare(&cli.uris, &cli.queue).await {
        eprintln!("warren-chaos: {error:#}");
        return ExitCode::from(2);
    }
    let ledger: Shared = Arc::default();
    let started = Instant::now();
    let until = started + Duration::from_secs(cli.duration);
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut publishers = Vec::new();
    let mut consumers = Vec::new();
    for (i, uri) in cli.uris.iter().enumerate() {
        publishers.push(tokio::spawn(publish(
            i as u64 + 1,
            uri.clone(),
            cli.queue.clone(),
            until,
            Duration::from_millis(cli.interval_ms),
            ledger.clone(),
        )));
        consumers.push(tokio::spawn(consume(
            uri.clone(),
            cli.queue.clone(),
            ledger.clone(),
            stop.clone(),
        )));
    }
    for p in publishers {
        let _ = p.await;
    }
    eprintln!(
        "warren-chaos: publishing done after {:?}; draining",
        started.elapsed()
    );
    // Drain: until every confirmed id arrived and nothing new came for a while, or
    // nothing new came for `--drain` seconds.
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let l = lock(&ledger);
        let quiet = l.last_delivery.map_or(Duration::MAX, |t| t.elapsed());
        let all_in = l.confirmed.iter().all(|id| l.delivered.contains_key(id));
        if (all_in && quiet > Duration::from_secs(3)) || quiet > Duration::from_secs(cli.drain) {
            break;
        }
    }
    stop.notify_waiters();
    let l = lock(&ledger);
    let lost: Vec<u64> = l
        .confirmed
        .iter()
        .filter(|id| !l.delivered.contains_key(id))
        .copied()
        .collect();
    let invented = l
        .delivered
        .keys()
        .filter(|id| !l.published.contains(id))
        .count();
    let duplicates: u64 = l.delivered.values().map(|&n| u64::from(n - 1)).sum();
    println!(
        "chaos: published {} confirmed {} nacked {} delivered {} (distinct) duplicates {} lost {} invented {} reconnects {} longest-confirm-gap {} ms",
        l.published.len(),
        l.confirmed.len(),
        l.nacked,
        l.delivered.len(),
        duplicates,
        lost.len(),
        invented,
        l.reconnects,
        l.longest_gap.as_millis()
    );
    if !lost.is_empty() {
        let sample: Vec<String> = lost.iter().take(10).map(|id| format!("{id:#x}")).collect();
        println!("chaos: lost ids (first 10): {}", sample.join(" "));
    }
    if lost.is_empty() && invented == 0 {
        println!("chaos: PASS");
        ExitCode::SUCCESS
    } else {
        println!("chaos: FAIL");
        ExitCode::from(1)
    }
}
