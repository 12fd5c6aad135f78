//! The Azure-compatible Microsoft.AzureStack resource provider: registrations and their
//! customer subscriptions in the real ARM shapes, so `New-AzResource ... customerSubscriptions`
//! and the Azure SDK work unchanged. Same data, rules and error codes as the native API.
//!
//! ARM matches path segments case-insensitively, so these routes are dispatched by hand from
//! the router's fallback rather than by axum's case-sensitive matcher.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use stackbill_core::rules::RegistrationPut;
use stackbill_core::{
    BillingModel, CloudId, Registration, RegistrationName, SubscriptionId, TenantId,
};
use stackbill_store::{AzureRegistration, CustomerSubscription, StoreError};

use crate::access::{Caller, check_registration, registration_not_found, subscription_partner};
use crate::app::AppState;
use crate::auth::resolve_caller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{QueryParams, param, parse_json};

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
    match lower.as_slice() {
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.commerce",
            "usageaggregates",
        ] => Some(Target::UsageAggregates {
            subscription: parts[1].to_owned(),
        }),
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.commerce",
            "ratecard",
        ] => Some(Target::RateCard {
            subscription: parts[1].to_owned(),
        }),
        [
            "subscriptions",
            _,
            "providers",
            "microsoft.azurestack",
            "registrations",
        ] => Some(Target::Registrations {
            subscription: parts[1].to_owned(),
            group: None,
        }),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.azurestack",
            "registrations",
        ] => Some(Target::Registrations {
            subscription: parts[1].to_owned(),
            group: Some(parts[3].to_owned()),
        }),
        [
            "subscriptions",
            _,
            "resourcegroups",
            _,
            "providers",
            "microsoft.azurestack",
            "registrations",
            _,
            ..,
        ] => Some(Target::Registration {
            subscription: parts[1].to_owned(),
            group: parts[3].to_owned(),
            name: parts[7].to_owned(),
            rest: parts[8..].iter().map(|p| (*p).to_owned()).collect(),
        }),
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

fn registration_json(registration: &Registration, azure: &AzureRegistration) -> Value {
    let group = azure
        .resource_group
        .as_deref()
        .unwrap_or(DEFAULT_RESOURCE_GROUP);
    let mut value = json!({
        "id": format!(
            "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.AzureStack/registrations/{}",
            registration.default_subscription, registration.name
        ),
        "name": registration.name.as_str(),
        "type": REGISTRATION_TYPE,
        "location": "global",
        "properties": {
            "objectId": azure.object_id.clone().unwrap_or_default(),
            "cloudId": registration.cloud_id.to_string(),
            "billingModel": registration.billing_model.as_str(),
        },
    });
    if let Some(tags) = azure
        .tags
        .as_deref()
        .and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        value["tags"] = tags;
    }
    value
}

async fn list_registrations(
    state: &AppState,
    caller: &Caller,
    subscription: &str,
    group: Option<&str>,
) -> Result<Response, ApiError> {
    let subscription: SubscriptionId = param(subscription, "subscriptionId")?;
    // Every registration listed here has this default: it is the partner's, or none is.
    if let Some(own) = caller.partner_scope()?
        && subscription_partner(&state.store, subscription)
            .await?
            .as_ref()
            != Some(own)
    {
        return Ok(Json(json!({ "value": [] })).into_response());
    }
    let mut value = Vec::new();
    for (registration, azure) in state.store.azure_registrations(subscription).await? {
        let in_group = group.is_none_or(|g| {
            azure
                .resource_group
                .as_deref()
                .unwrap_or(DEFAULT_RESOURCE_GROUP)
                .eq_ignore_ascii_case(g)
        });
        if in_group {
            value.push(registration_json(&registration, &azure));
        }
    }
    Ok(Json(json!({ "value": value })).into_response())
}

async fn get_registration(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Response, ApiError> {
    let (registration, azure) = owned_registration(state, caller, scope).await?;
    Ok(Json(registration_json(&registration, &azure)).into_response())
}

/// `RegistrationParameter`: `{"location":"global","properties":{"registrationToken"},"tags"?}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationParameter {
    location: Option<String>,
    properties: Option<RegistrationProperties>,
    tags: Option<serde_json::Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationProperties {
    registration_token: Option<String>,
}

/// What a registration token carries: base64 of a JSON object with at least the stack's
/// cloud id and billing model (Azure Stack's own tokens spell the keys in PascalCase).
struct RegistrationToken {
    cloud_id: CloudId,
    billing_model: BillingModel,
    object_id: Option<String>,
}

fn decode_token(token: &str) -> Result<RegistrationToken, ApiError> {
    let invalid = |why: String| {
        ApiError::new(
            ErrorCode::InvalidRegistrationToken,
            format!("the registration token is not valid: {why}"),
        )
        .with_target("properties.registrationToken")
    };
    let trimmed = token.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .or_else(|_| {
            base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed.trim_end_matches('='))
        })
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed.trim_end_matches('='))
        })
        .map_err(|err| invalid(format!("not base64 ({err})")))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|err| invalid(format!("not JSON ({err})")))?;
    let object = value
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".to_owned()))?;
    let field = |name: &str| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_owned)
    };
    let cloud_id = field("cloudId")
        .ok_or_else(|| invalid("it carries no CloudId".to_owned()))?
        .parse()
        .map_err(|err: stackbill_core::IdError| invalid(format!("CloudId: {err}")))?;
    let billing_model = field("billingModel")
        .ok_or_else(|| invalid("it carries no BillingModel".to_owned()))?
        .parse()
        .map_err(|err: stackbill_core::directory::UnknownVariant| {
            invalid(format!("BillingModel: {err}"))
        })?;
    Ok(RegistrationToken {
        cloud_id,
        billing_model,
        object_id: field("objectId"),
    })
}

