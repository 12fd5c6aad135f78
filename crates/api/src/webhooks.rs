//! `/v1/webhooks`: each partner's endpoints (the signing secret is shown once, at creation),
//! their delivery log and manual replay. A partner manages and sees its own only; an admin
//! names the partner.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use stackbill_core::PartnerId;
use stackbill_core::events::Subscribed;
use stackbill_store::{Delivery, WebhookEndpoint, random_id};

use crate::access::{Caller, forbidden};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams, param};
use crate::state::AppState;
use crate::webhook_delivery::{new_secret, secret_context};

/// Body of `POST /v1/webhooks` and `PUT /v1/webhooks/{id}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookBody {
    /// Whose events (an admin must say; a partner's token means its own).
    pub partner_id: Option<String>,
    /// Where events are posted: `https://…` (plain `http://` to a loopback address only).
    pub url: String,
    /// Event types, or `["*"]` for every type.
    pub event_types: Vec<String>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Whether deliveries are made (PUT; default true). Enabling an endpoint a 410 answer
    /// disabled resumes its pending deliveries.
    pub enabled: Option<bool>,
}

/// An endpoint as answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookDto {
    /// Its id (`we_…`).
    pub id: String,
    /// Whose events it receives.
    pub partner_id: String,
    /// Where they are posted.
    pub url: String,
    /// The types it receives (`*`: every type).
    pub event_types: Vec<String>,
    /// What it is for.
    pub description: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// When it was registered.
    pub created_at: String,
    /// The signing secret (`whsec_…`): answered once, when the endpoint is created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<WebhookEndpoint> for WebhookDto {
    fn from(w: WebhookEndpoint) -> Self {
        Self {
            id: w.id,
            partner_id: w.partner_id.to_string(),
            url: w.url,
            event_types: w.types.to_text().split(',').map(str::to_owned).collect(),
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            created_at: w.created_at.to_string(),
            secret: None,
        }
    }
}

/// One delivery, as the log shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDto {
    /// The event id (`webhook-id`, the same on every attempt).
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    /// The last attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// The HTTP status of the last answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    /// Why the last attempt got no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the event happened.
    pub created_at: String,
    /// The body sent.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<Delivery> for DeliveryDto {
    fn from(d: Delivery) -> Self {
        Self {
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(|t| t.to_string()),
            last_attempt_at: d.last_attempt_at.map(|t| t.to_string()),
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at.to_string(),
            payload: serde_json::from_str(&d.body).unwrap_or(serde_json::Value::Null),
        }
    }
}

fn invalid(target: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidWebhook, message).with_target(target)
}

