//! Prometheus `/metrics` as RabbitMQ's Grafana dashboards read it: every
//! metric the RabbitMQ-Overview dashboard queries, with the labels its
//! queries select and join on (tests/fixtures/rabbitmq-overview-metrics.txt,
//! extracted from the dashboard by scripts/extract-dashboard-metrics.py),
//! counters that move with the traffic, and `promtool check metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::*;

use crate::common::lapin::{Client, consume, declare_queue, next_delivery, try_publish};

/// The extracted list of the dashboard's metrics and labels.
const DASHBOARD: &str = include_str!("../fixtures/rabbitmq-overview-metrics.txt");

/// Labels the dashboard uses that Warren's exposition does not carry, and why.
const NOT_EXPORTED: [(&str, &str); 2] = [
    (
        "namespace",
        "added by the Kubernetes scrape configuration, not by the exporter (RabbitMQ's neither)",
    ),
    ("erlang_version", "Warren has no Erlang/OTP"),
];

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of an exposition page (the simple text format Warren writes).
fn parse(page: &str) -> Vec<Sample> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("value");
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
            let Some((name, labels)) = series.split_once('{') else {
                return (series.to_owned(), BTreeMap::new(), value);
            };
            let mut map = BTreeMap::new();
            let mut rest = labels.strip_suffix('}').expect("closing brace");
            while !rest.is_empty() {
                let (key, after) = rest.split_once("=\"").expect("label");
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().expect("closing quote") {
                        (_, '\\') => match chars.next().expect("escaped").1 {
                            'n' => value.push('\n'),
                            c => value.push(c),
                        },
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                map.insert(key.to_owned(), value);
                rest = after[end + 1..].trim_start_matches(',');
            }
            (name.to_owned(), map, value)
        })
        .collect()
}

/// The value of the one sample `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    found[0]
}

async fn scrape(http: &crate::common::http::Http, path: &str) -> String {
    let response = http.get(path).await;
    assert_eq!(response.status, 200, "{path}");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.body
}

/// Every metric of the dashboard is on the page, with every label the
/// queries use (and the histogram buckets they select by `le`).
fn assert_dashboard_works(page: &str, endpoint: &str) {
    let samples = parse(page);
    let mut missing = Vec::new();
    for line in DASHBOARD.lines().filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        let name = words.next().expect("metric");
        let of_name: Vec<&Sample> = samples.iter().filter(|(n, _, _)| n == name).collect();
        if of_name.is_empty() {
            missing.push(name.to_owned());
            continue;
        }
        for label in words {
            if NOT_EXPORTED.iter().any(|(l, _)| *l == label) {
                continue;
            }
            let present = match label.split_once('=') {
                Some((k, v)) => of_name
                    .iter()
                    .any(|(_, l, _)| l.get(k).map(String::as_str) == Some(v)),
                None => of_name.iter().all(|(_, l, _)| l.contains_key(label)),
            };
            if !present {
                missing.push(format!("{name} {label}"));
            }
        }
    }
    assert!(missing.is_empty(), "missing on {endpoint}: {missing:?}");
    let identity = value(
        &samples,
        "rabbitmq_identity_info",
        &[("rabbitmq_endpoint", endpoint)],
    );
    assert_eq!(identity, 1.0);
}

#[tokio::test]
async fn every_metric_of_rabbitmqs_overview_dashboard_is_there_with_its_labels() {
    let (broker, http) = super::start().await;
    assert!(
        DASHBOARD.lines().filter(|l| !l.starts_with('#')).count() > 30,
        "the fixture lists the dashboard's metrics"
    );
    // With objects and without.
    assert_dashboard_works(&scrape(&http, "/metrics").await, "aggregated");
    let client = Client::connect(&broker).await;
    let ch = client.channel().await;
    declare_queue(&ch, "dash").await;
    assert_dashboard_works(&scrape(&http, "/metrics").await, "aggregated");
    let per_object = scrape(&http, "/metrics/per-object").await;
    assert_dashboard_works(&per_object, "per-object");
    let samples = parse(&per_object);
    value(
        &samples,
        "rabbitmq_queue_messages_ready",
        &[("vhost", "/"), ("queue", "dash")],
    );
    client.close().await;
}

