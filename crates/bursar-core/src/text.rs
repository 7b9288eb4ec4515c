//! What text may reach the store. PostgreSQL rejects NUL in `text` and `jsonb`, and its
//! btree indexes reject long values; a request carrying either must be refused at the edge,
//! with a 400 naming the field, rather than poisoning a ledger batch or failing as a 500.
//!
//! [`check_json`] walks a JSON document without building it (a streaming serde visitor), so a
//! large body costs no more memory to check than to read.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::fmt;

/// The longest id, alias, email, tag or model name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// The most entries a list of names (models, tags, ids, members…) may have in a request.
pub const MAX_NAME_LIST: usize = 1_000;
/// The most entries any other list in a management request may have.
pub const MAX_LIST: usize = 10_000;

/// Why a piece of text was refused; `field` is the nearest JSON object key (or the query
/// parameter).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    #[error("'{field}' contains a NUL character (\\u0000), which cannot be stored")]
    Nul { field: String },
    #[error("'{field}' is longer than {max} characters")]
    TooLong { field: String, max: usize },
    #[error("'{field}' has more than {max} entries")]
    TooMany { field: String, max: usize },
}

impl TextProblem {
    pub fn field(&self) -> &str {
        match self {
            TextProblem::Nul { field }
            | TextProblem::TooLong { field, .. }
            | TextProblem::TooMany { field, .. } => field,
        }
    }
}

/// Whether a field holds a name that is stored in an indexed column: ids, aliases, emails,
/// tags, model names and end-user ids.
pub fn is_name_field(field: &str) -> bool {
    field.ends_with("_id")
        || field.ends_with("_alias")
        || field.ends_with("_ids")
        || field.ends_with("_aliases")
        || matches!(
            field,
            "user_email"
                | "key"
                | "keys"
                | "new_key"
                | "api_key"
                | "key_hash"
                | "token"
                | "tags"
                | "tag"
                | "models"
                | "user"
                | "model"
        )
}

/// Checks one value of `field` (a query parameter, a header, a string field).
pub fn check_str(field: &str, value: &str) -> Result<(), TextProblem> {
    if value.contains('\0') {
        return Err(TextProblem::Nul {
            field: field.to_string(),
        });
    }
    if is_name_field(field) && value.chars().count() > MAX_NAME_CHARS {
        return Err(TextProblem::TooLong {
            field: field.to_string(),
            max: MAX_NAME_CHARS,
        });
    }
    Ok(())
}

/// Checks every string and object key of a JSON document: no NUL anywhere, and names (see
/// [`is_name_field`]) at most [`MAX_NAME_CHARS`] long, except inside `metadata` objects,
/// which are stored as JSON and may hold long values. A document that is not valid JSON
/// passes: parsing reports that better.
pub fn check_json(bytes: &[u8]) -> Result<(), TextProblem> {
    check_json_field("body", bytes)
}

/// [`check_json`] for a management request, whose lists are bounded too: a list of names
/// at most [`MAX_NAME_LIST`] entries, any other at most [`MAX_LIST`] (one request must not
/// cost the gateway more memory than its body's few megabytes parse into).
pub fn check_management_json(bytes: &[u8]) -> Result<(), TextProblem> {
    walk("body", bytes, true)
}

/// [`check_json`] for the value of one field (`metadata`, `tags`, `user` of a data-plane
/// request).
pub fn check_json_field(field: &str, bytes: &[u8]) -> Result<(), TextProblem> {
    walk(field, bytes, false)
}

fn walk(field: &str, bytes: &[u8], bounded_lists: bool) -> Result<(), TextProblem> {
    let problem = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let walk = Walk {
        field,
        free: field == "metadata",
        bounded_lists,
        problem: &problem,
    };
    let _ = walk.deserialize(&mut de);
    match problem.into_inner() {
        Some(p) => Err(p),
        None => Ok(()),
    }
}

struct Walk<'a> {
    field: &'a str,
    /// Inside `metadata`: only NUL is refused.
    free: bool,
    /// Lists are bounded ([`MAX_NAME_LIST`], [`MAX_LIST`]).
    bounded_lists: bool,
    problem: &'a RefCell<Option<TextProblem>>,
}

