//! Quorum queues whose group does not span the cluster (issue 18): a node that is not a
//! member serves its clients through a member, as RabbitMQ does.

use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicQosOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};

use super::common::lapin::{confirming, next_delivery};
use super::{channel, durable_queue, passive_queue, publish_numbers, table, text};
use crate::nodes::Nodes;

fn number(data: &[u8]) -> u32 {
    u32::from_be_bytes(data.try_into().expect("4 bytes"))
}

/// The members of `queue` as the API of node `i` names them (`warren@n1`...).
pub(crate) async fn members(nodes: &Nodes, i: usize, queue: &str) -> Vec<String> {
    let body = nodes
        .api(i)
        .get(&format!("/api/queues/%2f/{queue}"))
        .await
        .body;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let mut members: Vec<String> = json["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    members.sort();
    members
}

/// The queue's entry in node `i`'s API.
pub(crate) async fn queue_json(nodes: &Nodes, i: usize, queue: &str) -> serde_json::Value {
    let body = nodes
        .api(i)
        .get(&format!("/api/queues/%2f/{queue}"))
        .await
        .body;
    serde_json::from_str(&body).expect("json")
}

/// The index of the node named `name` (`warren@n2` is 1).
pub(crate) fn index_of(name: &str) -> usize {
    name.strip_prefix("warren@n")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n - 1)
        .unwrap_or_else(|| panic!("a node name: {name}"))
}

