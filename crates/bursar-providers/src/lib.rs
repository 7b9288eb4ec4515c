//! Upstream adapters and routing: which deployment serves a call, how the call is sent
//! (OpenAI-compatible HTTP or the built-in demo model), how answers stream back, and what usage
//! they report. Knows nothing about keys, budgets or storage.

pub mod demo;
mod endpoint;
mod error;
pub mod json;
pub mod openai;
pub mod prompt;
mod router;
pub mod sse;
pub mod tokens;
mod usage;

pub use endpoint::Endpoint;
pub use error::ProviderError;
pub use json::JsonObject;
pub use router::{Answer, Call, RouteError, Routed, Router};
pub use sse::{ByteStream, FinishHook, StreamSummary};
pub use usage::Usage;
