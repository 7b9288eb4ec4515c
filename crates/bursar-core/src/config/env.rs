//! Resolution of LiteLLM's `os.environ/NAME` references.
//!
//! Every string in the parsed YAML tree that starts with `os.environ/` is replaced by the value
//! of that variable. Values from the config's own `environment_variables` section win over the
//! process environment (LiteLLM copies that section into `os.environ` at startup; Bursar never
//! mutates its environment and looks the names up in order instead).

use serde_json::Value;

pub const ENV_PREFIX: &str = "os.environ/";

/// A reference whose variable is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingEnv {
    pub path: String,
    pub name: String,
}

/// Replaces every `os.environ/NAME` string in `value` in place and returns the references that
/// could not be resolved (all of them, so a config check reports every problem at once).
pub fn resolve_env_refs(
    value: &mut Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<MissingEnv> {
    let mut missing = Vec::new();
    walk(value, &mut String::new(), lookup, &mut missing);
    missing
}

fn walk(
    value: &mut Value,
    path: &mut String,
    lookup: &dyn Fn(&str) -> Option<String>,
    missing: &mut Vec<MissingEnv>,
) {
    match value {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix(ENV_PREFIX) {
                let name = name.trim().to_string();
                match lookup(&name) {
                    Some(resolved) => *s = resolved,
                    None => missing.push(MissingEnv {
                        path: path.clone(),
                        name,
                    }),
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(item, path, lookup, missing);
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(item, path, lookup, missing);
                path.truncate(len);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_references_everywhere_and_reports_all_missing() {
        let mut doc = json!({
            "general_settings": {"master_key": "os.environ/MASTER"},
            "model_list": [
                {"litellm_params": {"api_key": "os.environ/KEY_A"}},
                {"litellm_params": {"api_key": "os.environ/KEY_B", "api_base": "os.environ/BASE"}}
            ],
            "plain": "not a reference"
        });
        let lookup = |name: &str| match name {
            "MASTER" => Some("sk-master".to_string()),
            "KEY_A" => Some("secret-a".to_string()),
            _ => None,
        };
        let missing = resolve_env_refs(&mut doc, &lookup);
        assert_eq!(doc["general_settings"]["master_key"], "sk-master");
        assert_eq!(
            doc["model_list"][0]["litellm_params"]["api_key"],
            "secret-a"
        );
        assert_eq!(doc["plain"], "not a reference");
        let names: Vec<_> = missing
            .iter()
            .map(|m| (m.path.as_str(), m.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("model_list[1].litellm_params.api_base", "BASE"),
                ("model_list[1].litellm_params.api_key", "KEY_B"),
            ]
        );
    }
}
