//! Prices and cost. The default price table is LiteLLM's public model price list, reduced to
//! text-token models by `tools/gen_prices.py`; a deployment's own `input_cost_per_token` /
//! `output_cost_per_token` in `config.yaml` win over it.

use crate::money::NanoUsd;
use std::collections::HashMap;
use std::sync::OnceLock;

/// USD per token, as LiteLLM writes prices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input_per_token: f64,
    pub output_per_token: f64,
    /// Cached prompt tokens read back (`cache_read_input_token_cost`); `None` charges the
    /// input price.
    pub cache_read_per_token: Option<f64>,
    /// Prompt tokens written to the provider's cache (`cache_creation_input_token_cost`);
    /// `None` charges the input price.
    pub cache_write_per_token: Option<f64>,
    /// The model's largest completion, when known.
    pub max_output_tokens: Option<u64>,
}

/// The tokens one call used, as its cost is worked out from them. `prompt` counts every
/// prompt token, cached ones included (OpenAI's `prompt_tokens`); `cache_read` and
/// `cache_creation` say how many of them were read from or written to a prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCounts {
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    pub cache_creation: u64,
}

impl Price {
    pub const FREE: Price = Price {
        input_per_token: 0.0,
        output_per_token: 0.0,
        cache_read_per_token: None,
        cache_write_per_token: None,
        max_output_tokens: None,
    };

    /// A price with input and output rates only.
    pub fn per_token(input: f64, output: f64) -> Price {
        Price {
            input_per_token: input,
            output_per_token: output,
            ..Price::FREE
        }
    }

    /// What `prompt` input and `completion` output tokens cost, rounded to the nano-USD.
    pub fn cost(&self, prompt: u64, completion: u64) -> NanoUsd {
        self.cost_of(&TokenCounts {
            prompt,
            completion,
            ..TokenCounts::default()
        })
    }

    /// What a call cost: uncached prompt tokens at the input price, cache reads and cache
    /// writes at their own prices (the input price when the model lists none), completion
    /// tokens at the output price; summed in USD, then rounded once to the nano-USD.
    pub fn cost_of(&self, t: &TokenCounts) -> NanoUsd {
        let cached = t.cache_read.saturating_add(t.cache_creation);
        let uncached = t.prompt.saturating_sub(cached);
        let usd = uncached as f64 * self.input_per_token
            + t.cache_read as f64 * self.cache_read_per_token.unwrap_or(self.input_per_token)
            + t.cache_creation as f64 * self.cache_write_per_token.unwrap_or(self.input_per_token)
            + t.completion as f64 * self.output_per_token;
        NanoUsd::from_usd(usd.max(0.0)).unwrap_or(NanoUsd(i64::MAX))
    }

    pub fn is_free(&self) -> bool {
        self.input_per_token <= 0.0
            && self.output_per_token <= 0.0
            && self.cache_read_per_token.is_none_or(|p| p <= 0.0)
            && self.cache_write_per_token.is_none_or(|p| p <= 0.0)
    }

    /// The larger rate of the two, for picking the dearest of several deployments.
    pub fn weight(&self) -> f64 {
        self.input_per_token + self.output_per_token
    }
}

/// A model's listing in a price table.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub price: Price,
    pub provider: String,
    /// `chat`, `completion`, `embedding`, `responses`, …
    pub mode: String,
}

/// A price table keyed by LiteLLM model name: the one shipped with Bursar, or one loaded
/// from a file in LiteLLM's `model_prices_and_context_window.json` format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    entries: HashMap<String, Listing>,
}

/// Why a price file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PriceFileError {
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected a JSON object of model name to prices")]
    NotAnObject,
    #[error("{model}: {field} must be a non-negative number")]
    BadPrice { model: String, field: &'static str },
}

impl PriceTable {
    /// Parses LiteLLM's price-list format (`{"model": {"input_cost_per_token": …}}`). Models
    /// without a per-token input price are skipped (images, audio, …); a price that is not
    /// a non-negative number is an error naming the model.
    pub fn from_litellm_json(text: &str) -> Result<PriceTable, PriceFileError> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let object = value.as_object().ok_or(PriceFileError::NotAnObject)?;
        let mut entries = HashMap::with_capacity(object.len());
        for (name, spec) in object {
            let Some(spec) = spec.as_object() else {
                continue;
            };
            if name == "sample_spec" {
                continue;
            }
            let price = |field: &'static str| -> Result<Option<f64>, PriceFileError> {
                match spec.get(field) {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(v) => match v.as_f64() {
                        Some(p) if p >= 0.0 && p.is_finite() => Ok(Some(p)),
                        _ => Err(PriceFileError::BadPrice {
                            model: name.clone(),
                            field,
                        }),
                    },
                }
            };
            let Some(input) = price("input_cost_per_token")? else {
                continue;
            };
            let max_out = ["max_output_tokens", "max_tokens"]
                .iter()
                .find_map(|f| spec.get(*f).and_then(serde_json::Value::as_u64));
            let text = |field: &str| {
                spec.get(field)
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            entries.insert(
                name.clone(),
                Listing {
                    price: Price {
                        input_per_token: input,
                        output_per_token: price("output_cost_per_token")?.unwrap_or(0.0),
                        cache_read_per_token: price("cache_read_input_token_cost")?,
                        cache_write_per_token: price("cache_creation_input_token_cost")?,
                        max_output_tokens: max_out.filter(|m| *m > 0),
                    },
                    provider: text("litellm_provider"),
                    mode: text("mode"),
                },
            );
        }
        Ok(PriceTable { entries })
    }

    /// The table shipped with Bursar (`data/prices.tsv`, made by `tools/gen_prices.py`).
    pub fn builtin() -> &'static PriceTable {
        static PARSED: OnceLock<PriceTable> = OnceLock::new();
        PARSED.get_or_init(|| PriceTable {
            entries: TABLE.lines().filter_map(parse_tsv_line).collect(),
        })
    }

    /// A model's listing by LiteLLM model name (`openai/gpt-4o`, `gpt-4o`, …): the name as
    /// given, then without its provider prefix when that prefix is the listed provider.
    pub fn listing(&self, model: &str) -> Option<&Listing> {
        if let Some(e) = self.entries.get(model) {
            return Some(e);
        }
        let (provider, bare) = model.split_once('/')?;
        self.entries
            .get(bare)
            .filter(|e| e.provider == provider || provider == "openai" || provider == "azure")
    }

    pub fn price(&self, model: &str) -> Option<Price> {
        self.listing(model).map(|e| e.price)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

const TABLE: &str = include_str!("../data/prices.tsv");

fn parse_tsv_line(line: &str) -> Option<(String, Listing)> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let mut f = line.split('\t');
    let name = f.next()?;
    let input = f.next()?.parse().ok()?;
    let output = f.next()?.parse().ok()?;
    let max_out: u64 = f.next()?.parse().ok()?;
    let provider = f.next().unwrap_or_default().to_string();
    let cache_read = f.next().and_then(|v| v.parse().ok());
    let cache_write = f.next().and_then(|v| v.parse().ok());
    let mode = f.next().unwrap_or_default().to_string();
    Some((
        name.to_string(),
        Listing {
            price: Price {
                input_per_token: input,
                output_per_token: output,
                cache_read_per_token: cache_read,
                cache_write_per_token: cache_write,
                max_output_tokens: (max_out > 0).then_some(max_out),
            },
            provider,
            mode,
        },
    ))
}

