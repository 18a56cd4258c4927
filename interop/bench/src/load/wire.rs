//! The hot path's view of the wire: a scanner that walks the complete frames
//! at the start of a read buffer looking only at frame headers and the few
//! method ids it counts (basic.deliver, basic.ack/nack, the closes), and the
//! pre-encoded publish (method + header + body frames) that producers copy
//! into their batches. Pure: no sockets.

use bytes::BytesMut;
use warren_codec::frame::{FRAME_BODY, FRAME_END, FRAME_HEARTBEAT, FRAME_METHOD};
use warren_codec::protocol::{AMQPClass, BasicProperties, basic};
use warren_codec::{ContentHeader, FrameEncoder};

/// Refuse frames announcing more than this (the broker's frame_max is far below).
const MAX_FRAME: usize = 16 << 20;

/// What a scanner has counted so far on one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// basic.deliver frames seen.
    pub delivers: u64,
    /// Delivery tag of the last basic.deliver (only when tags are tracked).
    pub last_tag: u64,
    /// Highest publish sequence number confirmed by basic.ack.
    pub confirmed: u64,
    /// basic.nack frames seen (a publisher confirm refused).
    pub nacks: u64,
    /// Heartbeat frames seen.
    pub heartbeats: u64,
    /// Set by connection.blocked, cleared by connection.unblocked.
    pub blocked: bool,
    /// connection.close-ok seen (the end of a polite close).
    pub close_ok: bool,
    /// connection.close or channel.close from the broker: its reply text.
    pub closed: Option<String>,
}

/// A frame that cannot be scanned: the stream is out of step.
#[derive(Debug, PartialEq, Eq)]
pub struct ScanError(pub String);

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScanError {}

/// Walks frames; keeps what must survive between buffers (which delivery's
/// body to sample).
#[derive(Debug)]
pub struct Scanner {
    track_tags: bool,
    sample_every: u64,
    until_sample: u64,
    sample_body: bool,
}

impl Scanner {
    /// A scanner that reads delivery tags if `track_tags`, and takes the send
    /// time of every `sample_every`th delivery's body (0: none).
    pub fn new(track_tags: bool, sample_every: u64) -> Scanner {
        Scanner {
            track_tags,
            sample_every,
            until_sample: sample_every,
            sample_body: false,
        }
    }

    /// Scans the complete frames at the start of `buf`, counting into `tally`
    /// and pushing sampled send times (the body's first 8 bytes, little
    /// endian) to `stamps`. Returns the bytes consumed; an incomplete frame at
    /// the end is left for the next call, with more bytes behind it.
    pub fn scan(
        &mut self,
        buf: &[u8],
        tally: &mut Tally,
        stamps: &mut Vec<u64>,
    ) -> Result<usize, ScanError> {
        let mut at = 0;
        while let Some(head) = buf.get(at..at + 7) {
            let kind = head[0];
            let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
            if size > MAX_FRAME {
                return Err(ScanError(format!("frame of {size} bytes announced")));
            }
            let end = at + 7 + size;
            let Some(&last) = buf.get(end) else { break };
            if last != FRAME_END {
                return Err(ScanError(format!("frame end {last:#04x}, not 0xCE")));
            }
            let payload = &buf[at + 7..end];
            match kind {
                FRAME_METHOD => self.method(payload, tally)?,
                FRAME_BODY if self.sample_body => {
                    self.sample_body = false;
                    if let Some(stamp) = payload.get(..8) {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(stamp);
                        stamps.push(u64::from_le_bytes(b));
                    }
                }
                FRAME_HEARTBEAT => tally.heartbeats += 1,
                _ => {}
            }
            at = end + 1;
        }
        Ok(at)
    }

    fn method(&mut self, p: &[u8], tally: &mut Tally) -> Result<(), ScanError> {
        let ids = match p {
            [a, b, c, d, ..] => (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])),
            _ => return Err(ScanError("method frame shorter than its ids".into())),
        };
        match ids {
            (60, 60) => {
                tally.delivers += 1;
                if self.track_tags {
                    // consumer-tag (short string), then delivery-tag (u64).
                    let skip = 5 + usize::from(*p.get(4).unwrap_or(&0));
                    let tag = p
                        .get(skip..skip + 8)
                        .ok_or_else(|| ScanError("basic.deliver too short".into()))?;
                    let mut b = [0u8; 8];
                    b.copy_from_slice(tag);
                    tally.last_tag = u64::from_be_bytes(b);
                }
                if self.sample_every > 0 {
                    self.until_sample -= 1;
                    if self.until_sample == 0 {
                        self.until_sample = self.sample_every;
                        self.sample_body = true;
                    }
                }
            }
            (60, 80) => {
                let tag = p
                    .get(4..12)
                    .ok_or_else(|| ScanError("basic.ack too short".into()))?;
                let mut b = [0u8; 8];
                b.copy_from_slice(tag);
                // Acks arrive in order on a channel: an ack, single or
                // multiple, confirms everything up to its tag.
                tally.confirmed = tally.confirmed.max(u64::from_be_bytes(b));
            }
            (60, 120) => tally.nacks += 1,
            (10, 50) | (20, 40) => {
                // reply-code u16, reply-text short string.
                let code = p.get(4..6).map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
                let len = usize::from(*p.get(6).unwrap_or(&0));
                let text = p.get(7..7 + len).unwrap_or(&[]);
                let what = if ids.0 == 10 { "connection" } else { "channel" };
                tally.closed = Some(format!(
                    "{what} closed by the broker: {code} {}",
                    String::from_utf8_lossy(text)
                ));
            }
            (10, 51) => tally.close_ok = true,
            (10, 60) => tally.blocked = true,
            (10, 61) => tally.blocked = false,
            _ => {}
        }
        Ok(())
    }
}

