//! warren-codec: AMQP 0-9-1 frames <-> bytes. Pure: no sockets, no tasks.
//!
//! # Layout
//!
//! - [`frame`]: the frame grammar, the incremental [`frame::FrameDecoder`] over a
//!   `BytesMut`, and [`frame::FrameEncoder`] that appends frames to a write buffer.
//! - [`method`]: method frames' payloads, decoded and encoded with `amq-protocol`'s
//!   generated code for every class of 0-9-1 plus RabbitMQ's extensions; unknown
//!   class/method ids are told apart from malformed arguments.
//! - [`content`]: content headers. Properties are kept as the raw bytes the publisher
//!   sent (passed through byte-exact to consumers) and parsed once for the broker.
//! - [`properties`]: parsed properties, shared rather than boxed for the
//!   common shapes (none, delivery-mode alone).
//! - [`publish`]: basic.publish with its exchange and routing key as slices of
//!   the frame ([`ShortStr`]), decoded without the generic parser.
//! - `nesting`: refuses field tables nested deeper than [`MAX_NESTING_DEPTH`] before
//!   the recursive parser sees them (a deep table would overflow the stack).
//! - [`whole`]: basic.publish, its header and its one body frame taken from the
//!   buffer at once, the common shape of a small message.
//! - [`reply`]: AMQP reply codes.
//! - [`error`]: what can go wrong while decoding.
//!
//! # Frame grammar
//!
//! ```text
//! frame    = type:u8 channel:u16 size:u32 payload:size*u8 0xCE
//! type     = 1 method | 2 header | 3 body | 8 heartbeat
//! method   = class-id:u16 method-id:u16 arguments
//! header   = class-id:u16 weight:u16 body-size:u64 property-flags:u16.. properties
//! ```
//!
//! Before the first frame a client sends the 8-byte protocol header
//! `AMQP\x00\x00\x09\x01`; see [`frame::PROTOCOL_HEADER`].

pub mod content;
pub mod error;
pub mod frame;
pub mod method;
mod nesting;
pub mod properties;
pub mod publish;
pub mod reply;
pub mod shared;
pub mod table;
pub mod whole;

pub use amq_protocol::protocol;
pub use amq_protocol_types as types;
pub use content::ContentHeader;
pub use error::CodecError;
pub use frame::{Frame, FrameDecoder, FrameEncoder};
pub use nesting::MAX_NESTING_DEPTH;
pub use properties::Properties;
pub use publish::{Publish, ShortStr};
pub use reply::ReplyCode;
pub use shared::SharedDelivery;
pub use table::{decode_table, encode_table};
pub use whole::{Whole, WholeMessage};
