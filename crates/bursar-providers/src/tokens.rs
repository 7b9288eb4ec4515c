//! Counting prompt tokens locally, to estimate a request's cost before it is sent.
//!
//! Counts use OpenAI's `o200k_base` encoding for every model: exact for current OpenAI
//! models and a close estimate for others. Chat messages add OpenAI's per-message overhead
//! (3 tokens per message, 3 for the reply primer).
//!
//! The counter is Bursar's own and only counts (it never builds the token list): the text is
//! split with o200k's pre-tokenizer pattern, a piece that is itself a token counts one, and
//! any other piece is merged pair by pair, lowest rank first, as byte-pair encoding does. The
//! vocabulary is embedded (`data/o200k_base.bin`, from `tools/gen_o200k.py`) and indexed once,
//! which takes a few megabytes instead of the tens a general-purpose tokenizer keeps.

use foldhash::fast::RandomState;
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The vocabulary: for every rank from 0, a length byte and the token's bytes.
const VOCABULARY: &[u8] = include_bytes!("../data/o200k_base.bin");

/// o200k's pre-tokenizer, less its `\s+(?!\S)` alternative: the regex crate has no
/// look-ahead, so a whitespace run is matched whole and [`Counter::pieces`] gives its last
/// character back when a word follows, which is what the look-ahead does.
const PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"|\s*[\r\n]+",
    r"|\s+",
);

/// Pieces longer than this are merged in chunks of this size, which keeps the quadratic
/// merge bounded on pathological input (one token per chunk boundary may differ from
/// tiktoken; ordinary text never has such pieces).
const MAX_PIECE: usize = 64;
// Part boundaries are kept as bytes.
const _: () = assert!(MAX_PIECE < 256);

struct Counter {
    ranks: HashMap<&'static [u8], u32, RandomState>,
    splitter: Regex,
}

fn counter() -> Option<&'static Counter> {
    static COUNTER: OnceLock<Option<Counter>> = OnceLock::new();
    COUNTER.get_or_init(Counter::load).as_ref()
}

impl Counter {
    fn load() -> Option<Counter> {
        let mut ranks = HashMap::with_capacity_and_hasher(200_000, RandomState::default());
        let mut rest = VOCABULARY;
        let mut rank = 0u32;
        while let Some((&len, tail)) = rest.split_first() {
            let (token, tail) = tail.split_at_checked(usize::from(len))?;
            ranks.insert(token, rank);
            rank += 1;
            rest = tail;
        }
        let splitter = Regex::new(PATTERN).ok()?;
        Some(Counter { ranks, splitter })
    }

    fn count(&self, text: &str) -> u64 {
        self.pieces(text).map(|p| self.count_piece(p)).sum()
    }

