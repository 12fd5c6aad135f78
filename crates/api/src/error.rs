//! The one closed table of error codes the API answers with, and the ARM error envelope.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stackbill_core::RegistryError;
use stackbill_core::rating::RatingError;
use stackbill_store::{BillingError, StoreError};

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = ($text:literal, $status:ident)),+ $(,)?) => {
        /// Every error code the API can answer with, with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant),+
        }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The code as it appears in `error.code`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The HTTP status it is answered with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status),+
                }
            }
        }
    };
}

error_codes! {
    /// The body is not well-formed JSON.
    InvalidJson = ("InvalidJson", BAD_REQUEST),
    /// The body is JSON but a field is missing, unknown, or of the wrong type.
    InvalidRequestContent = ("InvalidRequestContent", BAD_REQUEST),
    /// A path or query parameter is malformed.
    InvalidParameter = ("InvalidParameter", BAD_REQUEST),
    /// The body is not JSON.
    UnsupportedMediaType = ("UnsupportedMediaType", UNSUPPORTED_MEDIA_TYPE),
    /// The body is larger than the route accepts.
    RequestTooLarge = ("RequestTooLarge", PAYLOAD_TOO_LARGE),
    /// No valid bearer token.
    InvalidAuthenticationToken = ("InvalidAuthenticationToken", UNAUTHORIZED),
    /// The caller's role may not do this.
    AuthorizationFailed = ("AuthorizationFailed", FORBIDDEN),
    /// Customers do not see usage or invoices of CSP subscriptions.
    UsageNotVisible = ("UsageNotVisible", FORBIDDEN),
    /// No such token.
    TokenNotFound = ("TokenNotFound", NOT_FOUND),
    /// An Azure-compatible request without `api-version`.
    MissingApiVersionParameter = ("MissingApiVersionParameter", BAD_REQUEST),
    /// An Azure-compatible request with an api-version stackbill does not answer.
    UnsupportedApiVersionValue = ("UnsupportedApiVersionValue", BAD_REQUEST),
    /// A registration token that cannot be read.
    InvalidRegistrationToken = ("InvalidRegistrationToken", BAD_REQUEST),
    /// A usage query property is missing or invalid; the target names it.
    InvalidProperty = ("InvalidProperty", BAD_REQUEST),
    /// A usage query's end lies in the future.
    RequestEndTimeIsInFuture = ("RequestEndTimeIsInFuture", BAD_REQUEST),
    /// Usage granularity other than Daily or Hourly.
    InvalidAggregationGranularity = ("InvalidAggregationGranularity", BAD_REQUEST),
    /// No such route.
    RouteNotFound = ("RouteNotFound", NOT_FOUND),
    /// The route exists but not with this method.
    MethodNotAllowed = ("MethodNotAllowed", METHOD_NOT_ALLOWED),
    /// No such partner.
    PartnerNotFound = ("PartnerNotFound", NOT_FOUND),
    /// A subscription names a partner that does not exist.
    UnknownPartner = ("UnknownPartner", BAD_REQUEST),
    /// No such billing subscription.
    SubscriptionNotFound = ("SubscriptionNotFound", NOT_FOUND),
    /// A subscription's fields do not fit its offer type.
    InvalidSubscription = ("InvalidSubscription", BAD_REQUEST),
    /// No such meter.
    MeterNotFound = ("MeterNotFound", NOT_FOUND),
    /// SPEC §2: the default or customer subscription does not exist.
    InvalidCustomerSubscriptionId = ("InvalidCustomerSubscriptionId", BAD_REQUEST),
    /// SPEC §2: the stack is registered already.
    CloudIdAlreadyRegistered = ("CloudIdAlreadyRegistered", CONFLICT),
    /// SPEC §2: the default subscription is fixed.
    DefaultSubscriptionChange = ("DefaultSubscriptionChange", CONFLICT),
    /// A registration's stack is fixed.
    CloudIdChange = ("CloudIdChange", CONFLICT),
    /// SPEC §2: no such registration.
    RegistrationNotFound = ("RegistrationNotFound", NOT_FOUND),
    /// SPEC §2: Capacity registrations have no customer subscriptions.
    CustomerSubscriptionsNotAllowed = ("CustomerSubscriptionsNotAllowed", CONFLICT),
    /// SPEC §2: the default subscription is not CSP or CSPSS.
    UnauthorizedCspRegistration = ("UnauthorizedCspRegistration", FORBIDDEN),
    /// SPEC §2: the customer subscription is not CSP.
    InvalidCspSubscription = ("InvalidCSPSubscription", BAD_REQUEST),
    /// SPEC §2: the customer subscription belongs to another partner.
    BadCustomerSubscriptionId = ("BadCustomerSubscriptionId", BAD_REQUEST),
    /// SPEC §2: the tenant is not the subscription's customer.
    TenantMismatch = ("TenantMismatch", BAD_REQUEST),
    /// SPEC §2: no tenant is mapped to that subscription then.
    CustomerSubscriptionNotFound = ("CustomerSubscriptionNotFound", NOT_FOUND),
    /// No such rate card.
    RateCardNotFound = ("RateCardNotFound", NOT_FOUND),
    /// A rate card's entry breaks a rule.
    InvalidRateCard = ("InvalidRateCard", BAD_REQUEST),
    /// No invoice for that subscription and period.
    InvoiceNotFound = ("InvoiceNotFound", NOT_FOUND),
    /// A period can be finalized only once it has ended.
    PeriodNotEnded = ("PeriodNotEnded", CONFLICT),
    /// An amount does not fit in 28 digits.
    AmountOverflow = ("AmountOverflow", UNPROCESSABLE_ENTITY),
    /// The database is not answering; try again.
    ServiceUnavailable = ("ServiceUnavailable", SERVICE_UNAVAILABLE),
    /// A fault of ours; the details are in the server log.
    InternalServerError = ("InternalServerError", INTERNAL_SERVER_ERROR),
}

