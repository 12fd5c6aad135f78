//! Signing in with an API token and out: the sign-in form with its own CSRF cookie, the
//! session cookie set on success, and its removal.
#![allow(clippy::result_large_err)] // a page's steps fail with the answer to give

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use stackbill_api::{AppState, Caller};

use crate::frame::{Layout, csrf_refused, render};
use crate::session::{
    LOGIN_COOKIE, SESSION_COOKIE, cookie, encode_token, same, session, set_cookie,
};

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    error: Option<String>,
}

fn login_page(state: &AppState, error: Option<String>, status: StatusCode) -> Response {
    let nonce = stackbill_api::auth::new_secret().unwrap_or_default();
    let mut response = render(
        &LoginPage {
            layout: Layout::new(None),
            csrf: nonce.clone(),
            error,
        },
        status,
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, LOGIN_COOKIE, Some(&nonce)),
    );
    response
}

/// `GET /login`.
pub(crate) async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if session(&state, &headers).await.is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&state, None, StatusCode::OK)
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /login`: a valid token (not a stack's) becomes the session.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same(&form.csrf, &expected) {
        return login_page(
            &state,
            Some("The sign-in form expired; sign in again.".to_owned()),
            StatusCode::FORBIDDEN,
        );
    }
    let token = form.token.trim();
    let caller = match stackbill_api::auth::caller_for_secret(&state, token).await {
        Ok(caller) => caller,
        Err(error) => {
            tracing::error!(%error, "cannot check a token at sign-in");
            return login_page(
                &state,
                Some("The database cannot be read now; try again shortly.".to_owned()),
                StatusCode::SERVICE_UNAVAILABLE,
            );
        }
    };
    match caller {
        None => login_page(
            &state,
            Some("This token is not valid: it is mistyped, revoked or unknown.".to_owned()),
            StatusCode::UNAUTHORIZED,
        ),
        Some(Caller::Stack(_)) => login_page(
            &state,
            Some(
                "A stack token only sends usage; sign in with an admin, partner or customer token."
                    .to_owned(),
            ),
            StatusCode::FORBIDDEN,
        ),
        Some(_) => {
            let mut response = Redirect::to("/").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, SESSION_COOKIE, Some(&encode_token(token))),
            );
            headers.append(header::SET_COOKIE, set_cookie(&state, LOGIN_COOKIE, None));
            response
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`.
pub(crate) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let Some(session) = session(&state, &headers).await else {
        return Redirect::to("/login").into_response();
    };
    if !same(&form.csrf, &session.csrf) {
        return csrf_refused(&session);
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, None));
    response
}
