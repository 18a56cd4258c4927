//! AMQP 0-9-1 reply codes, as RabbitMQ uses them.

/// A reply code carried by connection.close / channel.close / basic.return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    /// 200: normal close.
    ReplySuccess = 200,
    /// 311: content too large (channel).
    ContentTooLarge = 311,
    /// 312: unroutable message returned (basic.return).
    NoRoute = 312,
    /// 313: no consumers (basic.return for immediate).
    NoConsumers = 313,
    /// 320: the server closed the connection (connection).
    ConnectionForced = 320,
    /// 402: invalid path (connection).
    InvalidPath = 402,
    /// 403: access refused (channel).
    AccessRefused = 403,
    /// 404: not found (channel).
    NotFound = 404,
    /// 405: resource locked (channel).
    ResourceLocked = 405,
    /// 406: precondition failed (channel).
    PreconditionFailed = 406,
    /// 501: frame error (connection).
    FrameError = 501,
    /// 502: syntax error (connection).
    SyntaxError = 502,
    /// 503: command invalid (connection).
    CommandInvalid = 503,
    /// 504: channel error (connection).
    ChannelError = 504,
    /// 505: unexpected frame (connection).
    UnexpectedFrame = 505,
    /// 506: resource error (connection).
    ResourceError = 506,
    /// 530: not allowed (connection).
    NotAllowed = 530,
    /// 540: not implemented (connection).
    NotImplemented = 540,
    /// 541: internal error (connection).
    InternalError = 541,
}

impl ReplyCode {
    /// The code with this number, if AMQP 0-9-1 defines it.
    pub fn from_code(code: u16) -> Option<Self> {
        use ReplyCode::*;
        [
            ReplySuccess,
            ContentTooLarge,
            NoRoute,
            NoConsumers,
            ConnectionForced,
            InvalidPath,
            AccessRefused,
            NotFound,
            ResourceLocked,
            PreconditionFailed,
            FrameError,
            SyntaxError,
            CommandInvalid,
            ChannelError,
            UnexpectedFrame,
            ResourceError,
            NotAllowed,
            NotImplemented,
            InternalError,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The name RabbitMQ puts in front of reply texts, e.g. `NOT_FOUND`.
    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::ReplySuccess => "REPLY_SUCCESS",
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Whether the code closes the whole connection rather than one channel.
    pub fn is_connection_error(self) -> bool {
        matches!(
            self,
            ReplyCode::ConnectionForced
                | ReplyCode::InvalidPath
                | ReplyCode::FrameError
                | ReplyCode::SyntaxError
                | ReplyCode::CommandInvalid
                | ReplyCode::ChannelError
                | ReplyCode::UnexpectedFrame
                | ReplyCode::ResourceError
                | ReplyCode::NotAllowed
                | ReplyCode::NotImplemented
                | ReplyCode::InternalError
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_scopes() {
        assert_eq!(ReplyCode::NotFound.code(), 404);
        assert!(!ReplyCode::PreconditionFailed.is_connection_error());
        assert!(ReplyCode::ChannelError.is_connection_error());
        assert_eq!(ReplyCode::UnexpectedFrame.name(), "UNEXPECTED_FRAME");
    }
}
