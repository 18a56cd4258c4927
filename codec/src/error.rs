//! What can go wrong while decoding or encoding frames.

use crate::reply::ReplyCode;

/// A decoding or encoding failure. Every decoding failure is a connection error.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The first octet of a frame is not 1, 2, 3 or 8 (or a heartbeat carries a payload).
    #[error("unknown frame type {frame_type} on channel {channel}")]
    UnknownFrameType {
        /// The frame type octet received.
        frame_type: u8,
        /// The channel the frame named.
        channel: u16,
        /// The frame's payload.
        payload: bytes::Bytes,
    },
    /// The octet after the payload is not 0xCE.
    #[error("invalid frame end marker {found:#04x} on channel {channel} (frame type {frame_type})")]
    BadFrameEnd {
        /// The frame type octet.
        frame_type: u8,
        /// The channel the frame named.
        channel: u16,
        /// The octet found where 0xCE belongs.
        found: u8,
        /// The frame's payload.
        payload: bytes::Bytes,
    },
    /// The payload is larger than the negotiated frame_max allows.
    #[error("frame size {size} > max frame payload size {max}")]
    FrameTooLarge {
        /// The frame type octet.
        frame_type: u8,
        /// The channel the frame named.
        channel: u16,
        /// The payload size the frame header announced.
        size: u32,
        /// The largest payload allowed (frame_max minus the 8 octets of framing).
        max: u32,
    },
    /// A method frame names a class/method pair that AMQP 0-9-1 does not have.
    #[error("unknown method: class {class_id}, method {method_id}")]
    UnknownMethod {
        /// The class id received.
        class_id: u16,
        /// The method id received.
        method_id: u16,
    },
    /// A known method whose arguments do not decode (truncated, trailing bytes, ...).
    #[error("cannot decode arguments of method {class_id}.{method_id} on channel {channel}")]
    MalformedMethod {
        /// The channel the frame came on.
        channel: u16,
        /// The class id received.
        class_id: u16,
        /// The method id received.
        method_id: u16,
        /// The method's arguments as received.
        arguments: bytes::Bytes,
    },
    /// basic.qos with a prefetch-size: RabbitMQ does not implement it (540).
    /// amq-protocol's `Qos` has no field for it, so the decoder checks it here.
    #[error("prefetch_size!=0 ({prefetch_size})")]
    PrefetchSize {
        /// The channel the frame came on.
        channel: u16,
        /// The prefetch-size received.
        prefetch_size: u32,
    },
    /// A content header frame that does not decode.
    #[error("cannot decode content header on channel {channel}")]
    MalformedHeader {
        /// The channel the frame came on.
        channel: u16,
    },
    /// A value could not be serialised (e.g. a short string over 255 octets).
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The underlying transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl CodecError {
    /// Whether frame boundaries are lost: nothing after this can be decoded. An
    /// unknown frame type was still read whole, so RabbitMQ (and Warren) keep
    /// reading for the close-ok after it.
    pub fn breaks_framing(&self) -> bool {
        matches!(
            self,
            CodecError::BadFrameEnd { .. } | CodecError::FrameTooLarge { .. }
        )
    }

    /// The reply code RabbitMQ closes the connection with for this failure.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            CodecError::UnknownMethod { .. } | CodecError::PrefetchSize { .. } => {
                ReplyCode::NotImplemented
            }
            CodecError::Encode(_) | CodecError::Io(_) => ReplyCode::InternalError,
            _ => ReplyCode::FrameError,
        }
    }
}
