//! A cluster of three `warren` processes (issue 18): definitions declared through any node
//! are committed by the metadata log and seen on every node, with a single node's errors;
//! a node killed and restarted gets its definitions and its queues' messages back.

mod asymmetric;
#[path = "../common/mod.rs"]
mod common;
mod cuts;
mod forget;
mod management;
mod nodes;
mod quorum;
mod quorum_members;
mod quorum_paging;
mod refusals;
mod remote_queues;
mod secure;
mod shovels;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};

use common::lapin::{connect, next_delivery, refused, table, text};
use nodes::Nodes;

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn passive_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    }
}

fn passive_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..ExchangeDeclareOptions::default()
    }
}

async fn channel(uri: &str) -> (lapin::Connection, Channel) {
    let conn = connect(uri).await;
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

/// Declares a durable exchange (its creation must succeed).
async fn durable_exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("exchange {name}: {e}"));
}

/// A no-ack consumer of `queue`.
async fn consume_no_ack(ch: &Channel, queue: &str) -> lapin::Consumer {
    ch.basic_consume(
        queue.into(),
        "c".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..BasicConsumeOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("consume {queue}: {e}"))
}

/// Publishes each number of `numbers` (4 bytes, big-endian) to `queue`, confirmed.
pub(crate) async fn publish_numbers(ch: &Channel, queue: &str, numbers: std::ops::Range<u32>) {
    for n in numbers {
        common::lapin::publish_acked(ch, "", queue, &n.to_be_bytes(), BasicProperties::default())
            .await;
    }
}

