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
    /// The model's largest completion, when known.
    pub max_output_tokens: Option<u64>,
}

impl Price {
    pub const FREE: Price = Price {
        input_per_token: 0.0,
        output_per_token: 0.0,
        max_output_tokens: None,
    };

    /// What `prompt` input and `completion` output tokens cost, rounded to the nano-USD.
    pub fn cost(&self, prompt: u64, completion: u64) -> NanoUsd {
        let usd = prompt as f64 * self.input_per_token + completion as f64 * self.output_per_token;
        NanoUsd::from_usd(usd.max(0.0)).unwrap_or(NanoUsd(i64::MAX))
    }

    pub fn is_free(&self) -> bool {
        self.input_per_token <= 0.0 && self.output_per_token <= 0.0
    }
}

struct Entry {
    price: Price,
    provider: String,
}

const TABLE: &str = include_str!("../data/prices.tsv");

fn table() -> &'static HashMap<&'static str, Entry> {
    static PARSED: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    PARSED.get_or_init(|| {
        TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|line| {
                let mut f = line.split('\t');
                let name = f.next()?;
                let input = f.next()?.parse().ok()?;
                let output = f.next()?.parse().ok()?;
                let max_out: u64 = f.next()?.parse().ok()?;
                let provider = f.next().unwrap_or_default().to_string();
                Some((
                    name,
                    Entry {
                        price: Price {
                            input_per_token: input,
                            output_per_token: output,
                            max_output_tokens: (max_out > 0).then_some(max_out),
                        },
                        provider,
                    },
                ))
            })
            .collect()
    })
}

/// The listed price of a model, by LiteLLM model name (`openai/gpt-4o`, `gpt-4o`, …): the
/// name as given, then without its provider prefix when that prefix is the listed provider.
pub fn default_price(model: &str) -> Option<Price> {
    let t = table();
    if let Some(e) = t.get(model) {
        return Some(e.price);
    }
    let (provider, bare) = model.split_once('/')?;
    t.get(bare)
        .filter(|e| e.provider == provider || provider == "openai" || provider == "azure")
        .map(|e| e.price)
}

/// Number of models in the default table.
pub fn default_table_len() -> usize {
    table().len()
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
    }

    #[test]
    fn cost_is_tokens_times_price_in_nano_usd() {
        let p = Price {
            input_per_token: 1.5e-7,
            output_per_token: 6e-7,
            max_output_tokens: None,
        };
        // 1000 × 150 n$ + 500 × 600 n$ = 450,000 n$.
        assert_eq!(p.cost(1_000, 500), NanoUsd(450_000));
        assert_eq!(Price::FREE.cost(1_000, 1_000), NanoUsd::ZERO);
        assert!(Price::FREE.is_free());
    }
}
