//! Per-channel state and method dispatch.
//!
//! A channel is plain state inside its connection's task (no task of its own).
//! The part that queues touch from other tasks (delivery tags, unacked
//! deliveries, consumers) is [`shared::ChannelShared`].
//!
//! - `declare.rs`: exchange.* and queue.* methods.
//! - `basic.rs`: publish, consume, cancel, get.
//! - `qos.rs`: basic.qos and settlements (ack, nack, reject, recover).
//! - `tx.rs`: transactions.
//! - `confirms.rs`: publisher confirms, pipelined behind the group commit.
//! - `content.rs`: assembling publish + header + body frames.
//! - `reply_to.rs`: direct reply-to (the `amq.rabbitmq.reply-to` pseudo-queue).

mod basic;
pub mod confirms;
pub mod content;
mod declare;
mod qos;
mod remote;
mod replicated;
pub mod reply_to;
pub mod shared;
mod tx;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use warren_codec::protocol::{AMQPClass, access, channel, confirm};

pub use content::{Assembly, Publication};
pub use shared::ChannelShared;

use crate::error::AmqpError;
use crate::names::ConnectionId;
use crate::outbound::Outbound;
use crate::queue::{Return, by_queue};
use crate::vhost::VHost;

/// Whether the channel is usable or waiting for the client's close-ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// Open: methods are processed.
    Open,
    /// The broker sent channel.close; everything but close/close-ok is dropped.
    Closing,
}

/// What the connection must do after a channel handled a method.
#[derive(Debug)]
pub enum Step {
    /// Nothing more.
    Continue,
    /// Send close-ok and forget the channel (the client closed it).
    Closed,
}

/// Where the connection is, as a channel needs to know it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Unique id of the connection (owner of exclusive queues).
    pub id: ConnectionId,
    /// The vhost it opened.
    pub vhost: Arc<VHost>,
    /// The authenticated user.
    pub user: String,
    /// Largest message accepted.
    pub max_message_size: u64,
    /// The broker's `consumer_timeout` in milliseconds (None: off).
    pub consumer_timeout: Option<u64>,
    /// The user's permissions in the vhost.
    pub access: crate::auth::UserAccess,
    /// The connection's confirm task.
    pub confirms: confirms::ConfirmQueue,
    /// The broker's global counters.
    pub global: Arc<crate::stats::GlobalCounters>,
}

/// Publisher mode: plain, confirms or transactions (they exclude each other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    /// Confirm mode; the next publish sequence number.
    Confirm(u64),
    Tx,
}

/// One open channel.
#[derive(Debug)]
pub struct Channel {
    /// The channel number.
    pub id: u16,
    /// Open or closing.
    pub state: ChannelState,
    /// Publish/header/body progress.
    pub assembly: Assembly,
    /// What queues see of this channel.
    pub shared: Arc<ChannelShared>,
    conn: ConnectionInfo,
    mode: Mode,
    /// basic.qos global=false: the prefetch new consumers get.
    consumer_prefetch: u16,
    /// The queue most recently declared here (for the empty-name shortcut).
    last_queue: String,
    /// Publishes and acks waiting for tx.commit.
    tx_pending: Vec<tx::TxOp>,
    /// Confirm tags (first, last) settled but not yet acked to the publisher.
    unsent_acks: Option<(u64, u64)>,
    /// Some of them are persistent messages in durable queues: their ack
    /// waits for a group commit.
    durable_pending: bool,
    /// Publishes since the last flush forwarded to other cluster nodes (their confirms
    /// wait for those nodes' answers).
    forwarded_pending: crate::meta::Forwards,
    /// Publishes without confirms forwarded to other cluster nodes and not answered yet:
    /// past a window, the channel waits for the oldest (flow control across nodes).
    forwarded_unconfirmed: std::collections::VecDeque<crate::meta::Forwarded>,
    /// The direct reply-to consumer, if the channel has one.
    reply_consumer: Option<reply_to::ReplyConsumer>,
}

