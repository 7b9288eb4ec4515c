//! Key material: generating virtual keys, hashing them for storage and lookup, and comparing
//! secrets in constant time.
//!
//! Keys are stored and looked up by the lower-case hex SHA-256 of the raw key, exactly as
//! LiteLLM's `hash_token`, so an existing LiteLLM database's key hashes stay valid.

use rand::RngExt;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix every virtual key carries.
pub const KEY_PREFIX: &str = "sk-";

/// A raw secret (master key, provider key). `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison with a presented value.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Lower-case hex SHA-256 of the raw key: the `token` column and every lookup key.
pub fn hash_key(raw: &str) -> String {
    hex::encode(Sha256::digest(raw.as_bytes()))
}

/// True when `value` already looks like a stored hash (64 lower-case hex characters).
pub fn is_key_hash(value: &str) -> bool {
    value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new random virtual key: `sk-` + 16 random bytes in URL-safe base64 (22 characters),
/// the same shape as LiteLLM's `secrets.token_urlsafe(16)`.
pub fn generate_key() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    format!("{KEY_PREFIX}{}", base64_url(&bytes))
}

/// The display form LiteLLM stores as `key_name`: `sk-...` + the last four characters.
pub fn abbreviate_key(raw: &str) -> String {
    let tail: String = raw
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-...{tail}")
}

/// Query parameters whose value is a credential whatever it looks like.
const SECRET_PARAMS: [&str; 4] = ["key", "api_key", "new_key", "master_key"];

/// A request path and query fit for a log line: every path segment and query value that is
/// (or, for [`SECRET_PARAMS`], may be) a raw key is replaced by its masked form. Percent-encoded
/// prefixes are caught too (`sk%2D…`).
pub fn redact_uri(path_and_query: &str) -> String {
    let looks_secret = |text: &str| {
        let lower = text.to_ascii_lowercase();
        lower.starts_with(KEY_PREFIX) || lower.starts_with("sk%2d")
    };
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let mut out: String = path
        .split('/')
        .map(|segment| {
            if looks_secret(segment) {
                mask_key(segment)
            } else {
                segment.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value))
                    if looks_secret(value)
                        || SECRET_PARAMS.contains(&name) && !value.is_empty() =>
                {
                    format!("{name}={}", mask_key(value))
                }
                _ => pair.to_string(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Masks a presented credential for error messages: first and last four characters only.
pub fn mask_key(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    if chars.len() <= 8 {
        return "****".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let idx = (n >> (18 - 6 * i)) & 0x3f;
            out.push(char::from(ALPHABET[idx as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacted_uris_keep_no_raw_key() {
        let raw = "sk-AbCdEfGhIjKlMnOpQrStUv";
        for uri in [
            format!("/key/info?key={raw}"),
            format!("/key/{raw}/regenerate"),
            format!("/key/list?page=1&api_key={raw}"),
            format!("/x?other={raw}"),
            "/key/info?key=sk%2DAbCdEfGhIjKlMnOpQrStUv".to_string(),
        ] {
            let redacted = super::redact_uri(&uri);
            assert!(!redacted.contains("EfGhIjKlMnOpQr"), "{uri} -> {redacted}");
            assert!(redacted.contains("****"), "{redacted}");
        }
        assert_eq!(
            super::redact_uri("/key/list?page=2&size=10"),
            "/key/list?page=2&size=10"
        );
        assert_eq!(
            super::redact_uri("/v1/chat/completions"),
            "/v1/chat/completions"
        );
        assert_eq!(
            super::redact_uri("/key/info?key=abc123hash"),
            "/key/info?key=abc1****hash"
        );
    }

    use super::*;

    #[test]
    fn hash_matches_litellm_hash_token() {
        // sha256("sk-1234") as computed by Python's hashlib.
        assert_eq!(
            hash_key("sk-1234"),
            "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b"
        );
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_key_hash(&hash_key("sk-1234")));
    }

    #[test]
    fn generated_keys_have_litellm_shape() {
        let key = generate_key();
        assert!(key.starts_with("sk-"));
        assert_eq!(key.len(), 25);
        assert!(
            key[3..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(generate_key(), key);
    }

    #[test]
    fn abbreviation_and_mask_hide_the_middle() {
        assert_eq!(abbreviate_key("sk-abcdefgh1234"), "sk-...1234");
        assert_eq!(mask_key("sk-abcdefgh1234"), "sk-a****1234");
        assert_eq!(mask_key("short"), "****");
    }

    #[test]
    fn secret_compares_and_hides() {
        let s = Secret::new("sk-master");
        assert!(s.matches("sk-master"));
        assert!(!s.matches("sk-master2"));
        assert!(!s.matches(""));
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn base64_url_matches_known_vectors() {
        assert_eq!(base64_url(b"\xfb\xff"), "-_8");
        assert_eq!(base64_url(b"foobar"), "Zm9vYmFy");
    }
}
