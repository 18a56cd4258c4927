//! Limits and policies, named as rabbitmqctl names them: set-/clear-/list-
//! vhost-limits and user-limits (`/api/vhost-limits`, `/api/user-limits`),
//! set-/clear-/list- policies and operator policies (`/api/policies`,
//! `/api/operator-policies`).

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value, json};

use crate::client::{Method, NotFound, seg};
use crate::commands::{Ctx, non_empty, pretty};
use crate::output::{self, col};
use crate::{ApplyTo, PolicyKind};

/// Whose limits: a vhost's or a user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitOwner {
    /// `/api/vhost-limits/{vhost}/{name}`
    Vhost,
    /// `/api/user-limits/{user}/{name}`
    User,
}

impl LimitOwner {
    fn kind(self) -> &'static str {
        match self {
            LimitOwner::Vhost => "vhost",
            LimitOwner::User => "user",
        }
    }

    fn endpoint(self) -> &'static str {
        match self {
            LimitOwner::Vhost => "/api/vhost-limits",
            LimitOwner::User => "/api/user-limits",
        }
    }

    fn not_found(self, owner: &str) -> NotFound {
        NotFound::plain(format!("{} '{owner}' not found", self.kind()))
    }
}

/// Parses a limits argument: a JSON object of limit names to integers, e.g.
/// `{"max-connections": 10, "max-queues": 5}` (as rabbitmqctl's set_vhost_limits).
fn limits_object(text: &str) -> Result<Map<String, Value>> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        anyhow!("limits must be a JSON object such as '{{\"max-connections\": 10}}': {e}")
    })?;
    let Value::Object(map) = value else {
        bail!("limits must be a JSON object such as '{{\"max-connections\": 10}}'");
    };
    if map.is_empty() {
        bail!("no limits given: use a JSON object such as '{{\"max-connections\": 10}}'");
    }
    Ok(map)
}

/// set-vhost-limits / set-user-limits: one PUT per limit.
pub fn set_limits(ctx: &Ctx, owner_kind: LimitOwner, owner: &str, limits: &str) -> Result<String> {
    non_empty(owner_kind.kind(), owner)?;
    let limits = limits_object(limits)?;
    let not_found = owner_kind.not_found(owner);
    for (name, value) in &limits {
        let path = format!("{}/{}/{}", owner_kind.endpoint(), seg(owner), seg(name));
        ctx.client.request(
            Method::Put,
            &path,
            Some(&json!({ "value": value })),
            &not_found,
        )?;
    }
    let shown = Value::Object(limits.clone()).to_string();
    ctx.done(
        format!("set limits {shown} on {} '{owner}'", owner_kind.kind()),
        json!({ owner_kind.kind(): owner, "limits": limits }),
    )
}

/// clear-vhost-limits / clear-user-limits: one limit, or `all` of them.
pub fn clear_limit(ctx: &Ctx, owner_kind: LimitOwner, owner: &str, name: &str) -> Result<String> {
    non_empty(owner_kind.kind(), owner)?;
    non_empty("limit", name)?;
    let not_found = owner_kind.not_found(owner);
    let names: Vec<String> = if name == "all" {
        let path = format!("{}/{}", owner_kind.endpoint(), seg(owner));
        let listed = ctx.client.get(&path, &not_found)?;
        listed
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| row.get("value").and_then(Value::as_object))
            .flat_map(|limits| limits.keys().cloned())
            .collect()
    } else {
        vec![name.to_owned()]
    };
    for limit in &names {
        let path = format!("{}/{}/{}", owner_kind.endpoint(), seg(owner), seg(limit));
        ctx.client
            .request(Method::Delete, &path, None, &not_found)?;
    }
    let what = if name == "all" {
        "every limit".to_owned()
    } else {
        format!("limit '{name}'")
    };
    ctx.done(
        format!("cleared {what} on {} '{owner}'", owner_kind.kind()),
        json!({ owner_kind.kind(): owner, "cleared": names }),
    )
}