/// Whether a connection's reader goes on reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Read more.
    More,
    /// Done: close-ok, a failure (already reported), or a close that timed out.
    Done,
}

/// A connection's read buffer and what its frames added up to so far.
pub struct Inbox {
    buf: Vec<u8>,
    filled: usize,
    scanner: Scanner,
    /// The counts.
    pub tally: Tally,
    /// Send times sampled by the last [`Inbox::scan`], for the caller to take.
    pub stamps: Vec<u64>,
}

impl Inbox {
    /// A buffer of `capacity` bytes holding `leftover` (what the setup read
    /// past its last reply), scanned with `scanner`.
    pub fn new(leftover: &[u8], capacity: usize, scanner: Scanner) -> Inbox {
        let mut buf = vec![0u8; capacity];
        let filled = leftover.len().min(capacity);
        buf[..filled].copy_from_slice(&leftover[..filled]);
        Inbox {
            buf,
            filled,
            scanner,
            tally: Tally::default(),
            stamps: Vec::new(),
        }
    }

    /// Where the next read goes.
    pub fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// Accounts `n` bytes read into [`Inbox::space`].
    pub fn read(&mut self, n: usize) {
        self.filled += n;
    }

    /// Scans the complete frames read so far into `tally` and `stamps`,
    /// keeping an incomplete one for the next read.
    pub fn scan(&mut self) -> Result<(), ScanError> {
        let used =
            self.scanner
                .scan(&self.buf[..self.filled], &mut self.tally, &mut self.stamps)?;
        self.buf.copy_within(used..self.filled, 0);
        self.filled -= used;
        Ok(())
    }

    /// Whether one frame fills the whole buffer (it can never be scanned).
    pub fn full(&self) -> bool {
        self.filled == self.buf.len()
    }
}

/// connection.close (reply 200, no text), pre-encoded: 0x01, channel 0, size 11,
/// class 10 method 50, code 200, "" , class 0, method 0, frame end.
pub const CONNECTION_CLOSE: [u8; 19] = [
    1, 0, 0, 0, 0, 0, 11, 0, 10, 0, 50, 0, 200, 0, 0, 0, 0, 0, 0xCE,
];

/// One message ready to copy: publish method, content header and body frames,
/// and where in it the 8-byte send time goes.
#[derive(Clone, Debug)]
pub struct Template {
    /// The frames.
    pub bytes: Vec<u8>,
    /// Offset of the body's first byte.
    pub stamp_at: usize,
}

