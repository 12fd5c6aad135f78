//! Bearer-token authentication. Secrets are compared by their SHA-256, the form the store
//! keeps; the first admin token may also come from the environment.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::access::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The SHA-256 of a token secret.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh random secret: `sb_` and 64 hex digits.
pub fn new_secret() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| format!("no system randomness: {err}"))?;
    Ok(format!("sb_{}", hex(&bytes)))
}

/// A fresh public token id: 16 hex digits.
pub fn new_token_id() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|err| format!("no system randomness: {err}"))?;
    Ok(hex(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(ErrorCode::InvalidAuthenticationToken, message).into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The caller a token's secret stands for, if it is a valid token now (the admin token of
/// the environment, or a live token of the store).
pub async fn caller_for_secret(
    state: &AppState,
    secret: &str,
) -> Result<Option<Caller>, stackbill_store::StoreError> {
    if secret.is_empty() {
        return Ok(None);
    }
    let hash = hash_secret(secret);
    if state.auth.env_admin_sha256 == Some(hash) {
        return Ok(Some(Caller::Admin));
    }
    Ok(state
        .store
        .token_by_secret(hash)
        .await?
        .and_then(|t| Caller::from_grant(&t.grant)))
}

/// Resolves the bearer token of a request to its caller, or the 401 answer.
pub(crate) async fn resolve_caller(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Caller, Response> {
    let secret = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Err(unauthorized(
            "the request needs an 'Authorization: Bearer <token>' header",
        ));
    };
    match caller_for_secret(state, secret).await {
        Ok(caller) => {
            caller.ok_or_else(|| unauthorized("the bearer token is not valid for this API"))
        }
        Err(err) => Err(ApiError::from(err).into_response()),
    }
}

/// Resolves the bearer token to a [`Caller`] for the handlers, or answers 401.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match resolve_caller(&state, request.headers()).await {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(response) => response,
    }
}
