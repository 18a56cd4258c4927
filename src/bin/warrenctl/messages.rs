//! publish and get: messages through the management API.

use anyhow::{Result, anyhow};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::client::{Method, NotFound};
use crate::commands::{Ctx, non_empty, pretty, read_input};
use crate::output::{self, col};
use crate::values;
use crate::{Get, Publish};

/// Runs `publish`.
pub fn publish(ctx: &Ctx, p: &Publish) -> Result<String> {
    let bytes = match (&p.body, &p.body_file) {
        (Some(text), _) => text.clone().into_bytes(),
        (None, Some(file)) => read_input(file)?,
        (None, None) => Vec::new(),
    };
    let (payload, encoding) = match String::from_utf8(bytes) {
        Ok(text) => (text, "string"),
        Err(e) => (
            base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
            "base64",
        ),
    };
    let mut properties = values::object(&p.properties);
    if let Some(o) = properties.as_object_mut() {
        if p.persistent {
            o.insert("delivery_mode".into(), json!(2));
        }
        if !p.headers.is_empty() {
            o.insert("headers".into(), values::object(&p.headers));
        }
    }
    let body = json!({
        "properties": properties,
        "routing_key": p.routing_key,
        "payload": payload,
        "payload_encoding": encoding,
    });
    let exchange = if p.exchange.is_empty() {
        "amq.default"
    } else {
        p.exchange.as_str()
    };
    let shown = if p.exchange.is_empty() {
        "(AMQP default)"
    } else {
        p.exchange.as_str()
    };
    let vhost = ctx.vhost;
    let missing = format!("exchange '{shown}' not found in vhost '{vhost}'");
    let path = format!("{}/publish", ctx.path("exchanges", exchange));
    let answer = ctx
        .client
        .request(
            Method::Post,
            &path,
            Some(&body),
            &NotFound::new(missing.clone(), vhost),
        )
        .map_err(|e| {
            if e.to_string().contains("NOT_FOUND - no exchange") {
                anyhow!("{missing}")
            } else {
                e
            }
        })?;
    if ctx.json {
        return pretty(&answer);
    }
    let routed = answer.get("routed").and_then(Value::as_bool);
    let key = &p.routing_key;
    Ok(match routed {
        Some(false) => format!(
            "published, but NOT routed: no queue is bound to exchange '{shown}' for routing key '{key}'\n"
        ),
        _ => format!("published to exchange '{shown}' with routing key '{key}'\n"),
    })
}

/// Runs `get`.
pub fn get(ctx: &Ctx, g: &Get) -> Result<String> {
    non_empty("queue", &g.queue)?;
    let mut body = json!({
        "count": g.count,
        "ackmode": if g.ack { "ack_requeue_false" } else { "ack_requeue_true" },
        "encoding": "auto",
    });
    if let (Some(limit), Some(o)) = (g.truncate, body.as_object_mut()) {
        o.insert("truncate".into(), json!(limit));
    }
    let path = format!("{}/get", ctx.path("queues", &g.queue));
    let not_found = ctx.not_found(&format!("queue '{}'", g.queue));
    let answer = ctx
        .client
        .request(Method::Post, &path, Some(&body), &not_found)?;
    if ctx.json {
        return pretty(&answer);
    }
    let mut messages = answer.as_array().cloned().unwrap_or_default();
    for m in &mut messages {
        match m.get_mut("exchange") {
            Some(v) if v.as_str() == Some("") => *v = json!("(AMQP default)"),
            _ => {}
        }
    }
    if messages.is_empty() {
        return Ok(format!("queue '{}' is empty\n", g.queue));
    }
    let columns = [
        col("exchange", "/exchange"),
        col("routing_key", "/routing_key"),
        col("redelivered", "/redelivered"),
        col("remaining", "/message_count"),
        col("properties", "/properties"),
        col("bytes", "/payload_bytes"),
        col("encoding", "/payload_encoding"),
        col("payload", "/payload"),
    ];
    let mut text = output::table(&columns, &messages);
    if !g.ack {
        text.push_str("(requeued; use --ack to remove them)\n");
    }
    Ok(text)
}
