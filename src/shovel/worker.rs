//! One shovel's worker: connect to the source and the destination (each
//! URI list in order), declare what RabbitMQ's shovel declares, consume with
//! `src-prefetch-count`, republish every message with its properties and
//! headers (plus `x-shovelled` / `x-shovelled-timestamp` when asked), and
//! settle the source per `ack-mode`. When either side drops, both
//! connections are closed (the source requeues what was not acked) and it
//! starts over after `reconnect-delay`.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::connect::{LocalNode, connect};
use super::uri::ShovelUri;
use super::{AckMode, DeleteAfter, Dest, ShovelDef, Shovels, Source, State, Status};

/// How often an idle worker checks that both connections are still up.
const HEALTH_CHECK: Duration = Duration::from_millis(500);

/// Everything a worker needs.
pub(super) struct Job {
    pub vhost: String,
    pub name: String,
    pub user: String,
    pub def: Arc<ShovelDef>,
    pub status: Arc<Mutex<Status>>,
    pub local: LocalNode,
    pub generation: u64,
    pub registry: Weak<Shovels>,
    pub cancel: CancellationToken,
}

/// How a session ended without an error.
enum Ended {
    /// `src-delete-after` reached: the shovel deletes itself.
    Done,
    /// Told to stop.
    Stopped,
}

/// Runs the shovel until it is stopped or done.
pub(super) async fn run(job: Job) {
    loop {
        set(&job.status, State::Starting, None);
        match session(&job).await {
            Ok(Ended::Stopped) => return,
            Ok(Ended::Done) => {
                if let Some(registry) = job.registry.upgrade() {
                    registry.finished(&job.vhost, &job.name, job.generation);
                }
                return;
            }
            Err(reason) => {
                set(&job.status, State::Terminated, Some(reason.clone()));
                // RabbitMQ's `reconnect-delay: 0`: a temporary shovel, which
                // stays terminated (until restarted or redeclared).
                if job.def.reconnect_delay.is_zero() {
                    tracing::warn!(vhost = %job.vhost, name = %job.name, %reason, "shovel terminated (reconnect-delay 0: not reconnecting)");
                    return;
                }
                tracing::warn!(vhost = %job.vhost, name = %job.name, %reason, "shovel terminated; it will reconnect");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(job.def.reconnect_delay) => {}
            () = job.cancel.cancelled() => return,
        }
    }
}

fn set(status: &Mutex<Status>, state: State, reason: Option<String>) {
    let mut s = status.lock();
    s.state = state;
    s.reason = reason;
    s.since = SystemTime::now();
    if state == State::Starting {
        s.src_uri = None;
        s.dest_uri = None;
    }
}

/// One connected session; both connections are closed whatever happens.
async fn session(job: &Job) -> Result<Ended, String> {
    let def = &job.def;
    let src = tokio::select! {
        c = connect_any(job, &def.src_uris) => c?,
        () = job.cancel.cancelled() => return Ok(Ended::Stopped),
    };
    let dest = tokio::select! {
        c = connect_any(job, &def.dest_uris) => c,
        () = job.cancel.cancelled() => Err(String::new()),
    };
    let dest = match dest {
        Ok(dest) => dest,
        Err(reason) => {
            close(&src.0).await;
            if job.cancel.is_cancelled() {
                return Ok(Ended::Stopped);
            }
            return Err(reason);
        }
    };
    {
        let mut s = job.status.lock();
        s.src_uri = Some(src.1.redacted());
        s.dest_uri = Some(dest.1.redacted());
    }
    let ended = tokio::select! {
        ended = transfer(job, &src, &dest) => ended,
        () = job.cancel.cancelled() => Ok(Ended::Stopped),
    };
    // The source first: what it delivered and was not acked goes back to
    // its queue before anything else happens.
    close(&src.0).await;
    close(&dest.0).await;
    ended
}

/// The first of `uris` that connects, with the URI it connected to.
async fn connect_any<'a>(
    job: &Job,
    uris: &'a [ShovelUri],
) -> Result<(Connection, &'a ShovelUri), String> {
    let mut errors = Vec::new();
    for uri in uris {
        match connect(uri, &job.local, &job.user, &job.name).await {
            Ok(conn) => return Ok((conn, uri)),
            Err(error) => errors.push(error),
        }
    }
    Err(errors.join("; "))
}

async fn close(conn: &Connection) {
    let closing = conn.close(200, ShortString::from("shovel stopping"));
    let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
}

