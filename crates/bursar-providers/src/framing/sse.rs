//! Server-sent events as a provider sends them: `event:` and `data:` lines, events ended by
//! a blank line, split across network chunks anywhere.

use crate::error::ProviderError;

/// An upstream that never ends an event within this many bytes is not sending SSE.
const MAX_EVENT_BYTES: usize = 4 << 20;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field (empty when absent).
    pub event: String,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

#[derive(Default)]
pub struct SseReader {
    buf: Vec<u8>,
}

impl SseReader {
    /// Adds bytes and returns every event they complete.
    pub fn push(&mut self, bytes: &[u8], provider: &str) -> Result<Vec<Event>, ProviderError> {
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(len) = event_len(&self.buf[start..]) {
            if let Some(e) = parse(&self.buf[start..start + len]) {
                events.push(e);
            }
            start += len;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(ProviderError::InvalidResponse {
                provider: provider.to_string(),
                detail: format!("no event ended within {MAX_EVENT_BYTES} bytes"),
            });
        }
        Ok(events)
    }

    /// What is left when the body ends: a last event without its blank line.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buf);
        parse(&rest)
    }
}

fn event_len(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some(i + 2);
        }
        if i + 3 < buf.len() && &buf[i..i + 4] == b"\r\n\r\n" {
            return Some(i + 4);
        }
        i += 1;
    }
    None
}

fn parse(raw: &[u8]) -> Option<Event> {
    let text = String::from_utf8_lossy(raw);
    let mut event = Event::default();
    let mut has_data = false;
    for line in text.lines() {
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event.event = value.to_string(),
            "data" => {
                if has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    (has_data || !event.event.is_empty()).then_some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_are_reassembled() {
        let stream = b"event: ping\ndata: {\"type\": \"ping\"}\n\n: comment\n\nevent: message_stop\r\ndata: {}\r\n\r\n";
        for cut in 0..stream.len() {
            let mut r = SseReader::default();
            let mut got = r.push(&stream[..cut], "t").unwrap();
            got.extend(r.push(&stream[cut..], "t").unwrap());
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].event, "ping");
            assert_eq!(got[0].data, "{\"type\": \"ping\"}");
            assert_eq!(got[1].event, "message_stop");
            assert_eq!(r.finish(), None);
        }
    }

    #[test]
    fn a_last_event_without_blank_line_is_kept() {
        let mut r = SseReader::default();
        assert!(r.push(b"data: a\ndata: b", "t").unwrap().is_empty());
        assert_eq!(
            r.finish(),
            Some(Event {
                event: String::new(),
                data: "a\nb".into()
            })
        );
    }
}
