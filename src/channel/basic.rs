//! basic.* on a channel: publish, consume, cancel, get (qos, acks and
//! recover are `qos.rs`; confirms `confirms.rs`; transactions `tx.rs`).

use std::any::Any;
use std::sync::{Arc, Weak};

use warren_codec::protocol::{AMQPClass, basic};
use warren_codec::types::ShortString;
use warren_codec::{ContentHeader, ReplyCode};

use super::declare::generated_name;
use super::qos::Settle;
use super::shared::ChannelShared;
use super::tx::TxOp;
use super::{Channel, Mode, Publication};
use crate::auth::{Kind, Permission};
use crate::delayed::ReturnTo;
use crate::error::AmqpError;
use crate::message::Message;
use crate::meta::Forwards;
use crate::names::{ConsumerTag, DeliveryTag};
use crate::outbound::{Outbound, WithContent};
use crate::queue::{Consumer, GetResult, Return, priority_arg, timeout_arg};
use crate::vhost::publish::{Outcome, Routed, routing_properties};
use crate::vhost::replies;

impl Channel {
    /// basic.publish on an open channel between messages, taken without a
    /// future of its own (the method layers' futures cost about 200
    /// instructions per publish); anything else, including what ends in an
    /// error, is handed back for [`Channel::on_method`].
    pub fn begin_publish(
        &mut self,
        publish: warren_codec::Publish,
    ) -> Result<(), warren_codec::Publish> {
        if self.state != super::ChannelState::Open || !self.assembly.is_idle() || publish.immediate
        {
            return Err(publish);
        }
        self.assembly.begin(publish);
        Ok(())
    }

    /// Whether a whole message (publish, header and one body frame) can skip the
    /// content assembly: an open channel between messages, a publish without
    /// `immediate`, a header RabbitMQ's assembler takes (basic's class, weight 0)
    /// and a body of 1 to `max` octets. Anything else goes frame by frame, to get
    /// the same answer as if the frames had come apart.
    pub fn takes_whole(&self, message: &warren_codec::WholeMessage, max: u64) -> bool {
        self.state == super::ChannelState::Open
            && self.assembly.is_idle()
            && !message.publish.immediate
            && message.header.weight == 0
            && message.header.class_id == warren_codec::content::BASIC_CLASS_ID
            && (1..=max).contains(&message.header.body_size)
    }

    pub(super) async fn on_basic_method(
        &mut self,
        method: basic::AMQPMethod,
    ) -> Result<(), AmqpError> {
        match method {
            basic::AMQPMethod::Publish(publish) => {
                if publish.immediate {
                    return Err(AmqpError::not_implemented("immediate=true"));
                }
                self.assembly.begin(publish.into());
            }
            // A prefetch-size other than 0 was refused by the decoder (540).
            basic::AMQPMethod::Qos(m) => self.qos(m).await,
            basic::AMQPMethod::Consume(m) if self.consumes_replies(&m.queue) => {
                self.consume_replies(m).await?;
            }
            basic::AMQPMethod::Consume(m) => self.consume(m).await?,
            basic::AMQPMethod::Cancel(m) if self.cancels_replies(&m.consumer_tag) => {
                self.cancel_replies(m).await;
            }
            basic::AMQPMethod::Cancel(m) => {
                let tag = ConsumerTag::from(m.consumer_tag.as_str());
                let queue = self.shared.consumers.lock().remove(&tag);
                if let Some(queue) = queue
                    && queue.remove_consumer(self.shared.as_ref(), &tag)
                {
                    self.conn.vhost.retire_queue(&queue);
                }
                if !m.nowait {
                    self.reply(AMQPClass::Basic(basic::AMQPMethod::CancelOk(
                        basic::CancelOk {
                            consumer_tag: m.consumer_tag,
                        },
                    )))
                    .await;
                }
            }
            basic::AMQPMethod::Get(m) => {
                let name = self.queue_name(&m.queue)?;
                self.conn
                    .access
                    .check(Permission::Read, Kind::Queue, &name)?;
                let queue = self.conn.vhost.queue_or_remote(&name, self.conn.id)?;
                if queue.is_stream() {
                    return Err(queue.not_for_streams("basic.get"));
                }
                if queue.remote_backend().is_some() {
                    return self.get_remote(queue, m.no_ack).await;
                }
                if queue.quorum().is_some() {
                    return self.get_quorum(queue, m.no_ack).await;
                }
                if !m.no_ack {
                    let timeout = queue.consumer_timeout().or(self.conn.consumer_timeout);
                    self.shared.note_ack_timeout(timeout.filter(|&ms| ms > 0));
                }
                loop {
                    // Another queue may fill the writer between the wait and the get.
                    if self.shared.out.reserve().await.is_err() {
                        return Ok(());
                    }
                    match queue.get(self.shared.as_ref(), m.no_ack) {
                        GetResult::Sent => break,
                        GetResult::Busy => continue,
                        GetResult::Empty => {
                            self.get_empty().await;
                            break;
                        }
                    }
                }
            }
            basic::AMQPMethod::Ack(m) => {
                self.settle(DeliveryTag(m.delivery_tag), m.multiple, Settle::Ack)?
            }
            basic::AMQPMethod::Nack(m) => {
                self.settle(
                    DeliveryTag(m.delivery_tag),
                    m.multiple,
                    Settle::requeue_or_discard(m.requeue, Return::Returned),
                )?;
            }
            basic::AMQPMethod::Reject(m) => {
                self.settle(
                    DeliveryTag(m.delivery_tag),
                    false,
                    Settle::requeue_or_discard(m.requeue, Return::Failed),
                )?;
            }
            basic::AMQPMethod::Recover(m) => {
                self.recover(m.requeue)?;
                self.reply(AMQPClass::Basic(basic::AMQPMethod::RecoverOk(
                    basic::RecoverOk {},
                )))
                .await;
            }
            basic::AMQPMethod::RecoverAsync(m) => self.recover(m.requeue)?,
            other => return Err(super::unhandled(&AMQPClass::Basic(other))),
        }
        Ok(())
    }

