//! A connection's channels: opening one, handing it its methods, closing it
//! on a channel exception.

use warren_codec::protocol::{AMQPClass, channel};
use warren_codec::types::ShortString;

use super::Connection;
use crate::channel::shared::ChannelLinks;
use crate::channel::{Channel, ChannelShared, ChannelState, Step};
use crate::error::AmqpError;

impl Connection {
    pub(super) async fn on_channel_method(
        &mut self,
        id: u16,
        method: AMQPClass,
    ) -> Result<(), AmqpError> {
        let Some(channel) = self.channels.get_mut(&id) else {
            return self.open_channel(id, method).await;
        };
        if channel.state == ChannelState::Closing {
            // Everything but close and close-ok is dropped until the client confirms.
            match method {
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                    if let Some(channel) = self.channels.remove(&id) {
                        self.live.retire(&channel.shared);
                    }
                }
                AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                    self.send(id, close_ok()).await;
                }
                _ => {}
            }
            return Ok(());
        }
        channel.assembly.check_method()?;
        match channel.on_method(method).await {
            Ok(Step::Continue) => Ok(()),
            Ok(Step::Closed) => {
                if let Some(mut channel) = self.channels.remove(&id) {
                    channel.flush_confirms().await;
                    self.info.confirms.barrier().await;
                    channel.release();
                    self.live.retire(&channel.shared);
                }
                self.send(id, close_ok()).await;
                Ok(())
            }
            Err(error) => self.channel_exception(id, error).await,
        }
    }

    async fn open_channel(&mut self, id: u16, method: AMQPClass) -> Result<(), AmqpError> {
        let (class_id, method_id) = (method.get_amqp_class_id(), method.get_amqp_method_id());
        if !matches!(method, AMQPClass::Channel(channel::AMQPMethod::Open(_))) {
            return Err(
                AmqpError::channel_error("expected 'channel.open'").on_method(class_id, method_id)
            );
        }
        let max = usize::from(self.tuned.channel_max);
        if max != 0 && self.channels.len() >= max {
            // RabbitMQ names no method here (0/0).
            return Err(AmqpError::not_allowed(format!(
                "number of channels opened ({}) has reached the negotiated channel_max ({max})",
                self.channels.len()
            )));
        }
        let cancel_notify = matches!(
            self.tuned
                .capabilities
                .inner()
                .get("consumer_cancel_notify"),
            Some(warren_codec::types::AMQPValue::Boolean(true))
        );
        let shared = ChannelShared::new(
            id,
            ChannelLinks {
                connection: self.info.id,
                out: self.out.clone(),
                cancel_notify,
                clock: self.broker.clock.clone(),
                errors: self.channel_errors.0.clone(),
            },
        );
        self.broker
            .admit_channel(&self.tuned.user, &self.live, &shared)?;
        self.broker.global.channels_opened.incr_concurrent();
        self.channels
            .insert(id, Channel::new(id, shared, self.info.clone()));
        self.send(
            id,
            AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
        )
        .await;
        Ok(())
    }

    /// A soft error closes only its channel; a hard one is passed up to close the connection.
    pub(super) async fn channel_exception(
        &mut self,
        id: u16,
        error: AmqpError,
    ) -> Result<(), AmqpError> {
        if error.is_connection_error() {
            return Err(error);
        }
        tracing::info!(peer = %self.peer, channel = id, %error, "closing channel");
        if let Some(channel) = self.channels.get_mut(&id) {
            channel.flush_confirms().await;
            self.info.confirms.barrier().await;
            channel.state = ChannelState::Closing;
            channel.assembly = Default::default();
            channel.release();
        }
        self.send(
            id,
            AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code: error.code.code(),
                reply_text: ShortString::try_new(error.reply_text()).unwrap_or_default(),
                class_id: error.class_id,
                method_id: error.method_id,
            })),
        )
        .await;
        Ok(())
    }
}

fn close_ok() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
}
