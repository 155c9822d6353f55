//! AMQP 0-9-1 data types: big-endian integers, short and long strings, field tables and the
//! basic properties of a content header; encoded into a buffer, decoded from a frame's payload.
//!
//! Field tables use the type letters RabbitMQ reads (its own table of the 0-9-1 errata, which
//! py-amqp, and so Celery, follow too), not the original specification's.

use super::{FieldValue, Properties};

/// A value too long for its AMQP length prefix; the connection stays usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} is {length} bytes long, more than the {limit} AMQP allows")]
pub struct TooLong {
    pub what: String,
    pub length: usize,
    pub limit: usize,
}

/// Data from the broker that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Bytes to send, built by appending.
#[derive(Debug, Default)]
pub struct Encoder {
    pub bytes: Vec<u8>,
}

impl Encoder {
    pub fn octet(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub fn short(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub fn long(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub fn longlong(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Consecutive bit arguments of a method, packed into octets (first bit lowest).
    pub fn bits(&mut self, bits: &[bool]) {
        for group in bits.chunks(8) {
            let octet = group
                .iter()
                .enumerate()
                .fold(0u8, |octet, (at, &bit)| octet | (u8::from(bit) << at));
            self.octet(octet);
        }
    }

    /// A short string (names, routing keys, table keys): one length octet.
    pub fn shortstr(&mut self, what: &str, value: &str) -> Result<(), TooLong> {
        let length = u8::try_from(value.len()).map_err(|_| TooLong {
            what: format!("{what} {:?}", abbreviated(value)),
            length: value.len(),
            limit: u8::MAX.into(),
        })?;
        self.octet(length);
        self.raw(value.as_bytes());
        Ok(())
    }

    pub fn longstr(&mut self, what: &str, value: &[u8]) -> Result<(), TooLong> {
        self.length_prefixed(what, |encoder| {
            encoder.raw(value);
            Ok(())
        })
    }

    pub fn table(&mut self, entries: &[(String, FieldValue)]) -> Result<(), TooLong> {
        self.length_prefixed("a field table", |encoder| {
            for (key, value) in entries {
                encoder.shortstr("the field table key", key)?;
                encoder.field_value(value)?;
            }
            Ok(())
        })
    }

    pub fn field_value(&mut self, value: &FieldValue) -> Result<(), TooLong> {
        match value {
            FieldValue::Void => self.octet(b'V'),
            FieldValue::Bool(value) => {
                self.octet(b't');
                self.octet(u8::from(*value));
            }
            FieldValue::Long(value) => {
                self.octet(b'l');
                self.raw(&value.to_be_bytes());
            }
            FieldValue::Double(value) => {
                self.octet(b'd');
                self.raw(&value.to_be_bytes());
            }
            FieldValue::LongString(value) => {
                self.octet(b'S');
                self.longstr("a string field value", value)?;
            }
            FieldValue::Array(items) => {
                self.octet(b'A');
                self.length_prefixed("an array field value", |encoder| {
                    items.iter().try_for_each(|item| encoder.field_value(item))
                })?;
            }
            FieldValue::Table(entries) => {
                self.octet(b'F');
                self.table(entries)?;
            }
        }
        Ok(())
    }

    /// The property flags and the properties present, in the order of their flags (content
    /// type first, in the highest bit).
    pub fn properties(&mut self, properties: &Properties) -> Result<(), TooLong> {
        let flags_at = self.bytes.len();
        self.short(0);
        let mut flags = 0u16;
        let mut flag = |bit: u16, present: bool| {
            if present {
                flags |= 1 << bit;
            }
            present
        };
        if flag(15, properties.content_type.is_some()) {
            self.shortstr_property("content_type", &properties.content_type)?;
        }
        if flag(14, properties.content_encoding.is_some()) {
            self.shortstr_property("content_encoding", &properties.content_encoding)?;
        }
        if let Some(headers) = &properties.headers {
            flag(13, true);
            self.table(headers)?;
        }
        if let Some(delivery_mode) = properties.delivery_mode {
            flag(12, true);
            self.octet(delivery_mode);
        }
        if let Some(priority) = properties.priority {
            flag(11, true);
            self.octet(priority);
        }
        if flag(10, properties.correlation_id.is_some()) {
            self.shortstr_property("correlation_id", &properties.correlation_id)?;
        }
        if flag(9, properties.reply_to.is_some()) {
            self.shortstr_property("reply_to", &properties.reply_to)?;
        }
        // Bit 8 is expiration, not set by this client.
        if flag(7, properties.message_id.is_some()) {
            self.shortstr_property("message_id", &properties.message_id)?;
        }
        self.bytes[flags_at..flags_at + 2].copy_from_slice(&flags.to_be_bytes());
        Ok(())
    }

    fn shortstr_property(&mut self, name: &str, value: &Option<String>) -> Result<(), TooLong> {
        self.shortstr(
            &format!("the property {name}"),
            value.as_deref().unwrap_or(""),
        )
    }

    /// Whatever `body` appends, after its length in 4 octets.
    fn length_prefixed(
        &mut self,
        what: &str,
        body: impl FnOnce(&mut Encoder) -> Result<(), TooLong>,
    ) -> Result<(), TooLong> {
        let length_at = self.bytes.len();
        self.long(0);
        body(self)?;
        let length = self.bytes.len() - length_at - 4;
        let prefix = u32::try_from(length).map_err(|_| TooLong {
            what: what.to_string(),
            length,
            limit: u32::MAX as usize,
        })?;
        self.bytes[length_at..length_at + 4].copy_from_slice(&prefix.to_be_bytes());
        Ok(())
    }
}

/// The start of a long text, for messages.
pub fn abbreviated(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_string(),
    }
}

/// Reads a frame's payload from its start; running out of bytes is [`Malformed`], never a
/// panic.
pub struct Decoder<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Decoder<'a> {
        Decoder { bytes }
    }

    pub fn take(&mut self, count: usize) -> Result<&'a [u8], Malformed> {
        if count > self.bytes.len() {
            return Err(Malformed(format!(
                "{count} more bytes expected where {} are left",
                self.bytes.len()
            )));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub fn octet(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    pub fn short(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn long(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn longlong(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Text from the broker (reply texts, mechanisms), lossily: it only goes into messages.
    pub fn shortstr(&mut self) -> Result<String, Malformed> {
        let length = self.octet()?;
        Ok(String::from_utf8_lossy(self.take(length.into())?).into_owned())
    }

    pub fn longstr(&mut self) -> Result<&'a [u8], Malformed> {
        let length = self.long()?;
        self.take(length as usize)
    }

    /// Skips a field table: this client reads none of the broker's (its properties and
    /// capabilities change nothing here).
    pub fn skip_table(&mut self) -> Result<(), Malformed> {
        self.longstr().map(drop)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("take returned N bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(encode: impl FnOnce(&mut Encoder) -> Result<(), TooLong>) -> Vec<u8> {
        let mut encoder = Encoder::default();
        encode(&mut encoder).unwrap();
        encoder.bytes
    }

    #[test]
    fn a_field_table_with_nested_values_is_encoded_as_rabbitmq_reads_it() {
        let entries = vec![
            ("id".to_string(), FieldValue::LongString(b"ab".to_vec())),
            ("n".to_string(), FieldValue::Long(-2)),
            ("ok".to_string(), FieldValue::Bool(true)),
            (
                "list".to_string(),
                FieldValue::Array(vec![FieldValue::Double(1.5), FieldValue::Void]),
            ),
            (
                "sub".to_string(),
                FieldValue::Table(vec![("x".to_string(), FieldValue::Bool(false))]),
            ),
        ];
        let mut expected: Vec<u8> = vec![0, 0, 0, 59];
        expected.extend(b"\x02idS\x00\x00\x00\x02ab");
        expected.extend(b"\x01nl\xff\xff\xff\xff\xff\xff\xff\xfe");
        expected.extend(b"\x02okt\x01");
        expected.extend(b"\x04listA\x00\x00\x00\x0a");
        expected.extend(b"d\x3f\xf8\x00\x00\x00\x00\x00\x00V");
        expected.extend(b"\x03subF\x00\x00\x00\x04\x01xt\x00");
        assert_eq!(expected.len(), 4 + 59);
        assert_eq!(encoded(|encoder| encoder.table(&entries)), expected);
    }

    #[test]
    fn json_values_become_the_closest_field_values() {
        assert_eq!(FieldValue::from_json(&json!(null)), FieldValue::Void);
        assert_eq!(FieldValue::from_json(&json!(7)), FieldValue::Long(7));
        assert_eq!(
            FieldValue::from_json(&json!(u64::MAX)),
            FieldValue::Double(u64::MAX as f64)
        );
        assert_eq!(
            FieldValue::from_json(&json!("é")),
            FieldValue::LongString("é".as_bytes().to_vec())
        );
        assert_eq!(
            FieldValue::from_json(&json!([[true], {"k": 1.5}])),
            FieldValue::Array(vec![
                FieldValue::Array(vec![FieldValue::Bool(true)]),
                FieldValue::Table(vec![("k".into(), FieldValue::Double(1.5))]),
            ])
        );
    }

    #[test]
    fn properties_follow_their_flags_in_order() {
        let properties = Properties {
            content_type: Some("application/json".into()),
            headers: Some(vec![("task".into(), FieldValue::Long(1))]),
            delivery_mode: Some(2),
            message_id: Some("m1".into()),
            ..Properties::default()
        };
        let mut expected = vec![0b1011_0000, 0b1000_0000];
        expected.extend(b"\x10application/json");
        expected.extend(b"\x00\x00\x00\x0e\x04taskl\x00\x00\x00\x00\x00\x00\x00\x01");
        expected.extend(b"\x02");
        expected.extend(b"\x02m1");
        assert_eq!(encoded(|encoder| encoder.properties(&properties)), expected);

        let all = Properties {
            content_type: Some(String::new()),
            content_encoding: Some(String::new()),
            headers: Some(vec![]),
            delivery_mode: Some(1),
            priority: Some(9),
            correlation_id: Some(String::new()),
            reply_to: Some(String::new()),
            message_id: Some(String::new()),
        };
        let bytes = encoded(|encoder| encoder.properties(&all));
        assert_eq!(bytes[..2], [0b1111_1110, 0b1000_0000]);
        assert_eq!(bytes[2..], [0, 0, 0, 0, 0, 0, 1, 9, 0, 0, 0]);
        assert_eq!(
            encoded(|encoder| encoder.properties(&Properties::default())),
            [0, 0]
        );
    }

    #[test]
    fn bits_pack_into_octets_lowest_first() {
        let bytes = encoded(|encoder| {
            encoder.bits(&[false, true, false, false, true]);
            encoder.bits(&[true; 9]);
            Ok(())
        });
        assert_eq!(bytes, [0b10010, 0xff, 0b1]);
    }

    #[test]
    fn too_long_short_strings_are_refused_and_name_what() {
        let mut encoder = Encoder::default();
        let error = encoder
            .shortstr("a routing key", &"k".repeat(256))
            .unwrap_err();
        assert_eq!(error.length, 256);
        assert!(
            error.to_string().starts_with("a routing key \"kkkk"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .ends_with("...\" is 256 bytes long, more than the 255 AMQP allows")
        );
        let key = "h".repeat(300);
        let error = encoder.table(&[(key, FieldValue::Void)]).unwrap_err();
        assert!(
            error.to_string().starts_with("the field table key"),
            "{error}"
        );
    }

    #[test]
    fn decoding_past_the_end_is_an_error() {
        let mut decoder = Decoder::new(&[0, 1, 5, b'a']);
        assert_eq!(decoder.short(), Ok(1));
        assert_eq!(
            decoder.shortstr(),
            Err(Malformed("5 more bytes expected where 1 are left".into()))
        );
        assert!(Decoder::new(&[0, 0, 0]).long().is_err());
        assert!(
            Decoder::new(&[0xff, 0xff, 0xff, 0xff])
                .skip_table()
                .is_err()
        );
        assert!(Decoder::new(&[]).octet().is_err());
    }
}