    /// The pre-tokenizer's pieces of `text`.
    fn pieces<'t>(&'t self, text: &'t str) -> impl Iterator<Item = &'t [u8]> + 't {
        let mut at = 0;
        std::iter::from_fn(move || {
            let found = self.splitter.find_at(text, at)?;
            let piece = found.as_str();
            let mut end = found.end();
            // A whitespace run before a word keeps its last character for that word
            // (o200k's `\s+(?!\S)`). Runs ending in a line break come from `\s*[\r\n]+`.
            if end < text.len()
                && piece.chars().all(char::is_whitespace)
                && !piece.ends_with(['\r', '\n'])
                && let Some(last) = piece.chars().next_back()
                && piece.len() > last.len_utf8()
            {
                end -= last.len_utf8();
            }
            at = end;
            text.as_bytes().get(found.start()..end)
        })
    }

    fn count_piece(&self, piece: &[u8]) -> u64 {
        // Some tokens are longer than a chunk (runs of spaces or dashes, up to 128 bytes).
        if piece.len() > MAX_PIECE && self.ranks.contains_key(piece) {
            return 1;
        }
        piece.chunks(MAX_PIECE).map(|c| self.merge(c)).sum()
    }

    fn rank(&self, bytes: &[u8]) -> u32 {
        self.ranks.get(bytes).copied().unwrap_or(u32::MAX)
    }

    /// Tokens byte-pair encoding makes of `piece` (at most [`MAX_PIECE`] bytes): start from
    /// single bytes and merge the adjacent pair with the lowest rank (leftmost on a tie)
    /// until no pair is a token.
    fn merge(&self, piece: &[u8]) -> u64 {
        if piece.len() <= 1 || self.ranks.contains_key(piece) {
            return piece.len().min(1) as u64;
        }
        // starts[i] is where part i begins; pair[i] the rank of parts i and i + 1 joined.
        let mut starts = [0u8; MAX_PIECE + 1];
        let mut pair = [u32::MAX; MAX_PIECE];
        let mut parts = piece.len();
        for (i, start) in starts.iter_mut().enumerate() {
            *start = i as u8;
        }
        let span = |starts: &[u8], from: usize, to: usize| {
            piece
                .get(usize::from(starts[from])..usize::from(starts[to]))
                .unwrap_or_default()
        };
        for (i, rank) in pair[..parts - 1].iter_mut().enumerate() {
            *rank = self.rank(span(&starts, i, i + 2));
        }
        loop {
            let Some((i, _)) = pair[..parts - 1]
                .iter()
                .enumerate()
                .filter(|(_, r)| **r != u32::MAX)
                .min_by_key(|(i, r)| (**r, *i))
            else {
                return parts as u64;
            };
            // Join parts i and i + 1: drop the start of i + 1 and the pair rank it began.
            starts.copy_within(i + 2..=parts, i + 1);
            pair.copy_within(i + 1..parts - 1, i);
            parts -= 1;
            if i + 1 < parts {
                pair[i] = self.rank(span(&starts, i, i + 2));
            }
            if i > 0 {
                pair[i - 1] = self.rank(span(&starts, i - 1, i + 1));
            }
        }
    }
}

/// Builds the counter now (it takes a moment), so the first request does not pay for it.
pub fn warm_up() {
    let _ = counter();
}

/// Tokens in a piece of text.
pub fn count_text(text: &str) -> u64 {
    match counter() {
        Some(c) => c.count(text),
        // Without the vocabulary, one token per 3 bytes over-estimates every common text.
        None => (text.len() as u64).div_ceil(3),
    }
}

/// The chat roles, each a single o200k token (a unit test keeps this true).
pub(crate) const ROLES: [&str; 6] = [
    "system",
    "user",
    "assistant",
    "tool",
    "developer",
    "function",
];

/// Tokens of the prompt a chat `messages` array makes.
pub fn count_messages(messages: &Value) -> u64 {
    let Some(list) = messages.as_array() else {
        return 0;
    };
    let mut total = 3;
    for message in list {
        total += 3;
        if let Some(fields) = message.as_object() {
            for (name, value) in fields {
                total += match (name.as_str(), value.as_str()) {
                    // Every standard role is one token; skip the encoder for them.
                    ("role", Some(role)) if ROLES.contains(&role) => 1,
                    _ => count_value(value),
                };
                if name == "name" {
                    total += 1;
                }
            }
        }
    }
    total
}

/// Tokens of a `prompt` / `input`: a string, a list of strings, or token ids.
pub fn count_input(input: &Value) -> u64 {
    match input {
        Value::Array(items) if items.iter().all(Value::is_number) => items.len() as u64,
        other => count_value(other),
    }
}

