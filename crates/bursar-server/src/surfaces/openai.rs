//! OpenAI's data-plane surfaces: chat completions, text completions, embeddings. Each
//! hands its format to the shared pipeline.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::pipeline;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{Request, State};
use axum::response::Response;
use bursar_providers::Endpoint;

/// OpenAI's chat completions, routed to a deployment of the requested model.
#[utoipa::path(
    post,
    path = "/v1/chat/completions",
    operation_id = "chat_completion",
    tag = crate::openapi::CHAT,
    request_body = crate::routes::schema::ChatCompletionRequest,
    responses(crate::routes::schema::OpenAiAnswer),
)]
pub async fn chat_completions(
    state: State<AppState>,
    principal: Extension<Principal>,
    request: Request,
) -> Result<Response, ApiError> {
    pipeline::serve(state, principal, Endpoint::ChatCompletions, request).await
}

/// OpenAI's legacy text completions.
#[utoipa::path(
    post,
    path = "/v1/completions",
    operation_id = "completion",
    tag = crate::openapi::COMPLETIONS,
    request_body = crate::routes::schema::CompletionRequest,
    responses(crate::routes::schema::OpenAiAnswer),
)]
pub async fn completions(
    state: State<AppState>,
    principal: Extension<Principal>,
    request: Request,
) -> Result<Response, ApiError> {
    pipeline::serve(state, principal, Endpoint::Completions, request).await
}

/// OpenAI's embeddings.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    operation_id = "embeddings",
    tag = crate::openapi::EMBEDDINGS,
    request_body = crate::routes::schema::EmbeddingRequest,
    responses(crate::routes::schema::OpenAiAnswer),
)]
pub async fn embeddings(
    state: State<AppState>,
    principal: Extension<Principal>,
    request: Request,
) -> Result<Response, ApiError> {
    pipeline::serve(state, principal, Endpoint::Embeddings, request).await
}
