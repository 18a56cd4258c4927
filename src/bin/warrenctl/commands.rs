//! Each command: the request it sends and what it prints.

use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::client::{Client, Method, NotFound, seg};
use crate::output::{self, Column, col};
use crate::values;
use crate::{
    BindingArgs, Cli, Command, Declare, Delete, DestinationType, Export, Get, Import, ListKind,
    Publish, Purge,
};

/// What every command needs: the client, the vhost and the output mode.
struct Ctx<'a> {
    client: Client,
    vhost: &'a str,
    vhost_given: bool,
    json: bool,
}

/// Runs the command line's command; returns what goes to stdout.
pub fn run(cli: &Cli) -> Result<String> {
    let ctx = Ctx {
        client: Client::new(&cli.url, &cli.user, &cli.password)?,
        vhost: cli.vhost.as_deref().unwrap_or("/"),
        vhost_given: cli.vhost.is_some(),
        json: cli.json,
    };
    match &cli.command {
        Command::Overview => overview(&ctx),
        Command::List { what } => list(&ctx, *what),
        Command::Declare(d) => declare(&ctx, d),
        Command::Delete(d) => delete(&ctx, d),
        Command::Purge(Purge::Queue { name }) => purge(&ctx, name),
        Command::Publish(p) => publish(&ctx, p),
        Command::Get(g) => get(&ctx, g),
        Command::Export(Export::Definitions { file }) => export(&ctx, file),
        Command::Import(Import::Definitions { file }) => import(&ctx, file),
    }
}

impl Ctx<'_> {
    /// `/api/{kind}/{vhost}/{name}`.
    fn path(&self, kind: &str, name: &str) -> String {
        format!("/api/{kind}/{}/{}", seg(self.vhost), seg(name))
    }

    /// A 404 on a request about `what` (e.g. "queue 'q'") in the vhost.
    fn not_found(&self, what: &str) -> NotFound {
        NotFound::new(
            format!("{what} not found in vhost '{}'", self.vhost),
            self.vhost,
        )
    }

    /// The answer of a command that changes something: a line for people,
    /// `{"ok":true,...}` for scripts.
    fn done(&self, message: String, details: Value) -> Result<String> {
        if self.json {
            let mut object = json!({ "ok": true, "message": message });
            if let (Some(o), Value::Object(extra)) = (object.as_object_mut(), details) {
                o.extend(extra);
            }
            return pretty(&object);
        }
        Ok(format!("{message}\n"))
    }
}

/// Pretty JSON with a trailing newline.
fn pretty(value: &Value) -> Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Refuses an empty object name where the API needs one in the path.
fn non_empty(kind: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        bail!("a {kind} name cannot be empty");
    }
    Ok(())
}

fn overview(ctx: &Ctx) -> Result<String> {
    let o = ctx.client.get("/api/overview", &NotFound::default())?;
    if ctx.json {
        return pretty(&o);
    }
    let fields: &[(&str, &str)] = &[
        ("product", "/product_name"),
        ("product version", "/product_version"),
        ("rabbitmq version", "/rabbitmq_version"),
        ("management version", "/management_version"),
        ("cluster", "/cluster_name"),
        ("node", "/node"),
        ("vhosts", "/object_totals/vhosts"),
        ("connections", "/object_totals/connections"),
        ("channels", "/object_totals/channels"),
        ("exchanges", "/object_totals/exchanges"),
        ("queues", "/object_totals/queues"),
        ("consumers", "/object_totals/consumers"),
        ("messages", "/queue_totals/messages"),
        ("messages ready", "/queue_totals/messages_ready"),
        ("messages unacked", "/queue_totals/messages_unacknowledged"),
    ];
    let rows: Vec<(String, String)> = fields
        .iter()
        .filter_map(|(label, pointer)| {
            o.pointer(pointer)
                .map(|v| ((*label).to_owned(), output::cell(Some(v))))
        })
        .collect();
    Ok(output::pairs(&rows))
}