/// Text anywhere inside a value (content parts, tool calls, …), counted as text; other
/// scalars count by their JSON form.
fn count_value(value: &Value) -> u64 {
    match value {
        Value::Null => 0,
        Value::String(s) => count_text(s),
        Value::Array(items) => items.iter().map(count_value).sum(),
        Value::Object(fields) => fields.values().map(count_value).sum(),
        other => count_text(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_standard_role_is_one_token() {
        for role in ROLES {
            assert_eq!(count_text(role), 1, "{role}");
        }
    }

    #[test]
    fn counts_text_with_o200k() {
        assert_eq!(count_text(""), 0);
        assert_eq!(count_text("hello world"), 2);
        // Counts tiktoken's o200k_base gives for the same text (whitespace runs, the
        // look-ahead rule, contractions, digits in threes, non-Latin scripts).
        assert_eq!(count_text("You are a helpful assistant."), 6);
        assert_eq!(count_text("  multiple   spaces\n\nand lines  "), 8);
        assert_eq!(
            count_text("Ünïcödé 日本語のテキスト 123456 foo_bar'll I've"),
            18
        );
    }

    /// Text with every kind of piece the pre-tokenizer makes.
    const SAMPLES: &[&str] = &[
        "The quick brown fox jumps over the lazy dog.",
        "  leading spaces, trailing spaces   ",
        "tabs\tand\t\tdouble tabs\n\nand\r\nwindows lines\r\n",
        "words   after several spaces\n   and indented lines\n\n\n",
        "I'LL say it's fine, they'd've known. DON'T SHOUT'S",
        "Numbers 1 12 123 1234 12345 3.14159 -42 1,000,000 0x1F",
        "fn main() { println!(\"hi {}\", x[0] + y.len()); } // ok?",
        "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\"}],\"n\":2}",
        "https://example.com/path/to/page?query=1&b=two#frag",
        "Ünïcödé, naïve café résumé — «quotes» “curly” ‘single’",
        "日本語のテキストと中文文本，还有한국어 텍스트。",
        "Ελληνικά και Русский текст и العربية והעברית",
        "emoji 🎉🚀 and flags 🇫🇷 with ZWJ 👩‍💻 sequences",
        "non-breaking\u{a0}space and ideographic\u{3000}space and \u{2003}em",
        "MixedCASEWords camelCase snake_case kebab-case SCREAMING_CASE",
        "punctuation!!! ??? ... --- *** /// \\\\ ||| @@@ ###",
        "trailing newline run \n \n\t\n",
        " ",
        "\n",
        "a",
    ];

    #[test]
    fn counts_match_tiktoken_o200k() {
        let reference = tiktoken_rs::o200k_base().expect("tiktoken's o200k");
        for text in SAMPLES {
            assert_eq!(
                count_text(text),
                reference.encode_ordinary(text).len() as u64,
                "{text:?}"
            );
        }
        // Random text from a mix of scripts, digits, punctuation and whitespace: the
        // pre-tokenizer's look-ahead emulation and the merge order must agree everywhere.
        let alphabet: Vec<char> =
            "aeioustnrlAEZ éüßñ日本中한Жж١2 0 9\t\n\r'.,!?-_/\"{}🎉\u{a0}\u{3000}"
                .chars()
                .collect();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..3_000 {
            let len = (seed % 40) as usize;
            let text: String = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            assert_eq!(
                count_text(&text),
                reference.encode_ordinary(&text).len() as u64,
                "{text:?}"
            );
        }
    }

    #[test]
    fn long_pieces_are_counted_in_bounded_time_and_close_to_tiktoken() {
        let reference = tiktoken_rs::o200k_base().expect("tiktoken's o200k");
        let word = "pneumonoultramicroscopicsilicovolcanoconiosis".repeat(20);
        let exact = reference.encode_ordinary(&word).len() as u64;
        let ours = count_text(&word);
        let chunks = word.len().div_ceil(MAX_PIECE) as u64;
        assert!(ours.abs_diff(exact) <= chunks, "{ours} vs {exact}");
        // A megabyte of one letter is one piece: counted in chunks, not quadratically.
        // Tokens longer than a chunk still count one.
        for long_token in ["-".repeat(112), " ".repeat(128)] {
            assert_eq!(count_text(&long_token), 1);
            assert_eq!(reference.encode_ordinary(&long_token).len(), 1);
        }
        let huge = "a".repeat(1 << 20);
        assert!(count_text(&huge) >= (1 << 20) / MAX_PIECE as u64);
    }

    #[test]
    fn chat_messages_add_openai_overhead() {
        // OpenAI reports 8 prompt tokens for this conversation on gpt-4o.
        let m = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(count_messages(&m), 3 + 3 + 1 + 1);
        let parts = json!([{"role": "user", "content": [{"type": "text", "text": "hello world"}]}]);
        assert!(count_messages(&parts) >= 3 + 3 + 2);
    }

    #[test]
    fn input_lists_and_token_ids() {
        assert_eq!(count_input(&json!([1, 2, 3])), 3);
        assert_eq!(count_input(&json!(["hello world", "hello world"])), 4);
    }
}
