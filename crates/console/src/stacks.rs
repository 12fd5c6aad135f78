//! The stacks pages: registrations, and one registration's tenant mappings now and over time
//! (backdated and scheduled changes marked), with forms that map a tenant or end a mapping
//! under the API's rules and error codes.

#![allow(clippy::result_large_err)] // a page's steps fail with the answer to give

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use stackbill_api::AppState;
use stackbill_api::billing::InvoiceNames;
use stackbill_core::{RegistrationName, SubscriptionId, TenantId};

use crate::frame::{
    Layout, csrf_refused, error_page, refusal, render, scope, signed_in, store_failure,
};
use crate::session::{Session, same};

/// One registration in the list.
pub(crate) struct StackRow {
    name: String,
    cloud: String,
    default_subscription: String,
    billing_model: String,
    mapped: usize,
}

#[derive(Template)]
#[template(path = "stacks.html")]
struct StacksPage {
    layout: Layout,
    stacks: Vec<StackRow>,
}

/// `GET /stacks`.
pub(crate) async fn stacks(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let page = async {
        let scope = scope(&session)?;
        let failure = |error| store_failure(&session, error);
        let registrations = state.store.registrations(scope).await.map_err(failure)?;
        let mut stacks = Vec::with_capacity(registrations.len());
        for r in registrations {
            let mapped = (state.store)
                .customer_subscriptions(r.name.clone(), None)
                .await
                .map_err(failure)?
                .len();
            stacks.push(StackRow {
                name: r.name.to_string(),
                cloud: r.cloud_id.to_string(),
                default_subscription: r.default_subscription.to_string(),
                billing_model: r.billing_model.to_string(),
                mapped,
            });
        }
        Ok::<_, Response>(StacksPage {
            layout: Layout::new(Some(&session)),
            stacks,
        })
    };
    match page.await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(response) => response,
    }
}

/// A mapping in force.
pub(crate) struct MappingRow {
    tenant: String,
    subscription: String,
    customer: String,
    from: String,
}

/// A change of the timeline.
pub(crate) struct EventRow {
    recorded: String,
    from: String,
    tenant: String,
    billed_to: String,
    backdated: bool,
    scheduled: bool,
}

#[derive(Template)]
#[template(path = "stack.html")]
struct StackPage {
    layout: Layout,
    name: String,
    cloud: String,
    default_subscription: String,
    billing_model: String,
    mappings: Vec<MappingRow>,
    timeline: Vec<EventRow>,
    suggested_tenant: String,
    error: Option<String>,
    done: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct StackQuery {
    tenant: Option<String>,
}

/// `GET /stacks/{name}[?tenant=]`: a tenant given is put in the mapping form.
pub(crate) async fn stack(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<StackQuery>,
) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let suggested = query.tenant.unwrap_or_default();
    stack_page(&state, &session, &name, suggested, None, StatusCode::OK).await
}

/// The stack page, with the outcome of a form when there was one.
async fn stack_page(
    state: &AppState,
    session: &Session,
    name: &str,
    suggested_tenant: String,
    outcome: Option<Result<String, String>>,
    status: StatusCode,
) -> Response {
    let page = async {
        let name: RegistrationName = name.parse().map_err(|_| {
            error_page(
                Some(session),
                StatusCode::NOT_FOUND,
                "Not found",
                format!("There is no registration '{name}'."),
            )
        })?;
        stackbill_api::access::check_registration(&state.store, &session.caller, &name)
            .await
            .map_err(|error| refusal(session, error))?;
        let failure = |error| store_failure(session, error);
        let registration = (state.store)
            .registration(name.clone())
            .await
            .map_err(failure)?
            .ok_or_else(|| {
                error_page(
                    Some(session),
                    StatusCode::NOT_FOUND,
                    "Not found",
                    format!("There is no registration '{name}'."),
                )
            })?;
        let names = InvoiceNames::load(&state.store).await.map_err(failure)?;
        let customer =
            |id: &SubscriptionId| names.subscriptions.get(id).cloned().unwrap_or_default();
        let mappings = (state.store)
            .customer_subscriptions(name.clone(), None)
            .await
            .map_err(failure)?
            .into_iter()
            .map(|m| MappingRow {
                tenant: m.tenant_id.to_string(),
                subscription: m.subscription.to_string(),
                customer: customer(&m.subscription),
                from: m.effective_from.to_string(),
            })
            .collect();
        let now = state.store.now();
        let mut timeline: Vec<EventRow> = (state.store)
            .registration_history(name.clone())
            .await
            .map_err(failure)?
            .into_iter()
            .map(|e| EventRow {
                recorded: e.recorded_at.to_string(),
                from: e.effective_from.to_string(),
                tenant: e.tenant_id.to_string(),
                billed_to: e.subscription.map_or_else(
                    || format!("default subscription {}", registration.default_subscription),
                    |s| format!("{s} {}", customer(&s)),
                ),
                backdated: e.effective_from < e.recorded_at,
                scheduled: e.effective_from > now,
            })
            .collect();
        timeline.reverse();
        let (done, error) = match outcome {
            Some(Ok(done)) => (Some(done), None),
            Some(Err(error)) => (None, Some(error)),
            None => (None, None),
        };
        Ok::<_, Response>(StackPage {
            layout: Layout::new(Some(session)),
            name: registration.name.to_string(),
            cloud: registration.cloud_id.to_string(),
            default_subscription: registration.default_subscription.to_string(),
            billing_model: registration.billing_model.to_string(),
            mappings,
            timeline,
            suggested_tenant,
            error,
            done,
        })
    };
    match page.await {
        Ok(page) => render(&page, status),
        Err(response) => response,
    }
}

