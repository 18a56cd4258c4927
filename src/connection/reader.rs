//! Reading frames from a socket: a read buffer and the incremental decoder.

use std::collections::VecDeque;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio_util::codec::Decoder;
use warren_codec::{CodecError, Frame, FrameDecoder, Whole, WholeMessage};

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection (or it broke).
    #[error("connection closed by peer")]
    Closed,
    /// The bytes do not form a valid frame.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// A socket's read half with its buffer and decoder: a plain TCP read half by
/// default, or any other byte stream (a TLS stream's read half).
#[derive(Debug)]
pub struct FrameReader<R = OwnedReadHalf> {
    socket: R,
    buf: BytesMut,
    decoder: FrameDecoder,
    /// Frames cut with a whole message whose parts did not decode as one
    /// (`Whole::Frames`): handed out before anything else in the buffer.
    cut: VecDeque<Result<Frame, CodecError>>,
}

/// What the connection's loop takes next: a frame, or a whole small message.
#[derive(Debug)]
pub enum Next {
    /// One frame.
    Frame(Frame),
    /// basic.publish, its header and its one body frame, taken together.
    Message(WholeMessage),
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps a read half; `buf` holds bytes already read past the protocol header.
    pub fn new(socket: R, buf: BytesMut, frame_max: u32) -> Self {
        FrameReader {
            socket,
            buf,
            decoder: FrameDecoder::new(frame_max),
            cut: VecDeque::new(),
        }
    }

    /// Enforces a newly negotiated frame_max.
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.decoder.set_frame_max(frame_max);
    }

    /// A frame already in the buffer, without reading.
    pub fn buffered(&mut self) -> Result<Option<Frame>, ReadError> {
        if let Some(frame) = self.cut.pop_front() {
            return Ok(Some(frame?));
        }
        Ok(self.decoder.decode(&mut self.buf)?)
    }

    /// A whole message or a frame already in the buffer, without reading: the
    /// open connection's way (the handshake and a closing connection take frames).
    pub fn buffered_next(&mut self) -> Result<Option<Next>, ReadError> {
        if self.cut.is_empty() {
            match self.decoder.decode_whole(&mut self.buf) {
                Some(Whole::Message(message)) => return Ok(Some(Next::Message(message))),
                Some(Whole::Frames(frames)) => self.cut.extend(frames),
                None => {}
            }
        }
        Ok(self.buffered()?.map(Next::Frame))
    }

    /// Reads more bytes into the buffer. Cancel-safe: nothing read is lost if the
    /// future is dropped.
    pub async fn fill(&mut self) -> Result<(), ReadError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        match self.socket.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => Err(ReadError::Closed),
            Ok(_) => Ok(()),
        }
    }

    /// The next frame, reading as needed, basic.publish as a method frame
    /// ([`Frame::into_general`]). Cancel-safe.
    pub async fn next(&mut self) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = self.buffered()? {
                // Its callers (handshake, closing) match publishes as methods.
                return Ok(frame.into_general());
            }
            self.fill().await?;
        }
    }
}
