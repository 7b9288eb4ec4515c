//! A request's prompt (`messages`, or `prompt` / `input`) read straight from its JSON text:
//! validated, and counted in tokens, without building a JSON tree. A body of many tiny
//! messages costs no more memory to check than its own bytes (a `serde_json::Value` of it
//! would take ten times as much).
//!
//! The count is [`crate::tokens::count_messages`]'s and [`crate::tokens::count_input`]'s:
//! OpenAI's per-message overhead, standard roles as one token, text anywhere inside a value
//! counted as text, other scalars by their JSON form.

use crate::tokens::{ROLES, count_text};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// Which prompt field a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptKind {
    /// Chat `messages`: a non-empty array of objects with a string `role`.
    Messages,
    /// Completions `prompt` / embeddings `input`: a string, or a non-empty array.
    Input,
}

/// Checks a prompt's shape; the message says what is wrong, naming the field as `field`.
pub fn validate(kind: PromptKind, field: &str, raw: &str) -> Result<(), String> {
    walk(kind, field, raw, false).map(|_| ())
}

/// The prompt's tokens (the prompt was validated; a malformed one counts what it can).
pub fn count(kind: PromptKind, raw: &str) -> u64 {
    walk(kind, "", raw, true).unwrap_or(0)
}

fn walk(kind: PromptKind, field: &str, raw: &str, counting: bool) -> Result<u64, String> {
    let mut de = serde_json::Deserializer::from_str(raw);
    let result = match kind {
        PromptKind::Messages => Messages { field, counting }.deserialize(&mut de),
        PromptKind::Input => Input { field, counting }.deserialize(&mut de),
    };
    result.map_err(|e| {
        let text = e.to_string();
        // serde_json appends " at line L column C" to custom errors.
        match text.rfind(" at line ") {
            Some(at) => text[..at].to_string(),
            None => text,
        }
    })
}

/// The `visit_*` methods of every JSON type a visitor refuses, each answering with
/// `$refusal` (a method of the visitor returning the error).
macro_rules! refuse {
    ($refusal:ident: $($method:ident($($arg:ty)?)),* $(,)?) => {$(
        fn $method<E: de::Error>(self $(, _: $arg)?) -> Result<u64, E> {
            Err(self.$refusal())
        }
    )*};
}

struct Messages<'f> {
    field: &'f str,
    counting: bool,
}

impl<'de> DeserializeSeed<'de> for Messages<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Messages<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of message objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut total = 3;
        let mut index = 0usize;
        while let Some(tokens) = seq.next_element_seed(Message {
            field: self.field,
            index,
            counting: self.counting,
        })? {
            total += tokens;
            index += 1;
        }
        if index == 0 {
            return Err(de::Error::custom(format!(
                "Invalid '{}': must contain at least one message",
                self.field
            )));
        }
        Ok(total)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<u64, A::Error> {
        Err(self.wrong_type())
    }
    refuse!(wrong_type: visit_str(&str), visit_bool(bool), visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_unit());
}

impl Messages<'_> {
    fn wrong_type<E: de::Error>(&self) -> E {
        E::custom(format!(
            "Invalid type for '{}': expected an array of message objects",
            self.field
        ))
    }
}

struct Message<'f> {
    field: &'f str,
    index: usize,
    counting: bool,
}

impl<'de> DeserializeSeed<'de> for Message<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Message<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut total = 3;
        let mut has_role = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "role" {
                let role: Option<Cow<'de, str>> = map.next_value::<RoleValue>()?.0;
                if let Some(role) = role {
                    has_role = true;
                    if self.counting {
                        total += if ROLES.contains(&role.as_ref()) {
                            1
                        } else {
                            count_text(&role)
                        };
                    }
                }
                continue;
            }
            total += map.next_value_seed(Text {
                counting: self.counting,
            })?;
            if key == "name" {
                total += 1;
            }
        }
        if !has_role {
            return Err(de::Error::custom(format!(
                "Invalid '{}[{}]': missing string field 'role'",
                self.field, self.index
            )));
        }
        Ok(total)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<u64, A::Error> {
        Err(self.not_an_object())
    }
    refuse!(not_an_object: visit_str(&str), visit_bool(bool), visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_unit());
}

