//! One-way faults on the cluster links (the fault file's `loss` and `delay` lines, see
//! raft/src/transport/policy.rs): a quorum queue's leader that can send but not hear
//! confirms nothing, the other two elect a leader that confirms, and nothing confirmed is
//! lost; on slow links, confirms are late but every message arrives, in order.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicPublishOptions, BasicQosOptions};
use lapin::{BasicProperties, Channel};
use tokio::time::Instant;

use super::common::lapin::{confirming, table, text};
use super::{channel, durable_queue};
use crate::nodes::Nodes;

/// Declares quorum queue `name` through node 0.
async fn quorum_queue(nodes: &Nodes, name: &str) {
    let (_c, ch) = channel(&nodes.uri(0)).await;
    ch.queue_declare(
        name.into(),
        durable_queue(),
        table(&[("x-queue-type", text("quorum"))]),
    )
    .await
    .expect("declare");
}

/// The 0-based index of the node leading quorum queue `queue`, as node `asked`'s API says.
async fn leader_seen_by(nodes: &Nodes, asked: usize, queue: &str) -> Option<usize> {
    let body = nodes
        .api(asked)
        .get(&format!("/api/queues/%2f/{queue}"))
        .await
        .body;
    let name = serde_json::from_str::<serde_json::Value>(&body)
        .ok()?
        .get("leader")?
        .as_str()?
        .to_owned();
    match name.strip_prefix("warren@n")?.parse::<usize>().ok()? {
        n @ 1..=3 => Some(n - 1),
        _ => None,
    }
}

/// Polls node `asked` until it names a leader of `queue` for which `ok` holds.
async fn leader_where(
    nodes: &Nodes,
    asked: usize,
    queue: &str,
    within: Duration,
    ok: impl Fn(usize) -> bool,
) -> Option<usize> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Some(l) = leader_seen_by(nodes, asked, queue).await
            && ok(l)
        {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Publishes `body` to `queue` and waits up to `within` for its confirm: true if acked.
async fn confirmed(ch: &Channel, queue: &str, body: &str, within: Duration) -> bool {
    let Ok(confirm) = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
    else {
        return false;
    };
    matches!(tokio::time::timeout(within, confirm).await, Ok(Ok(c)) if c.is_ack())
}

/// Consumes `queue` through node `on` (acking) until every body in `wanted` came, or
/// `within` passed; returns the bodies in delivery order.
async fn consume_until(
    nodes: &Nodes,
    on: usize,
    queue: &str,
    wanted: &HashSet<String>,
    within: Duration,
) -> Vec<String> {
    let (_c, ch) = channel(&nodes.uri(on)).await;
    ch.basic_qos(100, BasicQosOptions::default())
        .await
        .expect("qos");
    let mut consumer = super::remote_queues::consumer(&ch, queue, "drain", false).await;
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut seen = HashSet::new();
    while !wanted.is_subset(&seen) {
        let Ok(Some(Ok(d))) = tokio::time::timeout_at(deadline, consumer.next()).await else {
            break;
        };
        let body = String::from_utf8_lossy(&d.data).into_owned();
        d.ack(BasicAckOptions::default()).await.expect("ack");
        seen.insert(body.clone());
        got.push(body);
    }
    got
}

/// The quorum queue's leader hears neither follower (`loss F L` both ways in) but still
/// reaches them: it must not confirm a publish it cannot commit; the followers, once the
/// silent links time out, elect a leader that confirms what is published through one of
/// them; after the heal every confirmed message is consumed and nothing else appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_hear_confirms_nothing_and_is_replaced() {
    let nodes = Nodes::start().await;
    let q = "deaf-q";
    quorum_queue(&nodes, q).await;
    let leader = leader_where(&nodes, 0, q, Duration::from_secs(20), |_| true)
        .await
        .expect("a leader");
    let (f1, f2) = ((leader + 1) % 3, (leader + 2) % 3);
    let (cf, _) = channel(&nodes.uri(f1)).await;
    let follower = confirming(&cf).await;
    let (cl, _) = channel(&nodes.uri(leader)).await;
    let deaf = confirming(&cl).await;

    let mut acked = HashSet::new();
    let mut published = HashSet::new();
    for i in 0..3 {
        let body = format!("before-{i}");
        published.insert(body.clone());
        assert!(confirmed(&follower, q, &body, Duration::from_secs(10)).await);
        acked.insert(body);
    }

    let (l_id, f1_id, f2_id) = (nodes.raft_id(leader), nodes.raft_id(f1), nodes.raft_id(f2));
    nodes.set_faults(&format!("loss {f1_id} {l_id}\nloss {f2_id} {l_id}\n"));
    let cut_at = Instant::now();
    // The nodes read the file within 150 ms; give them that before the leader's publish.
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Through the leader itself: it reaches its followers but hears no answer, so it can
    // commit nothing and must not confirm.
    published.insert("deaf".into());
    let mut deaf_confirm = Box::pin(
        deaf.basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            b"deaf",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish through the leader")
        .fuse(),
    );

    // Through a follower: confirmed once the followers have a leader of their own.
    let mut during = 0;
    let deadline = cut_at + Duration::from_secs(45);
    while during < 5 && Instant::now() < deadline {
        let body = format!("during-{during}-{}", cut_at.elapsed().as_millis());
        published.insert(body.clone());
        if confirmed(&follower, q, &body, Duration::from_secs(20)).await {
            acked.insert(body);
            during += 1;
        }
    }
    let new_leader = leader_where(&nodes, f1, q, Duration::from_secs(10), |l| l != leader).await;
    let deaf_answer = (&mut deaf_confirm).now_or_never();
    assert!(
        during == 5,
        "publishes through n{} were confirmed {during} times of 5 within 45 s of the loss; \
         logs:\n{}\n----\n{}",
        f1 + 1,
        nodes.log(f1),
        nodes.log(leader)
    );
    assert!(
        new_leader.is_some(),
        "n{} still names n{} the leader: the one-way loss was not in force",
        f1 + 1,
        leader + 1
    );
    assert!(
        !matches!(&deaf_answer, Some(Ok(c)) if c.is_ack()),
        "the leader that hears nobody confirmed a publish: {deaf_answer:?}"
    );

    nodes.heal().await;
    for i in 0..3 {
        let body = format!("after-{i}");
        published.insert(body.clone());
        assert!(confirmed(&follower, q, &body, Duration::from_secs(20)).await);
        acked.insert(body);
    }
    // The leader's publish may still be confirmed (a new leader may have committed the
    // entry its followers got); if so, it counts as confirmed.
    if deaf_answer.is_none()
        && let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(20), deaf_confirm).await
        && c.is_ack()
    {
        acked.insert("deaf".into());
    }

    let got = consume_until(&nodes, f2, q, &acked, Duration::from_secs(30)).await;
    let got: HashSet<String> = got.into_iter().collect();
    let lost: Vec<&String> = acked.difference(&got).collect();
    let invented: Vec<&String> = got.difference(&published).collect();
    assert!(lost.is_empty(), "confirmed but never delivered: {lost:?}");
    assert!(
        invented.is_empty(),
        "delivered but never published: {invented:?}"
    );
}

