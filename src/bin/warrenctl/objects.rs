//! declare and delete: queues, exchanges, bindings, users, vhosts, permissions.

use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};

use crate::client::{Method, NotFound, seg};
use crate::commands::{Ctx, non_empty};
use crate::values;
use crate::{BindingArgs, Declare, Delete, DestinationType};

/// Runs a `declare` command.
pub fn declare(ctx: &Ctx, what: &Declare) -> Result<String> {
    let vhost = ctx.vhost;
    let no_vhost = NotFound::new(format!("vhost '{vhost}' not found"), vhost);
    match what {
        Declare::Queue {
            name,
            durable,
            auto_delete,
            args,
        } => {
            non_empty("queue", name)?;
            let body = json!({
                "durable": durable,
                "auto_delete": auto_delete,
                "arguments": values::object(args),
            });
            ctx.client.request(
                Method::Put,
                &ctx.path("queues", name),
                Some(&body),
                &no_vhost,
            )?;
            ctx.done(
                format!("declared queue '{name}' in vhost '{vhost}'"),
                json!({ "queue": name, "vhost": vhost }),
            )
        }
        Declare::Exchange {
            name,
            kind,
            durable,
            internal,
            auto_delete,
            args,
        } => {
            non_empty("exchange", name)?;
            let body = json!({
                "type": kind.as_str(),
                "durable": durable,
                "auto_delete": auto_delete,
                "internal": internal,
                "arguments": values::object(args),
            });
            ctx.client.request(
                Method::Put,
                &ctx.path("exchanges", name),
                Some(&body),
                &no_vhost,
            )?;
            ctx.done(
                format!(
                    "declared {} exchange '{name}' in vhost '{vhost}'",
                    kind.as_str()
                ),
                json!({ "exchange": name, "vhost": vhost }),
            )
        }
        Declare::Binding(b) => {
            non_empty("source exchange", &b.source)?;
            non_empty("destination", &b.destination)?;
            let body = json!({
                "routing_key": b.routing_key,
                "arguments": values::object(&b.args),
            });
            let not_found = NotFound {
                message: None,
                fallback: Some(format!(
                    "exchange '{}' or {} '{}' not found in vhost '{vhost}'",
                    b.source,
                    dest_word(b.destination_type),
                    b.destination
                )),
                vhost: Some(vhost.to_owned()),
            };
            ctx.client
                .request(Method::Post, &binding_path(ctx, b), Some(&body), &not_found)?;
            ctx.done(
                format!(
                    "bound {} to exchange '{}' in vhost '{vhost}'",
                    describe_dest(b),
                    b.source
                ),
                json!({ "source": b.source, "destination": b.destination,
                        "destination_type": dest_word(b.destination_type),
                        "routing_key": b.routing_key, "vhost": vhost }),
            )
        }
        Declare::User {
            name,
            password,
            password_hash,
            tags,
        } => {
            non_empty("user", name)?;
            let mut body = json!({ "tags": tags });
            if let Some(o) = body.as_object_mut() {
                match (password, password_hash) {
                    (Some(p), _) => o.insert("password".into(), json!(p)),
                    (None, Some(h)) => o.insert("password_hash".into(), json!(h)),
                    (None, None) => bail!("give --password or --password-hash"),
                };
            }
            let path = format!("/api/users/{}", seg(name));
            ctx.client
                .request(Method::Put, &path, Some(&body), &NotFound::default())?;
            ctx.done(format!("declared user '{name}'"), json!({ "user": name }))
        }
        Declare::Vhost { name } => {
            non_empty("vhost", name)?;
            let path = format!("/api/vhosts/{}", seg(name));
            ctx.client
                .request(Method::Put, &path, Some(&json!({})), &NotFound::default())?;
            ctx.done(format!("declared vhost '{name}'"), json!({ "vhost": name }))
        }
        Declare::Permission {
            user,
            configure,
            write,
            read,
        } => {
            non_empty("user", user)?;
            let body = json!({ "configure": configure, "write": write, "read": read });
            ctx.client
                .request(
                    Method::Put,
                    &ctx.path("permissions", user),
                    Some(&body),
                    &NotFound::plain(format!("user '{user}' or vhost '{vhost}' not found")),
                )
                .map_err(|e| {
                    if e.to_string() == "vhost_or_user_not_found" {
                        anyhow!("user '{user}' or vhost '{vhost}' not found")
                    } else {
                        e
                    }
                })?;
            ctx.done(
                format!("set permissions of user '{user}' in vhost '{vhost}'"),
                json!({ "user": user, "vhost": vhost }),
            )
        }
    }
}

