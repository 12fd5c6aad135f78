//! What every console page shares: the frame (`Layout`), rendering, error pages that keep the
//! API's statuses, the signed-in session, and the scope of what it may see. A leaf module: the
//! pages depend on it, never the other way round.
#![allow(clippy::result_large_err)] // a page's steps fail with the answer to give

use askama::Template;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use stackbill_api::billing::InvoiceNames;
use stackbill_api::{ApiError, AppState, Caller};
use stackbill_core::{PartnerId, Period};

use crate::assets::{Link, scripts, stylesheets};
use crate::session::{Session, session};

/// What every page's frame shows.
pub(crate) struct Layout {
    pub(crate) stylesheets: [Link; 2],
    pub(crate) scripts: [Link; 2],
    pub(crate) who: Option<String>,
    pub(crate) csrf: String,
}

impl Layout {
    pub(crate) fn new(session: Option<&Session>) -> Self {
        Self {
            stylesheets: stylesheets(),
            scripts: scripts(),
            who: session.map(|s| describe(&s.caller)),
            csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
        }
    }
}

fn describe(caller: &Caller) -> String {
    match caller {
        Caller::Admin => "admin".to_owned(),
        Caller::Partner(partner) => format!("partner {partner}"),
        Caller::Customer(partner, tenant) => format!("customer {tenant} of {partner}"),
        Caller::Stack(cloud) => format!("stack {cloud}"),
    }
}

pub(crate) fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "a console page cannot be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page cannot be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    heading: String,
    message: String,
}

pub(crate) fn error_page(
    session: Option<&Session>,
    status: StatusCode,
    heading: &str,
    message: String,
) -> Response {
    render(
        &ErrorPage {
            layout: Layout::new(session),
            heading: heading.to_owned(),
            message,
        },
        status,
    )
}

/// An API refusal as a page with the same status: another partner's object is missing here
/// as it is over the API.
pub(crate) fn refusal(session: &Session, error: ApiError) -> Response {
    let status = stackbill_api::error::status(error.code);
    if status.is_server_error() {
        tracing::error!(code = %error.code, message = %error.message, "a console page failed");
    }
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        _ => "Cannot show this page",
    };
    error_page(Some(session), status, heading, error.message)
}

pub(crate) fn store_failure(session: &Session, error: stackbill_store::StoreError) -> Response {
    refusal(session, ApiError::from(error))
}

/// The session, or the answer that sends the browser to sign in.
pub(crate) async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    session(state, headers)
        .await
        .ok_or_else(|| Redirect::to("/login").into_response())
}

#[derive(Deserialize)]
pub(crate) struct PeriodQuery {
    pub(crate) period: Option<String>,
}

pub(crate) fn period_of(
    state: &AppState,
    session: &Session,
    query: &PeriodQuery,
) -> Result<Period, Response> {
    match query.period.as_deref().filter(|p| !p.is_empty()) {
        None => Ok(Period::containing(state.store.now())),
        Some(text) => text.parse().map_err(|_| {
            error_page(
                Some(session),
                StatusCode::BAD_REQUEST,
                "Cannot show this page",
                format!("'{text}' is not a month: give YYYY-MM, e.g. 2025-06"),
            )
        }),
    }
}

/// Whose invoices the session may see: everybody's (admin) or one partner's; a customer sees
/// no CSP subscription's usage or invoices.
pub(crate) fn scope(session: &Session) -> Result<Option<PartnerId>, Response> {
    session
        .caller
        .partner_scope()
        .map(|scope| scope.cloned())
        .map_err(|error| refusal(session, error))
}

pub(crate) fn partner_text(names: &InvoiceNames, partner: Option<&PartnerId>) -> String {
    match partner {
        Some(id) => names
            .partners
            .get(id)
            .filter(|name| !name.is_empty())
            .map_or_else(|| id.to_string(), |name| format!("{name} ({id})")),
        None => "-".to_owned(),
    }
}

/// The answer to a form posted without the session's CSRF token.
pub(crate) fn csrf_refused(session: &Session) -> Response {
    error_page(
        Some(session),
        StatusCode::FORBIDDEN,
        "Not allowed",
        "The form lacks its CSRF token; reload the page and try again.".to_owned(),
    )
}
