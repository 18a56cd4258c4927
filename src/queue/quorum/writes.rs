//! A quorum queue's writes: one task per queue appends this node's commands to the queue's
//! log in the order they were made; publishes that queue up while a write is in flight go
//! together in one entry.

use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::fifo::Command;
use super::live::{QuorumQueue, wall_clock_ms};
use super::machine::{MAX_BATCH, QuorumCommand, QuorumReply};
use crate::message::WireMessage;

/// How long a write may wait for its group (a leader's loss takes an election, 2.5 to 5 s).
const WRITE_WITHIN: Duration = Duration::from_secs(20);

/// A write waiting for its turn.
pub(super) enum Pending {
    Publish(WireMessage, oneshot::Sender<bool>),
    Op(Command, Option<oneshot::Sender<Option<(u64, QuorumReply)>>>),
}

/// Writes a queue's commands in order: publishes that queued up while a write was in
/// flight go together in one entry.
pub(super) async fn write_in_order(
    queue: Weak<QuorumQueue>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
) {
    let mut next: Option<Pending> = None;
    loop {
        let first = match next.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let Some(q) = queue.upgrade() else {
            return;
        };
        match first {
            Pending::Publish(message, taken) => {
                let mut messages = vec![message];
                let mut answers = vec![taken];
                let mut bytes = 0usize;
                while messages.len() < MAX_BATCH && bytes < 4 << 20 {
                    match rx.try_recv() {
                        Ok(Pending::Publish(m, t)) => {
                            bytes += m.body.len();
                            messages.push(m);
                            answers.push(t);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let command = QuorumCommand::Enqueue {
                    ts: wall_clock_ms(),
                    messages,
                };
                let taken = match write(&q, &command).await {
                    Some((_, QuorumReply::Enqueued(taken))) => taken,
                    _ => Vec::new(),
                };
                for (i, answer) in answers.into_iter().enumerate() {
                    let _ = answer.send(taken.get(i).copied().unwrap_or(false));
                }
            }
            Pending::Op(command, reply) => {
                let written = write(&q, &QuorumCommand::Op(command)).await;
                if let Some(reply) = reply {
                    let _ = reply.send(written);
                }
            }
        }
    }
}

async fn write(queue: &QuorumQueue, command: &QuorumCommand) -> Option<(u64, QuorumReply)> {
    let bytes = Bytes::from(postcard::to_stdvec(command).ok()?);
    match tokio::time::timeout(WRITE_WITHIN, queue.log.write(queue.group, bytes)).await {
        Ok(Ok((index, reply))) => Some((index, postcard::from_bytes(&reply).ok()?)),
        Ok(Err(error)) => {
            tracing::warn!(group = queue.group, %error, "a quorum queue write failed");
            None
        }
        Err(_) => None,
    }
}
