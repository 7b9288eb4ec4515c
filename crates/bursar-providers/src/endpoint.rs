//! The OpenAI-compatible operations Bursar forwards.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// Path appended to a deployment's `api_base`.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
        }
    }

    /// LiteLLM's `call_type` for spend logs.
    pub fn call_type(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "acompletion",
            Endpoint::Completions => "atext_completion",
            Endpoint::Embeddings => "aembedding",
        }
    }

    /// The request field holding what the model reads: `messages`, `prompt` or `input`.
    pub fn prompt_field(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "messages",
            Endpoint::Completions => "prompt",
            Endpoint::Embeddings => "input",
        }
    }

    pub fn supports_streaming(self) -> bool {
        !matches!(self, Endpoint::Embeddings)
    }
}
