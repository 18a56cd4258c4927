//! Prometheus text exposition (format 0.0.4) with `rabbitmq_prometheus`'s
//! metric names, types and labels, so that RabbitMQ's Grafana dashboards
//! (RabbitMQ-Overview) work unchanged: `/metrics` aggregates as RabbitMQ's
//! default endpoint does, `/metrics/per-object` has the same families with
//! one sample per queue (labelled `vhost` and `queue`) for the queue ones.
//! Warren's own metrics are prefixed `warren_`. A RabbitMQ metric Warren
//! cannot measure (Erlang VM internals, Raft, streams) is absent rather
//! than a made-up constant; README's "Prometheus metrics" lists both.
//! No authentication, as RabbitMQ's Prometheus endpoint.
//!
//! - `queues.rs`: the queue metrics (summed, or per queue).
//! - `global.rs`: objects and churn, RabbitMQ's global counters, message sizes.
//! - `process.rs`: memory, disk, file descriptors, alarms, uptime.

mod global;
mod process;
mod queues;
mod streams;

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::broker::Broker;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An exposition page being written.
struct Page(String);

impl Page {
    /// `# HELP`, `# TYPE` and the samples (labels, value) of one family.
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }

    /// One unlabelled gauge.
    fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, "gauge", help, &[(String::new(), value)]);
    }

    /// One unlabelled counter.
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help, &[(String::new(), value as f64)]);
    }
}

/// A label value escaped as the exposition format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The page: aggregated, or per object.
pub fn render(broker: &Broker, per_object: bool) -> String {
    let mut page = Page(String::new());
    identity(
        &mut page,
        broker,
        if per_object {
            "per-object"
        } else {
            "aggregated"
        },
    );
    let queues = queues::queues(broker);
    global::objects(&mut page, broker, &queues);
    global::global(&mut page, broker, &queues);
    queues::render(&mut page, &queues, per_object);
    streams::render(&mut page, broker, per_object);
    process::process(&mut page, broker);
    page.0
}

/// `rabbitmq_identity_info` (the dashboards join every query on it) and
/// `rabbitmq_build_info`.
fn identity(page: &mut Page, broker: &Broker, endpoint: &str) {
    let node = escape(&broker.cluster_name);
    page.family(
        "rabbitmq_identity_info",
        "gauge",
        "RabbitMQ node & cluster identity info",
        &[(
            format!(
                "{{rabbitmq_node=\"{node}\",rabbitmq_cluster=\"{node}\",rabbitmq_endpoint=\"{endpoint}\"}}"
            ),
            1.0,
        )],
    );
    page.family(
        "rabbitmq_build_info",
        "gauge",
        "RabbitMQ & Erlang/OTP version info (Warren: the RabbitMQ version it is compatible with, and its own)",
        &[(
            format!(
                "{{rabbitmq_version=\"{}\",product_name=\"Warren\",product_version=\"{}\"}}",
                super::MANAGEMENT_VERSION,
                env!("CARGO_PKG_VERSION")
            ),
            1.0,
        )],
    );
}

/// GET /metrics.
pub async fn metrics(State(broker): State<Arc<Broker>>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&broker, false),
    )
        .into_response()
}

/// GET /metrics/per-object.
pub async fn metrics_per_object(State(broker): State<Arc<Broker>>) -> Response {
    (
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        render(&broker, true),
    )
        .into_response()
}
