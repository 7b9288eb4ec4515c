//! The data plane as one pipeline of named stages that every surface shares:
//! intake (ids, body, shared checks) → resolve the model (aliases) and the end user →
//! admit (model access, one reservation over every scope) → forward (the router picks and
//! calls a deployment) → respond (body and LiteLLM's headers) → settle (the charge, held
//! from admission on, settles on completion, error or drop). A surface contributes its
//! endpoint (format) and nothing else.

pub mod admit;
pub mod intake;
pub mod respond;
pub mod settle;

use crate::admission::{self, Admitted};
use crate::auth::Principal;
use crate::charge::{Charge, Origin};
use crate::end_users::{self, EndUserSnapshot};
use crate::error::ApiError;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use bursar_providers::{Answer, Call, Endpoint};
use std::sync::Arc;
use std::time::Instant;

/// Serves one data-plane call of `endpoint`'s format.
pub async fn serve(
    state: State<AppState>,
    principal: Extension<Principal>,
    endpoint: Endpoint,
    request: Request,
) -> Result<Response, ApiError> {
    serve_model(state, principal, endpoint, None, request).await
}

/// [`serve`], with the model named by the route (Azure's deployment path) instead of only
/// by the body.
pub async fn serve_model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    endpoint: Endpoint,
    path_model: Option<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (parts, body) = request.into_parts();
    let (call_id, request_id) = intake::call_id(&parts.headers);
    let bytes = intake::read_body(
        body,
        &parts.headers,
        state.config().general.max_request_bytes,
        state.config().connections.body_read_timeout,
    )
    .await?;
    let mut parsed = intake::parse_request(endpoint, &bytes, path_model)?;
    let stream = parsed.stream;
    let requested = parsed.model.clone();
    let model = match &principal {
        Principal::VirtualKey(snapshot) => admit::resolve_alias(snapshot, &requested),
        Principal::MasterKey => requested.clone(),
    };
    let end_user = end_user(&state, &parts, &parsed).await?;
    let (admitted, price) = admit::admit(
        &state,
        &principal,
        end_user.as_deref(),
        endpoint,
        &mut parsed,
        &requested,
        &model,
    )
    .await?;
    let limit_headers = admitted
        .as_ref()
        .and_then(Admitted::reservation)
        .map(admission::ratelimit_headers)
        .unwrap_or_default();
    let hold = settle::ChargeHold::new(Charge::new(
        Origin {
            request_id,
            call_id: &call_id,
            endpoint,
            principal: &principal,
            end_user: end_user.as_ref().map(|e| e.row.user_id.as_str()),
            model_group: &model,
            body: &parsed.body,
            requester_ip: intake::requester_ip(&parts, state.config().general.use_x_forwarded_for),
        },
        admitted,
        price,
        state.ledger().cloned(),
    ));

    let routed = match state
        .router()
        .send(Call {
            endpoint,
            model: model.clone(),
            body: parsed.body,
            stream,
            on_stream_finish: Some(hold.stream_hook(&call_id, &model)),
            abort: Some(state.drain().clone()),
        })
        .await
    {
        Ok(routed) => routed,
        Err(e) => {
            hold.failed(state.router(), &model, &e).await;
            return Err(respond::with_headers(e.into(), &limit_headers));
        }
    };
    hold.routed(&routed.target);
    let (target, attempts) = (routed.target, routed.attempts);

    let response = match routed.answer {
        Answer::Complete {
            body,
            usage,
            response_id,
        } => {
            tracing::debug!(call_id = %call_id, model = %model, usage = ?usage, user = ?principal.user_id(), "call complete");
            let cost = hold.complete(response_id, usage.as_ref()).await;
            respond::complete(body, started, cost)
        }
        Answer::Stream(events) => respond::stream(events),
    };
    Ok(respond::finish(
        response,
        &call_id,
        &target,
        attempts,
        &model,
        limit_headers,
    ))
}

/// The end user the call is for (`user`, or the configured header), refused when blocked.
async fn end_user(
    state: &AppState,
    parts: &Parts,
    parsed: &intake::ParsedRequest,
) -> Result<Option<Arc<EndUserSnapshot>>, ApiError> {
    let Some(id) = end_users::end_user_id(&parts.headers, &parsed.body)? else {
        return Ok(None);
    };
    let eu = state
        .end_users()
        .resolve(state.store(), &state.config().admission, &id)
        .await
        .map_err(|e| ApiError::from(e.as_ref()))?;
    if eu.row.blocked {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!(
                "User blocked from making LLM API Calls. User={}",
                eu.row.user_id
            ),
        )
        .with_param("user"));
    }
    Ok(Some(eu))
}
