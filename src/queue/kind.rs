//! The queue-type seam, in the spirit of RabbitMQ's `rabbit_queue_type`.
//!
//! Every kind of queue offers the rest of the broker the same operations, the
//! public methods of [`super::Queue`]: declare and recover, publish,
//! consume and cancel, get, settle (ack, reject, requeue), purge, delete, and
//! the figures the management API and metrics read. Each of them dispatches on
//! the queue's [`Backend`], the engine that holds its messages. `x-queue-type`
//! picks the kind at declare ([`QueueType`]).
//!
//! Two engines: the classic queue (`queue/mod.rs` and the rooms around it)
//! and the stream (`queue/stream/`). A queue declared `quorum` runs on the
//! classic engine as a durable single-node queue, so applications that
//! declare quorum queues keep working; the broker says so in its log at
//! declare, and the management API reports its type as `classic`, what it
//! really is, until replicated queues exist.

use std::sync::Arc;

use parking_lot::Mutex;

use super::QueueState;
use super::quorum::live::QuorumQueue;
use super::remote::RemoteBackend;
use super::stream::StreamQueue;

/// The kind of queue a declare asks for with `x-queue-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// `classic`, or no `x-queue-type`.
    #[default]
    Classic,
    /// `quorum`: replicated in RabbitMQ; a classic queue here until Warren
    /// has a cluster.
    Quorum,
    /// `stream`: a replayable log.
    Stream,
}

impl QueueType {
    /// The type named by an `x-queue-type` value, if Warren knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "classic" => Some(QueueType::Classic),
            "quorum" => Some(QueueType::Quorum),
            "stream" => Some(QueueType::Stream),
            _ => None,
        }
    }

    /// Its `x-queue-type` name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
            QueueType::Stream => "stream",
        }
    }

    /// Whether Warren can make a queue of this type now.
    pub fn supported(self) -> bool {
        true
    }
}

/// The engine behind a queue.
// The classic state stays inline: every publish and delivery reaches it, a
// box would add a pointer chase there to save a stream's few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(super) enum Backend {
    /// The classic queue: ready list, consumers, TTL, limits, dead-lettering,
    /// persistent messages in the segment log. Its state has one owner, this
    /// mutex, never held across `.await`.
    Classic(Mutex<QueueState>),
    /// The stream: an append-only log read by consumers from their own
    /// offsets.
    Stream(Arc<StreamQueue>),
    /// A queue living on another cluster node: its home runs it (`remote.rs`).
    Remote(RemoteBackend),
    /// A quorum queue on one of its member nodes (`quorum/`).
    Quorum(Arc<QuorumQueue>),
}

impl Backend {
    /// The name of the engine, as the management API reports a queue's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Backend::Classic(_) => "classic",
            Backend::Stream(_) => "stream",
            Backend::Remote(remote) => remote.type_name(),
            Backend::Quorum(_) => "quorum",
        }
    }
}
