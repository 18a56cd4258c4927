//! AMQP values as the management API writes and reads them: field tables
//! (arguments, headers) as JSON objects, message properties by their AMQP names.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Number, Value};
use warren_codec::protocol::BasicProperties;
use warren_codec::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};

use super::api::{ApiError, ApiResult};

/// A field table as a JSON object.
pub fn table_to_json(table: &FieldTable) -> Value {
    Value::Object(
        table
            .inner()
            .iter()
            .map(|(k, v)| (k.to_string(), value_to_json(v)))
            .collect(),
    )
}

/// A field value as JSON: numbers as numbers, strings as text (bytes that are
/// not UTF-8 as base64), arrays and tables nested.
pub fn value_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => {
            Number::from_f64(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
                .map_or(Value::Null, Value::Number)
        }
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongString(s) => bytes_to_json(s.as_bytes()),
        AMQPValue::ByteArray(b) => bytes_to_json(b.as_slice()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(value_to_json).collect()),
        AMQPValue::FieldTable(t) => table_to_json(t),
        AMQPValue::Void => Value::Null,
    }
}

fn bytes_to_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::String(text.to_owned()),
        Err(_) => Value::String(STANDARD.encode(bytes)),
    }
}

/// A JSON object as a field table (RabbitMQ's mapping: integers are long
/// longs, other numbers doubles, strings long strings).
pub fn json_to_table(value: &Value) -> ApiResult<FieldTable> {
    match value {
        Value::Null => Ok(FieldTable::default()),
        Value::Object(map) => {
            let mut table = FieldTable::default();
            for (k, v) in map {
                let key = ShortString::try_new(k.clone())
                    .map_err(|_| ApiError::bad_request(format!("key too long: {k}")))?;
                table.insert(key, json_to_value(v)?);
            }
            Ok(table)
        }
        _ => Err(ApiError::bad_request("arguments must be an object")),
    }
}

fn json_to_value(value: &Value) -> ApiResult<AMQPValue> {
    Ok(match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => AMQPValue::LongLongInt(i),
            None => AMQPValue::Double(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_str())),
        Value::Array(items) => {
            let mut array = FieldArray::default();
            for item in items {
                array.push(json_to_value(item)?);
            }
            AMQPValue::FieldArray(array)
        }
        Value::Object(_) => AMQPValue::FieldTable(json_to_table(value)?),
    })
}

/// Message properties by their AMQP names, only those set. RabbitMQ writes an
/// empty property list as `[]`, so this does too.
pub fn properties_to_json(p: &BasicProperties) -> Value {
    let mut out = Map::new();
    let mut text = |key: &str, v: &Option<ShortString>| {
        if let Some(v) = v {
            out.insert(key.to_owned(), Value::String(v.to_string()));
        }
    };
    text("content_type", p.content_type());
    text("content_encoding", p.content_encoding());
    text("correlation_id", p.correlation_id());
    text("reply_to", p.reply_to());
    text("expiration", p.expiration());
    text("message_id", p.message_id());
    text("type", p.kind());
    text("user_id", p.user_id());
    text("app_id", p.app_id());
    text("cluster_id", p.cluster_id());
    if let Some(v) = p.delivery_mode() {
        out.insert("delivery_mode".into(), Value::from(*v));
    }
    if let Some(v) = p.priority() {
        out.insert("priority".into(), Value::from(*v));
    }
    if let Some(v) = p.timestamp() {
        out.insert("timestamp".into(), Value::from(*v));
    }
    if let Some(headers) = p.headers() {
        out.insert("headers".into(), table_to_json(headers));
    }
    if out.is_empty() {
        Value::Array(Vec::new())
    } else {
        Value::Object(out)
    }
}

/// Message properties from the publish endpoint's `properties` object.
pub fn json_to_properties(value: &Value) -> ApiResult<BasicProperties> {
    let mut p = BasicProperties::default();
    let Value::Object(map) = value else {
        // RabbitMQ's own UI sends `[]` for no properties.
        return Ok(p);
    };
    let short = |v: &Value| -> ApiResult<ShortString> {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        ShortString::try_new(text).map_err(|_| ApiError::bad_request("property too long"))
    };
    let small = |v: &Value| -> ApiResult<u8> {
        v.as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| ApiError::bad_request(format!("invalid property value {v}")))
    };
    for (key, v) in map {
        p = match key.as_str() {
            "content_type" => p.with_content_type(short(v)?),
            "content_encoding" => p.with_content_encoding(short(v)?),
            "correlation_id" => p.with_correlation_id(short(v)?),
            "reply_to" => p.with_reply_to(short(v)?),
            "expiration" => p.with_expiration(short(v)?),
            "message_id" => p.with_message_id(short(v)?),
            "type" => p.with_type(short(v)?),
            "user_id" => p.with_user_id(short(v)?),
            "app_id" => p.with_app_id(short(v)?),
            "cluster_id" => p.with_cluster_id(short(v)?),
            "delivery_mode" => p.with_delivery_mode(small(v)?),
            "priority" => p.with_priority(small(v)?),
            "timestamp" => p.with_timestamp(
                v.as_u64()
                    .ok_or_else(|| ApiError::bad_request("invalid timestamp"))?,
            ),
            "headers" => p.with_headers(json_to_table(v)?),
            other => return Err(ApiError::bad_request(format!("unknown property {other}"))),
        };
    }
    Ok(p)
}