/// Checks a URL: `https`, or `http` to a loopback host (a receiver on the same machine).
pub fn check_url(text: &str) -> Result<(), ApiError> {
    if text.len() > 2000 {
        return Err(invalid("url", "url is longer than 2000 characters"));
    }
    let url = reqwest::Url::parse(text)
        .map_err(|err| invalid("url", format!("url '{text}' is not a URL: {err}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("url", "url must not carry credentials"));
    }
    let Some(host) = url.host_str() else {
        return Err(invalid("url", "url has no host"));
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || (host.trim_matches(['[', ']']).parse::<std::net::IpAddr>())
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(invalid(
            "url",
            "url must be https:// (plain http:// is accepted for a loopback receiver only)",
        )),
        other => Err(invalid(
            "url",
            format!("url scheme '{other}' is not http(s)"),
        )),
    }
}

fn event_types(names: &[String]) -> Result<Subscribed, ApiError> {
    if names.is_empty() {
        return Err(invalid(
            "eventTypes",
            "eventTypes is empty: name at least one, or \"*\"",
        ));
    }
    Subscribed::parse(names.iter().map(String::as_str))
        .map_err(|err| invalid("eventTypes", err.to_string()))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::WebhookNotFound,
        format!("webhook endpoint '{id}' does not exist"),
    )
    .with_target("id")
}

/// The endpoint, if the caller may manage it: to another partner it does not exist.
async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<WebhookEndpoint, ApiError> {
    let scope = caller.partner_scope()?;
    (state.store.webhook(id.to_owned()).await?)
        .filter(|w| scope.is_none_or(|own| *own == w.partner_id))
        .ok_or_else(|| not_found(id))
}

/// Registers an endpoint of `partner` (the API's and the CLI's way): checks the URL and the
/// types, makes its id and signing secret, seals the secret, stores it; the answer carries
/// the secret, this once.
pub async fn register(
    store: &stackbill_store::Store,
    secrets: &stackbill_store::SecretKeyring,
    partner: PartnerId,
    url: String,
    types: &[String],
    description: String,
) -> Result<WebhookDto, ApiError> {
    check_url(&url)?;
    let types = event_types(types)?;
    let internal = |err: String| ApiError::new(ErrorCode::InternalServerError, err);
    let id = random_id("we_")?;
    let secret = new_secret().map_err(internal)?;
    let sealed = secrets
        .seal(secret.as_bytes(), &secret_context(&id))
        .map_err(|err| internal(format!("cannot seal the signing secret: {err}")))?;
    let endpoint = store
        .create_webhook(WebhookEndpoint {
            id,
            partner_id: partner,
            url,
            types,
            description,
            enabled: true,
            disabled_reason: None,
            secret_sealed: sealed,
            created_at: jiff::Timestamp::UNIX_EPOCH,
        })
        .await?;
    let mut dto = WebhookDto::from(endpoint);
    dto.secret = Some(secret);
    Ok(dto)
}

/// Register a webhook endpoint
#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    request_body = WebhookBody,
    responses((status = 201, body = WebhookDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<WebhookBody>,
) -> Result<Response, ApiError> {
    let named = (body.partner_id.as_deref())
        .map(|p| param::<PartnerId>(p, "partnerId"))
        .transpose()?;
    let partner = match (caller.partner_scope()?, named) {
        (Some(own), Some(named)) if named != *own => {
            return Err(
                forbidden("a partner token registers endpoints for itself only")
                    .with_target("partnerId"),
            );
        }
        (Some(own), _) => own.clone(),
        (None, Some(named)) => named,
        (None, None) => {
            return Err(invalid(
                "partnerId",
                "partnerId is required: whose events the endpoint receives",
            ));
        }
    };
    let dto = register(
        &state.store,
        &state.secrets,
        partner,
        body.url,
        &body.event_types,
        body.description,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

/// Webhook endpoints
#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    params(("partnerId" = String, Query, description = "only this partner's")),
    responses((status = 200, body = crate::dto::ListDto<WebhookDto>), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> Result<Json<crate::dto::ListDto<WebhookDto>>, ApiError> {
    let mut partner = query.parsed::<PartnerId>("partnerId")?;
    if let Some(own) = caller.partner_scope()? {
        if partner.as_ref().is_some_and(|p| p != own) {
            return crate::page::page(Vec::<WebhookDto>::new(), &query, &uri);
        }
        partner = Some(own.clone());
    }
    let endpoints: Vec<WebhookDto> = (state.store.webhooks(partner).await?.into_iter())
        .map(WebhookDto::from)
        .collect();
    crate::page::page(endpoints, &query, &uri)
}

/// One webhook endpoint
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "we_…")),
    responses((status = 200, body = WebhookDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_webhook(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<WebhookDto>, ApiError> {
    Ok(Json(visible(&state, &caller, &id).await?.into()))
}

/// Change a webhook endpoint (URL, types, description, enabled)
#[utoipa::path(
    put,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "we_…")),
    request_body = WebhookBody,
    responses((status = 200, body = WebhookDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn put_webhook(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<WebhookBody>,
) -> Result<Json<WebhookDto>, ApiError> {
    let endpoint = visible(&state, &caller, &id).await?;
    if body
        .partner_id
        .as_deref()
        .is_some_and(|p| p != endpoint.partner_id.as_str())
    {
        return Err(invalid(
            "partnerId",
            "an endpoint's partner cannot change; register a new endpoint",
        ));
    }
    check_url(&body.url)?;
    let types = event_types(&body.event_types)?;
    let updated = state
        .store
        .update_webhook(
            id.clone(),
            body.url,
            types,
            body.description,
            body.enabled.unwrap_or(true),
        )
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(updated.into()))
}

/// Remove a webhook endpoint and its delivery log
#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    params(("id" = String, Path, description = "we_…")),
    responses((status = 204), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    visible(&state, &caller, &id).await?;
    state.store.delete_webhook(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's delivery log, latest event first
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "we_…"),
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses((status = 200, body = crate::dto::ListDto<DeliveryDto>), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: QueryParams,
    uri: OriginalUri,
) -> Result<Json<crate::dto::ListDto<DeliveryDto>>, ApiError> {
    visible(&state, &caller, &id).await?;
    let deliveries: Vec<DeliveryDto> = (state.store.webhook_deliveries(id, 10_000).await?)
        .into_iter()
        .map(DeliveryDto::from)
        .collect();
    crate::page::page(deliveries, &query, &uri)
}

/// Send an event to an endpoint again, now, under the same id
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/deliveries/{eventId}/replay",
    tag = "webhooks",
    params(
        ("id" = String, Path, description = "we_…"),
        ("eventId" = String, Path, description = "msg_…"),
    ),
    responses((status = 202), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn replay_delivery(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, event_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    visible(&state, &caller, &id).await?;
    if !state.store.replay_webhook(id, event_id.clone()).await? {
        return Err(ApiError::new(
            ErrorCode::WebhookNotFound,
            format!("the endpoint has no event '{event_id}'"),
        )
        .with_target("eventId"));
    }
    Ok(StatusCode::ACCEPTED)
}
