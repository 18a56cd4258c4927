//! Transactions (tx.select, tx.commit, tx.rollback): publishes and
//! settlements are held until commit, applied in order at commit, dropped or
//! undone at rollback. Commit-ok waits for the group commit when a held
//! publish was stored by a durable queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use warren_codec::protocol::{AMQPClass, tx};

use super::qos::Settle;
use super::{Channel, Mode, unhandled};
use crate::delayed::ReturnTo;
use crate::error::AmqpError;
use crate::message::Message;
use crate::names::DeliveryTag;
use crate::vhost::ExchangeEntry;
use crate::vhost::publish::Routed;

/// Work a transaction holds until tx.commit.
#[derive(Debug)]
pub enum TxOp {
    /// A routed message, where it goes, and whether it is mandatory.
    Publish(Arc<Message>, Routed, bool),
    /// A message for a delayed exchange, its delay in milliseconds, and
    /// where it goes back if mandatory and unroutable when due.
    Delay(Arc<ExchangeEntry>, Arc<Message>, u64, Option<ReturnTo>),
    /// Deliveries acked, nacked or rejected inside the transaction, by tag (the
    /// channel holds them meanwhile, see [`crate::queue::Deliveries::tx_settled`]).
    Settle(Vec<DeliveryTag>, Settle),
}

impl Channel {
    pub(super) async fn on_tx_method(&mut self, method: tx::AMQPMethod) -> Result<(), AmqpError> {
        match method {
            tx::AMQPMethod::Select(_) => {
                if let Mode::Confirm(_) = self.mode {
                    return Err(AmqpError::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.mode = Mode::Tx;
                self.shared
                    .report
                    .transactional
                    .store(true, Ordering::Relaxed);
                self.reply(AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {})))
                    .await;
            }
            tx::AMQPMethod::Commit(_) => {
                if self.mode != Mode::Tx {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                }
                if self.commit().await {
                    // Persistent messages published in the transaction are on disk.
                    self.conn.vhost.storage.commit().await?;
                }
                self.reply(AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {})))
                    .await;
            }
            tx::AMQPMethod::Rollback(_) => {
                if self.mode != Mode::Tx {
                    return Err(AmqpError::precondition_failed(
                        "channel is not transactional",
                    ));
                }
                self.rollback();
                self.reply(AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {})))
                    .await;
            }
            other => return Err(unhandled(&AMQPClass::Tx(other))),
        }
        Ok(())
    }

    /// tx.commit: the held publishes are enqueued, the held settlements
    /// applied. Returns whether a durable queue stored a message (commit-ok
    /// then waits for the group commit).
    async fn commit(&mut self) -> bool {
        let mut stored = false;
        for op in std::mem::take(&mut self.tx_pending) {
            match op {
                TxOp::Publish(message, routed, mandatory) => {
                    stored |= self
                        .deliver_published(message, &routed, mandatory)
                        .await
                        .stored;
                }
                TxOp::Delay(x, message, delay, return_to) => {
                    match self.conn.vhost.delay(&x, &message, delay, return_to) {
                        Ok(persistent) => stored |= persistent,
                        Err(error) => {
                            tracing::error!(%error, "a delayed message of a transaction was not kept");
                        }
                    }
                }
                TxOp::Settle(tags, how) => {
                    let settled = self.shared.take_held(&tags);
                    self.apply_settle(settled, how);
                }
            }
        }
        stored
    }

    /// tx.rollback: held publishes are dropped, held settlements undone.
    fn rollback(&mut self) {
        self.tx_pending.clear();
        self.shared.unhold_all();
    }
}
