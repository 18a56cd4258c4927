//! A quorum queue machine whose bodies do not fit its window: bounded memory, every body
//! delivered in order, spill files gone once drained, and snapshots that carry the paged
//! bodies.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

use super::bodies::{Bodies, Window};
use super::fifo::{Command, Config, ConsumerKey, Effect, Fifo, MsgId};
use super::machine::{Machine, QuorumCommand, QuorumReply};
use crate::message::WireMessage;

const WINDOW: Window = Window {
    messages: 50,
    bytes: 1 << 20,
};

fn message(n: u32) -> WireMessage {
    WireMessage {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0, 0]),
        body: Bytes::from(format!("{n:0>1024}")),
        cc_routed: false,
    }
}

fn encode(command: &QuorumCommand) -> Vec<u8> {
    postcard::to_stdvec(command).expect("encode")
}

/// The machine's log: what is applied next gets the next index.
struct Log {
    next: u64,
}

impl Log {
    fn apply(&mut self, m: &mut Machine, command: &QuorumCommand) -> Vec<(MsgId, String)> {
        self.next += 1;
        let applied = m.apply(self.next, &encode(command), &|| true);
        applied
            .effects
            .into_iter()
            .filter_map(|(effect, body)| match effect {
                Effect::Deliver { id, .. } => Some((
                    id,
                    String::from_utf8_lossy(&body.expect("a delivery's body").body).into_owned(),
                )),
                _ => None,
            })
            .collect()
    }
}

fn paged_machine(dir: &std::path::Path) -> Machine {
    Machine::new(
        Config::default(),
        Bodies::paged(dir.to_path_buf(), WINDOW),
        Some(1),
    )
}

/// Publishes `count` messages, ten per entry (a paged machine keeps to its window).
fn publish(m: &mut Machine, log: &mut Log, count: u32) {
    for batch in 0..count / 10 {
        let messages = (batch * 10..batch * 10 + 10).map(message).collect();
        log.apply(m, &QuorumCommand::Enqueue { ts: 1, messages });
        let (in_memory, paged) = (m.bodies.in_memory_count().0, m.bodies.paged_count());
        assert!(in_memory <= WINDOW.messages || paged == 0);
    }
}

/// Consumes everything with prefetch 10, acking each batch; checks memory on the way.
fn consume(m: &mut Machine, log: &mut Log) -> Vec<String> {
    let key = ConsumerKey::new(1, 2, 3, "c");
    let checkout = QuorumCommand::Op(Command::Checkout {
        key: key.clone(),
        prefetch: 10,
        priority: 0,
        resume: None,
    });
    let mut delivered = log.apply(m, &checkout);
    let mut bodies = Vec::new();
    while !delivered.is_empty() {
        bodies.extend(delivered.iter().map(|(_, b)| b.clone()));
        let settle = QuorumCommand::Op(Command::Settle {
            key: key.clone(),
            ids: delivered.iter().map(|(id, _)| *id).collect(),
        });
        delivered = log.apply(m, &settle);
        let (count, bytes) = m.bodies.in_memory_count();
        assert!(count <= WINDOW.messages && bytes <= WINDOW.bytes);
    }
    bodies
}

fn expected(count: u32) -> Vec<String> {
    (0..count)
        .map(|n| String::from_utf8_lossy(&message(n).body).into_owned())
        .collect()
}

#[test]
fn more_than_the_window_is_delivered_in_order_in_bounded_memory_and_the_disk_given_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("q");
    let mut m = paged_machine(&dir);
    let mut log = Log { next: 0 };
    publish(&mut m, &mut log, 1000);
    assert_eq!(m.bodies.in_memory_count().0, WINDOW.messages);
    assert_eq!(m.bodies.paged_count(), 950);
    assert!(m.bodies.spill_files() > 0);
    assert_eq!(consume(&mut m, &mut log), expected(1000));
    assert!(m.bodies.is_empty());
    assert_eq!(m.bodies.spill_files(), 0);
    let left = std::fs::read_dir(&dir).map_or(0, |d| d.count());
    assert_eq!(left, 0, "a drained queue keeps no spill file");
}

#[test]
fn a_basic_get_reads_a_paged_body() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut m = Machine::new(
        Config::default(),
        Bodies::paged(
            tmp.path().join("g"),
            Window {
                messages: 0,
                bytes: 0,
            },
        ),
        Some(1),
    );
    let mut log = Log { next: 0 };
    publish(&mut m, &mut log, 10);
    assert_eq!(m.bodies.paged_count(), 10);
    let get = QuorumCommand::Op(Command::Dequeue {
        key: ConsumerKey::new(1, 2, 3, "amq.get"),
        settlement: super::fifo::Settlement::Settled,
        ts: 2,
    });
    log.next += 1;
    let reply = m.apply(log.next, &encode(&get), &|| true).reply;
    let Some(QuorumReply::Dequeued { message: got, .. }) = reply else {
        panic!("a message: {reply:?}");
    };
    assert_eq!(got, message(0));
    assert_eq!(m.bodies.len(), 9);
}

/// The machine's snapshot, in memory (small ones, for these tests).
fn snapshot_of(m: &Machine) -> Vec<u8> {
    let mut out = Vec::new();
    m.snapshot_to(&mut out).expect("snapshot");
    out
}

#[test]
fn a_snapshot_with_paged_bodies_restores_to_the_same_deliveries() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut a = paged_machine(&tmp.path().join("a"));
    let mut log = Log { next: 0 };
    publish(&mut a, &mut log, 300);
    let snapshot = snapshot_of(&a);
    // A member installing it (a new member, a lagging one, a restart) pages too.
    let mut b = paged_machine(&tmp.path().join("b"));
    b.restore_from(&mut snapshot.as_slice()).expect("restore");
    assert_eq!(b.fifo, a.fifo);
    assert_eq!(b.applied, a.applied);
    assert_eq!(b.bodies.in_memory_count().0, WINDOW.messages);
    assert_eq!(b.bodies.paged_count(), 250);
    let mut log_b = Log { next: log.next };
    assert_eq!(consume(&mut a, &mut log), expected(300));
    assert_eq!(consume(&mut b, &mut log_b), expected(300));
    assert_eq!(b.bodies.spill_files(), 0);
}

#[test]
fn a_snapshot_of_the_earlier_all_in_memory_machine_still_restores() {
    #[derive(Serialize)]
    struct Earlier {
        fifo: Fifo,
        bodies: BTreeMap<MsgId, WireMessage>,
        applied: u64,
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let mut a = Machine::new(Config::default(), Bodies::in_memory(), Some(1));
    let mut log = Log { next: 0 };
    publish(&mut a, &mut log, 100);
    let earlier = Earlier {
        fifo: a.fifo.clone(),
        bodies: a
            .bodies
            .ids()
            .into_iter()
            .map(|id| (id, a.bodies.get(id).expect("read").expect("held")))
            .collect(),
        applied: a.applied,
    };
    let bytes = postcard::to_stdvec(&earlier).expect("encode");
    assert_eq!(bytes, snapshot_of(&a), "the same layout");
    let mut b = paged_machine(&tmp.path().join("b"));
    b.restore_from(&mut bytes.as_slice()).expect("restore");
    let mut log_b = Log { next: log.next };
    assert_eq!(consume(&mut b, &mut log_b), expected(100));
}
