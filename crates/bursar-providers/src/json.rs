//! A JSON object kept as raw field values, in order.
//!
//! The proxy only needs to read or replace a few top-level fields (`model`, `stream`,
//! `stream_options`, `usage`) of bodies that can be large (embeddings, long prompts). Parsing
//! into `Box<RawValue>` per field validates the JSON but allocates nothing per nested value, and
//! writing it back copies untouched fields byte for byte.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;

#[derive(Debug, Clone, Default)]
pub struct JsonObject {
    fields: Vec<(String, Box<RawValue>)>,
}

impl JsonObject {
    pub fn parse(bytes: &[u8]) -> Result<JsonObject, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The field decoded into `T`; `None` when absent, `Some(Err)` when of the wrong type.
    pub fn get_as<'a, T: Deserialize<'a>>(
        &'a self,
        key: &str,
    ) -> Option<Result<T, serde_json::Error>> {
        self.get(key).map(|raw| serde_json::from_str(raw.get()))
    }

    /// Sets a field, replacing an existing one in place or appending.
    pub fn set<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        match self.fields.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = raw,
            None => self.fields.push((key.to_string(), raw)),
        }
        Ok(())
    }

    /// Fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    pub fn remove(&mut self, key: &str) {
        self.fields.retain(|(k, _)| k != key);
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let len: usize = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum();
        let mut out = Vec::with_capacity(len + 2);
        out.push(b'{');
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Keys came from a JSON document, so re-escaping them with serde is exact.
            if serde_json::to_writer(&mut out, key).is_err() {
                out.extend_from_slice(b"\"\"");
            }
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        out
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = JsonObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonObject, A::Error> {
                let mut fields: Vec<(String, Box<RawValue>)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<String, Box<RawValue>>()? {
                    // Last duplicate wins, as with serde_json::Value.
                    fields.retain(|(k, _)| *k != key);
                    fields.push((key, value));
                }
                Ok(JsonObject { fields })
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_replaces_and_writes_back_in_order() {
        let mut obj = JsonObject::parse(
            br#"{"model":"a","messages":[{"role":"user","content":"hi \"x\""}],"n":1}"#,
        )
        .unwrap();
        assert_eq!(obj.get_as::<String>("model").unwrap().unwrap(), "a");
        obj.set("model", &"gpt-4o").unwrap();
        obj.set(
            "stream_options",
            &serde_json::json!({"include_usage": true}),
        )
        .unwrap();
        let text = String::from_utf8(obj.to_vec()).unwrap();
        assert_eq!(
            text,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi \"x\""}],"n":1,"stream_options":{"include_usage":true}}"#
        );
        let reparsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reparsed["n"], 1);
    }

    #[test]
    fn wrong_types_and_non_objects_are_errors() {
        let obj = JsonObject::parse(br#"{"model": 5}"#).unwrap();
        assert!(obj.get_as::<String>("model").unwrap().is_err());
        assert!(obj.get_as::<String>("missing").is_none());
        assert!(JsonObject::parse(b"[1,2]").is_err());
        assert!(JsonObject::parse(b"{\"a\":").is_err());
    }

    #[test]
    fn escaped_keys_survive() {
        let obj = JsonObject::parse(br#"{"we\"ird":1}"#).unwrap();
        assert_eq!(obj.to_vec(), br#"{"we\"ird":1}"#.to_vec());
    }
}
