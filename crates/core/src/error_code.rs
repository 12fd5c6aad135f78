//! The one closed table of error codes stackbill answers with, over HTTP and on the CLI.
//!
//! The core's refusals name their code here; the API maps each code to its HTTP status
//! (`api/src/error.rs`) and the CLI prints it before the message. Usage records rejected
//! one by one inside an accepted batch carry a [`crate::UsageErrorCode`] instead.

use std::fmt;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal),+ $(,)?) => {
        /// Every error code a request can be refused with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant),+
        }

        impl ErrorCode {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The code as it appears in `error.code` and in the CLI's messages.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }
    };
}

error_codes! {
    /// The body is not well-formed JSON.
    InvalidJson = "InvalidJson",
    /// The body is JSON but a field is missing, unknown, or of the wrong type.
    InvalidRequestContent = "InvalidRequestContent",
    /// A path or query parameter is malformed.
    InvalidParameter = "InvalidParameter",
    /// The body is not JSON.
    UnsupportedMediaType = "UnsupportedMediaType",
    /// The body is larger than the route accepts.
    RequestTooLarge = "RequestTooLarge",
    /// The request's URI is longer than the server reads.
    RequestUriTooLong = "RequestUriTooLong",
    /// The request's headers are larger than the server reads.
    RequestHeadersTooLarge = "RequestHeadersTooLarge",
    /// No valid bearer token.
    InvalidAuthenticationToken = "InvalidAuthenticationToken",
    /// The caller's role may not do this.
    AuthorizationFailed = "AuthorizationFailed",
    /// Customers do not see usage or invoices of CSP subscriptions.
    UsageNotVisible = "UsageNotVisible",
    /// No such token.
    TokenNotFound = "TokenNotFound",
    /// An Azure-compatible request without `api-version`.
    MissingApiVersionParameter = "MissingApiVersionParameter",
    /// An Azure-compatible request with an api-version stackbill does not answer.
    UnsupportedApiVersionValue = "UnsupportedApiVersionValue",
    /// A registration token that cannot be read.
    InvalidRegistrationToken = "InvalidRegistrationToken",
    /// A usage query property is missing or invalid; the target names it.
    InvalidProperty = "InvalidProperty",
    /// A usage query's end lies in the future.
    RequestEndTimeIsInFuture = "RequestEndTimeIsInFuture",
    /// Usage granularity other than Daily or Hourly.
    InvalidAggregationGranularity = "InvalidAggregationGranularity",
    /// No such route.
    RouteNotFound = "RouteNotFound",
    /// The route exists but not with this method.
    MethodNotAllowed = "MethodNotAllowed",
    /// No such partner.
    PartnerNotFound = "PartnerNotFound",
    /// A subscription names a partner that does not exist.
    UnknownPartner = "UnknownPartner",
    /// No such billing subscription.
    SubscriptionNotFound = "SubscriptionNotFound",
    /// A subscription's fields do not fit its offer type.
    InvalidSubscription = "InvalidSubscription",
    /// No such meter.
    MeterNotFound = "MeterNotFound",
    /// SPEC §2: the default or customer subscription does not exist.
    InvalidCustomerSubscriptionId = "InvalidCustomerSubscriptionId",
    /// SPEC §2: the stack is registered already.
    CloudIdAlreadyRegistered = "CloudIdAlreadyRegistered",
    /// SPEC §2: the default subscription is fixed.
    DefaultSubscriptionChange = "DefaultSubscriptionChange",
    /// A registration's stack is fixed.
    CloudIdChange = "CloudIdChange",
    /// SPEC §2: no such registration.
    RegistrationNotFound = "RegistrationNotFound",
    /// SPEC §2: Capacity registrations have no customer subscriptions.
    CustomerSubscriptionsNotAllowed = "CustomerSubscriptionsNotAllowed",
    /// SPEC §2: the default subscription is not CSP or CSPSS.
    UnauthorizedCspRegistration = "UnauthorizedCspRegistration",
    /// SPEC §2: the customer subscription is not CSP.
    InvalidCspSubscription = "InvalidCSPSubscription",
    /// SPEC §2: the customer subscription belongs to another partner.
    BadCustomerSubscriptionId = "BadCustomerSubscriptionId",
    /// SPEC §2: the tenant is not the subscription's customer.
    TenantMismatch = "TenantMismatch",
    /// SPEC §2: no tenant is mapped to that subscription then.
    CustomerSubscriptionNotFound = "CustomerSubscriptionNotFound",
    /// No such rate card.
    RateCardNotFound = "RateCardNotFound",
    /// A rate card's entry breaks a rule.
    InvalidRateCard = "InvalidRateCard",
    /// A billing profile's field breaks a rule; the target names it.
    InvalidBillingProfile = "InvalidBillingProfile",
    /// A webhook endpoint's field breaks a rule; the target names it.
    InvalidWebhook = "InvalidWebhook",
    /// No such webhook endpoint (or event of it).
    WebhookNotFound = "WebhookNotFound",
    /// No invoice for that subscription and period.
    InvoiceNotFound = "InvoiceNotFound",
    /// The registration has no collector.
    CollectorNotFound = "CollectorNotFound",
    /// A period can be finalized only once it has ended.
    PeriodNotEnded = "PeriodNotEnded",
    /// An amount does not fit in 28 digits.
    AmountOverflow = "AmountOverflow",
    /// The database is not answering; try again.
    ServiceUnavailable = "ServiceUnavailable",
    /// The database's disk is full: nothing can be written until space is freed.
    StorageFull = "StorageFull",
    /// The database cannot be written (permissions, a read-only mount or server).
    DatabaseReadOnly = "DatabaseReadOnly",
    /// A fault of ours; the details are in the server log.
    InternalServerError = "InternalServerError",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
        }
    }
}
