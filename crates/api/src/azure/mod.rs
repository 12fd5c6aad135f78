//! The Azure-compatible Microsoft.AzureStack resource provider: registrations and their
//! customer subscriptions in the real ARM shapes, so `New-AzResource ... customerSubscriptions`
//! and the Azure SDK work unchanged. Same data, rules and error codes as the native API.
//!
//! ARM matches path segments case-insensitively, so these routes are dispatched by hand from
//! the router's fallback rather than by axum's case-sensitive matcher.

mod customer_subscriptions;
mod registrations;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use stackbill_core::{Registration, RegistrationName, SubscriptionId};
use stackbill_store::AzureRegistration;

use self::customer_subscriptions::{
    delete_customer_subscription, get_customer_subscription, list_customer_subscriptions,
    put_customer_subscription,
};
pub use self::registrations::encode_token;
use self::registrations::{
    activation_key, delete_registration, get_registration, list_registrations, put_registration,
};
use crate::access::{Caller, check_registration, registration_not_found};
use crate::auth::resolve_caller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{QueryParams, param};
use crate::state::AppState;

/// The Microsoft.AzureStack api-versions stackbill answers.
pub const AZURE_STACK_API_VERSIONS: &[&str] = &[
    "2016-01-01",
    "2017-06-01",
    "2020-06-01-preview",
    "2022-06-01",
];
/// The resource group of a registration created through the native API.
const DEFAULT_RESOURCE_GROUP: &str = "azurestack";
const REGISTRATION_TYPE: &str = "Microsoft.AzureStack/registrations";
const CUSTOMER_SUBSCRIPTION_TYPE: &str = "Microsoft.AzureStack/registrations/customerSubscriptions";

/// Whether a path belongs to the Azure-compatible API.
pub(crate) fn is_azure_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.starts_with("/subscriptions/") || lower.starts_with("/providers/")
}

/// What the path asks for.
enum Target {
    /// Registrations of a subscription (in a resource group, or all of them).
    Registrations {
        subscription: String,
        group: Option<String>,
    },
    /// Microsoft.Commerce usage of a subscription.
    UsageAggregates { subscription: String },
    /// Microsoft.Commerce prices of a subscription.
    RateCard { subscription: String },
    /// One registration, or one of its actions or children.
    Registration {
        subscription: String,
        group: String,
        name: String,
        rest: Vec<String>,
    },
}

fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let ["subscriptions", _, after @ ..] = lower.as_slice() else {
        return None;
    };
    let subscription = parts[1].to_owned();
    let (group, provider) = match after {
        ["resourcegroups", _, provider @ ..] => (Some(parts[3].to_owned()), provider),
        provider => (None, provider),
    };
    let at = parts.len() - provider.len();
    match (group, provider) {
        (None, ["providers", "microsoft.commerce", "usageaggregates"]) => {
            Some(Target::UsageAggregates { subscription })
        }
        (None, ["providers", "microsoft.commerce", "ratecard"]) => {
            Some(Target::RateCard { subscription })
        }
        (group, ["providers", "microsoft.azurestack", "registrations"]) => {
            Some(Target::Registrations {
                subscription,
                group,
            })
        }
        (Some(group), ["providers", "microsoft.azurestack", "registrations", _, ..]) => {
            Some(Target::Registration {
                subscription,
                group,
                name: parts[at + 3].to_owned(),
                rest: parts[at + 4..].iter().map(|p| (*p).to_owned()).collect(),
            })
        }
        _ => None,
    }
}

