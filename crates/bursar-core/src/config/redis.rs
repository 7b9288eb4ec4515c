//! Redis settings: where the shared admission counters and cross-instance invalidations live.

use super::ConfigProblem;
use super::raw::{RawGeneralSettings, RawLitellmSettings, RawRouterSettings};
use crate::keys::Secret;
use std::time::Duration;

/// Redis, when configured. Without it, admission counters are per instance.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://…` or `rediss://…`, credentials included (hence a secret).
    pub url: Secret,
    /// `general_settings.redis_fail_mode: fail_open`: keep serving with per-instance limits
    /// while Redis is unreachable. The default (`fail_closed`) refuses with 503.
    pub fail_open: bool,
    /// The hash tag every key starts with (`general_settings.redis_namespace`).
    pub namespace: String,
    /// The longest one operation may take (`general_settings.redis_timeout_ms`).
    pub timeout: Duration,
}

pub const DEFAULT_NAMESPACE: &str = "bursar";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// Each setting is taken from the first place that sets it: `general_settings`, then
/// `litellm_settings`, then `router_settings`, then the environment. A URL wins over a host.
pub(super) fn load(
    general: &RawGeneralSettings,
    litellm: &RawLitellmSettings,
    router: &RawRouterSettings,
    lookup: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<ConfigProblem>,
) -> Option<RedisSettings> {
    let sources = Sources {
        general,
        litellm,
        router,
        lookup,
    };
    let configured_url = sources.configured(|g| &g.redis_url, |l| &l.redis_url, |r| &r.redis_url);
    let configured_host =
        sources.configured(|g| &g.redis_host, |l| &l.redis_host, |r| &r.redis_host);
    let url = match (configured_url, configured_host.is_some()) {
        (Some(url), _) => url,
        (None, true) => build_url(&sources, problems)?,
        (None, false) => match sources.env("REDIS_URL") {
            Some(url) => url,
            None => build_url(&sources, problems)?,
        },
    };
    let url = url.trim().to_string();
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        problems.push(problem(
            "redis_url",
            "must start with redis:// or rediss://".into(),
        ));
        return None;
    }
    let fail_open = match general.redis_fail_mode.as_deref().map(str::trim) {
        None | Some("fail_closed") => false,
        Some("fail_open") => true,
        Some(other) => {
            problems.push(problem(
                "redis_fail_mode",
                format!("expected fail_closed or fail_open, got {other:?}"),
            ));
            false
        }
    };
    let namespace = general
        .redis_namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    if namespace.is_empty()
        || namespace.contains(['{', '}'])
        || namespace.contains(char::is_whitespace)
    {
        problems.push(problem(
            "redis_namespace",
            "must be non-empty, without braces or spaces".into(),
        ));
    }
    let timeout = match general.redis_timeout_ms {
        Some(0) => {
            problems.push(problem("redis_timeout_ms", "must be at least 1".into()));
            DEFAULT_TIMEOUT
        }
        Some(ms) => Duration::from_millis(ms),
        None => DEFAULT_TIMEOUT,
    };
    Some(RedisSettings {
        url: Secret::new(url),
        fail_open,
        namespace,
        timeout,
    })
}

/// The places a Redis setting can come from, in order.
struct Sources<'a> {
    general: &'a RawGeneralSettings,
    litellm: &'a RawLitellmSettings,
    router: &'a RawRouterSettings,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Sources<'_> {
    fn env(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A text setting from the config sections (blank counts as unset).
    fn configured(
        &self,
        general: impl Fn(&RawGeneralSettings) -> &Option<String>,
        litellm: impl Fn(&RawLitellmSettings) -> &Option<String>,
        router: impl Fn(&RawRouterSettings) -> &Option<String>,
    ) -> Option<String> {
        [
            general(self.general),
            litellm(self.litellm),
            router(self.router),
        ]
        .into_iter()
        .find_map(|v| v.clone().filter(|v| !v.trim().is_empty()))
    }
}

fn problem(field: &str, message: String) -> ConfigProblem {
    ConfigProblem {
        path: format!("general_settings.{field}"),
        message,
    }
}

/// `redis[s]://[user][:password@]host:port` from the separate settings; `None` without a host.
fn build_url(sources: &Sources<'_>, problems: &mut Vec<ConfigProblem>) -> Option<String> {
    let host = sources
        .configured(|g| &g.redis_host, |l| &l.redis_host, |r| &r.redis_host)
        .or_else(|| sources.env("REDIS_HOST"))?;
    let (general, litellm, router) = (sources.general, sources.litellm, sources.router);
    let port = match general
        .redis_port
        .or(litellm.redis_port)
        .or(router.redis_port)
    {
        Some(p) => u16::try_from(p).ok(),
        None => sources
            .env("REDIS_PORT")
            .map_or(Some(6379), |p| p.trim().parse().ok()),
    };
    let Some(port) = port else {
        problems.push(problem("redis_port", "must be a port number".into()));
        return None;
    };
    let password = sources
        .configured(
            |g| &g.redis_password,
            |l| &l.redis_password,
            |r| &r.redis_password,
        )
        .or_else(|| sources.env("REDIS_PASSWORD"));
    let username = sources
        .configured(
            |g| &g.redis_username,
            |l| &l.redis_username,
            |r| &r.redis_username,
        )
        .or_else(|| sources.env("REDIS_USERNAME"));
    let ssl = general
        .redis_ssl
        .or(litellm.redis_ssl)
        .or(router.redis_ssl)
        .or_else(|| {
            sources
                .env("REDIS_SSL")
                .map(|v| matches!(v.trim(), "true" | "True" | "1"))
        })
        .unwrap_or(false);
    let scheme = if ssl { "rediss" } else { "redis" };
    let credentials = match (username, password) {
        (None, None) => String::new(),
        (user, password) => format!(
            "{}{}@",
            encode(user.as_deref().unwrap_or("")),
            password.map_or_else(String::new, |p| format!(":{}", encode(&p)))
        ),
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]") // an IPv6 address
    } else {
        host
    };
    Some(format!("{scheme}://{credentials}{host}:{port}"))
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for URL user info.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
