//! Team logging callbacks (LiteLLM's `AddTeamCallback`): which callback variables exist, which
//! of them are credentials, and the check a callback passes before it is stored. Bursar keeps
//! them on the team (`metadata.logging`) and shows them back; they take effect when logging
//! callbacks exist.

/// The variables a callback may set: LiteLLM's `StandardCallbackDynamicParams`, plus
/// `capture_message_content` and `excluded_services`.
pub const CALLBACK_VARS: &[&str] = &[
    "langfuse_public_key",
    "langfuse_secret",
    "langfuse_secret_key",
    "langfuse_host",
    "langfuse_environment",
    "langfuse_span_scope",
    "langfuse_prompt_version",
    "gcs_bucket_name",
    "gcs_path_service_account",
    "langsmith_api_key",
    "langsmith_project",
    "langsmith_base_url",
    "langsmith_sampling_rate",
    "langsmith_tenant_id",
    "humanloop_api_key",
    "arize_api_key",
    "arize_space_key",
    "arize_space_id",
    "arize_success_sampling_rate",
    "arize_error_sampling_rate",
    "arize_otlp_protocol",
    "posthog_api_key",
    "posthog_api_url",
    "wandb_api_key",
    "weave_project_id",
    "dd_api_key",
    "dd_site",
    "dd_agent_host",
    "dd_agent_port",
    "newrelic_api_key",
    "newrelic_region",
    "signoz_ingestion_endpoint",
    "signoz_ingestion_key",
    "turn_off_message_logging",
    "litellm_disabled_callbacks",
    "capture_message_content",
    "excluded_services",
];

/// When a callback runs.
pub const CALLBACK_TYPES: &[&str] = &["success", "failure", "success_and_failure"];

/// What a credential-bearing value is shown as.
pub const REDACTED: &str = "***REDACTED***";

/// Whether a callback variable holds a credential (shown only as [`REDACTED`]).
pub fn is_sensitive(var: &str) -> bool {
    let var = var.to_ascii_lowercase();
    ["key", "secret", "token", "password", "service_account"]
        .iter()
        .any(|part| var.contains(part))
}

/// Why a callback cannot be stored, or `None` when it can.
pub fn check(name: &str, callback_type: &str, vars: &[(&str, &str)]) -> Option<String> {
    if name.trim().is_empty() {
        return Some("callback_name must not be empty".into());
    }
    if !CALLBACK_TYPES.contains(&callback_type) {
        return Some(format!(
            "Invalid callback_type {callback_type:?}: expected success, failure or success_and_failure"
        ));
    }
    for (var, value) in vars {
        if !CALLBACK_VARS.contains(var) {
            return Some(format!(
                "Invalid callback variable: {var}. Must be one of {}",
                CALLBACK_VARS.join(", ")
            ));
        }
        // A value naming the environment would let a team read the gateway's secrets.
        if value.trim_start().starts_with("os.environ/") {
            return Some(format!(
                "{var} must be a value, not an environment reference"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_told_from_settings() {
        for var in [
            "langfuse_secret_key",
            "langfuse_public_key",
            "gcs_path_service_account",
            "dd_api_key",
            "langfuse_secret",
        ] {
            assert!(is_sensitive(var), "{var}");
        }
        for var in [
            "langfuse_host",
            "langsmith_project",
            "gcs_bucket_name",
            "dd_site",
        ] {
            assert!(!is_sensitive(var), "{var}");
        }
    }

    #[test]
    fn a_callback_names_known_variables_with_values() {
        assert_eq!(
            check("langfuse", "success", &[("langfuse_host", "https://x")]),
            None
        );
        assert!(check("", "success", &[]).is_some());
        assert!(check("langfuse", "sometimes", &[]).is_some());
        assert!(
            check("langfuse", "failure", &[("api_base", "x")])
                .unwrap()
                .contains("Invalid callback variable: api_base")
        );
        assert!(
            check(
                "langfuse",
                "failure",
                &[("langfuse_secret_key", "os.environ/SECRET")]
            )
            .is_some()
        );
    }
}