/// list-vhost-limits / list-user-limits: every owner's, or one's; one row per limit.
pub fn list_limits(ctx: &Ctx, owner_kind: LimitOwner, only: Option<&str>) -> Result<String> {
    let (path, not_found) = match only {
        Some(owner) => (
            format!("{}/{}", owner_kind.endpoint(), seg(owner)),
            owner_kind.not_found(owner),
        ),
        None => (owner_kind.endpoint().to_owned(), NotFound::default()),
    };
    let answer = ctx.client.get(&path, &not_found)?;
    if ctx.json {
        return pretty(&answer);
    }
    let kind = owner_kind.kind();
    let mut rows = Vec::new();
    for entry in answer.as_array().into_iter().flatten() {
        let owner = output::cell(entry.get(kind));
        for (name, value) in entry
            .get("value")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            rows.push(vec![owner.clone(), name.clone(), output::cell(Some(value))]);
        }
    }
    let headers = [kind.to_owned(), "limit".to_owned(), "value".to_owned()];
    Ok(output::grid(&headers, &rows))
}

impl PolicyKind {
    fn endpoint(self) -> &'static str {
        match self {
            PolicyKind::Policy => "policies",
            PolicyKind::Operator => "operator-policies",
        }
    }

    fn label(self) -> &'static str {
        match self {
            PolicyKind::Policy => "policy",
            PolicyKind::Operator => "operator policy",
        }
    }
}

/// set-policy / set-operator-policy: PUT `/api/{policies|operator-policies}/{vhost}/{name}`.
pub fn set_policy(
    ctx: &Ctx,
    kind: PolicyKind,
    name: &str,
    pattern: &str,
    definition: &str,
    priority: i64,
    apply_to: ApplyTo,
) -> Result<String> {
    non_empty(kind.label(), name)?;
    let definition: Value = serde_json::from_str(definition).map_err(|e| {
        anyhow!("the definition must be a JSON object such as '{{\"max-length\": 1000}}': {e}")
    })?;
    if !definition.is_object() || definition.as_object().is_some_and(Map::is_empty) {
        bail!("the definition must be a non-empty JSON object such as '{{\"max-length\": 1000}}'");
    }
    let vhost = ctx.vhost;
    let body = json!({
        "pattern": pattern,
        "definition": definition,
        "priority": priority,
        "apply-to": apply_to.as_str(),
    });
    let not_found = NotFound::new(format!("vhost '{vhost}' not found"), vhost);
    ctx.client.request(
        Method::Put,
        &ctx.path(kind.endpoint(), name),
        Some(&body),
        &not_found,
    )?;
    ctx.done(
        format!("set {} '{name}' in vhost '{vhost}'", kind.label()),
        json!({ kind.label().replace(' ', "_"): name, "vhost": vhost }),
    )
}

/// clear-policy / clear-operator-policy.
pub fn clear_policy(ctx: &Ctx, kind: PolicyKind, name: &str) -> Result<String> {
    non_empty(kind.label(), name)?;
    let vhost = ctx.vhost;
    let not_found = ctx.not_found(&format!("{} '{name}'", kind.label()));
    ctx.client.request(
        Method::Delete,
        &ctx.path(kind.endpoint(), name),
        None,
        &not_found,
    )?;
    ctx.done(
        format!("cleared {} '{name}' in vhost '{vhost}'", kind.label()),
        json!({ kind.label().replace(' ', "_"): name, "vhost": vhost }),
    )
}

/// list-policies / list-operator-policies in the vhost (--vhost, default /).
pub fn list_policies(ctx: &Ctx, kind: PolicyKind) -> Result<String> {
    let vhost = ctx.vhost;
    let path = format!("/api/{}/{}", kind.endpoint(), seg(vhost));
    let not_found = NotFound::new(format!("vhost '{vhost}' not found"), vhost);
    let answer = ctx.client.get(&path, &not_found)?;
    if ctx.json {
        return pretty(&answer);
    }
    let rows = match answer {
        Value::Array(rows) => rows,
        _ => bail!(
            "{} answered {path} with something other than a list",
            ctx.client.base()
        ),
    };
    let columns = [
        col("vhost", "/vhost"),
        col("name", "/name"),
        col("pattern", "/pattern"),
        col("apply_to", "/apply-to"),
        col("definition", "/definition"),
        col("priority", "/priority"),
    ];
    Ok(output::table(&columns, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_a_json_object_of_names() {
        let map = limits_object(r#"{"max-connections": 10, "max-queues": -1}"#).expect("valid");
        assert_eq!(map.len(), 2);
        assert!(limits_object("10").is_err());
        assert!(limits_object("{}").is_err());
        assert!(limits_object("{nope").is_err());
    }
}
