//! Registrations in ARM shape: list, get, put (from a registration token), patch, delete,
//! and the activation key; the same rules and codes as `PUT /v1/registrations/{name}`.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stackbill_core::rules::RegistrationPut;
use stackbill_core::{BillingModel, CloudId, Registration, SubscriptionId};
use stackbill_store::{AzureRegistration, StoreError};

use super::{DEFAULT_RESOURCE_GROUP, REGISTRATION_TYPE, Scope, owned_registration};
use crate::access::{Caller, check_registration, registration_not_found, subscription_partner};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{param, parse_json};
use crate::state::AppState;

/// A registration as ARM answers it (fields in the order the answers always had: sorted).
#[derive(Debug, Serialize)]
struct RegistrationDto {
    id: String,
    location: &'static str,
    name: String,
    properties: RegistrationPropertiesDto,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Value>,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationPropertiesDto {
    billing_model: &'static str,
    cloud_id: String,
    object_id: String,
}

impl RegistrationDto {
    fn new(registration: &Registration, azure: &AzureRegistration) -> Self {
        let group = azure
            .resource_group
            .as_deref()
            .unwrap_or(DEFAULT_RESOURCE_GROUP);
        Self {
            id: format!(
                "/subscriptions/{}/resourceGroups/{group}/providers/Microsoft.AzureStack/\
                 registrations/{}",
                registration.default_subscription, registration.name
            ),
            name: registration.name.as_str().to_owned(),
            kind: REGISTRATION_TYPE,
            location: "global",
            tags: (azure.tags.as_deref()).and_then(|t| serde_json::from_str(t).ok()),
            properties: RegistrationPropertiesDto {
                object_id: azure.object_id.clone().unwrap_or_default(),
                cloud_id: registration.cloud_id.to_string(),
                billing_model: registration.billing_model.as_str(),
            },
        }
    }
}

/// An ARM list: `{"value":[...]}`.
#[derive(Debug, Serialize)]
pub(super) struct ArmList<T> {
    pub(super) value: Vec<T>,
}

/// What `getactivationkey` encodes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ActivationKey<'a> {
    cloud_id: String,
    registration_name: &'a str,
    subscription_id: String,
}

pub(super) async fn list_registrations(
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
        return Ok(Json(ArmList::<RegistrationDto> { value: Vec::new() }).into_response());
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
            value.push(RegistrationDto::new(&registration, &azure));
        }
    }
    Ok(Json(ArmList { value }).into_response())
}

pub(super) async fn get_registration(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Response, ApiError> {
    let (registration, azure) = owned_registration(state, caller, scope).await?;
    Ok(Json(RegistrationDto::new(&registration, &azure)).into_response())
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

pub(super) async fn put_registration(
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
    Ok((status, Json(RegistrationDto::new(&registration, &azure))).into_response())
}

pub(super) async fn delete_registration(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Response, ApiError> {
    owned_registration(state, caller, scope).await?;
    state.store.delete_registration(scope.name.clone()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn activation_key(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Response, ApiError> {
    let (registration, _) = owned_registration(state, caller, scope).await?;
    let key = ActivationKey {
        registration_name: registration.name.as_str(),
        subscription_id: registration.default_subscription.to_string(),
        cloud_id: registration.cloud_id.to_string(),
    };
    let key = serde_json::to_string(&key).map_err(|err| {
        ApiError::new(
            ErrorCode::InternalServerError,
            format!("activation key: {err}"),
        )
    })?;
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    Ok(Json(json!({ "activationKey": key })).into_response())
}
