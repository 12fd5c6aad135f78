//! A registration's customer subscriptions in ARM shape: put, get, list and delete, each
//! effective now; the same rules and codes as the native mapping routes.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use stackbill_core::{SubscriptionId, TenantId};
use stackbill_store::CustomerSubscription;

use super::registrations::ArmList;
use super::{CUSTOMER_SUBSCRIPTION_TYPE, Scope, owned_registration};
use crate::access::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{param, parse_json};
use crate::state::AppState;

/// A customer subscription as ARM answers it.
#[derive(Debug, Serialize)]
struct CustomerSubscriptionDto {
    id: String,
    name: String,
    properties: CustomerSubscriptionPropertiesDto,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CustomerSubscriptionPropertiesDto {
    tenant_id: String,
}

impl CustomerSubscriptionDto {
    fn new(scope: &Scope, mapping: &CustomerSubscription) -> Self {
        Self {
            id: format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.AzureStack/\
                 registrations/{}/customerSubscriptions/{}",
                scope.subscription, scope.group, scope.name, mapping.subscription
            ),
            name: format!("{}/{}", scope.name, mapping.subscription),
            kind: CUSTOMER_SUBSCRIPTION_TYPE,
            properties: CustomerSubscriptionPropertiesDto {
                tenant_id: mapping.tenant_id.to_string(),
            },
        }
    }
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

pub(super) async fn put_customer_subscription(
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
        Json(CustomerSubscriptionDto::new(scope, &mapping)),
    )
        .into_response())
}

pub(super) async fn get_customer_subscription(
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
    Ok(Json(CustomerSubscriptionDto::new(scope, &mapping)).into_response())
}

pub(super) async fn list_customer_subscriptions(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Response, ApiError> {
    owned_registration(state, caller, scope).await?;
    let value: Vec<CustomerSubscriptionDto> = state
        .store
        .customer_subscriptions(scope.name.clone(), None)
        .await?
        .iter()
        .map(|m| CustomerSubscriptionDto::new(scope, m))
        .collect();
    Ok(Json(ArmList { value }).into_response())
}

pub(super) async fn delete_customer_subscription(
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
