//! AMQP errors: a reply code, RabbitMQ's reply text and the method that caused it.
//!
//! Every channel or connection exception the broker raises is built here, so reply
//! texts read the way RabbitMQ's do (`NOT_FOUND - no queue 'q' in vhost '/'`).

use warren_codec::ReplyCode;

/// An AMQP exception: closes a channel or, for connection-level codes, the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} - {text}", code.name())]
pub struct AmqpError {
    /// The reply code.
    pub code: ReplyCode,
    /// The explanation, without the code name in front.
    pub text: String,
    /// Class of the method that failed (0 when no method is to blame).
    pub class_id: u16,
    /// Method id of the method that failed (0 when no method is to blame).
    pub method_id: u16,
}

impl AmqpError {
    /// An error not tied to a method.
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Self {
        AmqpError {
            code,
            text: text.into(),
            class_id: 0,
            method_id: 0,
        }
    }

    /// Names the method that caused the error.
    pub fn on_method(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// Whether this error closes the connection rather than one channel.
    pub fn is_connection_error(&self) -> bool {
        self.code.is_connection_error()
    }

    /// The reply text as sent: `CODE_NAME - explanation`, cut to fit a short string.
    pub fn reply_text(&self) -> String {
        truncate_short(format!("{} - {}", self.code.name(), self.text))
    }

    /// 501 FRAME_ERROR.
    pub fn frame_error(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::FrameError, text)
    }

    /// 503 COMMAND_INVALID.
    pub fn command_invalid(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::CommandInvalid, text)
    }

    /// 504 CHANNEL_ERROR.
    pub fn channel_error(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::ChannelError, text)
    }

    /// 505 UNEXPECTED_FRAME.
    pub fn unexpected_frame(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::UnexpectedFrame, text)
    }

    /// 530 NOT_ALLOWED.
    pub fn not_allowed(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotAllowed, text)
    }

    /// 540 NOT_IMPLEMENTED.
    pub fn not_implemented(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotImplemented, text)
    }

    /// 403 ACCESS_REFUSED.
    pub fn access_refused(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::AccessRefused, text)
    }

    /// 406 PRECONDITION_FAILED.
    pub fn precondition_failed(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::PreconditionFailed, text)
    }

    /// 404 NOT_FOUND.
    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::NotFound, text)
    }

    /// 405 RESOURCE_LOCKED.
    pub fn resource_locked(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::ResourceLocked, text)
    }

    /// 320 CONNECTION_FORCED.
    pub fn connection_forced(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::ConnectionForced, text)
    }

    /// 320 CONNECTION_FORCED as RabbitMQ words it when the broker stops.
    pub fn shutdown() -> Self {
        Self::connection_forced("broker forced connection closure with reason 'shutdown'")
    }

    /// 541 INTERNAL_ERROR.
    pub fn internal_error(text: impl Into<String>) -> Self {
        Self::new(ReplyCode::InternalError, text)
    }
}

/// Cuts a string to fit a short string (255 bytes) the way RabbitMQ does: the
/// first 252 bytes and `...`.
pub fn truncate_short(mut s: String) -> String {
    if s.len() > 255 {
        let mut end = 252;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_text_has_rabbitmq_shape_and_fits_a_short_string() {
        let e = AmqpError::channel_error("expected 'channel.open'").on_method(50, 10);
        assert_eq!(e.reply_text(), "CHANNEL_ERROR - expected 'channel.open'");
        assert!(e.is_connection_error());
        let long = AmqpError::precondition_failed("é".repeat(300));
        assert!(long.reply_text().len() <= 255);
        assert!(long.reply_text().ends_with("..."));
        assert!(!long.is_connection_error());
    }
}
