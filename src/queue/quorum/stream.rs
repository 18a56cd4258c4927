//! postcard to and from a stream: a quorum queue's snapshot is encoded straight into the
//! snapshot's file and decoded straight from it, so it is never in memory whole.
//!
//! postcard's own `from_io` needs one buffer large enough for everything decoded; this
//! reader keeps only the item at hand (a string, a body), reusing its buffer. Borrowed
//! strings and byte slices cannot be decoded from it (every type here owns its data).

use std::io::{self, Read, Write};

use postcard::de_flavors::Flavor;

/// Reads through `inner`, keeping the first I/O error (postcard's errors carry none).
pub struct Recorded<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R> Recorded<R> {
    /// Over `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, error: None }
    }

    /// The error to report for postcard's `e`: the I/O error under it, if there was one.
    pub fn error(&mut self, e: postcard::Error) -> io::Error {
        match self.error.take() {
            Some(error) => error,
            None => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        }
    }
}

impl<R: Read> Read for Recorded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            self.error
                .get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }
}

impl<W: Write> Write for Recorded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            self.error
                .get_or_insert_with(|| io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A postcard flavor over a reader, holding one item's bytes at a time.
pub struct ReadFlavor<R> {
    reader: R,
    item: Vec<u8>,
}

impl<R: Read> ReadFlavor<R> {
    /// Decodes from `reader` (buffer it: postcard reads varints byte by byte).
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            item: Vec::new(),
        }
    }
}

impl<'de, R: Read + 'de> Flavor<'de> for ReadFlavor<R> {
    type Remainder = R;
    type Source = R;

    fn pop(&mut self) -> postcard::Result<u8> {
        let mut byte = [0u8; 1];
        self.reader
            .read_exact(&mut byte)
            .map_err(|_| postcard::Error::DeserializeUnexpectedEnd)?;
        Ok(byte[0])
    }

    fn try_take_n(&mut self, _ct: usize) -> postcard::Result<&'de [u8]> {
        // Would borrow from the stream for 'de: owned types only.
        Err(postcard::Error::DeserializeBadEncoding)
    }

    fn try_take_n_temp<'a>(&'a mut self, ct: usize) -> postcard::Result<&'a [u8]>
    where
        'de: 'a,
    {
        self.item.clear();
        // `take` first: a damaged length must not allocate before the bytes are there.
        let read = (&mut self.reader)
            .take(ct as u64)
            .read_to_end(&mut self.item)
            .map_err(|_| postcard::Error::DeserializeUnexpectedEnd)?;
        if read != ct {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        let item = self.item.as_slice();
        Ok(item)
    }

    fn finalize(self) -> postcard::Result<R> {
        Ok(self.reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Item {
        name: String,
        body: bytes::Bytes,
        n: u64,
        list: Vec<(u32, String)>,
    }

    #[test]
    fn owned_values_decode_from_a_reader_as_from_bytes() {
        let item = Item {
            name: "queue".into(),
            body: bytes::Bytes::from(vec![7u8; 100_000]),
            n: 1 << 40,
            list: vec![(1, "a".into()), (2, "bc".into())],
        };
        let bytes = postcard::to_stdvec(&item).expect("encode");
        let mut decoder = postcard::Deserializer::from_flavor(ReadFlavor::new(bytes.as_slice()));
        let back = Item::deserialize(&mut decoder).expect("decode");
        assert_eq!(back, item);
        let short = &bytes[..bytes.len() - 1];
        let mut decoder = postcard::Deserializer::from_flavor(ReadFlavor::new(short));
        assert!(Item::deserialize(&mut decoder).is_err());
    }
}
