//! AMQP 0-9-1 frames: type, channel, size, payload, frame end; the methods this client sends
//! and reads, and the frames of a published message.

use std::io::{self, Read};

use super::Publish;
use super::codec::{Decoder, Encoder, Malformed, TooLong};

pub const METHOD: u8 = 1;
pub const HEADER: u8 = 2;
pub const BODY: u8 = 3;
pub const HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xce;
/// Type, channel and size before the payload, and the frame end after it.
pub const FRAME_OVERHEAD: u32 = 8;

/// A method's class and method ids.
pub type MethodId = (u16, u16);

pub const CONNECTION_START: MethodId = (10, 10);
pub const CONNECTION_START_OK: MethodId = (10, 11);
pub const CONNECTION_TUNE: MethodId = (10, 30);
pub const CONNECTION_TUNE_OK: MethodId = (10, 31);
pub const CONNECTION_OPEN: MethodId = (10, 40);
pub const CONNECTION_OPEN_OK: MethodId = (10, 41);
pub const CONNECTION_CLOSE: MethodId = (10, 50);
pub const CONNECTION_CLOSE_OK: MethodId = (10, 51);
pub const CONNECTION_BLOCKED: MethodId = (10, 60);
pub const CONNECTION_UNBLOCKED: MethodId = (10, 61);
pub const CHANNEL_OPEN: MethodId = (20, 10);
pub const CHANNEL_OPEN_OK: MethodId = (20, 11);
pub const CHANNEL_FLOW: MethodId = (20, 20);
pub const CHANNEL_FLOW_OK: MethodId = (20, 21);
pub const CHANNEL_CLOSE: MethodId = (20, 40);
pub const CHANNEL_CLOSE_OK: MethodId = (20, 41);
pub const EXCHANGE_DECLARE: MethodId = (40, 10);
pub const EXCHANGE_DECLARE_OK: MethodId = (40, 11);
pub const EXCHANGE_DELETE: MethodId = (40, 20);
pub const EXCHANGE_DELETE_OK: MethodId = (40, 21);
pub const QUEUE_DECLARE: MethodId = (50, 10);
pub const QUEUE_DECLARE_OK: MethodId = (50, 11);
pub const QUEUE_BIND: MethodId = (50, 20);
pub const QUEUE_BIND_OK: MethodId = (50, 21);
pub const QUEUE_DELETE: MethodId = (50, 40);
pub const QUEUE_DELETE_OK: MethodId = (50, 41);
pub const BASIC_PUBLISH: MethodId = (60, 40);
pub const BASIC_RETURN: MethodId = (60, 50);
pub const BASIC_ACK: MethodId = (60, 80);
pub const BASIC_NACK: MethodId = (60, 120);
pub const CONFIRM_SELECT: MethodId = (85, 10);
pub const CONFIRM_SELECT_OK: MethodId = (85, 11);

const BASIC_CLASS: u16 = 60;

/// `class.method` as the specification names it, for messages.
pub fn method_name(id: MethodId) -> String {
    let name = match id {
        CONNECTION_START => "connection.start",
        CONNECTION_START_OK => "connection.start-ok",
        CONNECTION_TUNE => "connection.tune",
        CONNECTION_TUNE_OK => "connection.tune-ok",
        CONNECTION_OPEN => "connection.open",
        CONNECTION_OPEN_OK => "connection.open-ok",
        CONNECTION_CLOSE => "connection.close",
        CONNECTION_CLOSE_OK => "connection.close-ok",
        CONNECTION_BLOCKED => "connection.blocked",
        CONNECTION_UNBLOCKED => "connection.unblocked",
        CHANNEL_OPEN => "channel.open",
        CHANNEL_OPEN_OK => "channel.open-ok",
        CHANNEL_FLOW => "channel.flow",
        CHANNEL_FLOW_OK => "channel.flow-ok",
        CHANNEL_CLOSE => "channel.close",
        CHANNEL_CLOSE_OK => "channel.close-ok",
        EXCHANGE_DECLARE => "exchange.declare",
        EXCHANGE_DECLARE_OK => "exchange.declare-ok",
        EXCHANGE_DELETE => "exchange.delete",
        EXCHANGE_DELETE_OK => "exchange.delete-ok",
        QUEUE_DECLARE => "queue.declare",
        QUEUE_DECLARE_OK => "queue.declare-ok",
        QUEUE_BIND => "queue.bind",
        QUEUE_BIND_OK => "queue.bind-ok",
        QUEUE_DELETE => "queue.delete",
        QUEUE_DELETE_OK => "queue.delete-ok",
        BASIC_PUBLISH => "basic.publish",
        BASIC_RETURN => "basic.return",
        BASIC_ACK => "basic.ack",
        BASIC_NACK => "basic.nack",
        CONFIRM_SELECT => "confirm.select",
        CONFIRM_SELECT_OK => "confirm.select-ok",
        (class, method) => return format!("method {class}.{method}"),
    };
    name.to_string()
}