fn list(ctx: &Ctx, what: ListKind) -> Result<String> {
    let v = seg(ctx.vhost);
    let in_vhost = NotFound::new(format!("vhost '{}' not found", ctx.vhost), ctx.vhost);
    let global = NotFound::default();
    let (path, not_found, columns): (String, &NotFound, &[Column]) = match what {
        ListKind::Queues => (
            format!("/api/queues/{v}"),
            &in_vhost,
            &[
                col("name", "/name"),
                col("type", "/type"),
                col("durable", "/durable"),
                col("auto_delete", "/auto_delete"),
                col("messages", "/messages"),
                col("ready", "/messages_ready"),
                col("unacked", "/messages_unacknowledged"),
                col("consumers", "/consumers"),
                col("arguments", "/arguments"),
            ],
        ),
        ListKind::Exchanges => (
            format!("/api/exchanges/{v}"),
            &in_vhost,
            &[
                col("name", "/name"),
                col("type", "/type"),
                col("durable", "/durable"),
                col("auto_delete", "/auto_delete"),
                col("internal", "/internal"),
                col("arguments", "/arguments"),
            ],
        ),
        ListKind::Bindings => (
            format!("/api/bindings/{v}"),
            &in_vhost,
            &[
                col("source", "/source"),
                col("destination", "/destination"),
                col("destination_type", "/destination_type"),
                col("routing_key", "/routing_key"),
                col("arguments", "/arguments"),
            ],
        ),
        ListKind::Connections => (
            "/api/connections".to_owned(),
            &global,
            &[
                col("name", "/name"),
                col("vhost", "/vhost"),
                col("user", "/user"),
                col("state", "/state"),
                col("channels", "/channels"),
                col("protocol", "/protocol"),
                col("client", "/client_properties/product"),
            ],
        ),
        ListKind::Channels => (
            "/api/channels".to_owned(),
            &global,
            &[
                col("name", "/name"),
                col("vhost", "/vhost"),
                col("user", "/user"),
                col("consumers", "/consumer_count"),
                col("prefetch", "/prefetch_count"),
                col("unacked", "/messages_unacknowledged"),
                col("confirm", "/confirm"),
                col("transactional", "/transactional"),
            ],
        ),
        ListKind::Consumers => (
            format!("/api/consumers/{v}"),
            &in_vhost,
            &[
                col("queue", "/queue/name"),
                col("consumer_tag", "/consumer_tag"),
                col("channel", "/channel_details/name"),
                col("ack_required", "/ack_required"),
                col("prefetch", "/prefetch_count"),
                col("exclusive", "/exclusive"),
                col("active", "/active"),
                col("arguments", "/arguments"),
            ],
        ),
        ListKind::Users => (
            "/api/users".to_owned(),
            &global,
            &[col("name", "/name"), col("tags", "/tags")],
        ),
        ListKind::Vhosts => (
            "/api/vhosts".to_owned(),
            &global,
            &[
                col("name", "/name"),
                col("description", "/description"),
                col("messages", "/messages"),
            ],
        ),
        ListKind::Permissions => (
            format!("/api/vhosts/{v}/permissions"),
            &in_vhost,
            &[
                col("user", "/user"),
                col("vhost", "/vhost"),
                col("configure", "/configure"),
                col("write", "/write"),
                col("read", "/read"),
            ],
        ),
    };
    let answer = ctx.client.get(&path, not_found)?;
    if ctx.json {
        return pretty(&answer);
    }
    let mut rows = match answer {
        Value::Array(rows) => rows,
        _ => bail!(
            "{} answered {path} with something other than a list",
            ctx.client.base()
        ),
    };
    // The default exchange has an empty name; show it the way RabbitMQ's UI does.
    if matches!(what, ListKind::Exchanges | ListKind::Bindings) {
        for row in &mut rows {
            for field in ["name", "source"] {
                match row.get_mut(field) {
                    Some(v) if v.as_str() == Some("") => *v = json!("(AMQP default)"),
                    _ => {}
                }
            }
        }
    }
    Ok(output::table(columns, &rows))
}