impl Channel {
    /// A newly opened channel.
    pub fn new(id: u16, shared: Arc<ChannelShared>, conn: ConnectionInfo) -> Self {
        Channel {
            id,
            state: ChannelState::Open,
            assembly: Assembly::default(),
            shared,
            conn,
            mode: Mode::Plain,
            consumer_prefetch: 0,
            last_queue: String::new(),
            tx_pending: Vec::new(),
            unsent_acks: None,
            durable_pending: false,
            forwarded_pending: crate::meta::Forwards::default(),
            forwarded_unconfirmed: std::collections::VecDeque::new(),
            reply_consumer: None,
        }
    }

    /// Sends a method on this channel.
    async fn reply(&self, method: AMQPClass) {
        // A failed send means the writer is gone with the socket; the reader notices.
        let _ = self
            .shared
            .out
            .send(Outbound::Method(self.id, method))
            .await;
    }

    /// Handles a method on an open channel.
    pub async fn on_method(&mut self, method: AMQPClass) -> Result<Step, AmqpError> {
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        self.dispatch(method).await.map_err(|e| {
            if e.class_id == 0 {
                e.on_method(class_id, method_id)
            } else {
                e
            }
        })
    }

    async fn dispatch(&mut self, method: AMQPClass) -> Result<Step, AmqpError> {
        match method {
            AMQPClass::Channel(m) => return self.on_channel_method(m).await,
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                self.reply(AMQPClass::Access(access::AMQPMethod::RequestOk(
                    access::RequestOk {},
                )))
                .await;
            }
            AMQPClass::Exchange(m) => self.on_exchange_method(m).await?,
            AMQPClass::Queue(m) => self.on_queue_method(m).await?,
            AMQPClass::Basic(m) => self.on_basic_method(m).await?,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(select)) => {
                match self.mode {
                    Mode::Tx => {
                        return Err(AmqpError::precondition_failed(
                            "cannot switch from tx to confirm mode",
                        ));
                    }
                    Mode::Plain => {
                        self.mode = Mode::Confirm(1);
                        self.shared.report.confirm.store(true, Ordering::Relaxed);
                    }
                    Mode::Confirm(_) => {}
                }
                if !select.nowait {
                    self.reply(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(
                        confirm::SelectOk {},
                    )))
                    .await;
                }
            }
            AMQPClass::Tx(m) => self.on_tx_method(m).await?,
            other => return Err(unhandled(&other)),
        }
        Ok(Step::Continue)
    }

    async fn on_channel_method(&mut self, method: channel::AMQPMethod) -> Result<Step, AmqpError> {
        match method {
            channel::AMQPMethod::Open(_) => {
                Err(AmqpError::channel_error("second 'channel.open' seen"))
            }
            channel::AMQPMethod::Close(_) => Ok(Step::Closed),
            // A close-ok for a close we never sent.
            channel::AMQPMethod::CloseOk(_) => {
                Err(AmqpError::command_invalid("unimplemented method"))
            }
            channel::AMQPMethod::Flow(flow) => {
                // RabbitMQ does not let clients stop the server's deliveries this way.
                if !flow.active {
                    return Err(AmqpError::not_implemented("active=false"));
                }
                self.reply(AMQPClass::Channel(channel::AMQPMethod::FlowOk(
                    channel::FlowOk { active: true },
                )))
                .await;
                Ok(Step::Continue)
            }
            channel::AMQPMethod::FlowOk(_) => Ok(Step::Continue),
            other => Err(unhandled(&AMQPClass::Channel(other))),
        }
    }

    /// Releases everything the channel holds: cancels its consumers (auto-deleting
    /// queues left without one), ends its reply consumer and requeues its unacked
    /// deliveries.
    pub fn release(&mut self) {
        self.end_reply_consumer();
        let consumers: Vec<_> = self.shared.consumers.lock().drain().collect();
        for (_, queue) in consumers {
            // Its unacked deliveries from `queue` go back in the same step.
            if queue.release_channel(self.shared.as_ref()) {
                self.conn.vhost.retire_queue(&queue);
            }
        }
        by_queue(self.shared.take_all_unacked(), |queue, seqs| {
            queue.requeue(seqs, Return::Failed)
        });
    }
}

/// The error for a method Warren does not take on a channel: a server-to-client
/// method sent by a client is 503 "unimplemented method" (as RabbitMQ answers).
fn unhandled(_method: &AMQPClass) -> AmqpError {
    AmqpError::command_invalid("unimplemented method")
}
