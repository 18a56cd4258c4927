//! `/api/shovels`: the state of dynamic shovels as RabbitMQ's
//! `rabbitmq_shovel_management` plugin reports it, and their restart.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{ApiError, ApiResult};
use super::caller::Caller;
use super::listing::ListQuery;
use super::overview::node_name;
use crate::broker::Broker;
use crate::shovel::{Dest, ShovelStatus, Source, State as ShovelState};

/// One shovel's status object.
fn status_json(node: &str, s: &ShovelStatus) -> Value {
    let st = &s.status;
    let mut o = Map::new();
    o.insert("node".into(), json!(node));
    o.insert("timestamp".into(), json!(timestamp(st.since)));
    o.insert("name".into(), json!(s.name));
    o.insert("vhost".into(), json!(s.vhost));
    o.insert("type".into(), json!("dynamic"));
    o.insert("state".into(), json!(st.state.as_str()));
    let first = |uris: &[crate::shovel::uri::ShovelUri]| uris.first().map(|u| u.redacted());
    o.insert(
        "src_uri".into(),
        json!(st.src_uri.clone().or_else(|| first(&s.def.src_uris))),
    );
    o.insert(
        "dest_uri".into(),
        json!(st.dest_uri.clone().or_else(|| first(&s.def.dest_uris))),
    );
    o.insert("src_protocol".into(), json!("amqp091"));
    o.insert("dest_protocol".into(), json!("amqp091"));
    match &s.def.source {
        Source::Queue { name, .. } => {
            o.insert("src_queue".into(), json!(name));
        }
        Source::Exchange { exchange, key } => {
            o.insert("src_exchange".into(), json!(exchange));
            o.insert("src_exchange_key".into(), json!(key));
        }
    }
    match &s.def.dest {
        Dest::Queue { name, .. } => {
            o.insert("dest_queue".into(), json!(name));
        }
        Dest::Exchange { exchange, key } => {
            if let Some(x) = exchange {
                o.insert("dest_exchange".into(), json!(x));
            }
            if let Some(k) = key {
                o.insert("dest_exchange_key".into(), json!(k));
            }
        }
    }
    match st.state {
        ShovelState::Running => {
            o.insert("blocked_status".into(), json!("running"));
            o.insert("forwarded".into(), json!(st.forwarded));
        }
        ShovelState::Terminated => {
            o.insert(
                "reason".into(),
                json!(st.reason.clone().unwrap_or_default()),
            );
        }
        ShovelState::Starting => {}
    }
    Value::Object(o)
}

/// RabbitMQ's status timestamp, `YYYY-MM-DD HH:MM:SS` (UTC here).
fn timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn visible(broker: &Broker, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    let node = node_name(broker);
    broker
        .shovels
        .statuses()
        .iter()
        .filter(|s| vhost.is_none_or(|v| s.vhost == v) && caller.sees_vhost(&s.vhost))
        .map(|s| status_json(&node, s))
        .collect()
}

/// GET /api/shovels and /api/shovels/{vhost} (404 for a vhost that does not
/// exist).
pub async fn list(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    vhost: Option<Path<String>>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let vhost = vhost.as_deref().map(String::as_str);
    if vhost.is_some_and(|v| broker.auth.vhost(v).is_none()) {
        return Err(ApiError::not_found());
    }
    query.respond(visible(&broker, &caller, vhost))
}

/// GET /api/shovels/vhost/{vhost}/{name}.
pub async fn one(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> ApiResult {
    let item = visible(&broker, &caller, Some(&vhost))
        .into_iter()
        .find(|s| s["name"] == name.as_str());
    query.respond_one(item)
}

/// DELETE /api/shovels/vhost/{vhost}/{name}/restart (policymaker): 204, the
/// worker reconnects at once; 404 when there is no such shovel.
pub async fn restart(
    State(broker): State<Arc<Broker>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    caller.require_policymaker()?;
    caller.require_vhost_access(&vhost)?;
    if broker.shovels.restart(&vhost, &name) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_as_rabbitmq_prints_them() {
        let t = UNIX_EPOCH + Duration::from_secs(1_764_917_245);
        assert_eq!(timestamp(t), "2025-12-05 06:47:25");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00");
    }
}
