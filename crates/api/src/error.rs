//! The HTTP status of each error code, and the ARM error envelope.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
pub use stackbill_core::ErrorCode;
use stackbill_store::StoreError;

/// The HTTP status each code is answered with: the API's half of the error table, whose
/// codes are [`ErrorCode`]'s.
pub const fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidJson
        | ErrorCode::InvalidRequestContent
        | ErrorCode::InvalidParameter
        | ErrorCode::MissingApiVersionParameter
        | ErrorCode::UnsupportedApiVersionValue
        | ErrorCode::InvalidRegistrationToken
        | ErrorCode::InvalidProperty
        | ErrorCode::RequestEndTimeIsInFuture
        | ErrorCode::InvalidAggregationGranularity
        | ErrorCode::UnknownPartner
        | ErrorCode::InvalidSubscription
        | ErrorCode::InvalidCustomerSubscriptionId
        | ErrorCode::InvalidCspSubscription
        | ErrorCode::BadCustomerSubscriptionId
        | ErrorCode::TenantMismatch
        | ErrorCode::InvalidRateCard
        | ErrorCode::InvalidBillingProfile
        | ErrorCode::InvalidWebhook => StatusCode::BAD_REQUEST,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RequestUriTooLong => StatusCode::URI_TOO_LONG,
        ErrorCode::RequestHeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ErrorCode::InvalidAuthenticationToken => StatusCode::UNAUTHORIZED,
        ErrorCode::AuthorizationFailed
        | ErrorCode::UsageNotVisible
        | ErrorCode::UnauthorizedCspRegistration => StatusCode::FORBIDDEN,
        ErrorCode::TokenNotFound
        | ErrorCode::RouteNotFound
        | ErrorCode::PartnerNotFound
        | ErrorCode::WebhookNotFound
        | ErrorCode::SubscriptionNotFound
        | ErrorCode::MeterNotFound
        | ErrorCode::RegistrationNotFound
        | ErrorCode::CustomerSubscriptionNotFound
        | ErrorCode::RateCardNotFound
        | ErrorCode::InvoiceNotFound
        | ErrorCode::CollectorNotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::CloudIdAlreadyRegistered
        | ErrorCode::DefaultSubscriptionChange
        | ErrorCode::CloudIdChange
        | ErrorCode::CustomerSubscriptionsNotAllowed
        | ErrorCode::PeriodNotEnded => StatusCode::CONFLICT,
        ErrorCode::AmountOverflow => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::ServiceUnavailable | ErrorCode::StorageFull | ErrorCode::DatabaseReadOnly => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer: `{"error":{"code","message","target"?}}` with the code's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The code.
    pub code: ErrorCode,
    /// A sentence for people.
    pub message: String,
    /// The field or parameter the error is about.
    pub target: Option<String>,
}

impl ApiError {
    /// An error with a message and no target.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            target: None,
        }
    }

    /// Names the field or parameter the error is about.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        if let Some(code) = error.code() {
            let message = match &error {
                StoreError::UnknownPartner(partner) => format!(
                    "partner '{partner}' does not exist; \
                     create it with PUT /v1/partners/{partner} first"
                ),
                refusal => refusal.to_string(),
            };
            let answer = Self::new(code, message);
            return match error.target() {
                Some(target) => answer.with_target(target),
                None => answer,
            };
        }
        if let Some(fault) = error.storage_fault() {
            tracing::error!(error = %error, "the database cannot be written");
            let message = match fault {
                stackbill_store::StorageFault::Full => {
                    "the database's disk is full; nothing can be written until space is freed"
                }
                stackbill_store::StorageFault::ReadOnly => {
                    "the database cannot be written (read-only file, mount or server)"
                }
            };
            return Self::new(fault.code(), message);
        }
        match error {
            ref unavailable if unavailable.is_unavailable() => {
                tracing::warn!(error = %error, "database busy or unreachable");
                Self::new(
                    ErrorCode::ServiceUnavailable,
                    "the database is busy or unreachable; try again",
                )
            }
            other => {
                tracing::error!(error = %other, "store failure");
                Self::new(
                    ErrorCode::InternalServerError,
                    "an internal error occurred; see the server log",
                )
            }
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'static str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status(self.code);
        let body = Envelope {
            error: Body {
                code: self.code.as_str(),
                message: &self.message,
                target: self.target.as_deref(),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// The ARM error envelope, as documented in the OpenAPI description.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorDetail,
}

/// One error: its code, a sentence, and the field it is about.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The code.
    pub code: String,
    /// A sentence for people.
    pub message: String,
    /// The field or parameter.
    pub target: Option<String>,
}

/// Every route's error answer: the ARM envelope, with the status of its code.
#[derive(utoipa::IntoResponses)]
#[response(status = "default", description = "an ARM error")]
pub(crate) struct ArmError(
    #[allow(dead_code, reason = "only the type is read, by the derive")] ErrorResponse,
);