/// "queue" or "exchange".
fn dest_word(kind: DestinationType) -> &'static str {
    match kind {
        DestinationType::Queue => "queue",
        DestinationType::Exchange => "exchange",
    }
}

/// "queue 'q' with routing key 'k'".
fn describe_dest(b: &BindingArgs) -> String {
    format!(
        "{} '{}' with routing key '{}'",
        dest_word(b.destination_type),
        b.destination,
        b.routing_key
    )
}

/// `/api/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
fn binding_path(ctx: &Ctx, b: &BindingArgs) -> String {
    let letter = match b.destination_type {
        DestinationType::Queue => "q",
        DestinationType::Exchange => "e",
    };
    format!(
        "/api/bindings/{}/e/{}/{letter}/{}",
        seg(ctx.vhost),
        seg(&b.source),
        seg(&b.destination)
    )
}

/// Runs a `delete` command.
pub fn delete(ctx: &Ctx, what: &Delete) -> Result<String> {
    let vhost = ctx.vhost;
    match what {
        Delete::Queue {
            name,
            if_unused,
            if_empty,
        } => {
            non_empty("queue", name)?;
            let mut query = Vec::new();
            if *if_unused {
                query.push("if-unused=true");
            }
            if *if_empty {
                query.push("if-empty=true");
            }
            let mut path = ctx.path("queues", name);
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            let not_found = ctx.not_found(&format!("queue '{name}'"));
            ctx.client
                .request(Method::Delete, &path, None, &not_found)?;
            ctx.done(
                format!("deleted queue '{name}' in vhost '{vhost}'"),
                json!({ "queue": name, "vhost": vhost }),
            )
        }
        Delete::Exchange { name, if_unused } => {
            non_empty("exchange", name)?;
            let mut path = ctx.path("exchanges", name);
            if *if_unused {
                path.push_str("?if-unused=true");
            }
            let not_found = ctx.not_found(&format!("exchange '{name}'"));
            ctx.client
                .request(Method::Delete, &path, None, &not_found)?;
            ctx.done(
                format!("deleted exchange '{name}' in vhost '{vhost}'"),
                json!({ "exchange": name, "vhost": vhost }),
            )
        }
        Delete::Binding {
            binding: b,
            properties_key,
        } => {
            let base = binding_path(ctx, b);
            let missing = format!(
                "no binding from exchange '{}' to {} in vhost '{vhost}'",
                b.source,
                describe_dest(b)
            );
            let key = match properties_key {
                Some(key) => key.clone(),
                None => {
                    let not_found = NotFound {
                        message: None,
                        fallback: Some(missing.clone()),
                        vhost: Some(vhost.to_owned()),
                    };
                    let found = ctx.client.get(&base, &not_found)?;
                    let wanted_args = values::object(&b.args);
                    found
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|row| {
                            row.get("routing_key").and_then(Value::as_str)
                                == Some(b.routing_key.as_str())
                                && row.get("arguments").unwrap_or(&json!({})) == &wanted_args
                        })
                        .and_then(|row| row.get("properties_key").and_then(Value::as_str))
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow!("{missing}"))?
                }
            };
            let path = format!("{base}/{}", seg(&key));
            ctx.client
                .request(Method::Delete, &path, None, &NotFound::plain(missing))?;
            ctx.done(
                format!(
                    "unbound {} from exchange '{}' in vhost '{vhost}'",
                    describe_dest(b),
                    b.source
                ),
                json!({ "source": b.source, "destination": b.destination,
                        "properties_key": key, "vhost": vhost }),
            )
        }
        Delete::User { name } => {
            non_empty("user", name)?;
            let path = format!("/api/users/{}", seg(name));
            ctx.client.request(
                Method::Delete,
                &path,
                None,
                &NotFound::plain(format!("user '{name}' not found")),
            )?;
            ctx.done(format!("deleted user '{name}'"), json!({ "user": name }))
        }
        Delete::Vhost { name } => {
            non_empty("vhost", name)?;
            let path = format!("/api/vhosts/{}", seg(name));
            ctx.client.request(
                Method::Delete,
                &path,
                None,
                &NotFound::plain(format!("vhost '{name}' not found")),
            )?;
            ctx.done(format!("deleted vhost '{name}'"), json!({ "vhost": name }))
        }
        Delete::Permission { user } => {
            non_empty("user", user)?;
            ctx.client.request(
                Method::Delete,
                &ctx.path("permissions", user),
                None,
                &NotFound::new(
                    format!("user '{user}' has no permissions in vhost '{vhost}'"),
                    vhost,
                ),
            )?;
            ctx.done(
                format!("revoked permissions of user '{user}' in vhost '{vhost}'"),
                json!({ "user": user, "vhost": vhost }),
            )
        }
    }
}
