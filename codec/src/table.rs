//! A field table on its own, in AMQP wire form (length first): how the broker
//! writes declare arguments and other tables into its store.

use amq_protocol_types::FieldTable;
use amq_protocol_types::generation::gen_field_table;
use amq_protocol_types::parsing::parse_field_table;
use nom::{Parser, combinator::all_consuming};

use crate::error::CodecError;
use crate::nesting;

/// Encodes a field table as it goes on the wire.
pub fn encode_table(table: &FieldTable) -> Result<Vec<u8>, CodecError> {
    let (bytes, _) = cookie_factory::r#gen(gen_field_table(table), Vec::new())
        .map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(bytes)
}

/// Decodes a field table written by [`encode_table`]; `None` if the bytes are
/// not exactly one table (or one nested deeper than the parser can take).
pub fn decode_table(bytes: &[u8]) -> Option<FieldTable> {
    if !nesting::table_within_limit(bytes) {
        return None;
    }
    all_consuming(parse_field_table)
        .parse(bytes)
        .ok()
        .map(|(_, table)| table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol_types::{AMQPValue, FieldArray, LongString};

    #[test]
    fn tables_round_trip() {
        let mut inner = FieldTable::default();
        inner.insert("n".into(), AMQPValue::LongLongInt(-5));
        let mut table = FieldTable::default();
        table.insert("x-max-length".into(), AMQPValue::ShortInt(10));
        table.insert("t".into(), AMQPValue::FieldTable(inner));
        table.insert(
            "a".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
                LongString::from("s"),
            )])),
        );
        let bytes = encode_table(&table).expect("encode");
        assert_eq!(decode_table(&bytes), Some(table));
        assert_eq!(decode_table(&bytes[..bytes.len() - 1]), None);
    }
}
