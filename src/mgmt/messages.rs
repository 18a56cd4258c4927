//! The three message operations RabbitMQ's UI offers: publish to an exchange,
//! get from a queue, purge a queue. The caller needs the permissions an AMQP
//! client with their credentials would need.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use serde_json::{Value, json};
use warren_codec::ContentHeader;

use super::api::{API_CONNECTION, ApiError, ApiResult, parse_body, require_keys, str_field};
use super::caller::Caller;
use super::exchanges::exchange_name;
use super::json::{json_to_properties, properties_to_json};
use super::queues::queue_for;
use super::vhosts::live_vhost;
use crate::auth::{Kind, Permission};
use crate::broker::Broker;
use crate::message::Message;
use crate::names::{ConnectionId, ConsumerTag, DeliveryTag};
use crate::queue::delivery::SinkFuture;
use crate::queue::{
    ChannelCredit, Deliveries, Delivery, DeliveryKind, DeliverySink, GetResult, Queue, Return,
    SeqId, Unacked, Undelivered, by_queue,
};

/// POST /api/exchanges/{vhost}/{name}/publish: `{"routed": bool}`.
pub async fn publish(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    require_keys(
        &body,
        &["properties", "routing_key", "payload", "payload_encoding"],
    )?;
    let v = live_vhost(&broker, &vhost)?;
    let exchange = exchange_name(&name);
    caller.require(&vhost, Permission::Write, Kind::Exchange, exchange)?;
    let routing_key = str_field(&body, "routing_key").unwrap_or_default();
    let payload = str_field(&body, "payload").unwrap_or_default();
    let payload = match str_field(&body, "payload_encoding") {
        Some("base64") => STANDARD
            .decode(payload)
            .map_err(|_| ApiError::bad_request("payload_not_base64"))?,
        _ => payload.as_bytes().to_vec(),
    };
    let properties = json_to_properties(body.get("properties").unwrap_or(&Value::Null))?;
    let header = ContentHeader::from_properties(payload.len() as u64, &properties)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let message = Arc::new(Message {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        header,
        properties: properties.into(),
        body: payload.into(),
        cc_routed: true,
        frames: Default::default(),
    });
    // The same publish as a channel's: reply-to consumers, refusals, the store.
    let (_, outcome) = v
        .publish(message)
        .await
        .map_err(|e| ApiError::bad_request(format!("{} {}", e.code.code(), e.reply_text())))?;
    if outcome.stored {
        v.storage.commit().await?;
    }
    // Forwarded to the queues' home nodes: answered once they took it.
    if !outcome.forwarded.all_taken().await {
        return Err(ApiError::bad_request(
            "a queue's home node did not take the message (publish again)",
        ));
    }
    Ok(Json(json!({"routed": outcome.queues > 0})).into_response())
}

/// DELETE /api/queues/{vhost}/{name}/contents: purge.
pub async fn purge(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    let (_, queue) = queue_for(&broker, &caller, &vhost, &name, Permission::Read)?;
    if queue.is_stream() {
        return Err(queue.not_for_streams("queue.purge").into());
    }
    queue.purge();
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// POST /api/queues/{vhost}/{name}/get: `count`, `ackmode`
/// (`ack_requeue_true`, `ack_requeue_false`, `reject_requeue_true`,
/// `reject_requeue_false`), `encoding` (`auto` or `base64`), `truncate`.
pub async fn get_messages(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    require_keys(&body, &["count", "ackmode", "encoding"])?;
    let v = live_vhost(&broker, &vhost)?;
    let Some(queue) = v.queue(&name) else {
        return Err(ApiError::not_found_because(v.no_queue(&name).reply_text()));
    };
    caller.require(&vhost, Permission::Read, Kind::Queue, &name)?;
    queue
        .check_exclusive(API_CONNECTION)
        .map_err(|e| ApiError::bad_request(e.reply_text()))?;
    if queue.is_stream() {
        return Err(queue.not_for_streams("basic.get").into());
    }
    let count = body
        .get("count")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .min(10_000) as usize;
    let ackmode = str_field(&body, "ackmode").unwrap_or_default();
    let base64 = str_field(&body, "encoding") == Some("base64");
    let truncate = body
        .get("truncate")
        .and_then(Value::as_u64)
        .map(|t| t as usize);
    // The queue hands messages to a sink; this one exists only for the request.
    let sink = ApiSink::default();
    for _ in 0..count {
        if queue.get(&sink, false) != GetResult::Sent {
            break;
        }
    }
    let (taken, delivered) = {
        let mut held = sink.held.lock();
        let (deliveries, delivered) = &mut *held;
        let taken: Vec<Unacked> = std::mem::take(&mut deliveries.unacked)
            .into_values()
            .collect();
        (taken, std::mem::take(delivered))
    };
    let mut out = Vec::new();
    for delivery in delivered {
        let (message, redelivered) = (delivery.message, delivery.redelivered);
        let DeliveryKind::Get { message_count } = delivery.kind else {
            continue;
        };
        let body =
            &message.body[..truncate.map_or(message.body.len(), |t| t.min(message.body.len()))];
        let (payload, encoding) = match std::str::from_utf8(body) {
            Ok(text) if !base64 => (text.to_owned(), "string"),
            _ => (STANDARD.encode(body), "base64"),
        };
        out.push(json!({
            "payload_bytes": message.body.len(),
            "redelivered": redelivered,
            "exchange": message.exchange.as_str(),
            "routing_key": message.routing_key.as_str(),
            "message_count": message_count,
            "properties": properties_to_json(&message.properties),
            "payload": payload,
            "payload_encoding": encoding,
        }));
    }
    match ackmode {
        "ack_requeue_false" => by_queue(taken, |q, seqs| q.ack(seqs)),
        "reject_requeue_false" => by_queue(taken, |q, seqs| q.reject(seqs)),
        _ => by_queue(taken, |q, seqs| q.requeue(seqs, Return::Returned)),
    }
    Ok(Json(Value::Array(out)).into_response())
}

/// Where the API's get puts what it takes from a queue: the queue sees a
/// channel with unlimited room; the handler reads the deliveries back.
#[derive(Debug, Default)]
struct ApiSink {
    held: Mutex<(Deliveries, Vec<Delivery>)>,
    credit: Arc<ChannelCredit>,
}

impl DeliverySink for ApiSink {
    fn channel_id(&self) -> u16 {
        0
    }

    fn connection_id(&self) -> ConnectionId {
        API_CONNECTION
    }

    fn try_deliver(
        &self,
        delivery: Delivery,
        unacked: Option<Unacked>,
    ) -> Result<DeliveryTag, Undelivered> {
        let mut held = self.held.lock();
        let tag = held.0.sent(unacked, 0);
        held.1.push(delivery);
        Ok(tag)
    }

    fn room(&self) -> SinkFuture<'_> {
        Box::pin(async { true })
    }

    fn credit(&self) -> &Arc<ChannelCredit> {
        &self.credit
    }

    fn take_unacked_from(&self, queue: &Arc<Queue>) -> Vec<SeqId> {
        self.held.lock().0.take_from(queue)
    }

    fn queue_deleted<'a>(&'a self, _consumer_tag: &'a ConsumerTag) -> SinkFuture<'a> {
        Box::pin(async { true })
    }
}
