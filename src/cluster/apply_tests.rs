//! Tests of the metadata log's apply: definitions, broker changes, snapshots.

use std::sync::Arc;

use super::*;
use crate::auth::VHostDef;
use crate::config::Config;
use crate::meta::BrokerOp;

fn broker(dir: &std::path::Path) -> Arc<Broker> {
    let config = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    Broker::open(config).expect("broker")
}

fn node(broker: &Arc<Broker>, id: u64) -> Applier {
    let applier = Applier::default();
    applier.attach(Arc::downgrade(broker), NodeId(id), true);
    applier
}

fn def(index_node: u64, op: DefinitionOp) -> Definition {
    Definition {
        vhost: "/".into(),
        op,
        requester: Requester {
            node: NodeId(index_node),
            connection: 1,
        },
        request: 0,
    }
}

fn queue(name: &str, home: u64) -> DefinitionOp {
    DefinitionOp::DeclareQueue {
        name: name.into(),
        durable: true,
        exclusive: false,
        auto_delete: false,
        server_named: false,
        arguments: Arguments::default(),
        home: NodeId(home),
        id: None,
        members: Vec::new(),
    }
}

fn bind(queue: &str, key: &str) -> DefinitionOp {
    DefinitionOp::Bind {
        source: "x".into(),
        destination: BindTo::Queue(queue.into()),
        routing_key: key.into(),
        arguments: Arguments::default(),
    }
}

/// What a snapshot says, without who asked (each node names itself there).
fn contents(snapshot: &Snapshot) -> Vec<(String, Vec<DefinitionOp>)> {
    snapshot
        .vhosts
        .iter()
        .map(|(v, ops)| (v.clone(), ops.iter().map(|(_, op)| op.clone()).collect()))
        .collect()
}

#[tokio::test]
async fn a_snapshot_rebuilds_the_definitions_and_keeps_queues_a_node_already_has() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, b) = (broker(dir_a.path()), broker(dir_b.path()));
    let (on_a, on_b) = (node(&a, 1), node(&b, 2));
    let x = DefinitionOp::DeclareExchange {
        name: "x".into(),
        type_name: "topic".into(),
        durable: true,
        auto_delete: false,
        internal: false,
        arguments: Arguments::default(),
    };
    // The log both nodes applied up to index 4; then only node 1 goes on.
    for (index, op) in [
        (1, x),
        (2, queue("q", 1)),
        (3, queue("r", 2)),
        (4, bind("r", "k2")),
    ] {
        assert!(on_a.apply(index, def(1, op.clone())));
        assert!(on_b.apply(index, def(1, op)));
    }
    let r_on_b = b
        .vhost("/")
        .and_then(|v| v.queue("r"))
        .expect("r lives on node 2");
    assert!(on_a.apply(5, def(1, bind("q", "k"))));
    assert!(on_a.apply(
        6,
        def(
            1,
            DefinitionOp::Unbind {
                source: "x".into(),
                destination: BindTo::Queue("r".into()),
                routing_key: "k2".into(),
                arguments: Arguments::default(),
            }
        )
    ));
    let v2 = VHostDef {
        name: "v2".into(),
        description: String::new(),
        tags: Vec::new(),
    };
    let change = BrokerChange {
        op: BrokerOp::PutVHost(v2),
        requester: Requester {
            node: NodeId(1),
            connection: 0,
        },
        request: 0,
    };
    assert!(on_a.apply_broker(change));
    // Node 2 has something the log no longer has.
    assert!(on_b.apply(7, def(2, queue("stale", 2))));

    let snapshot = on_a.snapshot();
    let json = serde_json::to_vec(&snapshot).expect("encode");
    let snapshot: Snapshot = serde_json::from_slice(&json).expect("decode");
    on_b.restore(&snapshot);
    assert_eq!(contents(&on_b.snapshot()), contents(&snapshot));
    let vhost = b.vhost("/").expect("vhost");
    assert!(
        vhost.queue("stale").is_none(),
        "what the snapshot lacks is removed"
    );
    assert!(vhost.remote_queue("q").is_some_and(|q| q.home == NodeId(1)));
    let r = vhost.queue("r").expect("r kept");
    assert!(
        Arc::ptr_eq(&r, &r_on_b),
        "a queue the node has is kept, messages and all"
    );
    let routes: Vec<String> = vhost
        .exchange("x")
        .expect("x")
        .routes
        .read()
        .bindings()
        .map(|(d, k, _)| format!("{}:{k}", d.name()))
        .collect();
    assert_eq!(
        routes,
        vec!["q:k".to_string()],
        "the unbound binding is gone"
    );
    assert!(
        b.vhost("v2").is_some(),
        "the vhost made after node 2 fell behind"
    );
}

#[tokio::test]
async fn the_queues_of_a_node_that_left_are_forgotten() {
    let dir = tempfile::tempdir().expect("dir");
    let b = broker(dir.path());
    let on_1 = node(&b, 1);
    assert!(on_1.apply(1, def(2, queue("theirs", 2))));
    assert!(on_1.apply(2, def(1, queue("ours", 1))));
    assert!(on_1.apply(3, def(3, queue("others", 3))));
    on_1.node_left(NodeId(2));
    let vhost = b.vhost("/").expect("vhost");
    assert!(vhost.remote_queue("theirs").is_none());
    assert!(vhost.queue("ours").is_some());
    assert!(vhost.remote_queue("others").is_some());
}

#[tokio::test]
async fn a_quorum_queue_record_drops_a_node_that_left_and_finds_another_home() {
    let dir = tempfile::tempdir().expect("dir");
    let b = broker(dir.path());
    let on_1 = node(&b, 1);
    let mut declare = queue("replicated", 2);
    if let DefinitionOp::DeclareQueue { members, .. } = &mut declare {
        *members = vec![NodeId(2), NodeId(3)];
    }
    assert!(on_1.apply(1, def(2, declare)));
    on_1.node_left(NodeId(2));
    let vhost = b.vhost("/").expect("vhost");
    let record = vhost
        .remote_queue("replicated")
        .expect("a quorum queue outlives one member");
    assert_eq!(record.members, vec![NodeId(3)]);
    assert_eq!(
        record.home,
        NodeId(3),
        "served through a member that is left"
    );
}