fn delivery_count(properties: &BasicProperties) -> Option<AMQPValue> {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_queue_is_consumed_through_a_node_that_is_not_a_member() {
    let nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    // Two queues of the same two members, declared through n1 (the node a non-member's
    // requests go to); a rebalance leaves one of them led by the other member, so that
    // one's leader checks n1's proxied channels on n1's word. That one is tested.
    for name in ["pair-one", "pair-two"] {
        ch1.queue_declare(
            name.into(),
            durable_queue(),
            table(&[
                ("x-queue-type", text("quorum")),
                ("x-quorum-initial-group-size", AMQPValue::LongInt(2)),
            ]),
        )
        .await
        .expect("declare a quorum queue of two members");
    }
    let members = members(&nodes, 0, "pair-one").await;
    assert_eq!(members.len(), 2, "{members:?}");
    let outsider = (0..3)
        .find(|i| !members.contains(&format!("warren@n{}", i + 1)))
        .expect("a node that is not a member");
    let answer = nodes.api(0).post("/api/rebalance/queues", "").await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    let led_elsewhere = async || {
        for name in ["pair-one", "pair-two"] {
            let leader = queue_json(&nodes, 0, name).await["leader"].clone();
            if leader.as_str().is_some_and(|l| l != "warren@n1") {
                return Some(name);
            }
        }
        None
    };
    let mut q = None;
    for round in 0..600 {
        q = led_elsewhere().await;
        if q.is_some() {
            break;
        }
        if round % 200 == 199 {
            // A loaded machine may let a transfer time out: rebalancing again is harmless.
            nodes.api(0).post("/api/rebalance/queues", "").await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let q = q.expect("a rebalance leaves one queue led by the other member");
    publish_numbers(&ch1, q, 0..20).await;

    // basic.get through the outsider; a requeue counts as a delivery.
    let (_co, cho) = channel(&nodes.uri(outsider)).await;
    let got = cho
        .basic_get(q.into(), BasicGetOptions { no_ack: false })
        .await
        .expect("basic.get through a node that is not a member")
        .expect("a message");
    assert_eq!(number(&got.delivery.data), 0);
    assert_eq!(got.message_count, 19);
    got.delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
        .expect("nack");
    let again = cho
        .basic_get(q.into(), BasicGetOptions { no_ack: false })
        .await
        .expect("get")
        .expect("the requeued message");
    assert_eq!(number(&again.delivery.data), 0);
    assert!(again.delivery.redelivered);
    assert_eq!(
        delivery_count(&again.delivery.properties),
        Some(AMQPValue::LongLongInt(1))
    );
    again
        .delivery
        .ack(BasicAckOptions::default())
        .await
        .expect("ack");

    // A consumer through the outsider, prefetch 5: it gets the rest as it acks.
    cho.basic_qos(5, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut reader = super::remote_queues::consumer(&cho, q, "outside", false).await;
    for expected in 1..20u32 {
        let d = next_delivery(&mut reader).await;
        assert_eq!(number(&d.data), expected);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    // Still served after the leader's checks of consumers' channels (every 3 s) ran.
    tokio::time::sleep(Duration::from_secs(8)).await;
    publish_numbers(&ch1, q, 20..23).await;
    for expected in 20..23u32 {
        let d = next_delivery(&mut reader).await;
        assert_eq!(number(&d.data), expected);
        assert!(!d.redelivered);
        if expected < 22 {
            d.ack(BasicAckOptions::default()).await.expect("ack");
        }
    }
    // Every member agrees: one message out (22), none ready, one consumer.
    for m in &members {
        let i = index_of(m.as_str());
        let counts = super::common::eventually((0, 1), async || {
            let (_c, ch) = channel(&nodes.uri(i)).await;
            let q = ch
                .queue_declare(q.into(), passive_queue(), FieldTable::default())
                .await
                .expect("passive");
            (q.message_count(), q.consumer_count())
        })
        .await;
        assert_eq!(counts, (0, 1), "(ready, consumers) on member {m}");
    }

    // The outsider's channel closes holding 22: a member's consumer gets it, redelivered.
    drop(reader);
    cho.close(200, "bye".into()).await.expect("close");
    let member = index_of(&members[0]);
    let (_cm, chm) = channel(&nodes.uri(member)).await;
    let mut on_member = super::remote_queues::consumer(&chm, q, "inside", false).await;
    let d = next_delivery(&mut on_member).await;
    assert_eq!(number(&d.data), 22);
    assert!(d.redelivered);
    d.ack(BasicAckOptions::default()).await.expect("ack");
    drop(on_member);
    chm.close(200, "bye".into()).await.expect("close");

    // queue.purge through the outsider.
    publish_numbers(&ch1, q, 30..37).await;
    let (_cp, chp) = channel(&nodes.uri(outsider)).await;
    let purged = chp
        .queue_purge(q.into(), QueuePurgeOptions::default())
        .await
        .expect("purge through a node that is not a member");
    assert_eq!(purged, 7);
}

/// How many of the quorum queues `names` each node leads, as node `i`'s API says.
async fn leaders(nodes: &Nodes, i: usize, names: &[&str]) -> Vec<String> {
    let mut leaders = Vec::new();
    for name in names {
        let body = nodes
            .api(i)
            .get(&format!("/api/queues/%2f/{name}"))
            .await
            .body;
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        leaders.push(json["leader"].as_str().unwrap_or("").to_owned());
    }
    leaders.sort();
    leaders
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaders_are_rebalanced_and_a_node_holding_a_quorum_is_critical() {
    let mut nodes = Nodes::start().await;
    let (_c1, ch1) = channel(&nodes.uri(0)).await;
    let names = ["qa", "qb", "qc"];
    for name in names {
        ch1.queue_declare(
            name.into(),
            durable_queue(),
            table(&[("x-queue-type", text("quorum"))]),
        )
        .await
        .expect("declare");
    }
    // Every group has its three members: no node is critical.
    for i in 0..3 {
        let answer = super::common::eventually(200, async || {
            nodes
                .api(i)
                .get("/api/health/checks/node-is-quorum-critical")
                .await
                .status
        })
        .await;
        assert_eq!(answer, 200, "node {i} with every member up");
    }

    // A rebalance asked through n2 gives each node one leader. It runs in the background
    // and a transfer can time out on a loaded machine: asked again, as an operator would.
    let spread = vec![
        "warren@n1".to_owned(),
        "warren@n2".to_owned(),
        "warren@n3".to_owned(),
    ];
    let mut seen = Vec::new();
    for _ in 0..3 {
        let answer = nodes.api(1).post("/api/rebalance/queues", "").await;
        assert_eq!(answer.status, 204, "{}", answer.body);
        seen = super::common::eventually(spread.clone(), async || leaders(&nodes, 0, &names).await)
            .await;
        if seen == spread {
            break;
        }
    }
    assert_eq!(seen, spread, "one leader per node");

    // With n3 gone, n1 holds the majority of every queue: it is critical, by name.
    nodes.kill(2);
    let answer = super::common::eventually(503, async || {
        nodes
            .api(0)
            .get("/api/health/checks/node-is-quorum-critical")
            .await
            .status
    })
    .await;
    assert_eq!(answer, 503);
    let body = nodes
        .api(0)
        .get("/api/health/checks/node-is-quorum-critical")
        .await
        .body;
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(json["status"], "failed", "{body}");
    let mut critical: Vec<&str> = json["queues"]
        .as_array()
        .map(|q| q.iter().filter_map(|q| q["name"].as_str()).collect())
        .unwrap_or_default();
    critical.sort_unstable();
    assert_eq!(critical, names, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_added_and_another_removed_and_the_queue_keeps_its_messages() {
    let nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    ch1.queue_declare(
        "grown".into(),
        durable_queue(),
        table(&[
            ("x-queue-type", text("quorum")),
            ("x-quorum-initial-group-size", AMQPValue::LongInt(2)),
        ]),
    )
    .await
    .expect("declare");
    let before = members(&nodes, 0, "grown").await;
    let outsider = (0..3)
        .find(|i| !before.contains(&format!("warren@n{}", i + 1)))
        .expect("a node that is not a member");
    let outsider_name = format!("warren@n{}", outsider + 1);
    publish_numbers(&ch1, "grown", 0..10).await;

    // Refusals first: a member again, a node that is not one, a classic queue.
    let api = nodes.api(0);
    let add = |queue: &str| format!("/api/queues/quorum/%2f/{queue}/replicas/add");
    let del = "/api/queues/quorum/%2f/grown/replicas/delete";
    let again = api
        .post(&add("grown"), &format!("{{\"node\":\"{}\"}}", before[0]))
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
    let not_one = api
        .request(
            "DELETE",
            del,
            Some(&format!("{{\"node\":\"{outsider_name}\"}}")),
        )
        .await;
    assert_eq!(not_one.status, 400, "{}", not_one.body);
    let unknown = api.post(&add("grown"), "{\"node\":\"warren@n9\"}").await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    ch1.queue_declare("plain".into(), durable_queue(), FieldTable::default())
        .await
        .expect("classic");
    let classic = api
        .post(&add("plain"), &format!("{{\"node\":\"{outsider_name}\"}}"))
        .await;
    assert_eq!(classic.status, 400, "{}", classic.body);

    // The outsider joins: every node lists three members, and it serves its own consumer.
    let added = api
        .post(&add("grown"), &format!("{{\"node\":\"{outsider_name}\"}}"))
        .await;
    assert_eq!(added.status, 204, "{}", added.body);
    for i in 0..3 {
        let listed =
            super::common::eventually(3, async || members(&nodes, i, "grown").await.len()).await;
        assert_eq!(listed, 3, "members as node {i} lists them");
    }
    // It hosts the group now: it knows the group's leader.
    let hosts = super::common::eventually(true, async || {
        queue_json(&nodes, outsider, "grown").await["leader"].is_string()
    })
    .await;
    assert!(hosts, "the new member runs the queue's group");
    let (_co, cho) = channel(&nodes.uri(outsider)).await;
    let mut on_new = super::remote_queues::consumer(&cho, "grown", "new", false).await;
    for expected in 0..5u32 {
        let d = next_delivery(&mut on_new).await;
        assert_eq!(number(&d.data), expected);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    drop(on_new);
    cho.close(200, "bye".into()).await.expect("close");

    // The first member leaves, asked through the new one: two members are left, and its
    // clients are served through them.
    let leaving = before[0].clone();
    let gone = nodes
        .api(outsider)
        .request("DELETE", del, Some(&format!("{{\"node\":\"{leaving}\"}}")))
        .await;
    assert_eq!(gone.status, 204, "{}", gone.body);
    let left = index_of(&leaving);
    let now =
        super::common::eventually(2, async || members(&nodes, outsider, "grown").await.len()).await;
    assert_eq!(now, 2);
    assert!(!members(&nodes, outsider, "grown").await.contains(&leaving));
    let stopped = super::common::eventually(true, async || {
        queue_json(&nodes, left, "grown").await["leader"].is_null()
    })
    .await;
    assert!(stopped, "the node that left runs the group no more");
    let listed = queue_json(&nodes, left, "grown").await;
    assert_eq!(listed["type"], "quorum", "{listed}");
    assert_eq!(members(&nodes, left, "grown").await.len(), 2, "{listed}");
    let (_cl, chl) = channel(&nodes.uri(left)).await;
    let mut through_left = super::remote_queues::consumer(&chl, "grown", "left", false).await;
    for expected in 5..10u32 {
        let d = next_delivery(&mut through_left).await;
        assert_eq!(number(&d.data), expected);
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    // Publishing through the node that left still reaches the queue.
    let (cp, _) = channel(&nodes.uri(left)).await;
    let chp = confirming(&cp).await;
    publish_numbers(&chp, "grown", 10..11).await;
    let d = next_delivery(&mut through_left).await;
    assert_eq!(number(&d.data), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grow_and_shrink_change_every_quorum_queue_at_once() {
    let nodes = Nodes::start().await;
    let (c1, _) = channel(&nodes.uri(0)).await;
    let ch1 = confirming(&c1).await;
    for name in ["g1", "g2"] {
        ch1.queue_declare(
            name.into(),
            durable_queue(),
            table(&[
                ("x-queue-type", text("quorum")),
                ("x-quorum-initial-group-size", AMQPValue::LongInt(1)),
            ]),
        )
        .await
        .expect("declare a one-member quorum queue");
        publish_numbers(&ch1, name, 0..3).await;
    }
    let api = nodes.api(1);
    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).expect("json");

    // n1 is every queue's last member: shrink leaves them.
    let kept = api
        .request(
            "DELETE",
            "/api/queues/quorum/replicas/on/warren@n1/shrink",
            None,
        )
        .await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(json(&kept.body)["shrunk"], 0, "{}", kept.body);

    // Grow to n2 (all), then to n3 (even: both have two members then).
    let grown = api
        .post(
            "/api/queues/quorum/replicas/on/warren@n2/grow",
            "{\"strategy\":\"all\",\"queue_pattern\":\"^g\"}",
        )
        .await;
    assert_eq!(json(&grown.body)["grown"], 2, "{}", grown.body);
    let even = api
        .post(
            "/api/queues/quorum/replicas/on/warren@n3/grow",
            "{\"strategy\":\"even\"}",
        )
        .await;
    assert_eq!(json(&even.body)["grown"], 2, "{}", even.body);
    // The answer comes once the metadata log committed the change; n3 applies it just after.
    for name in ["g1", "g2"] {
        let count =
            super::common::eventually(3, async || members(&nodes, 2, name).await.len()).await;
        assert_eq!(count, 3, "{name}");
    }

    // Shrink n1 away: two members left, the messages still there, served by n3.
    let shrunk = api
        .request(
            "DELETE",
            "/api/queues/quorum/replicas/on/warren@n1/shrink",
            None,
        )
        .await;
    assert_eq!(json(&shrunk.body)["shrunk"], 2, "{}", shrunk.body);
    for name in ["g1", "g2"] {
        let left = vec!["warren@n2".to_owned(), "warren@n3".to_owned()];
        let now =
            super::common::eventually(left.clone(), async || members(&nodes, 2, name).await).await;
        assert_eq!(now, left, "{name}");
        let (_c3, ch3) = channel(&nodes.uri(2)).await;
        let got = super::common::eventually(true, async || {
            ch3.basic_get(name.into(), BasicGetOptions { no_ack: true })
                .await
                .expect("get")
                .is_some_and(|m| number(&m.delivery.data) == 0)
        })
        .await;
        assert!(got, "{name} keeps its messages");
    }
}
