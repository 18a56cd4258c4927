//! A guard against field tables nested deeper than the parser's stack can take.
//!
//! `amq-protocol` parses field tables and arrays recursively, at several KiB of stack
//! per level in debug builds and hundreds of bytes in release. An empty array nested in
//! an array costs 5 octets on the wire, so one frame well under the pre-tune
//! `frame_max` (a connection.start-ok, before authentication) could overflow a task's
//! stack, which aborts the whole process. Before a payload reaches that parser, the
//! tables in it are walked here without recursion and refused past
//! [`MAX_NESTING_DEPTH`].
//!
//! The walk follows the same grammar in the same order as the parser and gives up
//! (leaving the verdict to the parser) wherever the parser would stop, so it refuses
//! nothing the parser accepts except for depth.

/// The deepest nesting of field tables and arrays accepted in one table, counting the
/// table itself as 1. Real clients nest a handful of levels (`x-death` is 3).
pub const MAX_NESTING_DEPTH: usize = 64;

/// A field before the table in a method's arguments.
#[derive(Clone, Copy)]
enum Skip {
    /// An octet (also a bit group of up to 8 bits).
    U8,
    /// Two octets.
    U16,
    /// A short string.
    ShortStr,
}

/// The fields before the field table of the methods that carry one.
fn fields_before_table(class_id: u16, method_id: u16) -> Option<&'static [Skip]> {
    use Skip::{ShortStr as S, U8, U16};
    Some(match (class_id, method_id) {
        (10, 10) => &[U8, U8],                      // connection.start
        (10, 11) => &[],                            // connection.start-ok
        (40, 10) => &[U16, S, S, U8],               // exchange.declare
        (40, 30) | (40, 40) => &[U16, S, S, S, U8], // exchange.bind / unbind
        (50, 10) => &[U16, S, U8],                  // queue.declare
        (50, 20) => &[U16, S, S, S, U8],            // queue.bind
        (50, 50) => &[U16, S, S, S],                // queue.unbind
        (60, 20) => &[U16, S, S, U8],               // basic.consume
        _ => return None,
    })
}

/// Whether the field table in a method's arguments (the payload after the ids) is
/// within [`MAX_NESTING_DEPTH`]. Methods without a table always are.
pub(crate) fn method_within_limit(class_id: u16, method_id: u16, arguments: &[u8]) -> bool {
    let Some(fields) = fields_before_table(class_id, method_id) else {
        return true;
    };
    let mut pos = 0;
    for field in fields {
        let len = match field {
            Skip::U8 => 1,
            Skip::U16 => 2,
            Skip::ShortStr => match arguments.get(pos) {
                Some(&len) => 1 + usize::from(len),
                None => return true,
            },
        };
        pos += len;
    }
    match arguments.get(pos..) {
        Some(table) => table_within_limit(table),
        None => true,
    }
}

/// Whether the headers table in a property list (flags first) is within
/// [`MAX_NESTING_DEPTH`].
pub(crate) fn properties_within_limit(raw: &[u8]) -> bool {
    let [f0, f1, ..] = raw else {
        return true;
    };
    let flags = u16::from_be_bytes([*f0, *f1]);
    let mut pos = 2;
    // content-type and content-encoding come before the headers
    for bit in [15, 14] {
        if flags & (1 << bit) != 0 {
            match raw.get(pos) {
                Some(&len) => pos += 1 + usize::from(len),
                None => return true,
            }
        }
    }
    if flags & (1 << 13) == 0 {
        return true;
    }
    match raw.get(pos..) {
        Some(table) => table_within_limit(table),
        None => true,
    }
}

/// Walks a field table (length first) with an explicit stack.
pub(crate) fn table_within_limit(bytes: &[u8]) -> bool {
    let read_len = |pos: usize| -> Option<usize> {
        let b = bytes.get(pos..pos.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(len) = read_len(0) else {
        return true;
    };
    let Some(end) = len.checked_add(4).filter(|end| *end <= bytes.len()) else {
        return true;
    };
    // (end of the container, whether it is a table: its entries have keys)
    let mut stack: Vec<(usize, bool)> = vec![(end, true)];
    let mut pos = 4;
    while let Some(&(end, is_table)) = stack.last() {
        if pos == end {
            stack.pop();
            continue;
        }
        if is_table {
            match bytes.get(pos) {
                Some(&key_len) => pos += 1 + usize::from(key_len),
                None => return true,
            }
        }
        if pos >= end {
            return true;
        }
        let value_type = bytes[pos];
        pos += 1;
        let size = match value_type {
            b'V' => 0,
            b't' | b'b' | b'B' => 1,
            b's' | b'U' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'D' => 5,
            b'l' | b'L' | b'd' | b'T' => 8,
            b'S' | b'x' => match read_len(pos) {
                Some(len) => 4 + len,
                None => return true,
            },
            b'F' | b'A' => {
                let Some(len) = read_len(pos) else {
                    return true;
                };
                let Some(inner_end) = (pos + 4).checked_add(len).filter(|e| *e <= end) else {
                    return true;
                };
                if stack.len() >= MAX_NESTING_DEPTH {
                    return false;
                }
                pos += 4;
                stack.push((inner_end, value_type == b'F'));
                continue;
            }
            _ => return true,
        };
        pos = match pos.checked_add(size) {
            Some(next) if next <= end => next,
            _ => return true,
        };
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table holding `{"k": A[A[...A[]...]]}` with `arrays` arrays.
    fn nested(arrays: usize) -> Vec<u8> {
        let mut value = vec![b'A', 0, 0, 0, 0];
        for _ in 1..arrays {
            let mut outer = vec![b'A'];
            outer.extend_from_slice(&(value.len() as u32).to_be_bytes());
            outer.extend_from_slice(&value);
            value = outer;
        }
        let mut entries = vec![1, b'k'];
        entries.extend_from_slice(&value);
        let mut table = (entries.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&entries);
        table
    }

    #[test]
    fn depth_counts_the_table_itself() {
        assert!(table_within_limit(&nested(MAX_NESTING_DEPTH - 1)));
        assert!(!table_within_limit(&nested(MAX_NESTING_DEPTH)));
    }

    #[test]
    fn flat_and_malformed_tables_are_left_to_the_parser() {
        assert!(table_within_limit(&[0, 0, 0, 0]));
        assert!(table_within_limit(&[0, 0, 0, 9, 1]));
        assert!(table_within_limit(&[0, 0, 0, 3, 1, b'k', b'?']));
        assert!(table_within_limit(&[]));
    }

    #[test]
    fn headers_are_found_after_the_strings() {
        let mut raw = vec![0xE0, 0, 1, b'a', 0];
        raw.extend_from_slice(&nested(MAX_NESTING_DEPTH));
        assert!(!properties_within_limit(&raw));
        raw[0] = 0xC0; // same bytes, no headers flag
        assert!(properties_within_limit(&raw));
    }
}