/// Polls `probe` every 100 ms for up to `cap` until it answers `expected`; the last answer.
pub(crate) async fn within<T: PartialEq>(
    cap: std::time::Duration,
    expected: T,
    mut probe: impl AsyncFnMut() -> T,
) -> T {
    let deadline = tokio::time::Instant::now() + cap;
    loop {
        let answer = probe().await;
        if answer == expected || tokio::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Whether `queue` exists as seen from node `i` (a passive declare on a fresh channel).
async fn queue_exists(nodes: &Nodes, i: usize, queue: &str) -> bool {
    let (conn, ch) = channel(&nodes.uri(i)).await;
    let found = ch
        .queue_declare(queue.into(), passive_queue(), FieldTable::default())
        .await
        .is_ok();
    let _ = conn.close(200, "bye".into()).await;
    found
}

/// Whether `exchange` exists as seen from node `i`.
async fn exchange_exists(nodes: &Nodes, i: usize, exchange: &str) -> bool {
    let (conn, ch) = channel(&nodes.uri(i)).await;
    let found = ch
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Direct,
            passive_exchange(),
            FieldTable::default(),
        )
        .await
        .is_ok();
    let _ = conn.close(200, "bye".into()).await;
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_declared_on_any_node_are_seen_on_every_node() {
    let nodes = Nodes::start().await;
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    let (_c3, ch3) = channel(&nodes.uri(2)).await;
    let (c1, ch1) = channel(&nodes.uri(0)).await;

    durable_exchange(&ch2, "orders", ExchangeKind::Topic).await;
    let ok = ch3
        .queue_declare("billing".into(), durable_queue(), FieldTable::default())
        .await
        .expect("queue declared on n3");
    assert_eq!(ok.name().as_str(), "billing");
    ch1.queue_bind(
        "billing".into(),
        "orders".into(),
        "order.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bound on n1, the queue living on n3");

    // Declare-ok means committed and applied on the declaring node; the others follow.
    for i in 0..3 {
        assert!(
            exchange_exists(&nodes, i, "orders").await,
            "exchange on node {i}"
        );
        let exists = common::eventually(true, async || queue_exists(&nodes, i, "billing").await);
        assert!(exists.await, "queue on node {i}");
    }
    let bindings = common::eventually(1, async || {
        let resp = nodes
            .api(1)
            .get("/api/exchanges/%2f/orders/bindings/source")
            .await;
        resp.json().as_array().map_or(0, |a| a.len())
    })
    .await;
    assert_eq!(bindings, 1, "n2's API lists the binding made on n1");

    // A message routed on the queue's home node goes through the binding made on n1.
    ch3.basic_publish(
        "orders".into(),
        "order.created".into(),
        BasicPublishOptions::default(),
        b"invoice me",
        BasicProperties::default(),
    )
    .await
    .expect("publish on n3");
    let mut consumer = consume_no_ack(&ch3, "billing").await;
    let delivery = next_delivery(&mut consumer).await;
    assert_eq!(delivery.data, b"invoice me");

    // An exclusive queue belongs to its connection on every node, and goes with it.
    let exclusive = ch1
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exclusive queue on n1");
    let name = exclusive.name().to_string();
    assert!(name.starts_with("amq.gen-"), "{name}");
    // Committed by a majority at declare-ok; n2 may apply it a moment later.
    let path = format!("/api/queues/%2f/{name}");
    let seen = common::eventually(200, async || nodes.api(1).get(&path).await.status).await;
    assert_eq!(seen, 200, "the exclusive queue is listed on n2");
    let (_c, other) = channel(&nodes.uri(1)).await;
    let (code, text) = refused(
        other
            .queue_declare(name.as_str().into(), passive_queue(), FieldTable::default())
            .await,
    );
    assert_eq!(code, 405, "{text}");
    assert!(
        text.contains("cannot obtain exclusive access to locked queue"),
        "{text}"
    );
    c1.close(200, "bye".into())
        .await
        .expect("close n1's connection");
    let gone = common::eventually(false, async || queue_exists(&nodes, 1, &name).await).await;
    assert!(
        !gone,
        "the exclusive queue went with its connection, on n2 too"
    );

    // Deletes go everywhere too: an exchange through n3, a queue living on n3 through n1.
    ch3.exchange_delete("orders".into(), ExchangeDeleteOptions::default())
        .await
        .expect("exchange deleted on n3");
    let (_c, ch1) = channel(&nodes.uri(0)).await;
    let deleted = ch1
        .queue_delete("billing".into(), QueueDeleteOptions::default())
        .await
        .expect("queue deleted through n1");
    let _ = deleted;
    for i in 0..3 {
        let x = common::eventually(false, async || exchange_exists(&nodes, i, "orders").await);
        assert!(!x.await, "exchange gone on node {i}");
        let q = common::eventually(false, async || queue_exists(&nodes, i, "billing").await);
        assert!(!q.await, "queue gone on node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_restarts_with_the_definitions_and_its_messages() {
    let mut nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = common::lapin::confirming(&c1).await;
    ch1.queue_declare("keep".into(), durable_queue(), FieldTable::default())
        .await
        .expect("queue on n1");
    for i in 0..50u32 {
        let confirm = ch1
            .basic_publish(
                "".into(),
                "keep".into(),
                BasicPublishOptions::default(),
                &i.to_be_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
    }
    let (_c2, ch2) = channel(&nodes.uri(1)).await;
    durable_exchange(&ch2, "before", ExchangeKind::Fanout).await;
    ch2.queue_bind(
        "keep".into(),
        "before".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind on n2");
    drop(ch1);
    drop(c1);
    nodes.kill(0);
    durable_exchange(&ch2, "while-down", ExchangeKind::Direct).await;
    nodes.restart(0).await;

    assert!(
        exchange_exists(&nodes, 0, "before").await,
        "replayed from its own log before it serves"
    );
    let caught_up = common::eventually(true, async || {
        exchange_exists(&nodes, 0, "while-down").await
    });
    assert!(
        caught_up.await,
        "what was declared while it was down reaches it"
    );
    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    let mut consumer = consume_no_ack(&ch1, "keep").await;
    for i in 0..50u32 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, i.to_be_bytes(), "message {i} back after kill -9");
    }
    // The binding made on n2 before the kill routes on n1 after it.
    ch1.basic_publish(
        "before".into(),
        "".into(),
        BasicPublishOptions::default(),
        b"after",
        BasicProperties::default(),
    )
    .await
    .expect("publish");
    assert_eq!(next_delivery(&mut consumer).await.data, b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_through_any_node_reach_the_queue_where_it_lives() {
    let mut nodes = Nodes::start().await;
    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    ch1.queue_declare("orders".into(), durable_queue(), FieldTable::default())
        .await
        .expect("queue on n1");
    durable_exchange(&ch1, "events", ExchangeKind::Topic).await;
    ch1.queue_bind(
        "orders".into(),
        "events".into(),
        "order.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");

    // Confirmed publishes through n2 (default exchange) and n3 (the topic exchange).
    let (c2, _) = channel(&nodes.uri(1)).await;
    let ch2 = common::lapin::confirming(&c2).await;
    let (c3, _) = channel(&nodes.uri(2)).await;
    let ch3 = common::lapin::confirming(&c3).await;
    let persistent = BasicProperties::default().with_delivery_mode(2);
    let mut confirms = Vec::new();
    for i in 0..200u32 {
        let (ch, exchange, key) = if i % 2 == 0 {
            (&ch2, "", "orders")
        } else {
            (&ch3, "events", "order.created")
        };
        let confirm = ch
            .basic_publish(
                exchange.into(),
                key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &i.to_be_bytes(),
                persistent.clone(),
            )
            .await
            .expect("publish");
        confirms.push(confirm);
    }
    for confirm in confirms {
        let confirmation = confirm.await.expect("confirm");
        assert!(confirmation.is_ack(), "acked once the home took it");
        assert!(
            confirmation.take_message().is_none(),
            "routed: not returned"
        );
    }

    // Confirmed means on disk on the queue's node: it survives kill -9.
    drop(ch1);
    nodes.kill(0);
    nodes.restart(0).await;
    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    let mut consumer = consume_no_ack(&ch1, "orders").await;
    let (mut from_n2, mut from_n3) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let d = next_delivery(&mut consumer).await;
        let n = u32::from_be_bytes(d.data.as_slice().try_into().expect("4 bytes"));
        if n % 2 == 0 {
            from_n2.push(n);
        } else {
            from_n3.push(n);
        }
    }
    // Each publisher's messages arrive in the order it sent them.
    assert_eq!(from_n2, (0..200).step_by(2).collect::<Vec<u32>>());
    assert_eq!(from_n3, (1..200).step_by(2).collect::<Vec<u32>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_refuses_a_single_nodes_data_directory() {
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("single");
    let (amqp, mgmt) = (nodes::free_port(), nodes::free_port());
    let run = |cluster: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
        cmd.args(["--bind", "127.0.0.1", "--port", &amqp.to_string()])
            .args(["--management-port", &mgmt.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if cluster {
            cmd.args(["--node-name", "warren@n1"])
                .args(["--cluster-port", &nodes::free_port().to_string()]);
        }
        cmd.spawn().expect("start warren")
    };
    // A single node keeps a durable queue, and stops cleanly.
    let single = run(false);
    let uri = format!("amqp://guest:guest@127.0.0.1:{amqp}/%2f");
    let conn = common::eventually(true, async || {
        lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
            .await
            .is_ok()
    })
    .await;
    assert!(conn, "the single node accepts clients");
    let (_c, ch) = channel(&uri).await;
    ch.queue_declare("kept".into(), durable_queue(), FieldTable::default())
        .await
        .expect("declare");
    let stopped = Command::new("kill")
        .args(["-TERM", &single.id().to_string()])
        .status()
        .expect("kill");
    assert!(stopped.success());
    let out = single.wait_with_output().expect("single node exits");
    assert!(
        out.status.success() || out.status.code().is_none(),
        "{out:?}"
    );

    // Started as a cluster node on that directory, it refuses, saying why.
    let clustered = run(true).wait_with_output().expect("cluster node exits");
    assert!(!clustered.status.success(), "a cluster node must not start");
    let said = String::from_utf8_lossy(&clustered.stderr);
    assert!(
        said.contains("single node's definitions (1 durable queues"),
        "{said}"
    );
}