/// A frame as read: its payload without the frame end.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
}

/// Why a frame could not be read: the connection failed, or the bytes are not a frame.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Malformed(#[from] Malformed),
}

/// Reads one frame whose payload is at most `frame_max` minus the overhead, so that a
/// corrupt size cannot make it allocate gigabytes.
pub fn read_frame(reader: &mut impl Read, frame_max: u32) -> Result<Frame, ReadError> {
    let mut header = [0u8; 7];
    reader.read_exact(&mut header)?;
    let mut decoder = Decoder::new(&header);
    let kind = decoder.octet()?;
    let channel = decoder.short()?;
    let size = decoder.long()?;
    if size > frame_max.saturating_sub(FRAME_OVERHEAD) {
        return Err(Malformed(format!(
            "a frame of {size} bytes, beyond the frame size of {frame_max} bytes agreed on"
        ))
        .into());
    }
    let mut payload = vec![0; size as usize + 1];
    reader.read_exact(&mut payload)?;
    if payload.pop() != Some(FRAME_END) {
        return Err(Malformed(format!("a frame of type {kind} not ending in 0xCE")).into());
    }
    Ok(Frame {
        kind,
        channel,
        payload,
    })
}

impl Encoder {
    /// A frame whose payload `payload` appends; nothing is left of it when that fails.
    pub fn frame(
        &mut self,
        kind: u8,
        channel: u16,
        payload: impl FnOnce(&mut Encoder) -> Result<(), TooLong>,
    ) -> Result<(), TooLong> {
        let start = self.bytes.len();
        self.octet(kind);
        self.short(channel);
        self.long(0);
        if let Err(error) = payload(self) {
            self.bytes.truncate(start);
            return Err(error);
        }
        let size = self.bytes.len() - start - 7;
        let Ok(size) = u32::try_from(size) else {
            self.bytes.truncate(start);
            return Err(TooLong {
                what: "a frame".to_string(),
                length: size,
                limit: u32::MAX as usize,
            });
        };
        self.bytes[start + 3..start + 7].copy_from_slice(&size.to_be_bytes());
        self.octet(FRAME_END);
        Ok(())
    }

    pub fn method(
        &mut self,
        channel: u16,
        (class, method): MethodId,
        arguments: impl FnOnce(&mut Encoder) -> Result<(), TooLong>,
    ) -> Result<(), TooLong> {
        self.frame(METHOD, channel, |encoder| {
            encoder.short(class);
            encoder.short(method);
            arguments(encoder)
        })
    }

    /// basic.publish (neither mandatory nor immediate: a message no queue takes is dropped
    /// and confirmed, as Celery's are), its content header and its body in frames of at most
    /// `frame_max` bytes. Nothing is left of a message that fails.
    pub fn publish(
        &mut self,
        channel: u16,
        frame_max: u32,
        message: &Publish<'_>,
    ) -> Result<(), TooLong> {
        let start = self.bytes.len();
        let result = self.publish_frames(channel, frame_max, message);
        if result.is_err() {
            self.bytes.truncate(start);
        }
        result
    }

    fn publish_frames(
        &mut self,
        channel: u16,
        frame_max: u32,
        message: &Publish<'_>,
    ) -> Result<(), TooLong> {
        self.method(channel, BASIC_PUBLISH, |arguments| {
            arguments.short(0);
            arguments.shortstr("the exchange name", message.exchange)?;
            arguments.shortstr("the routing key", message.routing_key)?;
            arguments.bits(&[false, false]);
            Ok(())
        })?;
        self.frame(HEADER, channel, |header| {
            header.short(BASIC_CLASS);
            header.short(0);
            header.longlong(message.body.len() as u64);
            header.properties(message.properties)
        })?;
        let chunk_size = (frame_max - FRAME_OVERHEAD) as usize;
        for chunk in message.body.chunks(chunk_size) {
            self.frame(BODY, channel, |body| {
                body.raw(chunk);
                Ok(())
            })?;
        }
        Ok(())
    }
}

