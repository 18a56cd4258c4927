//! Content assembly: basic.publish, then a content header, then body frames until
//! the announced body size is reached. The order rules and reply texts are
//! RabbitMQ's (rabbit_command_assembler): any other frame in between is 505
//! UNEXPECTED_FRAME, a connection error.

use bytes::{Bytes, BytesMut};
use warren_codec::content::BASIC_CLASS_ID;
use warren_codec::{ContentHeader, Properties, Publish};

use crate::error::AmqpError;

/// A fully assembled published message.
#[derive(Debug)]
pub struct Publication {
    /// The basic.publish that opened it.
    pub publish: Publish,
    /// The header as received (properties in wire form).
    pub header: ContentHeader,
    /// The properties, parsed once.
    pub properties: Properties,
    /// The body: one `Bytes`, a slice of the read buffer when it came in one frame.
    pub body: Bytes,
}

/// Where a channel is in the publish / header / body sequence, with the parts
/// gathered so far kept in place: moving the whole (about 170 bytes) in and
/// out at each frame cost a `memcpy` call per frame (issue 19, step 5).
#[derive(Debug, Default)]
pub struct Assembly {
    stage: Stage,
    /// The basic.publish that opened the message.
    publish: Publish,
    /// The content header, once seen.
    header: ContentHeader,
    /// Its parsed properties.
    properties: Properties,
    /// Body octets still to come.
    remaining: u64,
    /// Body frames received so far (none when the body comes in one frame).
    chunks: Vec<Bytes>,
}

/// What the next frame of a message must be.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Expecting a method frame.
    #[default]
    Idle,
    /// basic.publish seen; expecting its content header.
    Header,
    /// Header seen; expecting body frames.
    Body,
}

impl Assembly {
    /// Between messages: a method frame may come.
    pub fn is_idle(&self) -> bool {
        self.stage == Stage::Idle
    }

    /// basic.publish arrived (on an idle channel): its header comes next.
    pub fn begin(&mut self, publish: Publish) {
        self.publish = publish;
        self.stage = Stage::Header;
    }

    /// A method frame arrived: only valid when idle.
    pub fn check_method(&self) -> Result<(), AmqpError> {
        match self.stage {
            Stage::Idle => Ok(()),
            Stage::Header => Err(expecting_header()),
            Stage::Body => Err(expecting_body()),
        }
    }

    /// A content header arrived. Returns the message if its body is empty.
    pub fn header(
        &mut self,
        header: ContentHeader,
        properties: Properties,
    ) -> Result<Option<Publication>, AmqpError> {
        match self.stage {
            Stage::Header => {}
            Stage::Idle => return Err(expecting_method()),
            Stage::Body => return Err(expecting_body()),
        }
        // RabbitMQ's assembler only recognises headers with weight 0.
        if header.weight != 0 {
            self.reset();
            return Err(expecting_header());
        }
        if header.class_id != BASIC_CLASS_ID {
            self.reset();
            return Err(AmqpError::unexpected_frame(format!(
                "expected content header for class {BASIC_CLASS_ID}, got one for class {} instead",
                header.class_id
            ))
            .on_method(60, 40));
        }
        if header.body_size == 0 {
            self.stage = Stage::Idle;
            return Ok(Some(Publication {
                publish: std::mem::take(&mut self.publish),
                header,
                properties,
                body: Bytes::new(),
            }));
        }
        self.remaining = header.body_size;
        self.header = header;
        self.properties = properties;
        self.stage = Stage::Body;
        Ok(None)
    }

    /// A body frame arrived. Returns the message when its last octet is in.
    pub fn body(&mut self, fragment: Bytes) -> Result<Option<Publication>, AmqpError> {
        match self.stage {
            Stage::Body => {}
            Stage::Idle => return Err(expecting_method()),
            Stage::Header => return Err(expecting_header()),
        }
        let len = fragment.len() as u64;
        // RabbitMQ keeps waiting for more body after an over-long frame and
        // fails with this 505 at the next frame; we fail at once.
        if len > self.remaining {
            return Err(expecting_body());
        }
        self.remaining -= len;
        if self.remaining > 0 {
            if !fragment.is_empty() {
                self.chunks.push(fragment);
            }
            return Ok(None);
        }
        // A body in one frame (the usual case) needs no list of chunks.
        let body = if self.chunks.is_empty() {
            fragment
        } else {
            if !fragment.is_empty() {
                self.chunks.push(fragment);
            }
            join(std::mem::take(&mut self.chunks))
        };
        self.stage = Stage::Idle;
        Ok(Some(Publication {
            publish: std::mem::take(&mut self.publish),
            header: std::mem::take(&mut self.header),
            properties: std::mem::take(&mut self.properties),
            body,
        }))
    }