    /// basic.get-empty, counted.
    pub(super) async fn get_empty(&self) {
        self.conn.global.get_empty.incr();
        self.shared.counters.get_empty.incr();
        self.reply(AMQPClass::Basic(basic::AMQPMethod::GetEmpty(
            basic::GetEmpty {},
        )))
        .await;
    }

    async fn consume(&mut self, m: basic::Consume) -> Result<(), AmqpError> {
        let name = self.queue_name(&m.queue)?;
        self.conn
            .access
            .check(Permission::Read, Kind::Queue, &name)?;
        let queue = self.conn.vhost.queue_or_remote(&name, self.conn.id)?;
        let tag = match m.consumer_tag.as_str() {
            "" => ConsumerTag::from(generated_name("amq.ctag-")),
            tag => ConsumerTag::from(tag),
        };
        if self.shared.consumers.lock().contains_key(&tag) {
            return Err(AmqpError::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let priority = priority_arg(&m.arguments, &queue)?;
        // RabbitMQ's precedence: the consumer's own, else the queue's, else
        // the broker's; no-ack deliveries have nothing to time out.
        let ack_timeout = (!m.no_ack)
            .then(|| {
                timeout_arg(&m.arguments, &queue).map(|own| {
                    own.or(queue.consumer_timeout())
                        .or(self.conn.consumer_timeout)
                        .filter(|&ms| ms > 0)
                })
            })
            .transpose()?
            .flatten();
        self.shared.note_ack_timeout(ack_timeout);
        let consumer = Consumer::with_priority(
            tag.clone(),
            self.shared.clone(),
            m.no_ack,
            m.exclusive,
            self.consumer_prefetch,
            priority,
            ack_timeout,
        );
        if queue.remote_backend().is_some() {
            return self.consume_remote(&m, queue, consumer).await;
        }
        if queue.quorum().is_some() {
            return self.consume_quorum(&m, queue, consumer).await;
        }
        // Consume-ok goes out once the queue has accepted the consumer, under
        // its lock, before the first delivery can.
        let permit = if m.nowait {
            None
        } else {
            let Ok(permit) = self.shared.out.reserve().await else {
                // The writer is gone with the socket; the reader notices.
                return Ok(());
            };
            Some(permit)
        };
        let consume_ok = |permit: Option<tokio::sync::mpsc::Permit<'_, Outbound>>| {
            if let Some(permit) = permit {
                let reply = AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
                    consumer_tag: ShortString::try_new(tag.to_string()).unwrap_or_default(),
                }));
                permit.send(Outbound::Method(self.id, reply));
            }
        };
        // Registered first, so a queue deleted meanwhile finds it to cancel.
        self.shared
            .consumers
            .lock()
            .insert(tag.clone(), queue.clone());
        if let Err(e) = queue.add_consumer(consumer, &m.arguments, || consume_ok(permit)) {
            self.shared.consumers.lock().remove(&tag);
            return Err(e);
        }
        Ok(())
    }

    /// A complete message: check it, route it, enqueue it (or hold it for
    /// tx.commit), return it if mandatory and unroutable, confirm it.
    pub async fn publish(&mut self, publication: Publication) -> Result<(), AmqpError> {
        let Publication {
            publish,
            mut header,
            mut properties,
            body,
        } = publication;
        self.shared.counters.publish.incr();
        self.conn.global.message_sizes.observe(body.len() as u64);
        if let Mode::Confirm(_) = self.mode {
            self.conn.global.received_confirm.incr();
        }
        // RabbitMQ's order: the exchange (404, 403), then the message's properties.
        let exchange = publish.exchange.as_str();
        self.conn
            .access
            .check(Permission::Write, Kind::Exchange, exchange)?;
        let target = self.conn.vhost.publish_target(exchange)?;
        self.rewrite_reply_to(&mut header, &mut properties)?;
        if let Some(user_id) = properties.user_id()
            && user_id.as_str() != self.conn.user
        {
            return Err(AmqpError::precondition_failed(format!(
                "user_id property set to '{user_id}' but authenticated user was '{}'",
                self.conn.user
            )));
        }
        if let Some(expiration) = properties.expiration() {
            check_expiration(expiration.as_str())?;
        }
        // A delayed exchange keeps a message with a delay; it is routed
        // when the delay has passed (`vhost/delayed.rs`).
        if let Some(x) = target.as_ref().filter(|x| x.delayed.is_some())
            && let Some(delay) = crate::delayed::delay_of(properties.headers().as_ref())
        {
            let message = Arc::new(Message {
                exchange: publish.exchange.clone(),
                routing_key: publish.routing_key.clone(),
                header,
                properties,
                body,
                cc_routed: true,
                frames: Default::default(),
            });
            let return_to = publish.mandatory.then(|| self.return_to());
            if self.mode == Mode::Tx {
                self.tx_pending
                    .push(TxOp::Delay(x.clone(), message, delay, return_to));
                return Ok(());
            }
            let stored = self.conn.vhost.delay(x, &message, delay, return_to)?;
            self.confirm_publish(false, stored, Forwards::default())
                .await;
            return Ok(());
        }
        let routed = self.conn.vhost.route_message(
            target,
            publish.routing_key.as_str(),
            properties.headers().as_ref(),
            &routing_properties(&properties),
        )?;
        // BCC routes but is not delivered: the properties are re-encoded without it.
        if let Some(headers) = properties.headers()
            && headers.contains_key("BCC")
        {
            let mut kept = headers.inner().clone();
            kept.remove("BCC");
            let stripped = properties.as_ref().clone().with_headers(kept.into());
            header = ContentHeader::from_properties(body.len() as u64, &stripped)
                .map_err(|e| AmqpError::precondition_failed(format!("invalid message: {e}")))?;
            properties = stripped.into();
        }
        // The names move in as the frame's slices: no copy per message.
        let message = Arc::new(Message {
            exchange: publish.exchange,
            routing_key: publish.routing_key,
            header,
            properties,
            body,
            cc_routed: true,
            frames: Default::default(),
        });
        // At routing time, even inside a transaction, as RabbitMQ does.
        if !routed.replies.is_empty() {
            replies::deliver(&routed.replies, &message).await;
        }
        if self.mode == Mode::Tx {
            self.tx_pending
                .push(TxOp::Publish(message, routed, publish.mandatory));
            return Ok(());
        }
        let outcome = self
            .deliver_published(message, &routed, publish.mandatory)
            .await;
        // Without confirms and with nothing forwarded there is nothing to
        // confirm or hold: no future for it (about 90 instructions).
        if self.mode == Mode::Plain && outcome.forwarded.is_empty() {
            return Ok(());
        }
        self.confirm_publish(outcome.refused, outcome.stored, outcome.forwarded)
            .await;
        Ok(())
    }

    /// Where a mandatory delayed message goes back: this channel, while open.
    fn return_to(&self) -> ReturnTo {
        let open: Weak<dyn Any + Send + Sync> = Arc::downgrade(&self.shared) as Weak<ChannelShared>;
        ReturnTo {
            out: self.shared.out.clone(),
            channel: self.id,
            open,
        }
    }

    /// Hands a routed message to its queues and the delayed exchanges that
    /// keep it (or returns it when unroutable and mandatory). A queue that
    /// refused it (`x-overflow` reject-publish) makes its confirm a nack; it
    /// is not returned.
    pub(super) async fn deliver_published(
        &self,
        message: Arc<Message>,
        routed: &Routed,
        mandatory: bool,
    ) -> Outcome {
        if routed.unroutable() {
            let counter = if mandatory {
                &self.shared.counters.return_unroutable
            } else {
                &self.shared.counters.drop_unroutable
            };
            counter.incr();
            if mandatory {
                let ret = AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                    reply_code: ReplyCode::NoRoute.code(),
                    reply_text: "NO_ROUTE".into(),
                    exchange: ShortString::try_new(message.exchange.to_string())
                        .unwrap_or_default(),
                    routing_key: ShortString::try_new(message.routing_key.to_string())
                        .unwrap_or_default(),
                }));
                let _ = self
                    .shared
                    .out
                    .send(Outbound::MethodWithContent(
                        self.id,
                        Box::new(WithContent {
                            method: ret,
                            header: message.header.clone(),
                            body: message.body.clone(),
                        }),
                    ))
                    .await;
            }
            // Nothing took it, but its deduplication id counts (the plugin's rule).
            if let Some(id) = &routed.new_id {
                id.store();
            }
            return Outcome::default();
        }
        self.conn.global.routed.incr();
        let return_to = (mandatory && !routed.held.is_empty()).then(|| self.return_to());
        self.conn.vhost.deliver(
            &message,
            &routed.queues,
            &routed.remote,
            &routed.held,
            routed.new_id.as_ref(),
            return_to.as_ref(),
        )
    }
}

