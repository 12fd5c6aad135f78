//! Request extraction that answers every malformed input in the ARM envelope: JSON bodies
//! (with the failing field's path as `target`), path parameters and query parameters.

use std::collections::HashMap;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ErrorCode};

/// The largest body a directory route accepts.
pub const MAX_DIRECTORY_BODY_BYTES: usize = 64 * 1024;

/// A JSON body, deserialized into `T` with errors in the ARM envelope.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = req.headers().get(CONTENT_TYPE) {
            let is_json = content_type
                .to_str()
                .ok()
                .and_then(|value| value.split(';').next())
                .is_some_and(|mime| {
                    let mime = mime.trim();
                    mime.eq_ignore_ascii_case("application/json")
                        || mime.eq_ignore_ascii_case("text/json")
                });
            if !is_json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "the body must be JSON (Content-Type: application/json)",
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::RequestTooLarge,
                    "the request body is larger than this route accepts",
                )
            } else {
                ApiError::new(
                    ErrorCode::InvalidRequestContent,
                    format!("the request body could not be read: {rejection}"),
                )
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Deserializes JSON text into `T`, naming the failing field's path as the target.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let error = ApiError::new(ErrorCode::InvalidRequestContent, inner.to_string());
                if path == "." {
                    error
                } else {
                    error.with_target(path)
                }
            }
            _ => invalid_json(&inner),
        }
    })?;
    // Trailing text after the value makes the whole body malformed.
    deserializer.end().map_err(|err| invalid_json(&err))?;
    Ok(value)
}

fn invalid_json(err: &serde_json::Error) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidJson,
        format!("the request body is not valid JSON: {err}"),
    )
}

/// Parses a path or query parameter into its type, or names it in a 400.
pub fn param<T>(value: &str, name: &str) -> Result<T, ApiError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|err| {
        ApiError::new(ErrorCode::InvalidParameter, format!("{name}: {err}")).with_target(name)
    })
}

/// Parses a body field into its type, or names the field in a 400.
pub fn field<T>(value: &str, name: &str) -> Result<T, ApiError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|err| {
        ApiError::new(ErrorCode::InvalidRequestContent, format!("{name}: {err}")).with_target(name)
    })
}

/// Parses an RFC 3339 instant kept to the microsecond (the precision every store keeps).
pub fn instant(value: &str, name: &str) -> Result<Timestamp, ApiError> {
    let parsed: Timestamp = value.parse().map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("{name}: '{value}' is not an RFC 3339 instant with an offset: {err}"),
        )
        .with_target(name)
    })?;
    if parsed.subsec_nanosecond() % 1000 != 0 {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("{name}: '{value}' is more precise than a microsecond"),
        )
        .with_target(name));
    }
    Ok(parsed)
}

/// Reads a decimal from a JSON string or number, exactly (numbers are read from their text).
pub fn decimal(value: &serde_json::Value, name: &str) -> Result<Decimal, ApiError> {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidRequestContent,
                format!("{name} must be a decimal string or number"),
            )
            .with_target(name));
        }
    };
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(&text)
    } else {
        Decimal::from_str(&text)
    };
    parsed.map_err(|err| {
        ApiError::new(
            ErrorCode::InvalidRequestContent,
            format!("{name}: '{text}' is not a decimal: {err}"),
        )
        .with_target(name)
    })
}

/// The query string as name/value pairs; malformed encoding answers 400.
#[derive(Debug, Default)]
pub struct QueryParams(pub HashMap<String, String>);

impl QueryParams {
    /// The query string of the next page: every parameter but `token` as given (sorted, so
    /// links are stable), then `token=value`.
    pub fn next_page(&self, token: &str, value: impl std::fmt::Display) -> String {
        let mut pairs: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case(token))
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        pairs.sort_unstable();
        let value = value.to_string();
        pairs.push((token, &value));
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(n, v)| format!("{}={}", percent_encode(n), percent_encode(v)))
            .collect();
        encoded.join("&")
    }

    /// Checks the ARM `api-version` parameter against the versions a provider speaks, with
    /// ARM's codes and messages for a missing or an unknown one.
    pub fn api_version(&self, supported: &[&str]) -> Result<(), ApiError> {
        let version = self.0.get("api-version").ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingApiVersionParameter,
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
            .with_target("api-version")
        })?;
        if supported.contains(&version.as_str()) {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::UnsupportedApiVersionValue,
            format!(
                "Unsupported api-version '{version}'. The supported api-versions are '{}'.",
                supported.join(",")
            ),
        )
        .with_target("api-version"))
    }

    /// An optional parameter parsed as an instant.
    pub fn instant(&self, name: &str) -> Result<Option<Timestamp>, ApiError> {
        self.0
            .get(name)
            .map(|value| instant(value, name))
            .transpose()
    }

    /// An optional parameter parsed into its type.
    pub fn parsed<T>(&self, name: &str) -> Result<Option<T>, ApiError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.0.get(name).map(|value| param(value, name)).transpose()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::new(ErrorCode::InvalidParameter, rejection.body_text())
            })?;
        Ok(Self(map))
    }
}

/// Percent-encodes a query name or value, leaving the unreserved characters and the `$` and
/// `:` that OData names and instants carry.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'$' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