/// Every link slow, jittered, both ways: a confirm through a follower crosses links, so it
/// takes at least the least delay twice; every message arrives, in publish order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_slow_links_confirms_are_late_and_messages_keep_their_order() {
    let nodes = Nodes::start().await;
    let q = "slow-q";
    quorum_queue(&nodes, q).await;
    let leader = leader_where(&nodes, 0, q, Duration::from_secs(20), |_| true)
        .await
        .expect("a leader");
    let follower = (leader + 1) % 3;
    let ids: Vec<String> = (0..3).map(|i| nodes.raft_id(i)).collect();
    let mut lines = String::new();
    for a in &ids {
        for b in ids.iter().filter(|b| *b != a) {
            lines.push_str(&format!("delay {a} {b} 100-250\n"));
        }
    }
    nodes.set_faults(&lines);
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (c, _) = channel(&nodes.uri(follower)).await;
    let publishing = confirming(&c).await;
    let mut sent = Vec::new();
    let mut fastest = Duration::MAX;
    for i in 0..20 {
        let body = format!("slow-{i:02}");
        let started = Instant::now();
        assert!(
            confirmed(&publishing, q, &body, Duration::from_secs(30)).await,
            "{body} not confirmed"
        );
        fastest = fastest.min(started.elapsed());
        sent.push(body);
    }
    assert!(
        fastest >= Duration::from_millis(200),
        "a confirm through a follower took {fastest:?}: the links were not delayed"
    );

    let wanted: HashSet<String> = sent.iter().cloned().collect();
    let consumer_on = (leader + 2) % 3;
    let got = consume_until(&nodes, consumer_on, q, &wanted, Duration::from_secs(60)).await;
    assert_eq!(got, sent, "every message, in publish order");
    nodes.heal().await;
}
