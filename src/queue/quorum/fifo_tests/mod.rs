//! Unit tests of the fifo's rules, one behaviour each: `messages.rs`
//! (enqueue, returns, limits, TTL, purge, basic.get, snapshots),
//! `consumers.rs` (assignment, prefetch, single active consumer, resume,
//! channels and nodes going down).

mod consumers;
mod messages;

use super::fifo::*;
use crate::queue::dead_letter::Reason;

fn key(node: u64, channel: u16, tag: &str) -> ConsumerKey {
    ConsumerKey::new(node, 1, channel, tag)
}

fn enqueue(f: &mut Fifo, id: u64, ts: u64) -> Applied {
    enqueue_sized(f, id, 10, None, ts)
}

fn enqueue_sized(f: &mut Fifo, id: u64, size: u32, expires_at: Option<u64>, ts: u64) -> Applied {
    f.apply(Command::Enqueue {
        id: MsgId(id),
        size,
        expires_at,
        ts,
    })
}

fn consume(f: &mut Fifo, k: &ConsumerKey, prefetch: u32, priority: i64) -> Applied {
    f.apply(Command::Checkout {
        key: k.clone(),
        prefetch,
        priority,
        resume: None,
    })
}

/// (consumer tag, id) of every delivery, in order.
fn deliveries(a: &Applied) -> Vec<(String, u64)> {
    a.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver { key, id, .. } => Some((key.tag.to_string(), id.0)),
            _ => None,
        })
        .collect()
}

fn released(a: &Applied) -> Vec<u64> {
    a.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Release { ids } => Some(ids.iter().map(|i| i.0).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn dead(a: &Applied) -> Vec<(u64, Reason)> {
    a.effects
        .iter()
        .filter_map(|e| match e {
            Effect::DeadLetter { id, reason } => Some((id.0, *reason)),
            _ => None,
        })
        .collect()
}

fn ids(v: &[u64]) -> Vec<MsgId> {
    v.iter().copied().map(MsgId).collect()
}

fn with_dlx() -> Config {
    Config {
        dead_lettering: true,
        ..Config::default()
    }
}
