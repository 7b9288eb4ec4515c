//! OpenAI's data-plane surfaces: chat completions, text completions, embeddings — under
//! `/v1`, bare, and Azure OpenAI's `/openai/deployments/{model}/…` (and `/engines/{model}/…`)
//! for `AzureOpenAI` clients. Each hands its format to the shared pipeline.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::pipeline;
use crate::state::AppState;
use axum::Extension;
use axum::extract::{Path, Request, State};
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

/// The deployment (model) named in an Azure-style path.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DeploymentPath {
    /// The model group, as Azure clients name their deployment; it wins over the body's
    /// `model`.
    model: String,
}

/// Azure OpenAI's chat completions route, for `AzureOpenAI` clients (`api-key` header).
#[utoipa::path(
    post,
    path = "/openai/deployments/{model}/chat/completions",
    operation_id = "azure_chat_completion",
    tag = crate::openapi::CHAT,
    params(DeploymentPath),
    request_body = crate::routes::schema::ChatCompletionRequest,
    responses(crate::routes::schema::OpenAiAnswer),
)]
pub async fn azure_chat_completions(
    state: State<AppState>,
    principal: Extension<Principal>,
    Path(path): Path<DeploymentPath>,
    request: Request,
) -> Result<Response, ApiError> {
    pipeline::serve_model(
        state,
        principal,
        Endpoint::ChatCompletions,
        Some(path.model),
        request,
    )
    .await
}

/// Azure OpenAI's completions route.
#[utoipa::path(
    post,
    path = "/openai/deployments/{model}/completions",
    operation_id = "azure_completion",
    tag = crate::openapi::COMPLETIONS,
    params(DeploymentPath),
    request_body = crate::routes::schema::CompletionRequest,
    responses(crate::routes::schema::OpenAiAnswer),
)]
pub async fn azure_completions(
    state: State<AppState>,
    principal: Extension<Principal>,
    Path(path): Path<DeploymentPath>,
    request: Request,
) -> Result<Response, ApiError> {
    pipeline::serve_model(
        state,
        principal,
        Endpoint::Completions,
        Some(path.model),
        request,
    )
    .await
}

/// Azure OpenAI's embeddings route.
#[utoipa::path(
    post,
    path = "/openai/deployments/{model}/embeddings",
    operation_id = "azure_embeddings",
    tag = crate::openapi::EMBEDDINGS,
    params(DeploymentPath),
    request_body = crate::routes::schema::EmbeddingRequest,
    responses(crate::routes::schema::OpenAiAnswer),
)]
pub async fn azure_embeddings(
    state: State<AppState>,
    principal: Extension<Principal>,
    Path(path): Path<DeploymentPath>,
    request: Request,
) -> Result<Response, ApiError> {
    pipeline::serve_model(
        state,
        principal,
        Endpoint::Embeddings,
        Some(path.model),
        request,
    )
    .await
}