/// The body size a content header announces (the rest of the header is not read: this client
/// only skips the content the broker sends).
pub fn content_body_size(header: &Frame) -> Result<u64, Malformed> {
    let mut decoder = Decoder::new(&header.payload);
    decoder.take(4)?;
    decoder.longlong()
}

#[cfg(test)]
mod tests {
    use super::super::Properties;
    use super::*;

    #[test]
    fn a_method_frame_has_its_size_and_frame_end() {
        let mut encoder = Encoder::default();
        encoder
            .method(1, CONFIRM_SELECT, |arguments| {
                arguments.bits(&[false]);
                Ok(())
            })
            .unwrap();
        assert_eq!(encoder.bytes, [1, 0, 1, 0, 0, 0, 5, 0, 85, 0, 10, 0, 0xce]);
        let frame = read_frame(&mut encoder.bytes.as_slice(), 4096).unwrap();
        assert_eq!(
            frame,
            Frame {
                kind: METHOD,
                channel: 1,
                payload: vec![0, 85, 0, 10, 0]
            }
        );
    }

    #[test]
    fn a_body_is_split_into_frames_of_frame_max() {
        let properties = Properties::default();
        let body = vec![7u8; 10_000];
        let message = Publish {
            exchange: "x",
            routing_key: "k",
            properties: &properties,
            body: &body,
        };
        let mut encoder = Encoder::default();
        encoder.publish(1, 4096, &message).unwrap();
        let mut input = encoder.bytes.as_slice();
        let mut frames = Vec::new();
        while !input.is_empty() {
            frames.push(read_frame(&mut input, 4096).unwrap());
        }
        let kinds: Vec<u8> = frames.iter().map(|frame| frame.kind).collect();
        assert_eq!(kinds, [METHOD, HEADER, BODY, BODY, BODY]);
        assert_eq!(
            frames[0].payload,
            b"\x00\x3c\x00\x28\x00\x00\x01x\x01k\x00".to_vec()
        );
        assert_eq!(content_body_size(&frames[1]), Ok(10_000));
        assert_eq!(frames[1].payload[12..], [0, 0]);
        let sizes: Vec<usize> = frames[2..].iter().map(|f| f.payload.len()).collect();
        assert_eq!(sizes, [4088, 4088, 1824]);
    }

    #[test]
    fn an_empty_body_has_no_body_frame_and_a_failed_message_leaves_nothing() {
        let properties = Properties::default();
        let mut encoder = Encoder::default();
        let mut message = Publish {
            exchange: "",
            routing_key: "q",
            properties: &properties,
            body: b"",
        };
        encoder.publish(1, 4096, &message).unwrap();
        let length = encoder.bytes.len();
        let mut input = encoder.bytes.as_slice();
        read_frame(&mut input, 4096).unwrap();
        assert_eq!(read_frame(&mut input, 4096).unwrap().kind, HEADER);
        assert!(input.is_empty());
        let long_key = "k".repeat(256);
        message.routing_key = &long_key;
        assert!(encoder.publish(1, 4096, &message).is_err());
        assert_eq!(encoder.bytes.len(), length);
    }

    #[test]
    fn bad_frames_are_errors() {
        let wrong_end = [1u8, 0, 0, 0, 0, 0, 1, 9, 0];
        let error = read_frame(&mut wrong_end.as_slice(), 4096).unwrap_err();
        assert_eq!(error.to_string(), "a frame of type 1 not ending in 0xCE");
        let huge = [1u8, 0, 0, 0xff, 0xff, 0xff, 0xff];
        let error = read_frame(&mut huge.as_slice(), 4096).unwrap_err();
        assert!(
            error.to_string().contains("beyond the frame size"),
            "{error}"
        );
        let cut = [1u8, 0, 0, 0, 0, 0, 9, 1];
        assert!(matches!(
            read_frame(&mut cut.as_slice(), 4096),
            Err(ReadError::Io(error)) if error.kind() == io::ErrorKind::UnexpectedEof
        ));
    }
}