impl Message<'_> {
    fn not_an_object<E: de::Error>(&self) -> E {
        E::custom(format!(
            "Invalid '{}[{}]': expected an object",
            self.field, self.index
        ))
    }
}

/// A `role` value: the string, or `None` for anything else (read and skipped).
struct RoleValue<'de>(Option<Cow<'de, str>>);

impl<'de> serde::Deserialize<'de> for RoleValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RoleValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a role")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<RoleValue<'de>, E> {
                Ok(RoleValue(Some(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<RoleValue<'de>, E> {
                Ok(RoleValue(Some(Cow::Owned(s.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<RoleValue<'de>, E> {
                Ok(RoleValue(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<RoleValue<'de>, E> {
                Ok(RoleValue(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<RoleValue<'de>, E> {
                Ok(RoleValue(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<RoleValue<'de>, E> {
                Ok(RoleValue(None))
            }
            fn visit_unit<E>(self) -> Result<RoleValue<'de>, E> {
                Ok(RoleValue(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RoleValue<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(RoleValue(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RoleValue<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RoleValue(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Any value, counted as text: strings by their text, containers by their contents (keys
/// excluded), other scalars by their JSON form.
#[derive(Clone, Copy)]
struct Text {
    counting: bool,
}

impl Text {
    fn scalar(self, json: impl FnOnce() -> String) -> u64 {
        if self.counting {
            count_text(&json())
        } else {
            0
        }
    }
}

impl<'de> DeserializeSeed<'de> for Text {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Text {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "any JSON value")
    }

    fn visit_str<E>(self, s: &str) -> Result<u64, E> {
        Ok(if self.counting { count_text(s) } else { 0 })
    }
    fn visit_bool<E>(self, b: bool) -> Result<u64, E> {
        Ok(self.scalar(|| b.to_string()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<u64, E> {
        Ok(self.scalar(|| v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<u64, E> {
        Ok(self.scalar(|| v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<u64, E> {
        Ok(self.scalar(|| {
            serde_json::Number::from_f64(v).map_or_else(|| "null".into(), |n| n.to_string())
        }))
    }
    fn visit_unit<E>(self) -> Result<u64, E> {
        Ok(0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        let mut total = 0;
        while let Some(n) = seq.next_element_seed(self)? {
            total += n;
        }
        Ok(total)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u64, A::Error> {
        let mut total = 0;
        while map.next_key::<IgnoredAny>()?.is_some() {
            total += map.next_value_seed(self)?;
        }
        Ok(total)
    }
}

/// `prompt` / `input`: a string, token ids (one token each), or other content counted as text.
struct Input<'f> {
    field: &'f str,
    counting: bool,
}

impl<'de> DeserializeSeed<'de> for Input<'_> {
    type Value = u64;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Input<'_> {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string or an array")
    }

    fn visit_str<E>(self, s: &str) -> Result<u64, E> {
        Ok(if self.counting { count_text(s) } else { 0 })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u64, A::Error> {
        // Token ids count one each; anything else counts as text (as count_input does, an
        // array is token ids only when every item is a number).
        let (mut items, mut numbers, mut text) = (0u64, 0u64, 0u64);
        while let Some(item) = seq.next_element_seed(Item {
            counting: self.counting,
        })? {
            items += 1;
            match item {
                ItemCount::Number(t) => {
                    numbers += 1;
                    text += t;
                }
                ItemCount::Other(t) => text += t,
            }
        }
        if items == 0 {
            return Err(de::Error::custom(format!(
                "Invalid '{}': must not be empty",
                self.field
            )));
        }
        Ok(if numbers == items { items } else { text })
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<u64, A::Error> {
        Err(self.wrong_type())
    }
    refuse!(wrong_type: visit_bool(bool), visit_i64(i64), visit_u64(u64), visit_f64(f64), visit_unit());
}

impl Input<'_> {
    fn wrong_type<E: de::Error>(&self) -> E {
        E::custom(format!(
            "Invalid type for '{}': expected a string or an array",
            self.field
        ))
    }
}

enum ItemCount {
    /// A number: one token as a token id, or its text when the array is not all ids.
    Number(u64),
    Other(u64),
}

struct Item {
    counting: bool,
}

impl<'de> DeserializeSeed<'de> for Item {
    type Value = ItemCount;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ItemCount, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Item {
    type Value = ItemCount;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "any JSON value")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ItemCount, E> {
        Ok(ItemCount::Number(self.text().visit_i64::<E>(v)?))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ItemCount, E> {
        Ok(ItemCount::Number(self.text().visit_u64::<E>(v)?))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ItemCount, E> {
        Ok(ItemCount::Number(self.text().visit_f64::<E>(v)?))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<ItemCount, E> {
        Ok(ItemCount::Other(self.text().visit_str::<E>(s)?))
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<ItemCount, E> {
        Ok(ItemCount::Other(self.text().visit_bool::<E>(b)?))
    }
    fn visit_unit<E: de::Error>(self) -> Result<ItemCount, E> {
        Ok(ItemCount::Other(0))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ItemCount, A::Error> {
        Ok(ItemCount::Other(self.text().visit_seq(seq)?))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ItemCount, A::Error> {
        Ok(ItemCount::Other(self.text().visit_map(map)?))
    }
}

impl Item {
    fn text(self) -> Text {
        Text {
            counting: self.counting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::{count_input, count_messages};
    use serde_json::{Value, json};

    #[test]
    fn counts_as_the_tree_counter_does() {
        let cases = [
            json!([{"role": "user", "content": "Hello there, how are you?"}]),
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "name": "bob", "content": "hi"}]),
            json!([{"role": "custom-role", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]),
            json!([{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "42", "weight": 1.5, "flag": true, "n": -3}]),
            json!([{"role": "user", "content": "escaped \"quotes\" and \u{e9}\n newline"}]),
        ];
        for messages in cases {
            let raw = messages.to_string();
            assert_eq!(
                count(PromptKind::Messages, &raw),
                count_messages(&messages),
                "{raw}"
            );
        }
        for input in [
            json!("a plain prompt"),
            json!(["one", "two"]),
            json!([1, 2, 3, 4]),
            json!([1, "mixed", 2.5]),
            json!([[1, 2], [3]]),
        ] {
            let raw = input.to_string();
            assert_eq!(count(PromptKind::Input, &raw), count_input(&input), "{raw}");
        }
    }

    #[test]
    fn bad_shapes_are_named() {
        let check = |kind, raw: &str| validate(kind, "messages", raw).unwrap_err();
        assert_eq!(
            check(PromptKind::Messages, "[]"),
            "Invalid 'messages': must contain at least one message"
        );
        assert_eq!(
            check(PromptKind::Messages, r#"{"role": "user"}"#),
            "Invalid type for 'messages': expected an array of message objects"
        );
        assert_eq!(
            check(PromptKind::Messages, r#"[{"role": "user"}, "x"]"#),
            "Invalid 'messages[1]': expected an object"
        );
        assert_eq!(
            check(PromptKind::Messages, r#"[{"role": 7, "content": "x"}]"#),
            "Invalid 'messages[0]': missing string field 'role'"
        );
        assert_eq!(
            validate(PromptKind::Input, "input", "[]").unwrap_err(),
            "Invalid 'input': must not be empty"
        );
        assert_eq!(
            validate(PromptKind::Input, "input", "{}").unwrap_err(),
            "Invalid type for 'input': expected a string or an array"
        );
        let ok: Value = json!([{"role": "user", "content": "x"}]);
        assert_eq!(
            validate(PromptKind::Messages, "messages", &ok.to_string()),
            Ok(())
        );
    }
}
