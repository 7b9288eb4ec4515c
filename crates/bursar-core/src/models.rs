//! Model access: who may call which model (LiteLLM's `_check_model_access_helper` rules).
//!
//! A model list allows a model when it is empty or holds `*` / `all-proxy-models`, names the
//! model, names an access group the model is in (`model_info.access_groups`), or holds a
//! wildcard pattern matching the model or the model behind its provider prefix
//! (`openai/*` allows `gpt-4o` served by an `openai/…` deployment).

use std::collections::HashMap;

pub const ALL_PROXY_MODELS: &str = "all-proxy-models";
pub const ALL_TEAM_MODELS: &str = "all-team-models";
pub const NO_DEFAULT_MODELS: &str = "no-default-models";

/// What the proxy serves, as model access needs to know it.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Public model names in configuration order.
    names: Vec<String>,
    /// Access group → the public names in it.
    groups: HashMap<String, Vec<String>>,
    /// Public name → the LiteLLM model names of its deployments (`openai/gpt-4o`).
    targets: HashMap<String, Vec<String>>,
}

impl Catalog {
    /// Builds the catalog from `(public name, litellm model, access groups)` per deployment.
    pub fn new<'a>(
        deployments: impl IntoIterator<Item = (&'a str, &'a str, &'a [String])>,
    ) -> Catalog {
        let mut c = Catalog::default();
        for (name, litellm_model, groups) in deployments {
            if !c.names.iter().any(|n| n == name) {
                c.names.push(name.to_string());
            }
            let targets = c.targets.entry(name.to_string()).or_default();
            if !targets.iter().any(|t| t == litellm_model) {
                targets.push(litellm_model.to_string());
            }
            for g in groups {
                let members = c.groups.entry(g.clone()).or_default();
                if !members.iter().any(|m| m == name) {
                    members.push(name.to_string());
                }
            }
        }
        c
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The public names in access group `name`, if it is one.
    pub fn group_members(&self, name: &str) -> Option<&[String]> {
        self.groups.get(name).map(Vec::as_slice)
    }

    pub fn is_access_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// Whether `list` lets its holder call `model`.
    pub fn allows(&self, list: &[String], model: &str) -> bool {
        list.is_empty() || list.iter().any(|entry| self.entry_allows(entry, model))
    }

    fn entry_allows(&self, entry: &str, model: &str) -> bool {
        if entry == "*" || entry == ALL_PROXY_MODELS || entry == model {
            return true;
        }
        if let Some(members) = self.groups.get(entry)
            && members.iter().any(|m| m == model)
        {
            return true;
        }
        if entry.contains('*') {
            return glob(entry, model)
                || self
                    .targets
                    .get(model)
                    .is_some_and(|ts| ts.iter().any(|t| glob(entry, t)));
        }
        false
    }
}

/// `*` matches any run of characters (including `/`); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    if parts.len() == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whose list refused the model; names LiteLLM's error type and wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denier {
    Key,
    Team,
    User,
    Org,
}

impl Denier {
    pub fn error_type(self) -> &'static str {
        match self {
            Denier::Key => "key_model_access_denied",
            Denier::Team => "team_model_access_denied",
            Denier::User => "user_model_access_denied",
            Denier::Org => "org_model_access_denied",
        }
    }

    pub fn object(self) -> &'static str {
        match self {
            Denier::Key => "key",
            Denier::Team => "team",
            Denier::User => "user",
            Denier::Org => "org",
        }
    }
}

/// A refused model, with the list that refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub by: Denier,
    pub allowed: Vec<String>,
    pub model: String,
}

impl Denied {
    /// LiteLLM's (newest) client-facing message: it names the model, not the lists.
    pub fn message(&self) -> String {
        format!(
            "The requested model '{}' is not available for this API key, or the model name is invalid. Check the models available to you and try again.",
            self.model
        )
    }

    /// The detailed reason, for logs.
    pub fn internal_message(&self) -> String {
        let object = self.by.object();
        format!(
            "{object} not allowed to access model. This {object} can only access models={:?}. Tried to access {}",
            self.allowed, self.model
        )
    }

