//! publish, get and explain: messages through the management API.

use anyhow::{Result, anyhow};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::client::{Method, NotFound, seg};
use crate::commands::{Ctx, non_empty, pretty, read_input};
use crate::output::{self, col};
use crate::values;
use crate::{Explain, Get, Publish};

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

/// Runs `explain`: POST /api/route-explain/{vhost}, printed hop by hop.
pub fn explain(ctx: &Ctx, e: &Explain) -> Result<String> {
    let exchange = if e.exchange == "amq.default" {
        ""
    } else {
        e.exchange.as_str()
    };
    let body = json!({
        "exchange": exchange,
        "routing_key": e.routing_key,
        "headers": values::object(&e.headers),
        "properties": values::object(&e.properties),
    });
    let path = format!("/api/route-explain/{}", seg(ctx.vhost));
    let shown = if exchange.is_empty() {
        "(AMQP default)"
    } else {
        exchange
    };
    let missing = NotFound::new(
        format!("exchange '{shown}' not found in vhost '{}'", ctx.vhost),
        ctx.vhost,
    );
    let answer = ctx
        .client
        .request(Method::Post, &path, Some(&body), &missing)?;
    if ctx.json {
        return pretty(&answer);
    }
    Ok(explanation_text(&answer))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `exchange 'x'` / `queue 'q'`, the default exchange by its UI name.
fn named(kind: &str, name: &str) -> String {
    if kind == "exchange" && name.is_empty() {
        "exchange '(AMQP default)'".to_owned()
    } else {
        format!("{kind} '{name}'")
    }
}

/// One line per binding taken, partition and alternate exchange, then the queues.
fn explanation_text(answer: &Value) -> String {
    let keys: Vec<&str> = answer
        .get("routing_keys")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = format!("routing keys: {}\n", keys.join(", "));
    let empty = Vec::new();
    let hops = answer
        .get("hops")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    for hop in hops {
        let from = named("exchange", text(hop, "exchange"));
        let kind = text(hop, "type");
        if let Some(p) = hop.get("partition").filter(|p| !p.is_null()) {
            out.push_str(&format!(
                "{from} ({kind}): hashed the {} -> {}\n",
                text(p, "hashed"),
                named(text(p, "destination_type"), text(p, "destination"))
            ));
        }
        let bindings = hop
            .get("bindings")
            .and_then(Value::as_array)
            .unwrap_or(&empty);
        for b in bindings {
            let arguments = match b.get("arguments") {
                Some(Value::Object(o)) if !o.is_empty() => format!(" {}", Value::Object(o.clone())),
                _ => String::new(),
            };
            out.push_str(&format!(
                "{from} ({kind}) --[{}]{arguments}--> {}\n",
                text(b, "routing_key"),
                named(text(b, "destination_type"), text(b, "destination"))
            ));
        }
        if bindings.is_empty() {
            out.push_str(&format!("{from} ({kind}): no binding matched\n"));
        }
        if let Some(ae) = hop.get("alternate_exchange").and_then(Value::as_str) {
            out.push_str(&format!("{from}: alternate exchange '{ae}'\n"));
        }
    }
    let queues: Vec<&str> = answer
        .get("queues")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if queues.is_empty() {
        out.push_str("NOT routed: no queue would get it\n");
    } else {
        out.push_str(&format!("queues: {}\n", queues.join(", ")));
    }
    out
}