fn declare(ctx: &Ctx, what: &Declare) -> Result<String> {
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

fn delete(ctx: &Ctx, what: &Delete) -> Result<String> {
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

fn purge(ctx: &Ctx, name: &str) -> Result<String> {
    non_empty("queue", name)?;
    let path = format!("{}/contents", ctx.path("queues", name));
    let not_found = ctx.not_found(&format!("queue '{name}'"));
    ctx.client
        .request(Method::Delete, &path, None, &not_found)?;
    ctx.done(
        format!("purged queue '{name}' in vhost '{}'", ctx.vhost),
        json!({ "queue": name, "vhost": ctx.vhost }),
    )
}

/// A file name for messages: `stdin` for `-`.
fn shown(file: &Path) -> String {
    if file == Path::new("-") {
        "stdin".to_owned()
    } else {
        file.display().to_string()
    }
}

/// Reads a file, or stdin for `-`.
fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        return Ok(bytes);
    }
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

fn publish(ctx: &Ctx, p: &Publish) -> Result<String> {
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

fn get(ctx: &Ctx, g: &Get) -> Result<String> {
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

fn export(ctx: &Ctx, file: &Path) -> Result<String> {
    let (path, scope) = if ctx.vhost_given {
        (
            format!("/api/definitions/{}", seg(ctx.vhost)),
            format!("vhost '{}'", ctx.vhost),
        )
    } else {
        ("/api/definitions".to_owned(), "the broker".to_owned())
    };
    let not_found = NotFound::new(format!("vhost '{}' not found", ctx.vhost), ctx.vhost);
    let definitions = ctx.client.get(&path, &not_found)?;
    let text = pretty(&definitions)?;
    if file == Path::new("-") {
        return Ok(text);
    }
    std::fs::write(file, &text).with_context(|| format!("cannot write {}", file.display()))?;
    let counts = summary(&definitions);
    ctx.done(
        format!(
            "exported definitions of {scope} to {} ({counts})",
            file.display()
        ),
        json!({ "file": file.display().to_string() }),
    )
}

fn import(ctx: &Ctx, file: &Path) -> Result<String> {
    let bytes = read_input(file)?;
    let definitions: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", shown(file)))?;
    if !definitions.is_object() {
        bail!(
            "{} is not a definitions file (expected a JSON object)",
            shown(file)
        );
    }
    let (path, scope) = if ctx.vhost_given {
        (
            format!("/api/definitions/{}", seg(ctx.vhost)),
            format!("vhost '{}'", ctx.vhost),
        )
    } else {
        ("/api/definitions".to_owned(), "the broker".to_owned())
    };
    let not_found = NotFound::new(format!("vhost '{}' not found", ctx.vhost), ctx.vhost);
    ctx.client
        .request(Method::Post, &path, Some(&definitions), &not_found)?;
    ctx.done(
        format!(
            "imported definitions from {} into {scope} ({})",
            shown(file),
            summary(&definitions)
        ),
        json!({ "file": shown(file) }),
    )
}

/// "2 vhosts, 1 users, 3 queues, ..." for the lists a definitions object holds.
fn summary(definitions: &Value) -> String {
    let parts: Vec<String> = [
        "users",
        "vhosts",
        "permissions",
        "exchanges",
        "queues",
        "bindings",
        "policies",
    ]
    .iter()
    .filter_map(|key| {
        definitions
            .get(key)
            .and_then(Value::as_array)
            .map(|a| format!("{} {key}", a.len()))
    })
    .collect();
    if parts.is_empty() {
        "nothing listed".to_owned()
    } else {
        parts.join(", ")
    }
}
