//! OpenAI's legacy text completions and embeddings answers, as translating adapters write
//! them.

use super::chat::UsageOut;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct TextCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<TextChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Debug, Serialize)]
pub struct TextChoice {
    pub text: String,
    pub index: u32,
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct EmbeddingList {
    pub object: &'static str,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: EmbeddingUsage,
}

#[derive(Debug, Serialize)]
pub struct Embedding {
    pub object: &'static str,
    pub index: usize,
    pub embedding: Vector,
}

/// An embedding as floats, or as OpenAI's `encoding_format: base64` (little-endian f32).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Vector {
    Floats(Vec<f64>),
    Base64(String),
}

impl Vector {
    pub fn new(values: Vec<f64>, base64: bool) -> Vector {
        if !base64 {
            return Vector::Floats(values);
        }
        use base64::Engine;
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|v| (*v as f32).to_le_bytes())
            .collect();
        Vector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

#[derive(Debug, Serialize)]
pub struct EmbeddingUsage {
    pub prompt_tokens: u64,
    pub total_tokens: u64,
}

impl EmbeddingList {
    /// The list for `vectors` (in input order), `prompt_tokens` as its usage; floats, or
    /// base64 when the client asked for it.
    pub fn new(
        vectors: Vec<Vec<f64>>,
        requested: &str,
        base64: bool,
        prompt_tokens: u64,
    ) -> EmbeddingList {
        EmbeddingList {
            object: "list",
            data: vectors
                .into_iter()
                .enumerate()
                .map(|(index, values)| Embedding {
                    object: "embedding",
                    index,
                    embedding: Vector::new(values, base64),
                })
                .collect(),
            model: requested.to_string(),
            usage: EmbeddingUsage {
                prompt_tokens,
                total_tokens: prompt_tokens,
            },
        }
    }
}

/// An answer id for providers that give none (`chatcmpl-…`, `cmpl-…`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{:032x}", rand::random::<u128>())
}