/// The listed price of a model in the shipped table.
pub fn default_price(model: &str) -> Option<Price> {
    PriceTable::builtin().price(model)
}

/// Number of models in the default table.
pub fn default_table_len() -> usize {
    PriceTable::builtin().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_table_prices_known_models() {
        assert!(default_table_len() > 1_000);
        let p = default_price("gpt-4o-mini").unwrap();
        assert_eq!(p.input_per_token, 1.5e-7);
        assert_eq!(p.output_per_token, 6e-7);
        assert_eq!(p.max_output_tokens, Some(16_384));
        assert_eq!(default_price("openai/gpt-4o-mini"), Some(p));
        assert_eq!(default_price("no-such-model"), None);
        assert_eq!(default_price("anthropic/gpt-4o-mini"), None);
        assert_eq!(p.cache_read_per_token, Some(7.5e-8));
        assert_eq!(p.cache_write_per_token, None);
        let listing = PriceTable::builtin()
            .listing("text-embedding-3-small")
            .unwrap();
        assert_eq!(listing.mode, "embedding");
        assert_eq!(listing.price.input_per_token, 2e-8);
    }

    #[test]
    fn cached_tokens_are_charged_at_cache_prices() {
        let p = Price {
            cache_read_per_token: Some(1e-7),
            cache_write_per_token: Some(4e-6),
            ..Price::per_token(1e-6, 2e-6)
        };
        // 1000 prompt tokens, of which 600 read from the cache and 100 written to it:
        // 300 × 1000 n$ + 600 × 100 n$ + 100 × 4000 n$ + 50 × 2000 n$.
        let t = TokenCounts {
            prompt: 1_000,
            completion: 50,
            cache_read: 600,
            cache_creation: 100,
        };
        assert_eq!(p.cost_of(&t), NanoUsd(300_000 + 60_000 + 400_000 + 100_000));
        // Without cache prices every prompt token costs the input price.
        assert_eq!(
            Price::per_token(1e-6, 2e-6).cost_of(&t),
            NanoUsd(1_000_000 + 100_000)
        );
        // Cache counts larger than the prompt never make the uncached part negative.
        let odd = TokenCounts {
            prompt: 10,
            cache_read: 50,
            ..TokenCounts::default()
        };
        assert_eq!(p.cost_of(&odd), NanoUsd(5_000));
    }

    #[test]
    fn a_price_file_in_litellm_format_loads_and_rejects_bad_prices() {
        let table = PriceTable::from_litellm_json(
            r#"{
                "sample_spec": {"input_cost_per_token": 1},
                "my-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 3e-6,
                             "cache_read_input_token_cost": 1e-7, "max_output_tokens": 4096,
                             "litellm_provider": "openai", "mode": "chat"},
                "dall-e": {"output_cost_per_pixel": 1e-9, "mode": "image_generation"}
            }"#,
        )
        .unwrap();
        assert_eq!(table.len(), 1);
        let p = table.price("openai/my-model").unwrap();
        assert_eq!(p.output_per_token, 3e-6);
        assert_eq!(p.cache_read_per_token, Some(1e-7));
        assert_eq!(p.max_output_tokens, Some(4096));
        let bad = PriceTable::from_litellm_json(r#"{"m": {"input_cost_per_token": -1}}"#);
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("m: input_cost_per_token")
        );
        assert!(PriceTable::from_litellm_json("[1]").is_err());
    }

    #[test]
    fn cost_is_tokens_times_price_in_nano_usd() {
        let p = Price::per_token(1.5e-7, 6e-7);
        // 1000 × 150 n$ + 500 × 600 n$ = 450,000 n$.
        assert_eq!(p.cost(1_000, 500), NanoUsd(450_000));
        assert_eq!(Price::FREE.cost(1_000, 1_000), NanoUsd::ZERO);
        assert!(Price::FREE.is_free());
    }
}
