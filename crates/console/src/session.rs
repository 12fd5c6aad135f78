//! The console's session: the API token in an `HttpOnly`, `SameSite=Strict` cookie, resolved
//! to its caller on every request, and CSRF tokens derived from it.

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use stackbill_api::{AppState, Caller};

/// The cookie holding the signed-in token.
pub const SESSION_COOKIE: &str = "stackbill_session";
/// The cookie holding the sign-in form's CSRF token.
pub(crate) const LOGIN_COOKIE: &str = "stackbill_login";

/// A signed-in user.
pub(crate) struct Session {
    /// Who the token stands for.
    pub(crate) caller: Caller,
    /// The CSRF token its forms carry.
    pub(crate) csrf: String,
}

/// The value of cookie `name`, if the request has it.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// A `Set-Cookie` value: the cookie for the whole console, or its removal (`value` `None`).
pub(crate) fn set_cookie(state: &AppState, name: &str, value: Option<&str>) -> HeaderValue {
    let secure = if state.https { "; Secure" } else { "" };
    let text = match value {
        Some(value) => format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{secure}"),
        None => format!("{name}=; Path=/; HttpOnly; SameSite=Strict{secure}; Max-Age=0"),
    };
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The cookie form of a token (any text an admin token may be).
pub(crate) fn encode_token(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(token.as_bytes())
}

fn decode_token(value: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(value).ok()?).ok()
}

/// The CSRF token of the forms of the session holding `secret`: only its holder can compute
/// it, and it changes with the token.
pub(crate) fn csrf_for(secret: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"stackbill-console-csrf\0")
        .chain_update(secret.as_bytes())
        .finalize();
    URL_SAFE_NO_PAD.encode(digest)
}

/// Whether `given` is `expected`, in time that does not depend on where they differ.
pub(crate) fn same(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

/// The request's session, if its cookie holds a token that is valid now. A stack token never
/// signs in.
pub(crate) async fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let secret = decode_token(&cookie(headers, SESSION_COOKIE)?)?;
    match stackbill_api::auth::caller_for_secret(state, &secret).await {
        Ok(Some(Caller::Stack(_)) | None) => None,
        Ok(Some(caller)) => Some(Session {
            caller,
            csrf: csrf_for(&secret),
        }),
        Err(error) => {
            tracing::warn!(%error, "cannot check a console session");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_several_and_tokens_round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; stackbill_session=abc; b=2"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
        let token = "any admin; token=with spaces";
        assert_eq!(decode_token(&encode_token(token)).as_deref(), Some(token));
        assert!(same(&csrf_for("x"), &csrf_for("x")));
        assert!(!same(&csrf_for("x"), &csrf_for("y")));
    }
}
