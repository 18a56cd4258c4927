//! The connection's map of channels by id: hashed with one multiplication.

/// Hashes a channel id with one multiplication: the map is looked up for every frame,
/// its keys are small integers the connection bounds (`channel_max`), so SipHash's
/// protection buys nothing there.
pub type ChannelIds = std::hash::BuildHasherDefault<ChannelIdHasher>;

/// See [`ChannelIds`].
#[derive(Default)]
pub struct ChannelIdHasher(u64);

impl std::hash::Hasher for ChannelIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u16(&mut self, id: u16) {
        // Fibonacci hashing: the high bits (hashbrown's tags) vary with every id.
        self.0 = u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
