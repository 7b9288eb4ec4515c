//! Resolving the model (the key's or team's aliases) and admitting the call: model access,
//! then one reservation over every scope that applies.

use crate::admission::{self, Admitted};
use crate::auth::{KeySnapshot, Principal};
use crate::end_users::EndUserSnapshot;
use crate::error::ApiError;
use crate::pipeline::intake::{ParsedRequest, prompt_kind};
use crate::state::AppState;
use axum::http::StatusCode;
use bursar_core::config::BudgetAdmission;
use bursar_core::pricing::Price;
use bursar_limits::{Admission, Demand, Scope};
use bursar_providers::Endpoint;
use bursar_providers::prompt;
use serde_json::Value;
use std::borrow::Cow;

/// The model a key's or its team's alias stands for (`aliases`, `model_aliases`).
pub fn resolve_alias(snapshot: &KeySnapshot, requested: &str) -> String {
    let from = |map: &Value| {
        map.get(requested)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    from(&snapshot.key.aliases)
        .or_else(|| snapshot.team.as_ref().and_then(|t| from(&t.model_aliases)))
        .unwrap_or_else(|| requested.to_string())
}

/// Model access, then one reservation over every scope that applies: the key's (with its
/// user, team, membership and organization), the model's, and the end user's.
pub async fn admit(
    state: &AppState,
    principal: &Principal,
    end_user: Option<&EndUserSnapshot>,
    endpoint: Endpoint,
    parsed: &mut ParsedRequest,
    requested: &str,
    model: &str,
) -> Result<(Option<Admitted>, Price), ApiError> {
    let names: &[&str] = if requested == model {
        &[requested]
    } else {
        &[requested, model]
    };
    let snapshot = match principal {
        Principal::VirtualKey(snapshot) => Some(snapshot.as_ref()),
        Principal::MasterKey => None,
    };
    if let Some(snapshot) = snapshot
        && let Err(denied) = snapshot.grants().check(state.catalog(), names)
    {
        tracing::info!(reason = %denied.internal_message(), "model access denied");
        return Err(
            ApiError::new(StatusCode::FORBIDDEN, denied.error_type(), denied.message())
                .with_param("model"),
        );
    }
    let per_model = snapshot.map_or_else(Vec::new, |s| admission::model_scopes(s, names));
    let own: &[Scope] = snapshot.map_or(&[], |s| s.scopes.as_slice());
    let end_user_scope = end_user.and_then(|e| e.scope.clone());
    let scopes: Cow<'_, [Scope]> = if per_model.is_empty() && end_user_scope.is_none() {
        Cow::Borrowed(own)
    } else {
        Cow::Owned(
            own.iter()
                .cloned()
                .chain(per_model)
                .chain(end_user_scope)
                .collect(),
        )
    };
    if scopes.is_empty() {
        return Ok((None, Price::FREE));
    }
    // The dearest deployment of the group: the estimate must not fall short.
    let price = state
        .router()
        .deployments(model)
        .unwrap_or_default()
        .iter()
        .map(|t| t.deployment.price())
        .max_by(|a, b| a.weight().total_cmp(&b.weight()))
        .unwrap_or(Price::FREE);
    let budgeted = scopes
        .iter()
        .any(|s| s.limits.budget.is_some() && !price.is_free());
    let needs_tokens = budgeted || scopes.iter().any(|s| s.limits.tpm.is_some());
    let rule = state.config().admission.budget_admission;
    let demand = if needs_tokens {
        let produces_text = endpoint != Endpoint::Embeddings;
        let prompt = match (rule, budgeted) {
            // A bound no tokenizer exceeds: every token is at least one byte of the body,
            // and the body's JSON syntax outweighs any per-message or per-tool framing.
            (BudgetAdmission::Strict, true) => parsed.body_bytes as u64,
            _ => parsed
                .body
                .get(endpoint.prompt_field())
                .map_or(0, |raw| prompt::count(prompt_kind(endpoint), raw.get())),
        };
        let mut max_tokens = ["max_tokens", "max_completion_tokens"]
            .iter()
            .find_map(|f| parsed.body.get_as::<u64>(f).and_then(Result::ok));
        let default_output = state.config().admission.default_output_tokens;
        if rule == BudgetAdmission::Strict && budgeted && produces_text && max_tokens.is_none() {
            // The worst case must be known: the completion is capped at what is reserved.
            let cap = price
                .max_output_tokens
                .map_or(default_output, |m| default_output.min(m));
            parsed
                .body
                .set("max_tokens", &cap)
                .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
            max_tokens = Some(cap);
        }
        let mut demand =
            admission::estimate(&price, prompt, max_tokens, default_output, produces_text);
        demand.up_to_remaining = rule == BudgetAdmission::Litellm;
        demand
    } else {
        Demand::default()
    };
    let now = bursar_store::now_ms();
    match state.limiter().reserve(&scopes, demand, now).await {
        Ok(Admission::Granted(reservation)) => Ok((
            Some(Admitted::new(state.limiter().clone(), reservation, demand)),
            price,
        )),
        Ok(Admission::Refused(refusal)) => Err(admission::refusal_error(
            &refusal,
            snapshot,
            state.config().admission.budget_exceeded_status,
            now,
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_server_error",
            format!("Admission control is unavailable: {e}"),
        )),
    }
}
