//! Newline-delimited JSON (Ollama's streams): one JSON value per line, lines split across
//! network chunks anywhere.

use crate::error::ProviderError;

/// A line longer than this is not a stream of small objects.
const MAX_LINE_BYTES: usize = 4 << 20;

#[derive(Default)]
pub struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    /// Adds bytes and returns every non-empty line they complete.
    pub fn push(&mut self, bytes: &[u8], provider: &str) -> Result<Vec<Vec<u8>>, ProviderError> {
        self.buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(end) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let line = self.buf[start..start + end].trim_ascii();
            if !line.is_empty() {
                lines.push(line.to_vec());
            }
            start += end + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE_BYTES {
            return Err(ProviderError::InvalidResponse {
                provider: provider.to_string(),
                detail: format!("no line ended within {MAX_LINE_BYTES} bytes"),
            });
        }
        Ok(lines)
    }

    /// A last line without its newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buf);
        let line = rest.trim_ascii();
        (!line.is_empty()).then(|| line.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_anywhere_are_reassembled() {
        let stream = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
        for cut in 0..stream.len() {
            let mut r = LineReader::default();
            let mut got = r.push(&stream[..cut], "t").unwrap();
            got.extend(r.push(&stream[cut..], "t").unwrap());
            got.extend(r.finish());
            assert_eq!(
                got,
                vec![
                    b"{\"a\":1}".to_vec(),
                    b"{\"b\":2}".to_vec(),
                    b"{\"c\":3}".to_vec()
                ],
                "cut at {cut}"
            );
        }
    }
}
