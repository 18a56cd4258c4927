//! Quorum queues (docs/cluster-design.md section 6).
//!
//! - `fifo.rs`: the replicated state machine, pure (no Raft, no I/O): Warren's
//!   `rabbit_fifo`. Every member applies the same commands in log order and
//!   reaches the same state; only the leader executes the effects.
//! - `fifo_tests/`: unit tests, one rule each; `fifo_props/`: a proptest
//!   reference model, determinism and snapshot round trips.

pub mod fifo;
#[cfg(test)]
mod fifo_props;
#[cfg(test)]
mod fifo_tests;
