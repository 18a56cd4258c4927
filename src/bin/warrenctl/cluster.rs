//! `warrenctl cluster status|join|leave|forget|rebalance|check-quorum-critical|add-member|
//! delete-member`: the node's cluster through `/api/cluster`, `/api/rebalance/queues`,
//! the health check and `/api/queues/quorum/...`.

use anyhow::Result;
use serde_json::{Value, json};

use crate::client::{Method, NotFound};
use crate::commands::{Ctx, pretty};
use crate::output;

fn not_clustered() -> NotFound {
    NotFound::plain(
        "this node is not clustered (start it with --node-name, --cluster-port or --cluster-seed)",
    )
}

/// `cluster status`: this node's view, then one line per node.
pub fn status(ctx: &Ctx) -> Result<String> {
    let s = ctx.client.get("/api/cluster", &not_clustered())?;
    if ctx.json {
        return pretty(&s);
    }
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut out = output::pairs(&[
        ("cluster".into(), text(&s["cluster_name"])),
        ("node".into(), text(&s["node"])),
        ("state".into(), text(&s["state"])),
        ("metadata leader".into(), text(&s["metadata_leader"])),
        ("term".into(), text(&s["term"])),
    ]);
    let headers: Vec<String> = ["name", "state", "leader", "role", "cluster", "amqp"]
        .iter()
        .map(|h| (*h).to_owned())
        .collect();
    let rows: Vec<Vec<String>> = s["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|n| {
            vec![
                text(&n["name"]),
                if n["running"] == true {
                    "running"
                } else {
                    "unreachable"
                }
                .to_owned(),
                if n["metadata_leader"] == true {
                    "*"
                } else {
                    ""
                }
                .to_owned(),
                if n["voter"] == true {
                    "voter"
                } else {
                    "learner"
                }
                .to_owned(),
                text(&n["cluster_addr"]),
                text(&n["amqp_addr"]),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&output::grid(&headers, &rows));
    Ok(out)
}

/// `cluster join HOST:PORT`: a node without a cluster asks that node (its cluster port).
pub fn join(ctx: &Ctx, seed: &str) -> Result<String> {
    let body = json!({ "seed": seed });
    ctx.client.request(
        Method::Post,
        "/api/cluster/join",
        Some(&body),
        &not_clustered(),
    )?;
    ctx.done(
        format!("joining the cluster through {seed} (see `warrenctl cluster status`)"),
        json!({ "seed": seed }),
    )
}

/// `cluster leave`: this node leaves its cluster.
pub fn leave(ctx: &Ctx) -> Result<String> {
    let answer = ctx
        .client
        .request(Method::Post, "/api/cluster/leave", None, &not_clustered())?;
    let node = answer["left"].as_str().unwrap_or("this node").to_owned();
    ctx.done(
        format!("{node} left the cluster; its Raft directory is removed (restart it with seeds to join again)"),
        json!({ "node": node }),
    )
}

/// `cluster forget NODE`: a node that is down for good is removed from the cluster.
pub fn forget(ctx: &Ctx, node: &str) -> Result<String> {
    let body = json!({ "node": node });
    ctx.client.request(
        Method::Post,
        "/api/cluster/forget",
        Some(&body),
        &not_clustered(),
    )?;
    ctx.done(
        format!(
            "{node} is forgotten; quorum queues drop it from their members within seconds \
             (wipe its data directory before it starts again)"
        ),
        json!({ "forgotten": node }),
    )
}

/// `cluster rebalance`: the node spreads quorum queues' leaders, in the background.
pub fn rebalance(ctx: &Ctx) -> Result<String> {
    ctx.client.request(
        Method::Post,
        "/api/rebalance/queues",
        None,
        &not_clustered(),
    )?;
    ctx.done(
        "rebalancing quorum queue leaders (see `warrenctl list-queues` or /api/queues)".into(),
        json!({ "rebalance": "started" }),
    )
}

/// `cluster check-quorum-critical`: fails (with the queues) when stopping this node would
/// leave a quorum queue without a majority.
pub fn quorum_critical(ctx: &Ctx) -> Result<String> {
    let answer = ctx.client.get(
        "/api/health/checks/node-is-quorum-critical",
        &not_clustered(),
    )?;
    ctx.done(
        "no quorum queue depends on this node for its majority".into(),
        answer,
    )
}

/// `cluster add-member QUEUE NODE` / `cluster delete-member QUEUE NODE` in `--vhost`.
pub fn member(ctx: &Ctx, queue: &str, node: &str, add: bool) -> Result<String> {
    let vhost = crate::client::seg(ctx.vhost);
    let queue_path = crate::client::seg(queue);
    let (method, path) = if add {
        (
            Method::Post,
            format!("/api/queues/quorum/{vhost}/{queue_path}/replicas/add"),
        )
    } else {
        (
            Method::Delete,
            format!("/api/queues/quorum/{vhost}/{queue_path}/replicas/delete"),
        )
    };
    let body = json!({ "node": node });
    ctx.client
        .request(method, &path, Some(&body), &not_clustered())?;
    let what = if add { "added to" } else { "removed from" };
    ctx.done(
        format!("{node} {what} the members of quorum queue '{queue}'"),
        json!({ "queue": queue, "node": node, "added": add }),
    )
}
