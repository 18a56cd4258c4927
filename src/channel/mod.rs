//! Per-channel state: open/closing, content assembly, confirm mode.
//!
//! A channel is plain state inside its connection (no task of its own). The
//! connection feeds it frames; it answers with frames to send and, when a message
//! is complete, a [`Publication`] for the connection to route.

pub mod content;

use warren_codec::protocol::{AMQPClass, access, basic, channel, confirm};

pub use content::{Assembly, Publication};

use crate::error::AmqpError;

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

/// One open channel.
#[derive(Debug)]
pub struct Channel {
    /// The channel number.
    pub id: u16,
    /// Open or closing.
    pub state: ChannelState,
    /// Publish/header/body progress.
    pub assembly: Assembly,
    /// In confirm mode: the sequence number the next publish gets.
    pub next_confirm_tag: Option<u64>,
}

impl Channel {
    /// A newly opened channel.
    pub fn new(id: u16) -> Self {
        Channel {
            id,
            state: ChannelState::Open,
            assembly: Assembly::Idle,
            next_confirm_tag: None,
        }
    }

    /// Handles a method on an open channel; replies go to `replies`.
    pub fn on_method(
        &mut self,
        method: AMQPClass,
        replies: &mut Vec<AMQPClass>,
    ) -> Result<Step, AmqpError> {
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        let at = |e: AmqpError| e.on_method(class_id, method_id);
        match method {
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => {
                Err(at(AmqpError::channel_error("second 'channel.open' seen")))
            }
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => Ok(Step::Closed),
            // A close-ok for a close we never sent.
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                Err(at(AmqpError::command_invalid("unimplemented method")))
            }
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                replies.push(AMQPClass::Access(access::AMQPMethod::RequestOk(
                    access::RequestOk {},
                )));
                Ok(Step::Continue)
            }
            AMQPClass::Channel(channel::AMQPMethod::Flow(flow)) => {
                // RabbitMQ does not let clients stop the server's deliveries this way.
                if !flow.active {
                    return Err(at(AmqpError::not_implemented("active=false")));
                }
                replies.push(AMQPClass::Channel(channel::AMQPMethod::FlowOk(
                    channel::FlowOk { active: true },
                )));
                Ok(Step::Continue)
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => Ok(Step::Continue),
            AMQPClass::Basic(basic::AMQPMethod::Publish(publish)) => {
                if publish.immediate {
                    return Err(at(AmqpError::not_implemented("immediate=true")));
                }
                self.assembly = Assembly::Header(publish);
                Ok(Step::Continue)
            }
            AMQPClass::Confirm(confirm::AMQPMethod::Select(select)) => {
                if self.next_confirm_tag.is_none() {
                    self.next_confirm_tag = Some(1);
                }
                if !select.nowait {
                    replies.push(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(
                        confirm::SelectOk {},
                    )));
                }
                Ok(Step::Continue)
            }
            other => Err(at(unhandled(&other))),
        }
    }
}

/// The error for a method Warren does not take on a channel: a server-to-client
/// method sent by a client is 503 "unimplemented method" (as RabbitMQ answers);
/// the rest are AMQP features still to be built, 540 NOT_IMPLEMENTED.
fn unhandled(method: &AMQPClass) -> AmqpError {
    let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
    let server_only = matches!(
        method,
        AMQPClass::Connection(_)
            | AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))
            | AMQPClass::Basic(
                basic::AMQPMethod::QosOk(_)
                    | basic::AMQPMethod::ConsumeOk(_)
                    | basic::AMQPMethod::Return(_)
                    | basic::AMQPMethod::Deliver(_)
                    | basic::AMQPMethod::GetOk(_)
                    | basic::AMQPMethod::GetEmpty(_)
                    | basic::AMQPMethod::RecoverOk(_)
            )
            | AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))
    ) || (class_id != 60 && method_id % 10 == 1 && class_id != 20);
    if server_only {
        AmqpError::command_invalid("unimplemented method")
    } else {
        AmqpError::not_implemented(format!(
            "{} is not implemented by Warren yet",
            warren_codec::method::name(class_id, method_id)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_codec::ReplyCode;
    use warren_codec::protocol::queue;

    #[test]
    fn flow_and_second_open() {
        let mut ch = Channel::new(1);
        let mut replies = Vec::new();
        let flow = AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: true }));
        ch.on_method(flow, &mut replies).expect("flow");
        assert_eq!(replies.len(), 1);
        let open = AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}));
        let e = ch.on_method(open, &mut replies).expect_err("second open");
        assert_eq!(
            (e.code, e.class_id, e.method_id),
            (ReplyCode::ChannelError, 20, 10)
        );
    }

    #[test]
    fn client_sent_server_methods_are_command_invalid() {
        let mut ch = Channel::new(1);
        let ok = AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
            queue: "q".into(),
            message_count: 0,
            consumer_count: 0,
        }));
        let e = ch.on_method(ok, &mut Vec::new()).expect_err("declare-ok");
        assert_eq!(e.code, ReplyCode::CommandInvalid);
    }
}
