//! Upstream adapters and routing: which deployment serves a call, how the call is sent to its
//! provider (each provider a module behind [`provider::Provider`]), how answers stream back,
//! and what usage they report. Knows nothing about keys, budgets or storage.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod demo;
mod endpoint;
mod error;
pub mod formats;
pub mod framing;
pub mod gemini;
#[cfg(test)]
mod golden;
pub mod json;
pub mod ollama;
pub mod openai;
pub mod params;
pub mod prompt;
pub mod provider;
mod router;
pub mod sse;
pub mod tokens;
mod transport;
mod usage;
pub mod vertex;

pub use endpoint::Endpoint;
pub use error::{ErrorClass, ProviderError};
pub use json::JsonObject;
pub use router::{Answer, Call, RouteError, Routed, Router, Target};
pub use sse::{ByteStream, FinishHook, StreamSummary};
pub use usage::Usage;
