//! Webhooks: a partner's endpoints, adding one (its signing secret shown once), each one's
//! delivery log with replay, and turning deliveries on or off. The API's rules and checks.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Redirect, Response};
use serde::Deserialize;
use stackbill_api::AppState;
use stackbill_api::webhooks::{DeliveryDto, WebhookDto, register};
use stackbill_core::PartnerId;
use stackbill_core::events::EventType;
use stackbill_store::WebhookEndpoint;

use crate::frame::{Layout, csrf_refused, error_page, refusal, render, signed_in, store_failure};
use crate::session::{Session, same};

#[derive(Template)]
#[template(path = "webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    endpoints: Vec<WebhookDto>,
    types: Vec<&'static str>,
    admin: bool,
    /// A new endpoint's id and secret, shown once.
    created: Option<(String, String)>,
    problem: Option<String>,
}

#[derive(Template)]
#[template(path = "webhook.html")]
struct WebhookPage {
    layout: Layout,
    endpoint: WebhookDto,
    deliveries: Vec<DeliveryDto>,
    notice: Option<String>,
}

async fn list(state: &AppState, session: &Session) -> Result<Vec<WebhookDto>, Response> {
    let scope = session
        .caller
        .partner_scope()
        .map_err(|error| refusal(session, error))?
        .cloned();
    match state.store.webhooks(scope).await {
        Ok(endpoints) => Ok(endpoints.into_iter().map(WebhookDto::from).collect()),
        Err(error) => Err(store_failure(session, error)),
    }
}

fn page(
    session: &Session,
    endpoints: Vec<WebhookDto>,
    created: Option<(String, String)>,
    problem: Option<String>,
) -> Response {
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        &WebhooksPage {
            layout: Layout::new(Some(session)),
            endpoints,
            types: EventType::ALL.iter().map(|t| t.as_str()).collect(),
            admin: matches!(session.caller, stackbill_api::access::Caller::Admin),
            created,
            problem,
        },
        status,
    )
}

/// `GET /webhooks`.
pub(crate) async fn webhooks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    match list(&state, &session).await {
        Ok(endpoints) => page(&session, endpoints, None, None),
        Err(response) => response,
    }
}

/// The add form; `types` holds every checked box (the form sends the field once per box).
#[derive(Deserialize)]
pub(crate) struct AddForm {
    csrf: String,
    #[serde(default)]
    partner: String,
    url: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    all: Option<String>,
    #[serde(flatten)]
    checked: std::collections::HashMap<String, String>,
}

/// `POST /webhooks`: registers an endpoint and shows its secret, once.
pub(crate) async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    if !same(&form.csrf, &session.csrf) {
        return csrf_refused(&session);
    }
    let partner: Result<PartnerId, String> = match session.caller.partner_scope() {
        Ok(Some(own)) => Ok(own.clone()),
        Ok(None) => form
            .partner
            .trim()
            .parse()
            .map_err(|err| format!("partner: {err}")),
        Err(error) => return refusal(&session, error),
    };
    let types: Vec<String> = if form.all.is_some() {
        vec!["*".to_owned()]
    } else {
        EventType::ALL
            .iter()
            .filter(|t| form.checked.contains_key(t.as_str()))
            .map(|t| t.as_str().to_owned())
            .collect()
    };
    let outcome = match partner {
        Err(problem) => Err(problem),
        Ok(partner) => register(
            &state.store,
            &state.secrets,
            partner,
            form.url.trim().to_owned(),
            &types,
            form.description,
        )
        .await
        .map_err(|err| format!("{}: {}", err.code, err.message)),
    };
    let endpoints = match list(&state, &session).await {
        Ok(endpoints) => endpoints,
        Err(response) => return response,
    };
    match outcome {
        Ok(dto) => {
            let secret = dto.secret.clone().unwrap_or_default();
            page(&session, endpoints, Some((dto.id, secret)), None)
        }
        Err(problem) => page(&session, endpoints, None, Some(problem)),
    }
}

/// The endpoint, if the session may manage it (another partner's is missing).
async fn visible(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Session, WebhookEndpoint), Response> {
    let session = signed_in(state, headers).await?;
    let scope = match session.caller.partner_scope() {
        Ok(scope) => scope.cloned(),
        Err(error) => return Err(refusal(&session, error)),
    };
    match state.store.webhook(id.to_owned()).await {
        Ok(Some(endpoint)) if scope.as_ref().is_none_or(|own| *own == endpoint.partner_id) => {
            Ok((session, endpoint))
        }
        Ok(_) => Err(error_page(
            Some(&session),
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no webhook endpoint {id}."),
        )),
        Err(error) => Err(store_failure(&session, error)),
    }
}

/// The endpoint a form posts to, when the session may manage it and the form carries its
/// CSRF token.
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    csrf: &str,
) -> Result<(Session, WebhookEndpoint), Response> {
    let (session, endpoint) = visible(state, headers, id).await?;
    if !same(csrf, &session.csrf) {
        return Err(csrf_refused(&session));
    }
    Ok((session, endpoint))
}

async fn endpoint_page(
    state: &AppState,
    session: &Session,
    endpoint: WebhookEndpoint,
    notice: Option<String>,
) -> Response {
    let deliveries = match state
        .store
        .webhook_deliveries(endpoint.id.clone(), 50)
        .await
    {
        Ok(deliveries) => deliveries.into_iter().map(DeliveryDto::from).collect(),
        Err(error) => return store_failure(session, error),
    };
    render(
        &WebhookPage {
            layout: Layout::new(Some(session)),
            endpoint: endpoint.into(),
            deliveries,
            notice,
        },
        StatusCode::OK,
    )
}

/// `GET /webhooks/{id}`: the endpoint and its latest deliveries.
pub(crate) async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    match visible(&state, &headers, &id).await {
        Ok((session, endpoint)) => endpoint_page(&state, &session, endpoint, None).await,
        Err(response) => response,
    }
}

#[derive(Deserialize)]
pub(crate) struct ReplayForm {
    csrf: String,
    event: String,
}

/// `POST /webhooks/{id}/replay`: sends an event again, under its id.
pub(crate) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<ReplayForm>,
) -> Response {
    let (session, endpoint) = match posted(&state, &headers, &id, &form.csrf).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let notice = match state.store.replay_webhook(id, form.event.clone()).await {
        Ok(true) => format!(
            "Event {} is due again; it is sent within seconds.",
            form.event
        ),
        Ok(false) => format!("This endpoint has no event {}.", form.event),
        Err(error) => return store_failure(&session, error),
    };
    endpoint_page(&state, &session, endpoint, Some(notice)).await
}

#[derive(Deserialize)]
pub(crate) struct EnabledForm {
    csrf: String,
    enabled: String,
}

/// `POST /webhooks/{id}/enabled`: turns deliveries on or off.
pub(crate) async fn enabled(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<EnabledForm>,
) -> Response {
    let (session, endpoint) = match posted(&state, &headers, &id, &form.csrf).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let on = form.enabled == "true";
    if let Err(error) = state
        .store
        .update_webhook(
            id.clone(),
            endpoint.url,
            endpoint.types,
            endpoint.description,
            on,
        )
        .await
    {
        return store_failure(&session, error);
    }
    axum::response::IntoResponse::into_response(Redirect::to(&format!("/webhooks/{id}")))
}