    /// LiteLLM's error type; a user with `no-default-models` is refused as a key.
    pub fn error_type(&self) -> &'static str {
        if self.by == Denier::User && self.allowed.iter().any(|m| m == NO_DEFAULT_MODELS) {
            return Denier::Key.error_type();
        }
        self.by.error_type()
    }
}

/// The model lists that apply to one caller.
#[derive(Debug, Clone, Default)]
pub struct Grants<'a> {
    pub key: &'a [String],
    /// `Some` when the key belongs to a team.
    pub team: Option<&'a [String]>,
    /// A team member's own `allowed_models` (from their membership budget).
    pub member: &'a [String],
    /// The key owner's models; they decide only for keys without a team.
    pub user: Option<&'a [String]>,
    pub org: Option<&'a [String]>,
}

impl Grants<'_> {
    /// Key → team → user → organization, as LiteLLM checks them. `names` are the forms of
    /// the requested model (as sent, and after alias resolution); any one allowed is enough.
    pub fn check(&self, catalog: &Catalog, names: &[&str]) -> Result<(), Denied> {
        let requested = names.first().copied().unwrap_or_default();
        let denied = |by: Denier, allowed: &[String]| Denied {
            by,
            allowed: allowed.to_vec(),
            model: requested.to_string(),
        };
        let any = |list: &[String]| names.iter().any(|n| catalog.allows(list, n));
        // A key holding `all-team-models` leaves the decision to its team.
        let key_defers = self.key.iter().any(|m| m == ALL_TEAM_MODELS);
        if !key_defers && !any(self.key) {
            return Err(denied(Denier::Key, self.key));
        }
        if let Some(team) = self.team {
            if !any(team) {
                return Err(denied(Denier::Team, team));
            }
            if !any(self.member) {
                return Err(denied(Denier::Team, self.member));
            }
        } else if let Some(user) = self.user {
            if user.iter().any(|m| m == NO_DEFAULT_MODELS) {
                return Err(denied(Denier::User, user));
            }
            if !any(user) {
                return Err(denied(Denier::User, user));
            }
        }
        if let Some(org) = self.org
            && !any(org)
        {
            return Err(denied(Denier::Org, org));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let beta = vec!["beta".to_string()];
        let none: Vec<String> = Vec::new();
        Catalog::new([
            ("gpt-4o", "openai/gpt-4o", beta.as_slice()),
            ("gpt-4o-mini", "openai/gpt-4o-mini", none.as_slice()),
            ("claude", "anthropic/claude-3-5-sonnet", beta.as_slice()),
            ("llama", "hosted_vllm/llama-3", none.as_slice()),
        ])
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn glob_matches_stars_anywhere() {
        assert!(glob("openai/*", "openai/gpt-4o"));
        assert!(glob("*", "anything"));
        assert!(glob("bedrock/us.*", "bedrock/us.anthropic.claude"));
        assert!(glob("gpt-*-mini", "gpt-4o-mini"));
        assert!(!glob("gpt-*-mini", "gpt-4o"));
        assert!(!glob("openai/*", "anthropic/x"));
        assert!(glob("a*a", "aa"));
        assert!(!glob("a*a", "a"));
        assert!(glob("exact", "exact"));
    }

    #[test]
    fn a_list_allows_by_name_group_wildcard_or_being_open() {
        let c = catalog();
        assert!(c.allows(&[], "gpt-4o"));
        assert!(c.allows(&list(&["*"]), "llama"));
        assert!(c.allows(&list(&["all-proxy-models"]), "llama"));
        assert!(c.allows(&list(&["gpt-4o"]), "gpt-4o"));
        assert!(!c.allows(&list(&["gpt-4o"]), "gpt-4o-mini"));
        assert!(c.allows(&list(&["beta"]), "claude"));
        assert!(!c.allows(&list(&["beta"]), "llama"));
        // Wildcards match the public name or the deployment's provider-prefixed model.
        assert!(c.allows(&list(&["gpt-*"]), "gpt-4o-mini"));
        assert!(c.allows(&list(&["openai/*"]), "gpt-4o"));
        assert!(!c.allows(&list(&["openai/*"]), "claude"));
        assert!(c.allows(&list(&["anthropic/*"]), "claude"));
        assert!(c.is_access_group("beta"));
    }

    #[test]
    fn key_then_team_then_user_then_org() {
        let c = catalog();
        let key = list(&["gpt-4o"]);
        let team = list(&["gpt-4o-mini"]);
        let all_team = list(&["all-team-models"]);
        let g = Grants {
            key: &key,
            ..Grants::default()
        };
        assert!(g.check(&c, &["gpt-4o"]).is_ok());
        let e = g.check(&c, &["claude"]).unwrap_err();
        assert_eq!(e.by, Denier::Key);
        assert_eq!(
            e.internal_message(),
            r#"key not allowed to access model. This key can only access models=["gpt-4o"]. Tried to access claude"#
        );
        // The key allows it, the team does not.
        let g = Grants {
            key: &key,
            team: Some(&team),
            ..Grants::default()
        };
        assert_eq!(g.check(&c, &["gpt-4o"]).unwrap_err().by, Denier::Team);
        // all-team-models: the team decides.
        let g = Grants {
            key: &all_team,
            team: Some(&team),
            ..Grants::default()
        };
        assert!(g.check(&c, &["gpt-4o-mini"]).is_ok());
        assert_eq!(g.check(&c, &["gpt-4o"]).unwrap_err().by, Denier::Team);
        // An empty key list inherits the team's.
        let g = Grants {
            key: &[],
            team: Some(&team),
            ..Grants::default()
        };
        assert_eq!(g.check(&c, &["llama"]).unwrap_err().by, Denier::Team);
        // A member's own allowed_models narrow the team's.
        let member = list(&["gpt-4o"]);
        let open: Vec<String> = Vec::new();
        let g = Grants {
            key: &[],
            team: Some(&open),
            member: &member,
            ..Grants::default()
        };
        assert!(g.check(&c, &["gpt-4o"]).is_ok());
        assert_eq!(g.check(&c, &["llama"]).unwrap_err().by, Denier::Team);
    }

    #[test]
    fn user_lists_apply_to_personal_keys_only() {
        let c = catalog();
        let user = list(&["claude"]);
        let no_default = list(&["no-default-models"]);
        let personal = Grants {
            key: &[],
            user: Some(&user),
            ..Grants::default()
        };
        assert!(personal.check(&c, &["claude"]).is_ok());
        let e = personal.check(&c, &["gpt-4o"]).unwrap_err();
        assert_eq!(e.by, Denier::User);
        assert_eq!(e.by.error_type(), "user_model_access_denied");
        let blocked = Grants {
            key: &[],
            user: Some(&no_default),
            ..Grants::default()
        };
        let e = blocked.check(&c, &["gpt-4o"]).unwrap_err();
        assert_eq!(e.by, Denier::User);
        assert_eq!(e.error_type(), "key_model_access_denied");
        assert!(
            e.message()
                .starts_with("The requested model 'gpt-4o' is not available")
        );
        // On a team key the user's list does not decide.
        let open: Vec<String> = Vec::new();
        let team_key = Grants {
            key: &[],
            team: Some(&open),
            user: Some(&no_default),
            ..Grants::default()
        };
        assert!(team_key.check(&c, &["gpt-4o"]).is_ok());
        let org = list(&["beta"]);
        let in_org = Grants {
            key: &[],
            org: Some(&org),
            ..Grants::default()
        };
        assert!(in_org.check(&c, &["claude"]).is_ok());
        assert_eq!(in_org.check(&c, &["llama"]).unwrap_err().by, Denier::Org);
        assert_eq!(
            in_org.check(&c, &["llama"]).unwrap_err().by.error_type(),
            "org_model_access_denied"
        );
    }

    #[test]
    fn an_alias_or_its_target_may_be_the_allowed_name() {
        let c = catalog();
        let key = list(&["gpt-4o"]);
        let g = Grants {
            key: &key,
            ..Grants::default()
        };
        // Requested "my-gpt", an alias of gpt-4o.
        assert!(g.check(&c, &["my-gpt", "gpt-4o"]).is_ok());
        assert_eq!(
            g.check(&c, &["my-mini", "gpt-4o-mini"]).unwrap_err().model,
            "my-mini"
        );
    }
}
