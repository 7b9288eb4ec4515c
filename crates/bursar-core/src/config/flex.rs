//! Lenient scalar deserializers: LiteLLM configs often carry numbers and booleans as strings
//! (typically after an `os.environ/` reference was resolved), and Python accepts them.

use serde::{Deserialize, Deserializer, de::Error};
use serde_json::Value;

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let text = scalar_text(&v)
                .ok_or_else(|| D::Error::custom(format!("expected a whole number, got {v}")))?;
            if let Ok(n) = text.parse::<u64>() {
                return Ok(Some(n));
            }
            // Accept integral floats such as 100.0.
            match text.parse::<f64>() {
                Ok(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
                _ => Err(D::Error::custom(format!(
                    "expected a non-negative whole number, got {text}"
                ))),
            }
        }
    }
}

pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match opt_u64(d)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{n} is too large"))),
    }
}

pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let text = scalar_text(&v)
                .ok_or_else(|| D::Error::custom(format!("expected a number, got {v}")))?;
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(D::Error::custom(format!("expected a number, got {text}"))),
            }
        }
    }
}

pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(v) => match scalar_text(&v)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("true" | "1" | "yes" | "on") => Ok(Some(true)),
            Some("false" | "0" | "no" | "off") => Ok(Some(false)),
            _ => Err(D::Error::custom(format!("expected true or false, got {v}"))),
        },
    }
}

pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(v) => Err(D::Error::custom(format!("expected a string, got {v}"))),
    }
}