/// The session and registration a form posts to, once its CSRF token and the caller's right
/// to the registration are checked.
async fn form_target(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
    csrf: &str,
) -> Result<(Session, RegistrationName), Response> {
    let session = signed_in(state, headers).await?;
    if !same(csrf, &session.csrf) {
        return Err(csrf_refused(&session));
    }
    let Ok(registration) = name.parse::<RegistrationName>() else {
        let page = stack_page(
            state,
            &session,
            name,
            String::new(),
            None,
            StatusCode::NOT_FOUND,
        );
        return Err(page.await);
    };
    stackbill_api::access::check_registration(&state.store, &session.caller, &registration)
        .await
        .map_err(|error| refusal(&session, error))?;
    Ok((session, registration))
}

#[derive(Deserialize)]
pub(crate) struct MappingForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    subscription: String,
    #[serde(default)]
    effective_from: String,
}

/// A form field that must parse, or the sentence saying why it does not.
fn parsed<T: std::str::FromStr>(text: &str, label: &str, example: &str) -> Result<T, String> {
    text.trim().parse().map_err(|_| {
        format!(
            "{label}: '{}' is not valid; give e.g. {example}",
            text.trim()
        )
    })
}

fn effective_from(text: &str) -> Result<Option<jiff::Timestamp>, String> {
    match text.trim() {
        "" => Ok(None),
        text => parsed(text, "From", "2025-06-01T00:00:00Z").map(Some),
    }
}

/// The outcome of a store change for the page: what was done, or the refusal with its code.
fn outcome<T>(
    result: Result<T, stackbill_store::StoreError>,
    done: impl FnOnce(T) -> String,
) -> (Option<Result<String, String>>, StatusCode) {
    match result {
        Ok(value) => (Some(Ok(done(value))), StatusCode::OK),
        Err(error) => {
            let error = stackbill_api::ApiError::from(error);
            let status = stackbill_api::error::status(error.code);
            if status.is_server_error() {
                tracing::error!(code = %error.code, message = %error.message, "a console form failed");
            }
            (
                Some(Err(format!("{}: {}", error.code, error.message))),
                status,
            )
        }
    }
}

/// `POST /stacks/{name}/map`: bills a tenant to its customer subscription, with the API's
/// rules (`PUT /v1/registrations/{name}/customerSubscriptions/{id}`).
pub(crate) async fn map(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<MappingForm>,
) -> Response {
    let (session, registration) = match form_target(&state, &headers, &name, &form.csrf).await {
        Ok(target) => target,
        Err(response) => return response,
    };
    let fields = (|| {
        Ok::<_, String>((
            parsed::<TenantId>(
                &form.tenant,
                "Tenant",
                "2b7f0000-0000-0000-0000-000000000019",
            )?,
            parsed::<SubscriptionId>(
                &form.subscription,
                "Customer subscription",
                "0c9e0000-0000-0000-0000-000000000041",
            )?,
            effective_from(&form.effective_from)?,
        ))
    })();
    let (outcome, status) = match fields {
        Err(why) => (Some(Err(why)), StatusCode::BAD_REQUEST),
        Ok((tenant, subscription, from)) => outcome(
            (state.store)
                .put_customer_subscription(registration, subscription, tenant, from)
                .await,
            |m| {
                format!(
                    "Tenant {} is billed to {} from {}.",
                    m.tenant_id, m.subscription, m.effective_from
                )
            },
        ),
    };
    let keep = if status.is_success() {
        String::new()
    } else {
        form.tenant.trim().to_owned()
    };
    stack_page(&state, &session, &name, keep, outcome, status).await
}

#[derive(Deserialize)]
pub(crate) struct EndForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    subscription: String,
    #[serde(default)]
    effective_from: String,
}

/// `POST /stacks/{name}/end`: ends a customer subscription's mapping; the tenant's usage goes
/// to the default subscription again.
pub(crate) async fn end(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<EndForm>,
) -> Response {
    let (session, registration) = match form_target(&state, &headers, &name, &form.csrf).await {
        Ok(target) => target,
        Err(response) => return response,
    };
    let fields = (|| {
        Ok::<_, String>((
            parsed::<SubscriptionId>(
                &form.subscription,
                "Customer subscription",
                "0c9e0000-0000-0000-0000-000000000041",
            )?,
            effective_from(&form.effective_from)?,
        ))
    })();
    let (outcome, status) = match fields {
        Err(why) => (Some(Err(why)), StatusCode::BAD_REQUEST),
        Ok((subscription, from)) => outcome(
            (state.store)
                .delete_customer_subscription(registration, subscription, from)
                .await,
            |events| {
                events
                    .iter()
                    .map(|e| {
                        format!(
                            "Tenant {} is billed to the default subscription from {}.",
                            e.tenant_id, e.effective_from
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            },
        ),
    };
    stack_page(&state, &session, &name, String::new(), outcome, status).await
}
