//! AWS event streams (`application/vnd.amazon.eventstream`, Bedrock's ConverseStream):
//! binary frames with a length prelude, headers (`:event-type`, `:message-type`,
//! `:exception-type`) and a JSON payload, each checked by CRC. Frames are decoded with the
//! AWS SDK's own codec (`aws-smithy-eventstream`).

use crate::error::ProviderError;
use aws_smithy_eventstream::frame::read_message_from;
use aws_smithy_types::event_stream::{HeaderValue, Message};
use bytes::{Buf, BytesMut};

/// A frame larger than this is not Bedrock's.
const MAX_FRAME_BYTES: usize = 16 << 20;

/// One decoded frame.
#[derive(Debug)]
pub struct Frame {
    /// `:message-type`: `event`, `exception` or `error`.
    pub message_type: String,
    /// `:event-type` for events, `:exception-type` (or `:error-code`) otherwise.
    pub kind: String,
    pub payload: bytes::Bytes,
}

#[derive(Default)]
pub struct FrameReader {
    buf: BytesMut,
}

fn header(message: &Message, name: &str) -> Option<String> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str().to_string()),
            _ => None,
        })
}

impl FrameReader {
    /// Adds bytes and returns every frame they complete.
    pub fn push(&mut self, bytes: &[u8], provider: &str) -> Result<Vec<Frame>, ProviderError> {
        self.buf.extend_from_slice(bytes);
        let bad = |detail: String| ProviderError::InvalidResponse {
            provider: provider.to_string(),
            detail,
        };
        let mut frames = Vec::new();
        while self.buf.len() >= 4 {
            let total = (&self.buf[..4]).get_u32() as usize;
            if !(16..=MAX_FRAME_BYTES).contains(&total) {
                return Err(bad(format!("an event-stream frame of {total} bytes")));
            }
            if self.buf.len() < total {
                break;
            }
            let frame = self.buf.split_to(total);
            let message = read_message_from(&frame[..])
                .map_err(|e| bad(format!("a broken event-stream frame: {e}")))?;
            let message_type = header(&message, ":message-type").unwrap_or_else(|| "event".into());
            let kind = header(&message, ":event-type")
                .or_else(|| header(&message, ":exception-type"))
                .or_else(|| header(&message, ":error-code"))
                .unwrap_or_default();
            frames.push(Frame {
                message_type,
                kind,
                payload: message.payload().clone(),
            });
        }
        Ok(frames)
    }

    /// Bytes left over that do not make a frame.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::Header;

    fn frame(event: &str, payload: &str) -> Vec<u8> {
        let message = Message::new(payload.as_bytes().to_vec())
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event.to_string().into()),
            ))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let mut stream = frame("messageStart", r#"{"role":"assistant"}"#);
        stream.extend(frame("messageStop", r#"{"stopReason":"end_turn"}"#));
        for cut in 0..stream.len() {
            let mut r = FrameReader::default();
            let mut got = r.push(&stream[..cut], "t").unwrap();
            got.extend(r.push(&stream[cut..], "t").unwrap());
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(
                (got[0].kind.as_str(), got[1].kind.as_str()),
                ("messageStart", "messageStop")
            );
            assert_eq!(&got[1].payload[..], br#"{"stopReason":"end_turn"}"#);
            assert!(!r.has_partial());
        }
    }

    #[test]
    fn a_corrupt_frame_is_an_error() {
        let mut f = frame("messageStart", "{}");
        let last = f.len() - 1;
        f[last] ^= 0xff; // the message CRC
        assert!(FrameReader::default().push(&f, "t").is_err());
        assert!(FrameReader::default().push(&[0, 0, 0, 1, 0], "t").is_err());
    }
}