fn amqp(what: &str) -> impl FnOnce(lapin::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Declares a queue as RabbitMQ's shovel does: a passive declare, then a
/// durable declare on a fresh channel if it is missing (unless
/// predeclared). Returns its message count.
async fn ensure_queue(conn: &Connection, name: &str, predeclared: bool) -> Result<u32, String> {
    let ch = conn.create_channel().await.map_err(amqp("channel.open"))?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let found = ch
        .queue_declare(ShortString::from(name), passive, FieldTable::default())
        .await;
    let count = match found {
        Ok(q) => {
            let _ = ch.close(200, ShortString::from("ok")).await;
            q.message_count()
        }
        Err(error) if predeclared => {
            return Err(format!(
                "queue '{name}' is predeclared and missing: {error}"
            ));
        }
        Err(_) => {
            let ch = conn.create_channel().await.map_err(amqp("channel.open"))?;
            let durable = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            let q = ch
                .queue_declare(ShortString::from(name), durable, FieldTable::default())
                .await
                .map_err(amqp("queue.declare"))?;
            let _ = ch.close(200, ShortString::from("ok")).await;
            q.message_count()
        }
    };
    Ok(count)
}

/// Moves messages until an error, or until `src-delete-after` is reached.
async fn transfer(
    job: &Job,
    (src, src_uri): &(Connection, &ShovelUri),
    (dest, dest_uri): &(Connection, &ShovelUri),
) -> Result<Ended, String> {
    let def = &job.def;
    let (queue, length) = match &def.source {
        Source::Queue { name, predeclared } => {
            (name.clone(), ensure_queue(src, name, *predeclared).await?)
        }
        Source::Exchange { exchange, key } => {
            let ch = src.create_channel().await.map_err(amqp("channel.open"))?;
            let exclusive = QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            };
            let q = ch
                .queue_declare(ShortString::from(""), exclusive, FieldTable::default())
                .await
                .map_err(amqp("queue.declare"))?;
            ch.queue_bind(
                q.name().clone(),
                ShortString::from(exchange.as_str()),
                ShortString::from(key.as_str()),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp("queue.bind"))?;
            (q.name().to_string(), 0)
        }
    };
    let remaining = match def.delete_after {
        DeleteAfter::Never => None,
        DeleteAfter::QueueLength => Some(u64::from(length)),
        DeleteAfter::Count(n) => Some(n.saturating_sub(job.status.lock().forwarded)),
    };
    if remaining == Some(0) {
        return Ok(Ended::Done);
    }
    let out = dest.create_channel().await.map_err(amqp("channel.open"))?;
    if def.ack_mode == AckMode::OnConfirm {
        out.confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp("confirm.select"))?;
    }
    if let Dest::Queue { name, predeclared } = &def.dest {
        ensure_queue(dest, name, *predeclared).await?;
    }
    let input = src.create_channel().await.map_err(amqp("channel.open"))?;
    input
        .basic_qos(def.prefetch, BasicQosOptions::default())
        .await
        .map_err(amqp("basic.qos"))?;
    let mut consumer = input
        .basic_consume(
            ShortString::from(queue.as_str()),
            ShortString::from(""),
            BasicConsumeOptions {
                no_ack: def.ack_mode == AckMode::NoAck,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(amqp("basic.consume"))?;
    set(&job.status, State::Running, None);
    tracing::info!(vhost = %job.vhost, name = %job.name, src = %src_uri.redacted(), dest = %dest_uri.redacted(), "shovel running");
    let forward = Forward::new(job, src_uri, dest_uri);
    let mut pending = FuturesOrdered::new();
    // Deliveries taken toward `remaining` and settled (acked at the source).
    let (mut taken, mut settled) = (0u64, 0u64);
    let mut health = tokio::time::interval(HEALTH_CHECK);
    loop {
        if remaining.is_some_and(|r| settled >= r) && pending.is_empty() {
            return Ok(Ended::Done);
        }
        let more = remaining.is_none_or(|r| taken < r);
        tokio::select! {
            delivery = consumer.next(), if more => {
                let delivery = match delivery {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => return Err(format!("source: {e}")),
                    None => return Err("source: the consumer was cancelled".into()),
                };
                taken += 1;
                let (exchange, key) = forward.route(&delivery.exchange, &delivery.routing_key);
                let properties = forward.properties(delivery.properties);
                let confirm = out
                    .basic_publish(exchange, key, BasicPublishOptions::default(), &delivery.data, properties)
                    .await
                    .map_err(amqp("destination: basic.publish"))?;
                let tag = delivery.delivery_tag;
                match def.ack_mode {
                    AckMode::OnConfirm => pending.push_back(async move { (tag, confirm.await) }),
                    AckMode::OnPublish => {
                        input.basic_ack(tag, BasicAckOptions::default()).await.map_err(amqp("source: basic.ack"))?;
                        settled += 1;
                        moved(job);
                    }
                    AckMode::NoAck => {
                        settled += 1;
                        moved(job);
                    }
                }
            }
            Some((tag, confirmation)) = pending.next(), if !pending.is_empty() => {
                match confirmation {
                    Ok(Confirmation::Nack(_)) => {
                        // The destination refused it: back to the source
                        // queue, to be moved again.
                        nack(&input, tag).await?;
                        taken = taken.saturating_sub(1);
                    }
                    Ok(_) => {
                        input.basic_ack(tag, BasicAckOptions::default()).await.map_err(amqp("source: basic.ack"))?;
                        settled += 1;
                        moved(job);
                    }
                    Err(e) => return Err(format!("destination: {e}")),
                }
            }
            _ = health.tick() => {
                if !src.status().connected() {
                    return Err("source: connection lost".into());
                }
                if !dest.status().connected() {
                    return Err("destination: connection lost".into());
                }
            }
        }
    }
}

async fn nack(input: &Channel, tag: u64) -> Result<(), String> {
    let requeue = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    input
        .basic_nack(tag, requeue)
        .await
        .map_err(amqp("source: basic.nack"))
}

fn moved(job: &Job) {
    job.status.lock().forwarded += 1;
}

/// How a message is republished: its route and its added headers.
struct Forward {
    dest: Dest,
    /// The `x-shovelled` entry, when `dest-add-forward-headers` is on.
    shovelled: Option<FieldTable>,
    timestamp: bool,
}

impl Forward {
    fn new(job: &Job, src_uri: &ShovelUri, dest_uri: &ShovelUri) -> Self {
        let shovelled = job.def.add_forward_headers.then(|| {
            // RabbitMQ's entry: who, which shovel, from where to where.
            let mut t: Vec<(&str, String)> = vec![
                ("shovelled-by", node_name()),
                ("shovel-type", "dynamic".into()),
                ("shovel-name", job.name.clone()),
                ("shovel-vhost", job.vhost.clone()),
                ("src-uri", src_uri.redacted()),
                ("dest-uri", dest_uri.redacted()),
            ];
            match &job.def.source {
                Source::Queue { name, .. } => t.push(("src-queue", name.clone())),
                Source::Exchange { exchange, key } => {
                    t.push(("src-exchange", exchange.clone()));
                    t.push(("src-exchange-key", key.clone()));
                }
            }
            match &job.def.dest {
                Dest::Queue { name, .. } => t.push(("dest-queue", name.clone())),
                Dest::Exchange { exchange, key } => {
                    if let Some(x) = exchange {
                        t.push(("dest-exchange", x.clone()));
                    }
                    if let Some(k) = key {
                        t.push(("dest-exchange-key", k.clone()));
                    }
                }
            }
            let mut table = FieldTable::default();
            for (k, v) in t {
                table.insert(
                    ShortString::from(k),
                    AMQPValue::LongString(LongString::from(v)),
                );
            }
            table
        });
        Forward {
            dest: job.def.dest.clone(),
            shovelled,
            timestamp: job.def.add_timestamp_header,
        }
    }

    fn route(&self, exchange: &ShortString, key: &ShortString) -> (ShortString, ShortString) {
        match &self.dest {
            Dest::Queue { name, .. } => (ShortString::from(""), ShortString::from(name.as_str())),
            Dest::Exchange {
                exchange: x,
                key: k,
            } => (
                x.as_deref()
                    .map_or_else(|| exchange.clone(), ShortString::from),
                k.as_deref().map_or_else(|| key.clone(), ShortString::from),
            ),
        }
    }

    /// The message's properties, headers added as asked (the new
    /// `x-shovelled` entry first, before any from earlier hops, as
    /// RabbitMQ's `prepend_table_header`).
    fn properties(&self, properties: BasicProperties) -> BasicProperties {
        if self.shovelled.is_none() && !self.timestamp {
            return properties;
        }
        let mut headers = properties.headers().clone().unwrap_or_default();
        if let Some(entry) = &self.shovelled {
            let mut hops: VecDeque<AMQPValue> = match headers.inner().get("x-shovelled") {
                Some(AMQPValue::FieldArray(a)) => a.as_slice().iter().cloned().collect(),
                _ => VecDeque::new(),
            };
            hops.push_front(AMQPValue::FieldTable(entry.clone()));
            headers.insert(
                ShortString::from("x-shovelled"),
                AMQPValue::FieldArray(FieldArray::from(Vec::from(hops))),
            );
        }
        if self.timestamp {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            headers.insert(
                ShortString::from("x-shovelled-timestamp"),
                AMQPValue::LongLongInt(i64::try_from(now).unwrap_or(i64::MAX)),
            );
        }
        properties.with_headers(headers)
    }
}

/// The node name `shovelled-by` carries (the broker's cluster name).
fn node_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("warren@{host}")
}