/// Polls `/metrics` until `check` holds on its samples (closing is asynchronous).
async fn eventually(http: &crate::common::http::Http, check: impl Fn(&[Sample]) -> bool) {
    for _ in 0..100 {
        if check(&parse(&scrape(http, "/metrics").await)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{}", scrape(http, "/metrics").await);
}

#[tokio::test]
async fn counters_move_with_publishes_deliveries_acks_and_churn() {
    let (broker, http) = super::start().await;
    let client = Client::connect(&broker).await;
    let ch = crate::common::lapin::confirming(&client).await;
    declare_queue(&ch, "m").await;
    for size in [10, 500, 5000] {
        let confirm = try_publish(
            &ch,
            "",
            "m",
            false,
            &vec![b'x'; size],
            BasicProperties::default(),
        )
        .await
        .expect("publish");
        assert!(confirm.is_ack());
    }
    // Unroutable: returned (mandatory), dropped (not).
    for mandatory in [true, false] {
        try_publish(
            &ch,
            "amq.direct",
            "nowhere",
            mandatory,
            b"u",
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    }
    // basic.get without ack, with ack, then a consumer with manual acks.
    let got = ch
        .basic_get("m".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    assert!(got.is_some());
    let got = ch
        .basic_get("m".into(), BasicGetOptions { no_ack: false })
        .await
        .expect("get")
        .expect("a message");
    got.ack(BasicAckOptions::default()).await.expect("ack");
    let mut consumer = consume(&ch, "m").await;
    let delivery = next_delivery(&mut consumer).await;
    delivery.ack(BasicAckOptions::default()).await.expect("ack");
    let empty = ch
        .basic_get("m".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    assert!(empty.is_none());

    let protocol = [("protocol", "amqp091")];
    eventually(&http, |s| {
        value(s, "rabbitmq_global_messages_acknowledged_total", &protocol) == 2.0
    })
    .await;
    let s = parse(&scrape(&http, "/metrics").await);
    for (name, expected) in [
        ("rabbitmq_global_messages_received_total", 5.0),
        ("rabbitmq_global_messages_received_confirm_total", 5.0),
        ("rabbitmq_global_messages_confirmed_total", 5.0),
        ("rabbitmq_global_messages_routed_total", 3.0),
        ("rabbitmq_global_messages_unroutable_returned_total", 1.0),
        ("rabbitmq_global_messages_unroutable_dropped_total", 1.0),
        ("rabbitmq_global_messages_delivered_total", 3.0),
        (
            "rabbitmq_global_messages_delivered_consume_manual_ack_total",
            1.0,
        ),
        (
            "rabbitmq_global_messages_delivered_consume_auto_ack_total",
            0.0,
        ),
        (
            "rabbitmq_global_messages_delivered_get_manual_ack_total",
            1.0,
        ),
        ("rabbitmq_global_messages_delivered_get_auto_ack_total", 1.0),
        ("rabbitmq_global_messages_get_empty_total", 1.0),
        ("rabbitmq_global_messages_redelivered_total", 0.0),
        ("rabbitmq_global_messages_acknowledged_total", 2.0),
        ("rabbitmq_global_publishers", 1.0),
        ("rabbitmq_global_consumers", 1.0),
        ("rabbitmq_message_size_bytes_count", 5.0),
        ("rabbitmq_message_size_bytes_sum", 5512.0),
    ] {
        assert_eq!(value(&s, name, &protocol), expected, "{name}");
    }
    for (le, expected) in [
        ("100.0", 3.0),
        ("1000.0", 4.0),
        ("10000.0", 5.0),
        ("+Inf", 5.0),
    ] {
        let labels = [("protocol", "amqp091"), ("le", le)];
        assert_eq!(
            value(&s, "rabbitmq_message_size_bytes_bucket", &labels),
            expected
        );
    }
    for (name, expected) in [
        ("rabbitmq_connections", 1.0),
        ("rabbitmq_channels", 1.0),
        ("rabbitmq_queues", 1.0),
        ("rabbitmq_consumers", 1.0),
        ("rabbitmq_connections_opened_total", 1.0),
        ("rabbitmq_connections_closed_total", 0.0),
        ("rabbitmq_channels_opened_total", 1.0),
        ("rabbitmq_channels_closed_total", 0.0),
        ("rabbitmq_queues_declared_total", 1.0),
        ("rabbitmq_queues_created_total", 1.0),
        ("rabbitmq_queues_deleted_total", 0.0),
        ("rabbitmq_queue_messages_ready", 0.0),
        ("rabbitmq_queue_messages_unacked", 0.0),
    ] {
        assert_eq!(value(&s, name, &[]), expected, "{name}");
    }
    let per_object = parse(&scrape(&http, "/metrics/per-object").await);
    let queue = [("vhost", "/"), ("queue", "m")];
    assert_eq!(
        value(
            &per_object,
            "rabbitmq_queue_messages_published_total",
            &queue
        ),
        3.0
    );
    assert_eq!(
        value(&per_object, "warren_queue_messages_delivered_total", &queue),
        3.0
    );
    assert_eq!(
        value(
            &per_object,
            "warren_queue_messages_acknowledged_total",
            &queue
        ),
        2.0
    );

    // Churn: a second channel comes and goes, the queue is deleted, the
    // connection closes; the counters keep what they counted.
    let other = client.create_channel().await.expect("channel");
    other.close(200, "bye".into()).await.expect("close");
    ch.queue_delete("m".into(), QueueDeleteOptions::default())
        .await
        .expect("delete");
    client.close().await;
    eventually(&http, |s| {
        value(s, "rabbitmq_connections_closed_total", &[]) == 1.0
    })
    .await;
    let s = parse(&scrape(&http, "/metrics").await);
    for (name, expected) in [
        ("rabbitmq_connections", 0.0),
        ("rabbitmq_channels", 0.0),
        ("rabbitmq_queues", 0.0),
        ("rabbitmq_channels_opened_total", 2.0),
        ("rabbitmq_channels_closed_total", 2.0),
        ("rabbitmq_queues_deleted_total", 1.0),
    ] {
        assert_eq!(value(&s, name, &[]), expected, "{name}");
    }
    // Closed connections' counts stay in the global counters.
    assert_eq!(
        value(&s, "rabbitmq_global_messages_received_total", &protocol),
        5.0
    );
    assert_eq!(value(&s, "rabbitmq_global_publishers", &protocol), 0.0);
}

#[tokio::test]
async fn the_oldest_message_age_is_the_max_over_queues() {
    let (broker, http) = super::start().await;
    let client = Client::connect(&broker).await;
    let ch = crate::common::lapin::confirming(&client).await;
    declare_queue(&ch, "old").await;
    declare_queue(&ch, "empty").await;
    try_publish(&ch, "", "old", false, b"x", BasicProperties::default())
        .await
        .expect("publish");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let s = parse(&scrape(&http, "/metrics").await);
    let age = value(&s, "warren_queue_head_message_age_seconds", &[]);
    assert!((1.0..60.0).contains(&age), "{age}");
    let s = parse(&scrape(&http, "/metrics/per-object").await);
    let empty = [("vhost", "/"), ("queue", "empty")];
    assert_eq!(
        value(&s, "warren_queue_head_message_age_seconds", &empty),
        0.0
    );
    client.close().await;
}

#[tokio::test]
async fn promtool_finds_nothing_to_say() {
    let Ok(output) = std::process::Command::new("promtool")
        .arg("--version")
        .output()
    else {
        eprintln!(
            "NOTICE: promtool is not installed (Debian: apt-get install prometheus); skipping `promtool check metrics`"
        );
        return;
    };
    assert!(output.status.success());
    let (broker, http) = super::start().await;
    let client = Client::connect(&broker).await;
    let ch = crate::common::lapin::confirming(&client).await;
    declare_queue(&ch, "p\"q\\uote").await;
    try_publish(
        &ch,
        "",
        "p\"q\\uote",
        false,
        b"x",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    for path in ["/metrics", "/metrics/per-object"] {
        let page = scrape(&http, path).await;
        // WARREN_METRICS_DUMP=dir keeps the pages checked (to look at them).
        if let Some(dir) = std::env::var_os("WARREN_METRICS_DUMP") {
            let file =
                std::path::Path::new(&dir).join(path.trim_start_matches('/').replace('/', "-"));
            std::fs::write(file, &page).expect("dump");
        }
        let mut child = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(page.as_bytes())
            .expect("write");
        let out = child.wait_with_output().expect("promtool");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{path}: {said}\n{page}"
        );
    }
    client.close().await;
}