/// Encodes a registration token as a stack operator hands it over.
pub fn encode_token(
    cloud_id: CloudId,
    billing_model: BillingModel,
    object_id: Option<&str>,
) -> String {
    let token = json!({
        "CloudId": cloud_id.to_string(),
        "BillingModel": billing_model.as_str(),
        "ObjectId": object_id.unwrap_or_default(),
        "UsageReportingEnabled": billing_model != BillingModel::Capacity,
    });
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

async fn put_registration(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    body: &Bytes,
    patch: bool,
) -> Result<Response, ApiError> {
    let parameter: RegistrationParameter = parse_json(body)?;
    let location = parameter.location.unwrap_or_default();
    if !location.eq_ignore_ascii_case("global") {
        return Err(ApiError::new(
            ErrorCode::InvalidRequestContent,
            format!("location must be 'global', not '{location}'"),
        )
        .with_target("location"));
    }
    let token = parameter
        .properties
        .and_then(|p| p.registration_token)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequestContent,
                "properties.registrationToken is required",
            )
            .with_target("properties.registrationToken")
        })?;
    let token = decode_token(&token)?;
    let existing = state.store.registration(scope.name.clone()).await?;
    match &existing {
        // Registration names are global here: the same name under another subscription is an
        // attempt to change its default, which the rules refuse (DefaultSubscriptionChange).
        Some(found) if found.default_subscription != scope.subscription && !patch => {
            check_registration(&state.store, caller, &scope.name).await?;
        }
        Some(_) => {
            owned_registration(state, caller, scope).await?;
        }
        None if patch => return Err(registration_not_found(&scope.name)),
        None => {}
    }
    if let Some(own) = caller.partner_scope()?
        && subscription_partner(&state.store, scope.subscription)
            .await?
            .as_ref()
            != Some(own)
    {
        return Err(ApiError::from(StoreError::Rule(
            stackbill_core::RegistryError::InvalidCustomerSubscriptionId {
                subscription: scope.subscription,
                target: "subscriptionId",
            },
        )));
    }
    let requested = Registration {
        name: scope.name.clone(),
        cloud_id: token.cloud_id,
        default_subscription: scope.subscription,
        billing_model: token.billing_model,
    };
    let azure = AzureRegistration {
        resource_group: Some(scope.group.clone()),
        object_id: token.object_id,
        tags: parameter.tags.map(|t| Value::Object(t).to_string()),
    };
    let outcome = state
        .store
        .put_registration_with(requested, Some(azure))
        .await?;
    let (registration, azure) = owned_registration(state, caller, scope).await?;
    let status = if outcome == RegistrationPut::Created && !patch {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(registration_json(&registration, &azure))).into_response())
}

async fn delete_registration(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Response, ApiError> {
    owned_registration(state, caller, scope).await?;
    state.store.delete_registration(scope.name.clone()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn activation_key(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Response, ApiError> {
    let (registration, _) = owned_registration(state, caller, scope).await?;
    let key = json!({
        "registrationName": registration.name.as_str(),
        "subscriptionId": registration.default_subscription.to_string(),
        "cloudId": registration.cloud_id.to_string(),
    });
    let key = base64::engine::general_purpose::STANDARD.encode(key.to_string());
    Ok(Json(json!({ "activationKey": key })).into_response())
}

fn customer_subscription_json(scope: &Scope, mapping: &CustomerSubscription) -> Value {
    json!({
        "id": format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.AzureStack/registrations/{}/\
             customerSubscriptions/{}",
            scope.subscription, scope.group, scope.name, mapping.subscription
        ),
        "name": format!("{}/{}", scope.name, mapping.subscription),
        "type": CUSTOMER_SUBSCRIPTION_TYPE,
        "properties": { "tenantId": mapping.tenant_id.to_string() },
    })
}

/// `CustomerSubscription` as the SDK sends it: `{"properties":{"tenantId"}}`.
#[derive(Deserialize)]
struct CustomerSubscriptionParameter {
    properties: Option<CustomerSubscriptionProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CustomerSubscriptionProperties {
    tenant_id: Option<String>,
}

async fn put_customer_subscription(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    id: SubscriptionId,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let parameter: CustomerSubscriptionParameter = parse_json(body)?;
    let tenant = parameter
        .properties
        .and_then(|p| p.tenant_id)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidRequestContent,
                "properties.tenantId is required",
            )
            .with_target("properties.tenantId")
        })?;
    let tenant: TenantId = param(&tenant, "properties.tenantId")?;
    owned_registration(state, caller, scope).await?;
    let mapping = state
        .store
        .put_customer_subscription(scope.name.clone(), id, tenant, None)
        .await?;
    Ok((
        StatusCode::OK,
        Json(customer_subscription_json(scope, &mapping)),
    )
        .into_response())
}

async fn get_customer_subscription(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    id: SubscriptionId,
) -> Result<Response, ApiError> {
    owned_registration(state, caller, scope).await?;
    let mapping = state
        .store
        .customer_subscription(scope.name.clone(), id, None)
        .await?;
    Ok(Json(customer_subscription_json(scope, &mapping)).into_response())
}

async fn list_customer_subscriptions(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Response, ApiError> {
    owned_registration(state, caller, scope).await?;
    let value: Vec<Value> = state
        .store
        .customer_subscriptions(scope.name.clone(), None)
        .await?
        .iter()
        .map(|m| customer_subscription_json(scope, m))
        .collect();
    Ok(Json(json!({ "value": value })).into_response())
}

async fn delete_customer_subscription(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    id: SubscriptionId,
) -> Result<Response, ApiError> {
    owned_registration(state, caller, scope).await?;
    state
        .store
        .delete_customer_subscription(scope.name.clone(), id, None)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
