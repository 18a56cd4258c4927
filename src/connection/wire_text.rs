//! Reply texts for errors found on the wire, worded as RabbitMQ's reader words them
//! (`FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,5000,4088}`), with
//! payloads printed the way Erlang prints binaries.

use std::fmt::Write;

use warren_codec::protocol::{AMQPClass, basic};
use warren_codec::{CodecError, Frame};

use crate::error::AmqpError;

/// The connection error for a frame that could not be decoded.
pub fn codec_error(error: CodecError) -> AmqpError {
    match error {
        CodecError::UnknownFrameType {
            frame_type,
            payload,
            ..
        } => AmqpError::frame_error(format!(
            "type {frame_type}, {}: unknown_frame",
            snippet(&payload)
        )),
        CodecError::BadFrameEnd {
            frame_type,
            found,
            payload,
            ..
        } => AmqpError::frame_error(format!(
            "type {frame_type}, {}: {{invalid_frame_end_marker,{found}}}",
            snippet(&payload)
        )),
        CodecError::FrameTooLarge {
            frame_type,
            size,
            max,
            ..
        } => AmqpError::frame_error(format!(
            "type {frame_type}, all octets = <<>>: {{frame_too_large,{size},{max}}}"
        )),
        CodecError::UnknownMethod {
            class_id,
            method_id,
        } => AmqpError::not_implemented(format!(
            "unknown method: class {class_id}, method {method_id}"
        ))
        .on_method(class_id, method_id),
        CodecError::MalformedMethod {
            class_id,
            method_id,
            arguments,
            ..
        } => AmqpError::frame_error(format!("cannot decode {}", erlang_w(&arguments)))
            .on_method(class_id, method_id),
        CodecError::PrefetchSize { prefetch_size, .. } => {
            AmqpError::not_implemented(format!("prefetch_size!=0 ({prefetch_size})"))
                .on_method(60, 10)
        }
        CodecError::MalformedHeader { .. } => {
            AmqpError::frame_error("cannot decode content header").on_method(60, 40)
        }
        CodecError::Encode(_) | CodecError::Io(_) => AmqpError::internal_error(error.to_string()),
    }
}

/// The connection error for an undecodable frame after tune-ok and before
/// connection.open. RabbitMQ's reader does not look into frames on a channel other
/// than 0 in that state: whatever they hold, they are 505 UNEXPECTED_FRAME with
/// their raw octets. On channel 0, and for errors in the framing itself (bad frame
/// end, oversized frame), the error is the one a running connection gets.
pub fn codec_error_before_open(error: CodecError) -> AmqpError {
    match error {
        CodecError::UnknownFrameType {
            frame_type,
            channel,
            payload,
        } if channel != 0 => unexpected_payload(frame_type, &payload),
        CodecError::MalformedMethod {
            channel,
            class_id,
            method_id,
            arguments,
        } if channel != 0 => {
            let mut payload = Vec::with_capacity(4 + arguments.len());
            if (class_id, method_id) != (0, 0) {
                payload.extend_from_slice(&class_id.to_be_bytes());
                payload.extend_from_slice(&method_id.to_be_bytes());
            }
            payload.extend_from_slice(&arguments);
            unexpected_payload(1, &payload)
        }
        other => codec_error(other),
    }
}

fn unexpected_payload(frame_type: u8, payload: &[u8]) -> AmqpError {
    AmqpError::unexpected_frame(format!("type {frame_type}, {}", snippet(payload)))
}

/// 505 for a frame that is well formed but not allowed where it came: content
/// frames on channel 0, heartbeats on a channel.
pub fn unexpected_frame(frame: &Frame) -> AmqpError {
    // The frame was decoded already; its payload is rebuilt for the message.
    let (frame_type, payload): (u8, Vec<u8>) = match frame {
        Frame::Method(_, method) => (
            1,
            warren_codec::method::encode(method, Vec::new()).unwrap_or_default(),
        ),
        Frame::Publish(_, publish) => {
            let method =
                AMQPClass::Basic(basic::AMQPMethod::Publish(publish.clone().into_method()));
            (
                1,
                warren_codec::method::encode(&method, Vec::new()).unwrap_or_default(),
            )
        }
        Frame::Header(_, header, _) => {
            let mut payload = Vec::with_capacity(header.payload_len());
            payload.extend_from_slice(&header.class_id.to_be_bytes());
            payload.extend_from_slice(&[0, 0]);
            payload.extend_from_slice(&header.body_size.to_be_bytes());
            payload.extend_from_slice(&header.raw_properties);
            (2, payload)
        }
        Frame::Body(_, body) => (3, body.to_vec()),
        Frame::Heartbeat(_) => (8, Vec::new()),
    };
    unexpected_payload(frame_type, &payload)
}

/// `all octets = <<...>>` for up to 16 octets, `first 16 octets = <<...>>` beyond.
fn snippet(payload: &[u8]) -> String {
    if payload.len() <= 16 {
        format!("all octets = {}", erlang_p(payload))
    } else {
        format!("first 16 octets = {}", erlang_p(&payload[..16]))
    }
}

/// Erlang's `~w` of a binary: `<<1,2,3>>`.
fn erlang_w(bytes: &[u8]) -> String {
    let mut out = String::from("<<");
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{b}");
    }
    out.push_str(">>");
    out
}

/// Erlang's `~p` of a binary: quoted text when printable, numbers otherwise.
fn erlang_p(bytes: &[u8]) -> String {
    let printable = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| (32..127).contains(b) || matches!(b, b'\n' | b'\r' | b'\t'));
    if !printable {
        return erlang_w(bytes);
    }
    let mut out = String::from("<<\"");
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => out.push(char::from(b)),
        }
    }
    out.push_str("\">>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_binaries() {
        assert_eq!(erlang_w(&[]), "<<>>");
        assert_eq!(erlang_w(&[0, 10, 255]), "<<0,10,255>>");
        assert_eq!(erlang_p(b"ab\"c"), "<<\"ab\\\"c\">>");
        assert_eq!(erlang_p(&[1, 2]), "<<1,2>>");
        assert_eq!(
            snippet(&[7; 20]),
            format!("first 16 octets = {}", erlang_w(&[7; 16]))
        );
    }

    #[test]
    fn channel_frames_before_open_are_unexpected_whatever_they_hold() {
        let e = codec_error_before_open(CodecError::UnknownFrameType {
            frame_type: 9,
            channel: 1,
            payload: bytes::Bytes::from_static(b"abc"),
        });
        assert_eq!(
            e.reply_text(),
            "UNEXPECTED_FRAME - type 9, all octets = <<\"abc\">>"
        );
        let e = codec_error_before_open(CodecError::MalformedMethod {
            channel: 1,
            class_id: 60,
            method_id: 10,
            arguments: bytes::Bytes::new(),
        });
        assert_eq!(
            e.reply_text(),
            "UNEXPECTED_FRAME - type 1, all octets = <<0,60,0,10>>"
        );
        let e = codec_error_before_open(CodecError::UnknownFrameType {
            frame_type: 9,
            channel: 0,
            payload: bytes::Bytes::from_static(b"abc"),
        });
        assert_eq!(
            e.reply_text(),
            "FRAME_ERROR - type 9, all octets = <<\"abc\">>: unknown_frame"
        );
    }

    #[test]
    fn frame_too_large_text() {
        let e = codec_error(CodecError::FrameTooLarge {
            frame_type: 1,
            channel: 0,
            size: 5000,
            max: 4088,
        });
        assert_eq!(
            e.reply_text(),
            "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,5000,4088}"
        );
    }
}