impl Walk<'_> {
    fn fail<E: de::Error>(&self, problem: TextProblem) -> Result<(), E> {
        *self.problem.borrow_mut() = Some(problem);
        Err(E::custom("text refused"))
    }

    fn text<E: de::Error>(&self, value: &str) -> Result<(), E> {
        // Tags are aggregated into indexed rows wherever they are given.
        let result = if self.free && self.field != "tags" {
            if value.contains('\0') {
                Err(TextProblem::Nul {
                    field: self.field.to_string(),
                })
            } else {
                Ok(())
            }
        } else {
            check_str(self.field, value)
        };
        match result {
            Ok(()) => Ok(()),
            Err(p) => self.fail(p),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.text(value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let max = if is_name_field(self.field) {
            MAX_NAME_LIST
        } else {
            MAX_LIST
        };
        let mut entries = 0usize;
        while seq
            .next_element_seed(Walk {
                field: self.field,
                free: self.free,
                bounded_lists: self.bounded_lists,
                problem: self.problem,
            })?
            .is_some()
        {
            entries += 1;
            if self.bounded_lists && entries > max {
                return self.fail(TextProblem::TooMany {
                    field: self.field.to_string(),
                    max,
                });
            }
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key.contains('\0') {
                return self
                    .fail(TextProblem::Nul {
                        field: self.field.to_string(),
                    })
                    .map(|_| ());
            }
            map.next_value_seed(Walk {
                field: &key,
                free: self.free || key == "metadata",
                bounded_lists: self.bounded_lists,
                problem: self.problem,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_refused_anywhere_with_the_nearest_field() {
        for (body, field) in [
            (r#"{"metadata": {"tags": ["x\u0000y"]}}"#, "tags"),
            (r#"{"user_id": "a\u0000"}"#, "user_id"),
            (r#"{"members": [{"user_id": "\u0000"}]}"#, "user_id"),
            (r#"{"metadata": {"k\u0000": 1}}"#, "metadata"),
        ] {
            assert_eq!(
                check_json(body.as_bytes()),
                Err(TextProblem::Nul {
                    field: field.to_string()
                }),
                "{body}"
            );
        }
        // An escaped backslash followed by "u0000" is just text.
        assert_eq!(check_json(br#"{"user_id": "\\u0000"}"#), Ok(()));
    }

    #[test]
    fn long_names_are_refused_outside_metadata() {
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        let fits = "é".repeat(MAX_NAME_CHARS);
        for field in [
            "key_alias",
            "user_id",
            "team_alias",
            "tags",
            "models",
            "user_email",
        ] {
            let body = format!(r#"{{"{field}": "{long}"}}"#);
            assert_eq!(
                check_json(body.as_bytes()),
                Err(TextProblem::TooLong {
                    field: field.to_string(),
                    max: MAX_NAME_CHARS
                })
            );
            let ok = format!(r#"{{"{field}": ["{fits}"]}}"#);
            assert_eq!(check_json(ok.as_bytes()), Ok(()), "{field}");
        }
        let metadata = format!(r#"{{"metadata": {{"trace_id": "{long}"}}, "note": "{long}"}}"#);
        assert_eq!(check_json(metadata.as_bytes()), Ok(()));
    }

    #[test]
    fn tags_inside_metadata_are_names_too() {
        let long = "x".repeat(MAX_NAME_CHARS + 1);
        let body = format!(r#"{{"tags": ["{long}"], "trace": "{long}"}}"#);
        assert_eq!(
            check_json_field("metadata", body.as_bytes())
                .unwrap_err()
                .field(),
            "tags"
        );
    }

    #[test]
    fn management_lists_are_bounded() {
        let names = |n: usize| format!(r#"{{"models": [{}]}}"#, vec!["\"m\""; n].join(","));
        assert_eq!(
            check_management_json(names(MAX_NAME_LIST).as_bytes()),
            Ok(())
        );
        assert_eq!(
            check_management_json(names(MAX_NAME_LIST + 1).as_bytes()),
            Err(TextProblem::TooMany {
                field: "models".into(),
                max: MAX_NAME_LIST
            })
        );
        // The data plane's fields are not bounded this way.
        assert_eq!(check_json(names(MAX_NAME_LIST + 1).as_bytes()), Ok(()));
        let other = format!(
            r#"{{"budget_limits": [{}]}}"#,
            vec!["1"; MAX_LIST + 1].join(",")
        );
        assert!(check_management_json(other.as_bytes()).is_err());
    }

    #[test]
    fn invalid_json_is_left_to_the_parser() {
        assert_eq!(check_json(b"{\"user_id\": "), Ok(()));
        assert_eq!(check_json(b""), Ok(()));
    }

    #[test]
    fn single_values_are_checked_by_field() {
        assert!(check_str("team_id", "a\0").is_err());
        assert!(check_str("team_id", &"a".repeat(300)).is_err());
        assert_eq!(check_str("description", &"a".repeat(300)), Ok(()));
    }
}
