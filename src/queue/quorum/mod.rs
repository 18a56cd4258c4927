//! Quorum queues (docs/cluster-design.md section 6).
//!
//! - `fifo.rs`: the replicated state machine, pure (no Raft, no I/O): Warren's
//!   `rabbit_fifo`. Every member applies the same commands in log order and
//!   reaches the same state; only the leader executes the effects.
//! - `fifo_tests/`: unit tests, one rule each; `fifo_props/`: a proptest
//!   reference model, determinism and snapshot round trips.

//! - `bodies.rs`: a member's bodies: a window in memory, the rest in scratch spill files.
//! - `machine.rs`: a member's replicated state (the fifo and the bodies) applied from
//!   the queue's Raft log; `live.rs`: the queue on a member node (`Backend::Quorum`):
//!   deliveries to this node's consumers from its own apply; `consumers.rs`: consume,
//!   cancel, release, settle, get; `writes.rs`: the ordered write task; `seam.rs`: the
//!   queue-type seam's side; `stream.rs`: postcard to and from the snapshot's file.

use crate::queue::args::{Overflow as ArgsOverflow, QueueArgs};

/// The fifo's settings from a quorum queue's arguments: RabbitMQ 4's delivery limit of
/// 20 unless `x-delivery-limit` says otherwise (a negative value: none).
pub fn fifo_config(args: &QueueArgs) -> fifo::Config {
    fifo::Config {
        max_length: args.max_length,
        max_length_bytes: args.max_length_bytes,
        overflow: match args.overflow {
            ArgsOverflow::DropHead => fifo::Overflow::DropHead,
            _ => fifo::Overflow::RejectPublish,
        },
        delivery_limit: match args.delivery_limit {
            None => Some(fifo::DEFAULT_DELIVERY_LIMIT),
            Some(u64::MAX) => None,
            Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        },
        message_ttl: args.message_ttl,
        dead_lettering: args.dead_letter_exchange.is_some(),
        single_active_consumer: args.single_active_consumer,
    }
}

pub mod bodies;
pub mod consumers;
pub mod fifo;
#[cfg(test)]
mod fifo_props;
#[cfg(test)]
mod fifo_tests;
pub mod live;
pub mod machine;
#[cfg(test)]
mod orphan_tests;
#[cfg(test)]
mod paging_tests;
mod seam;
mod stream;
mod writes;

/// A quorum queue whose group has no leader in time: RabbitMQ's timeout answer.
pub fn no_majority(queue: &crate::queue::Queue) -> crate::error::AmqpError {
    crate::error::AmqpError::internal_error(format!(
        "timed out waiting for {} to answer (no majority of its members?)",
        queue.describe()
    ))
}