/// The per-message `expiration` property must be a non-negative integer of
/// milliseconds, at most ten years: RabbitMQ's `parse_expiration`, which reads it
/// with Erlang's `string:to_integer` (an optional sign, then digits).
fn check_expiration(expiration: &str) -> Result<(), AmqpError> {
    const MAX_EXPIRY_MS: u64 = 315_360_000_000;
    let invalid = |why: String| {
        Err(AmqpError::precondition_failed(format!(
            "invalid expiration '{expiration}': {why}"
        )))
    };
    let (negative, unsigned) = match expiration.as_bytes().first() {
        Some(b'-') => (true, &expiration[1..]),
        Some(b'+') => (false, &expiration[1..]),
        _ => (false, expiration),
    };
    let numeric_len = unsigned.bytes().take_while(u8::is_ascii_digit).count();
    if numeric_len == 0 {
        return invalid("no_integer".into());
    }
    if numeric_len < unsigned.len() {
        return invalid(format!(
            "{{leftover_string,\"{}\"}}",
            &unsigned[numeric_len..]
        ));
    }
    // The value as Erlang prints an integer: no leading zeros.
    let value = match unsigned.trim_start_matches('0') {
        "" => "0",
        digits => digits,
    };
    if negative && value != "0" {
        return invalid(format!("{{value_negative,-{value}}}"));
    }
    if value.parse::<u64>().map_or(true, |ms| ms > MAX_EXPIRY_MS) {
        return invalid(format!("{{value_too_large,{value}}}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_rules() {
        assert!(check_expiration("1000").is_ok());
        assert!(check_expiration("0").is_ok());
        assert_eq!(
            check_expiration("abc").expect_err("text").reply_text(),
            "PRECONDITION_FAILED - invalid expiration 'abc': no_integer"
        );
        assert!(check_expiration("-0").is_ok());
        assert!(check_expiration("+5").is_ok());
        assert_eq!(
            check_expiration("-1").expect_err("negative").text,
            "invalid expiration '-1': {value_negative,-1}"
        );
        assert_eq!(
            check_expiration("10x").expect_err("leftover").text,
            "invalid expiration '10x': {leftover_string,\"x\"}"
        );
        assert_eq!(
            check_expiration("315360000001")
                .expect_err("too large")
                .text,
            "invalid expiration '315360000001': {value_too_large,315360000001}"
        );
        assert!(check_expiration("99999999999999999999999").is_err());
    }
}
