//! Stream framings upstreams use (server-sent events, AWS event streams, NDJSON), and the
//! driver that turns an upstream byte stream into OpenAI chunks through a [`Translator`].

pub mod aws;
pub mod ndjson;
pub mod sse;

use crate::error::ProviderError;
use crate::sse::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;

/// Reads a provider's stream bytes and writes OpenAI `chat.completion.chunk` events.
pub trait Translator: Send + 'static {
    /// Takes the next upstream bytes; appends the client's bytes to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), ProviderError>;

    /// The upstream body ended; a stream cut short is an error.
    fn end(&mut self, out: &mut Vec<u8>) -> Result<(), ProviderError>;
}

struct Driver<T> {
    source: ByteStream,
    translator: T,
    /// An error to yield after the bytes translated before it.
    failed: Option<ProviderError>,
    done: bool,
}

/// The upstream stream translated chunk by chunk; an error ends it (the SSE tap renders
/// it as an error frame).
pub fn translate<T: Translator>(source: ByteStream, translator: T) -> ByteStream {
    let driver = Driver {
        source,
        translator,
        failed: None,
        done: false,
    };
    Box::pin(futures_util::stream::unfold(driver, |mut d| async move {
        if let Some(e) = d.failed.take() {
            return Some((Err(e), d));
        }
        let mut out = Vec::new();
        while !d.done {
            let step = match d.source.next().await {
                Some(Ok(bytes)) => d.translator.feed(&bytes, &mut out),
                Some(Err(e)) => Err(e),
                None => {
                    d.done = true;
                    d.translator.end(&mut out)
                }
            };
            if let Err(e) = step {
                d.done = true;
                if out.is_empty() {
                    return Some((Err(e), d));
                }
                d.failed = Some(e);
            }
            if !out.is_empty() {
                return Some((Ok(Bytes::from(out)), d));
            }
        }
        None
    }))
}
