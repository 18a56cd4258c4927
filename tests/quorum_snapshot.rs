//! A quorum queue member's snapshot of many more bodies than its window, written to its
//! file and installed from it on another member (raft's `SnapshotStore`, as a group does):
//! the heap's peak growth, measured by this binary's counting allocator, stays far below
//! the bodies' size, and the installed queue delivers every message, in order, whole, with
//! the delivery counts it had.

// A global allocator is an `unsafe` trait; this one only counts and calls the system's.
#![allow(unsafe_code)]

use std::io::BufReader;

use bytes::Bytes;
use warren::message::WireMessage;
use warren::queue::quorum::bodies::{Bodies, Window};
use warren::queue::quorum::fifo::{Command, Config, ConsumerKey, Effect, MsgId};
use warren::queue::quorum::machine::{Machine, QuorumCommand};
use warren_raft::snapshot::SnapshotStore;
use warren_raft::types::SnapshotMeta;

#[path = "../raft/tests/support/counting_alloc.rs"]
mod counting_alloc;

const WINDOW: Window = Window {
    messages: 16,
    bytes: 1 << 20,
};
/// 2000 bodies of 16 KiB: 32 MiB.
const MESSAGES: u32 = 2000;
const BODY: usize = 16 << 10;
/// The most the heap may grow while the snapshot is written and installed.
const BOUND: usize = 6 << 20;

fn message(n: u32) -> WireMessage {
    let mut body = format!("{n:0>8}").into_bytes();
    body.resize(BODY, (n % 251) as u8);
    WireMessage {
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0, 0]),
        body: Bytes::from(body),
        cc_routed: false,
    }
}

/// Applies `command` at the next index; answers the deliveries with their redelivered flag.
fn apply(
    m: &mut Machine,
    next: &mut u64,
    command: &QuorumCommand,
) -> Vec<(MsgId, bool, WireMessage)> {
    *next += 1;
    let bytes = postcard::to_stdvec(command).expect("encode");
    m.apply(*next, &bytes, &|| true)
        .effects
        .into_iter()
        .filter_map(|(effect, body)| match effect {
            Effect::Deliver {
                id, redelivered, ..
            } => Some((id, redelivered, body.expect("a delivery's body"))),
            _ => None,
        })
        .collect()
}

fn checkout(key: &ConsumerKey, prefetch: u32) -> QuorumCommand {
    QuorumCommand::Op(Command::Checkout {
        key: key.clone(),
        prefetch,
        priority: 0,
        resume: None,
    })
}

#[test]
fn a_deep_queue_snapshot_is_written_and_installed_in_bounded_memory_and_whole() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut a = Machine::new(
        Config::default(),
        Bodies::paged(tmp.path().join("a"), WINDOW),
        Some(1),
    );
    let mut next = 0;
    for batch in 0..MESSAGES / 50 {
        let messages = (batch * 50..batch * 50 + 50).map(message).collect();
        apply(
            &mut a,
            &mut next,
            &QuorumCommand::Enqueue { ts: 1, messages },
        );
    }
    // The first 5 delivered and returned: their delivery count is 1 in the snapshot.
    let early = ConsumerKey::new(1, 1, 1, "early");
    let taken = apply(&mut a, &mut next, &checkout(&early, 5));
    assert_eq!(taken.len(), 5);
    // Its channel goes: they are returned, counted as failed deliveries.
    apply(
        &mut a,
        &mut next,
        &QuorumCommand::Op(Command::ChannelDown {
            node: 1,
            connection: 1,
            channel: 1,
        }),
    );
    assert!(a.bodies.paged_count() > 1900, "most bodies are paged");

    let store = SnapshotStore::new(tmp.path().join("snap"));
    let meta = SnapshotMeta::default();
    let base = counting_alloc::start();
    store
        .save(&meta, |out| a.snapshot_to(out))
        .expect("snapshot saved");
    let loaded = store.load().expect("load").expect("a snapshot");
    assert!(loaded.data.len() > u64::from(MESSAGES) * BODY as u64);
    let mut b = Machine::new(
        Config::default(),
        Bodies::paged(tmp.path().join("b"), WINDOW),
        Some(1),
    );
    b.restore_from(&mut BufReader::new(loaded.data.reader()))
        .expect("installed");
    let growth = counting_alloc::growth_since(base);
    println!(
        "heap growth {growth} bytes for a snapshot of {} bytes",
        loaded.data.len()
    );
    assert!(growth < BOUND, "the heap grew by {growth} bytes");
    assert!(b.bodies.in_memory_count().0 <= WINDOW.messages);

    assert_eq!(b.fifo, a.fifo, "headers, delivery counts, consumers");
    assert_eq!(b.applied, a.applied);
    let key = ConsumerKey::new(1, 2, 2, "c");
    let mut delivered = apply(&mut b, &mut next, &checkout(&key, 100));
    let mut seen = 0u32;
    while !delivered.is_empty() {
        for (_, redelivered, body) in &delivered {
            assert_eq!(*body, message(seen), "message {seen} whole and in order");
            assert_eq!(*redelivered, seen < 5, "message {seen}'s redelivered flag");
            seen += 1;
        }
        let ids = delivered.iter().map(|(id, _, _)| *id).collect();
        delivered = apply(
            &mut b,
            &mut next,
            &QuorumCommand::Op(Command::Settle {
                key: key.clone(),
                ids,
            }),
        );
    }
    assert_eq!(seen, MESSAGES);
    assert!(b.bodies.is_empty());
}