impl Template {
    /// Encodes a publish of a `size`-byte body (at least 8) to `exchange`
    /// with `routing_key` on channel 1.
    pub fn new(
        exchange: &str,
        routing_key: &str,
        size: usize,
        persistent: bool,
        frame_max: u32,
    ) -> anyhow::Result<Template> {
        let size = size.max(8);
        let mut out = BytesMut::new();
        let mut enc = FrameEncoder::new();
        let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory: false,
            immediate: false,
        }));
        enc.method(1, &publish, &mut out)?;
        let mut props = BasicProperties::default();
        if persistent {
            props = props.with_delivery_mode(2);
        }
        let header = ContentHeader::from_properties(size as u64, &props)?;
        let body = vec![0xA5u8; size];
        // The first body frame follows the header frame: 7 octets of frame
        // header, the header payload, the frame end, then the body's 7.
        let stamp_at = out.len() + 7 + header.payload_len() + 1 + 7;
        enc.content(1, &header, &body, frame_max, &mut out);
        let bytes = out.to_vec();
        Ok(Template { bytes, stamp_at })
    }

    /// Appends the message to `out` with send time `stamp`.
    #[inline]
    pub fn put(&self, out: &mut Vec<u8>, stamp: u64) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        let at = start + self.stamp_at;
        out[at..at + 8].copy_from_slice(&stamp.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_codec::protocol::connection;

    /// n deliveries on channel 1 (tags 1..=n, body stamps 100+tag), with a
    /// heartbeat and a basic.ack (confirm of 7, multiple) in the middle.
    fn stream(n: u64) -> Vec<u8> {
        let mut enc = FrameEncoder::new();
        let mut out = BytesMut::new();
        let header =
            ContentHeader::from_properties(16, &BasicProperties::default()).expect("header");
        for tag in 1..=n {
            enc.deliver(1, "ctag-xyz", tag, false, "", "q", &mut out);
            let mut body = [0u8; 16];
            body[..8].copy_from_slice(&(100 + tag).to_le_bytes());
            enc.content(1, &header, &body, 131_072, &mut out);
            if tag == n / 2 {
                enc.heartbeat(&mut out);
                let ack = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: 7,
                    multiple: true,
                }));
                enc.method(1, &ack, &mut out).expect("ack");
            }
        }
        out.to_vec()
    }

    /// Feeds `bytes` in pieces cut at `cuts`, carrying the unscanned tail over
    /// as the consumer's read loop does.
    fn feed(bytes: &[u8], cuts: &[usize], every: u64) -> (Tally, Vec<u64>) {
        let mut scanner = Scanner::new(true, every);
        let (mut tally, mut stamps) = (Tally::default(), Vec::new());
        let mut buf = Vec::new();
        let mut from = 0;
        for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
            buf.extend_from_slice(&bytes[from..cut]);
            from = cut;
            let used = scanner.scan(&buf, &mut tally, &mut stamps).expect("scan");
            buf.drain(..used);
        }
        assert!(buf.is_empty(), "all frames consumed");
        (tally, stamps)
    }

    #[test]
    fn counts_delivers_split_anywhere() {
        let bytes = stream(10);
        let whole = feed(&bytes, &[], 1);
        assert_eq!(whole.0.delivers, 10);
        assert_eq!(whole.0.last_tag, 10);
        assert_eq!(whole.0.heartbeats, 1);
        assert_eq!(whole.0.confirmed, 7);
        assert_eq!(whole.1, (101..=110).collect::<Vec<u64>>());
        for cut in 0..=bytes.len() {
            assert_eq!(feed(&bytes, &[cut], 1), whole, "cut at {cut}");
        }
        let cuts: Vec<usize> = (0..bytes.len()).step_by(3).collect();
        assert_eq!(feed(&bytes, &cuts, 1), whole, "cut every 3 bytes");
    }

    #[test]
    fn samples_every_kth_body() {
        let (tally, stamps) = feed(&stream(20), &[37, 300], 4);
        assert_eq!(tally.delivers, 20);
        assert_eq!(stamps, vec![104, 108, 112, 116, 120]);
    }

    #[test]
    fn close_and_bad_frames() {
        let mut enc = FrameEncoder::new();
        let mut out = BytesMut::new();
        let close = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 320,
            reply_text: "shutdown".into(),
            class_id: 0,
            method_id: 0,
        }));
        enc.method(0, &close, &mut out).expect("close");
        let (tally, _) = feed(&out, &[], 0);
        assert_eq!(
            tally.closed.as_deref(),
            Some("connection closed by the broker: 320 shutdown")
        );
        let mut bad = out.to_vec();
        let last = bad.len() - 1;
        bad[last] = 0;
        let err = Scanner::new(false, 0).scan(&bad, &mut Tally::default(), &mut Vec::new());
        assert!(err.is_err());
    }

    #[test]
    fn connection_close_is_well_formed() {
        use tokio_util::codec::Decoder;
        let mut buf = BytesMut::from(&CONNECTION_CLOSE[..]);
        let frame = warren_codec::FrameDecoder::new(0)
            .decode(&mut buf)
            .expect("decode")
            .expect("a whole frame");
        let close = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            ..Default::default()
        }));
        assert_eq!(frame, warren_codec::Frame::Method(0, close));
        assert!(buf.is_empty());
    }

    #[test]
    fn template_stamps_the_body() {
        let t = Template::new("", "q", 16, true, 131_072).expect("template");
        let mut out = Vec::new();
        t.put(&mut out, 42);
        t.put(&mut out, 43);
        // Read back as a consumer of the broker's frames would: the publish
        // is not a deliver, so count nothing but take the bodies' stamps.
        let mut s = Scanner::new(false, 1);
        s.sample_body = true;
        let mut stamps = Vec::new();
        let used = s
            .scan(&out, &mut Tally::default(), &mut stamps)
            .expect("scan");
        assert_eq!(used, out.len());
        assert_eq!(stamps, vec![42]);
        assert_eq!(out.get(t.stamp_at - 7), Some(&FRAME_BODY));
    }
}