    /// Back to idle, dropping what was gathered.
    fn reset(&mut self) {
        *self = Assembly::default();
    }
}

/// One frame's body is kept as it is (no copy); several are joined once.
fn join(mut chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let total = chunks.iter().map(Bytes::len).sum();
    let mut body = BytesMut::with_capacity(total);
    for chunk in chunks {
        body.extend_from_slice(&chunk);
    }
    body.freeze()
}

/// RabbitMQ's default (and largest default) max_message_size: 128 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

/// The 406 for a message over max_message_size, worded as rabbit_channel's
/// check_msg_size words it: "max size" when the limit is the default,
/// "configured max size" when it was changed.
pub fn message_too_large(size: u64, max: u64) -> AmqpError {
    let limit = if max == DEFAULT_MAX_MESSAGE_SIZE {
        "max size"
    } else {
        "configured max size"
    };
    AmqpError::precondition_failed(format!("message size {size} is larger than {limit} {max}"))
        .on_method(60, 40)
}

/// The 505 for a content frame where a method belongs.
pub fn expecting_method() -> AmqpError {
    AmqpError::unexpected_frame("expected method frame, got non method frame instead")
}

fn expecting_header() -> AmqpError {
    AmqpError::unexpected_frame(format!(
        "expected content header for class {BASIC_CLASS_ID}, got non content header frame instead"
    ))
    .on_method(60, 40)
}

fn expecting_body() -> AmqpError {
    AmqpError::unexpected_frame("expected content body, got non content body frame instead")
        .on_method(60, 40)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_codec::ReplyCode;

    fn expecting_header_of(publish: Publish) -> Assembly {
        let mut a = Assembly::default();
        a.begin(publish);
        a
    }

    fn publish() -> Publish {
        Publish {
            routing_key: "q".into(),
            ..Publish::default()
        }
    }

    fn header(size: u64) -> ContentHeader {
        ContentHeader::from_properties(size, &Default::default()).expect("header")
    }

    #[test]
    fn assembles_multi_frame_bodies() {
        let mut a = expecting_header_of(publish());
        assert!(
            a.header(header(6), Properties::default())
                .expect("header")
                .is_none()
        );
        assert!(a.body(Bytes::from_static(b"abc")).expect("body").is_none());
        let done = a
            .body(Bytes::from_static(b"def"))
            .expect("body")
            .expect("complete");
        assert_eq!(&done.body[..], b"abcdef");
        assert!(a.is_idle());
    }

    #[test]
    fn empty_body_completes_at_header() {
        let mut a = expecting_header_of(publish());
        let done = a.header(header(0), Properties::default()).expect("header");
        assert!(done.is_some_and(|p| p.body.is_empty()));
    }

    #[test]
    fn out_of_order_frames_are_unexpected() {
        let mut a = Assembly::default();
        let e = a.body(Bytes::from_static(b"x")).expect_err("body first");
        assert_eq!(e.code, ReplyCode::UnexpectedFrame);
        let e = a
            .header(header(1), Properties::default())
            .expect_err("header first");
        assert_eq!(e.code, ReplyCode::UnexpectedFrame);
        let a = expecting_header_of(publish());
        assert_eq!(
            a.check_method().expect_err("method").code,
            ReplyCode::UnexpectedFrame
        );
        let mut a = expecting_header_of(publish());
        let e = a.body(Bytes::from_static(b"x")).expect_err("no header");
        assert_eq!(e.code, ReplyCode::UnexpectedFrame);
    }

    #[test]
    fn message_size_errors_name_the_limit_as_rabbitmq_does() {
        let e = message_too_large(200, 100);
        assert_eq!(
            e.reply_text(),
            "PRECONDITION_FAILED - message size 200 is larger than configured max size 100"
        );
        assert_eq!((e.class_id, e.method_id), (60, 40));
        assert_eq!(
            message_too_large(134_217_729, DEFAULT_MAX_MESSAGE_SIZE).reply_text(),
            "PRECONDITION_FAILED - message size 134217729 is larger than max size 134217728"
        );
    }

    #[test]
    fn body_longer_than_announced_is_refused() {
        let mut a = expecting_header_of(publish());
        a.header(header(2), Properties::default()).expect("header");
        assert!(a.body(Bytes::from_static(b"abc")).is_err());
    }
}