/// Answers every Azure-compatible request.
pub(crate) async fn dispatch(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let caller = match resolve_caller(&state, &parts.headers).await {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let query =
        match axum::extract::Query::<std::collections::HashMap<String, String>>::try_from_uri(
            &parts.uri,
        ) {
            Ok(axum::extract::Query(map)) => QueryParams(map),
            Err(rejection) => {
                return ApiError::new(ErrorCode::InvalidParameter, rejection.body_text())
                    .into_response();
            }
        };
    let Ok(body) = axum::body::to_bytes(body, crate::extract::MAX_DIRECTORY_BODY_BYTES).await
    else {
        return ApiError::new(
            ErrorCode::RequestTooLarge,
            "the request body is larger than this route accepts",
        )
        .into_response();
    };
    match handle(
        &state,
        &caller,
        &parts.method,
        parts.uri.path(),
        &query,
        &body,
        &parts.headers,
    )
    .await
    {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(
    state: &AppState,
    caller: &Caller,
    method: &Method,
    path: &str,
    query: &QueryParams,
    body: &Bytes,
    headers: &axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let Some(target) = target(path) else {
        return Err(ApiError::new(
            ErrorCode::RouteNotFound,
            format!("no route matches '{path}'"),
        ));
    };
    match target {
        Target::UsageAggregates { .. } | Target::RateCard { .. } if *method != Method::GET => {
            Err(method_not_allowed(path))
        }
        Target::UsageAggregates { subscription } => {
            let subscription: SubscriptionId = param(&subscription, "subscriptionId")?;
            crate::commerce::usage_aggregates(state, caller, subscription, path, query, headers)
                .await
        }
        Target::RateCard { subscription } => {
            let subscription: SubscriptionId = param(&subscription, "subscriptionId")?;
            crate::commerce::rate_card(state, caller, subscription, query).await
        }
        Target::Registrations {
            subscription,
            group,
        } => {
            query.api_version(AZURE_STACK_API_VERSIONS)?;
            if *method != Method::GET {
                return Err(method_not_allowed(path));
            }
            list_registrations(state, caller, &subscription, group.as_deref()).await
        }
        Target::Registration {
            subscription,
            group,
            name,
            rest,
        } => {
            let is_remote_management = rest.len() == 1
                && rest[0].eq_ignore_ascii_case("enableRemoteManagement")
                && *method == Method::POST;
            if !is_remote_management {
                query.api_version(AZURE_STACK_API_VERSIONS)?;
            }
            let subscription_id: SubscriptionId = param(&subscription, "subscriptionId")?;
            let name: RegistrationName = param(&name, "registrationName")?;
            let rest: Vec<String> = rest.iter().map(|r| r.to_ascii_lowercase()).collect();
            let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
            let scope = Scope {
                subscription: subscription_id,
                group,
                name,
            };
            match (method.clone(), rest.as_slice()) {
                (Method::GET, []) => get_registration(state, caller, &scope).await,
                (Method::PUT, []) => put_registration(state, caller, &scope, body, false).await,
                (Method::PATCH, []) => put_registration(state, caller, &scope, body, true).await,
                (Method::DELETE, []) => delete_registration(state, caller, &scope).await,
                (Method::POST, ["getactivationkey"]) => activation_key(state, caller, &scope).await,
                (Method::POST, ["enableremotemanagement"]) => {
                    owned_registration(state, caller, &scope).await?;
                    Ok(StatusCode::OK.into_response())
                }
                (Method::GET, ["customersubscriptions"]) => {
                    list_customer_subscriptions(state, caller, &scope).await
                }
                (method, ["customersubscriptions", id]) => {
                    let id: SubscriptionId = param(id, "customerSubscriptionName")?;
                    match method {
                        Method::GET => get_customer_subscription(state, caller, &scope, id).await,
                        Method::PUT => {
                            put_customer_subscription(state, caller, &scope, id, body).await
                        }
                        Method::DELETE => {
                            delete_customer_subscription(state, caller, &scope, id).await
                        }
                        _ => Err(method_not_allowed(path)),
                    }
                }
                (
                    _,
                    []
                    | ["getactivationkey"]
                    | ["enableremotemanagement"]
                    | ["customersubscriptions"],
                ) => Err(method_not_allowed(path)),
                _ => Err(ApiError::new(
                    ErrorCode::RouteNotFound,
                    format!("no route matches '{path}'"),
                )),
            }
        }
    }
}

fn method_not_allowed(path: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("'{path}' does not accept this method"),
    )
}

/// A registration as the path names it.
struct Scope {
    subscription: SubscriptionId,
    group: String,
    name: RegistrationName,
}

/// The registration at `scope`, if the caller may see it: its default subscription is the
/// path's subscription, and (when it has one) its resource group is the path's.
async fn owned_registration(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<(Registration, AzureRegistration), ApiError> {
    // A role that may not use these routes is refused before anything is looked up, so the
    // answer is the same whether the registration exists or not.
    caller.partner_scope()?;
    let found = state.store.azure_registration(scope.name.clone()).await?;
    let matches = |(registration, azure): &(Registration, AzureRegistration)| {
        registration.default_subscription == scope.subscription
            && azure
                .resource_group
                .as_deref()
                .is_none_or(|g| g.eq_ignore_ascii_case(&scope.group))
    };
    match found {
        Some(found) if matches(&found) => {
            check_registration(&state.store, caller, &scope.name).await?;
            Ok(found)
        }
        _ => Err(registration_not_found(&scope.name)),
    }
}