impl ErrorCode {
    fn for_rule(error: &RegistryError) -> Self {
        match error {
            RegistryError::InvalidCustomerSubscriptionId { .. } => {
                Self::InvalidCustomerSubscriptionId
            }
            RegistryError::CloudIdAlreadyRegistered { .. } => Self::CloudIdAlreadyRegistered,
            RegistryError::DefaultSubscriptionChange { .. } => Self::DefaultSubscriptionChange,
            RegistryError::CloudIdChange { .. } => Self::CloudIdChange,
            RegistryError::RegistrationNotFound { .. } => Self::RegistrationNotFound,
            RegistryError::CustomerSubscriptionsNotAllowed { .. } => {
                Self::CustomerSubscriptionsNotAllowed
            }
            RegistryError::UnauthorizedCspRegistration { .. } => Self::UnauthorizedCspRegistration,
            RegistryError::InvalidCspSubscription { .. } => Self::InvalidCspSubscription,
            RegistryError::BadCustomerSubscriptionId { .. } => Self::BadCustomerSubscriptionId,
            RegistryError::TenantMismatch { .. } => Self::TenantMismatch,
            RegistryError::CustomerSubscriptionNotFound { .. } => {
                Self::CustomerSubscriptionNotFound
            }
        }
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
        match error {
            StoreError::Rule(rule) => {
                let code = ErrorCode::for_rule(&rule);
                Self::new(code, rule.to_string()).with_target(rule.target())
            }
            StoreError::InvalidSubscription(invalid) => {
                Self::new(ErrorCode::InvalidSubscription, invalid.to_string())
                    .with_target(invalid.target())
            }
            StoreError::UnknownPartner(partner) => Self::new(
                ErrorCode::UnknownPartner,
                format!(
                    "partner '{partner}' does not exist; \
                     create it with PUT /v1/partners/{partner} first"
                ),
            )
            .with_target("partnerId"),
            StoreError::Billing(BillingError::PeriodNotEnded { .. }) => {
                Self::new(ErrorCode::PeriodNotEnded, error.to_string()).with_target("period")
            }
            StoreError::Billing(BillingError::Rating(rating)) => match rating {
                RatingError::Overflow { .. } => {
                    Self::new(ErrorCode::AmountOverflow, rating.to_string())
                }
                RatingError::UnknownCurrency(_) => {
                    Self::new(ErrorCode::InvalidRateCard, rating.to_string())
                        .with_target("currency")
                }
                RatingError::InvalidRate { target, .. } => {
                    Self::new(ErrorCode::InvalidRateCard, rating.to_string()).with_target(target)
                }
            },
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
        let status = self.code.status();
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
