//! The commands' shared context and the read-only ones: overview, list;
//! and purge. The others live in objects, messages and definitions.

use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use crate::client::{Client, Method, NotFound, seg};
use crate::output::{self, Column, col};
use crate::settings::{self, LimitOwner};
use crate::{
    Cli, ClusterCommand, Command, Export, Import, ListKind, PolicyKind, Purge, cluster,
    definitions, messages, objects,
};

/// What every command needs: the client, the vhost and the output mode.
pub struct Ctx<'a> {
    /// The logged-in API client.
    pub client: Client,
    /// The vhost commands act in (--vhost, default /).
    pub vhost: &'a str,
    /// Whether --vhost was given (export/import then act on that vhost only).
    pub vhost_given: bool,
    /// --json: print JSON for scripts.
    pub json: bool,
}

/// Runs the command line's command; returns what goes to stdout.
pub fn run(cli: &Cli) -> Result<String> {
    let ctx = Ctx {
        client: Client::new(&cli.url, &cli.user, &cli.password, cli.cacert.as_deref())?,
        vhost: cli.vhost.as_deref().unwrap_or("/"),
        vhost_given: cli.vhost.is_some(),
        json: cli.json,
    };
    match &cli.command {
        Command::Overview => overview(&ctx),
        Command::List { what } => list(&ctx, *what),
        Command::Declare(d) => objects::declare(&ctx, d),
        Command::Delete(d) => objects::delete(&ctx, d),
        Command::Purge(Purge::Queue { name }) => purge(&ctx, name),
        Command::Publish(p) => messages::publish(&ctx, p),
        Command::Get(g) => messages::get(&ctx, g),
        Command::Explain(e) => messages::explain(&ctx, e),
        Command::Export(Export::Definitions { file }) => definitions::export(&ctx, file),
        Command::Import(Import::Definitions { file }) => definitions::import(&ctx, file),
        Command::SetVhostLimits { vhost, limits } => {
            settings::set_limits(&ctx, LimitOwner::Vhost, vhost, limits)
        }
        Command::ClearVhostLimits { vhost, name } => {
            settings::clear_limit(&ctx, LimitOwner::Vhost, vhost, name)
        }
        Command::ListVhostLimits => {
            settings::list_limits(&ctx, LimitOwner::Vhost, cli.vhost.as_deref())
        }
        Command::SetUserLimits { user, limits } => {
            settings::set_limits(&ctx, LimitOwner::User, user, limits)
        }
        Command::ClearUserLimits { user, name } => {
            settings::clear_limit(&ctx, LimitOwner::User, user, name)
        }
        Command::ListUserLimits { only } => {
            settings::list_limits(&ctx, LimitOwner::User, only.as_deref())
        }
        Command::SetPolicy(p) => settings::set_policy(
            &ctx,
            PolicyKind::Policy,
            &p.name,
            &p.pattern,
            &p.definition,
            p.priority,
            p.apply_to,
        ),
        Command::ClearPolicy { name } => settings::clear_policy(&ctx, PolicyKind::Policy, name),
        Command::ListPolicies => settings::list_policies(&ctx, PolicyKind::Policy),
        Command::SetOperatorPolicy(p) => settings::set_policy(
            &ctx,
            PolicyKind::Operator,
            &p.name,
            &p.pattern,
            &p.definition,
            p.priority,
            p.apply_to,
        ),
        Command::ClearOperatorPolicy { name } => {
            settings::clear_policy(&ctx, PolicyKind::Operator, name)
        }
        Command::ListOperatorPolicies => settings::list_policies(&ctx, PolicyKind::Operator),
        Command::Cluster(ClusterCommand::Status) => cluster::status(&ctx),
        Command::Cluster(ClusterCommand::Join { seed }) => cluster::join(&ctx, seed),
        Command::Cluster(ClusterCommand::Leave) => cluster::leave(&ctx),
        Command::Cluster(ClusterCommand::Forget { node }) => cluster::forget(&ctx, node),
        Command::Cluster(ClusterCommand::Rebalance) => cluster::rebalance(&ctx),
        Command::Cluster(ClusterCommand::CheckQuorumCritical) => cluster::quorum_critical(&ctx),
        Command::Cluster(ClusterCommand::AddMember { queue, node }) => {
            cluster::member(&ctx, queue, node, true)
        }
        Command::Cluster(ClusterCommand::DeleteMember { queue, node }) => {
            cluster::member(&ctx, queue, node, false)
        }
    }
}

impl Ctx<'_> {
    /// `/api/{kind}/{vhost}/{name}`.
    pub fn path(&self, kind: &str, name: &str) -> String {
        format!("/api/{kind}/{}/{}", seg(self.vhost), seg(name))
    }

    /// A 404 on a request about `what` (e.g. "queue 'q'") in the vhost.
    pub fn not_found(&self, what: &str) -> NotFound {
        NotFound::new(
            format!("{what} not found in vhost '{}'", self.vhost),
            self.vhost,
        )
    }

    /// The answer of a command that changes something: a line for people,
    /// `{"ok":true,...}` for scripts.
    pub fn done(&self, message: String, details: Value) -> Result<String> {
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
pub fn pretty(value: &Value) -> Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Refuses an empty object name where the API needs one in the path.
pub fn non_empty(kind: &str, name: &str) -> Result<()> {
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
pub fn shown(file: &Path) -> String {
    if file == Path::new("-") {
        "stdin".to_owned()
    } else {
        file.display().to_string()
    }
}

/// Reads a file, or stdin for `-`.
pub fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        return Ok(bytes);
    }
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}
