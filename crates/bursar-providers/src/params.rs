//! Reading a deployment's provider settings: `litellm_params` values first, then the
//! environment variables LiteLLM falls back to (`environment_variables` of the config before
//! the process environment). Every problem is collected with its config path, so
//! `bursar check-config` names them all at once.

use bursar_core::config::{Config, ConfigProblem, Deployment};
use bursar_core::keys::Secret;
use serde_json::Value;

/// Environment lookups for credentials: the config's `environment_variables`, then the
/// process environment.
pub struct Env<'a> {
    config: &'a [(String, Secret)],
    process: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Env<'a> {
    pub fn new(config: &'a Config, process: &'a dyn Fn(&str) -> Option<String>) -> Env<'a> {
        Env {
            config: &config.environment,
            process,
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.config
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.expose().to_string())
            .or_else(|| (self.process)(name))
            .filter(|v| !v.trim().is_empty())
    }
}

/// The process environment, for [`Env::new`].
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

pub struct Params<'a> {
    deployment: &'a Deployment,
    env: &'a Env<'a>,
    problems: Vec<ConfigProblem>,
    /// Settings the adapter looked at; the others are reported as ignored.
    read: Vec<String>,
}

/// What building an adapter found besides problems.
pub struct Built<T> {
    pub value: T,
    /// `litellm_params` nobody reads, as config warnings.
    pub warnings: Vec<String>,
}

impl<'a> Params<'a> {
    pub fn new(deployment: &'a Deployment, env: &'a Env<'a>) -> Params<'a> {
        Params {
            deployment,
            env,
            problems: Vec::new(),
            read: Vec::new(),
        }
    }

    pub fn provider(&self) -> &str {
        &self.deployment.provider
    }

    pub fn problem(&mut self, field: &str, message: String) {
        self.problems.push(ConfigProblem {
            path: format!("{}.litellm_params.{field}", self.deployment.source),
            message,
        });
    }

    /// A text setting (numbers are taken as their text, as YAML writes versions unquoted).
    /// The raw value of a setting, marking it as read.
    pub fn value(&mut self, key: &str) -> Option<&'a Value> {
        self.read.push(key.to_string());
        self.deployment.params.get(key)
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        match self.value(key)? {
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                let kind = json_kind(other);
                self.problem(key, format!("expected a string, got {kind}"));
                None
            }
        }
    }

    /// The setting, else the first environment variable of `vars` that is set.
    pub fn string_or_env(&mut self, key: &str, vars: &[&str]) -> Option<String> {
        self.string(key)
            .or_else(|| vars.iter().find_map(|v| self.env.get(v)))
    }

    pub fn secret_or_env(&mut self, key: &str, vars: &[&str]) -> Option<Secret> {
        self.string_or_env(key, vars).map(Secret::new)
    }

    /// A credential the provider cannot work without: a problem naming where to set it.
    pub fn required_secret(&mut self, key: &str, vars: &[&str], what: &str) -> Option<Secret> {
        let found = self.secret_or_env(key, vars);
        if found.is_none() {
            let provider = self.deployment.provider.clone();
            let from_env = match vars {
                [] => String::new(),
                vars => format!(" or the environment variable {}", vars.join(" / ")),
            };
            self.problem(
                key,
                format!("provider {provider} needs {what}: set litellm_params.{key}{from_env}"),
            );
        }
        found
    }

    /// A base URL: the setting or an environment variable, else `default`; trailing slashes
    /// removed, and it must be http(s).
    pub fn url(&mut self, key: &str, vars: &[&str], default: Option<&str>) -> Option<String> {
        let url = self
            .string_or_env(key, vars)
            .map(|u| u.trim_end_matches('/').to_string())
            .or_else(|| default.map(str::to_string))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            self.problem(key, format!("{url:?} is not an http(s) URL"));
            return None;
        }
        Some(url)
    }

    pub fn flag(&mut self, key: &str) -> Option<bool> {
        match self.value(key)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
            other => {
                let kind = json_kind(other);
                self.problem(key, format!("expected true or false, got {kind}"));
                None
            }
        }
    }

    /// A mapping of header names to values (`extra_headers`).
    pub fn headers(&mut self, key: &str) -> http::HeaderMap {
        let mut out = http::HeaderMap::new();
        let Some(value) = self.value(key) else {
            return out;
        };
        let Value::Object(map) = value else {
            let kind = json_kind(value);
            self.problem(
                key,
                format!("expected a mapping of header names to values, got {kind}"),
            );
            return out;
        };
        for (name, value) in map {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => String::new(),
            };
            match (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&text),
            ) {
                (Ok(n), Ok(v)) if !text.is_empty() => {
                    out.insert(n, v);
                }
                _ => self.problem(
                    &format!("{key}.{name}"),
                    "is not a valid HTTP header name and value".into(),
                ),
            }
        }
        out
    }

    /// The adapter, if no problem was found, with the settings it ignored.
    pub fn finish<T>(self, value: Option<T>) -> Result<Built<T>, Vec<ConfigProblem>> {
        match value {
            Some(value) if self.problems.is_empty() => {
                let source = &self.deployment.source;
                let warnings = self
                    .deployment
                    .params
                    .as_map()
                    .keys()
                    .filter(|k| !self.read.contains(k) && !COMMON.contains(&k.as_str()))
                    .map(|k| {
                        format!(
                            "{source}.litellm_params.{k}: unknown or unsupported setting, ignored"
                        )
                    })
                    .collect();
                Ok(Built { value, warnings })
            }
            _ if !self.problems.is_empty() => Err(self.problems),
            _ => Err(vec![ConfigProblem {
                path: format!("{}.litellm_params", self.deployment.source),
                message: "cannot configure this deployment".into(),
            }]),
        }
    }
}

/// Settings every deployment may carry that no adapter reads (LiteLLM's router and
/// bookkeeping fields Bursar takes elsewhere or deliberately leaves alone).
const COMMON: &[&str] = &["tags", "litellm_credential_name", "custom_llm_provider"];

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Builds an adapter from one deployment's `litellm_params` (YAML flow mapping) and an
/// environment, as the router does: the adapter, or its config problems as text.
#[cfg(test)]
pub fn configure_for_test<T>(
    params: &str,
    env: &[(&str, &str)],
    configure: impl Fn(&Deployment, &mut Params<'_>) -> Option<T>,
) -> Result<T, Vec<String>> {
    let yaml = format!("model_list:\n  - model_name: m\n    litellm_params: {params}\n");
    let config = bursar_core::config::load(&yaml, &|_| None).unwrap().config;
    let vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let env = Env::new(&config, &lookup);
    let d = &config.models[0];
    let mut p = Params::new(d, &env);
    let built = configure(d, &mut p);
    p.finish(built)
        .map(|b| b.value)
        .map_err(|p| p.iter().map(ToString::to_string).collect())
}
