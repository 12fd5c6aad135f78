//! Handlers of the native registration routes: registrations, their tenant mappings
//! (customer subscriptions) and their history, under the same rules and codes as the
//! Azure-compatible provider (`azure/`).

use axum::Extension;
use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use stackbill_core::rules::RegistrationPut;
use stackbill_core::{BillingModel, Registration, RegistrationName, SubscriptionId, TenantId};
use stackbill_store::Written;

use crate::access::{
    Caller, check_mapping_reader, check_registration, registration_not_found, subscription_partner,
};
use crate::dto::{
    CustomerSubscriptionBody, CustomerSubscriptionDto, HistoryItemDto, ListDto, RegistrationBody,
    RegistrationDto,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams, field, instant, param};
use crate::page::page;
use crate::routes::{ApiResult, customer_tenant, same_as_path, written};
use crate::state::AppState;

/// Register a stack, or change its billing model
#[utoipa::path(
    put,
    path = "/v1/registrations/{name}",
    tag = "registrations",
    params(("name" = String, Path, description = "registration name")),
    request_body = crate::dto::RegistrationBody,
    responses(
        (status = 200, body = crate::dto::RegistrationDto),
        (status = 201, description = "created", body = crate::dto::RegistrationDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_registration(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RegistrationBody>,
) -> ApiResult {
    let name: RegistrationName = param(&name, "name")?;
    same_as_path(body.name.as_deref(), &name, "name")?;
    if let Some(own) = caller.partner_scope()? {
        if state.store.registration(name.clone()).await?.is_some() {
            check_registration(&state.store, &caller, &name).await?;
        }
        // Another partner's subscription is, to this partner, one that does not exist.
        let default: SubscriptionId = field(&body.subscription_id, "subscriptionId")?;
        if subscription_partner(&state.store, default).await?.as_ref() != Some(own) {
            return Err(ApiError::from(stackbill_store::StoreError::Rule(
                stackbill_core::RegistryError::InvalidCustomerSubscriptionId {
                    subscription: default,
                    target: "subscriptionId",
                },
            )));
        }
    }
    let registration = Registration {
        name: name.clone(),
        cloud_id: field(&body.cloud_id, "cloudId")?,
        default_subscription: field(&body.subscription_id, "subscriptionId")?,
        billing_model: match body.billing_model.as_deref() {
            Some(model) => field(model, "billingModel")?,
            None => BillingModel::PayAsYouUse,
        },
    };
    let outcome = state.store.put_registration(registration).await?;
    let stored = state
        .store
        .registration(name.clone())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::RegistrationNotFound,
                format!("registration '{name}' was deleted concurrently"),
            )
        })?;
    let outcome = match outcome {
        RegistrationPut::Created => Written::Created,
        RegistrationPut::Updated | RegistrationPut::Unchanged => Written::Updated,
    };
    Ok(written(outcome, RegistrationDto::from(stored)))
}

/// One registration
#[utoipa::path(
    get,
    path = "/v1/registrations/{name}",
    tag = "registrations",
    params(("name" = String, Path, description = "registration name")),
    responses((status = 200, body = crate::dto::RegistrationDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_registration(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<Json<RegistrationDto>> {
    let name: RegistrationName = param(&name, "name")?;
    check_registration(&state.store, &caller, &name).await?;
    let registration = state
        .store
        .registration(name.clone())
        .await?
        .ok_or_else(|| registration_not_found(&name))?;
    Ok(Json(registration.into()))
}

/// Registrations
#[utoipa::path(
    get,
    path = "/v1/registrations",
    tag = "registrations",
    params(
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::RegistrationDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_registrations(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<RegistrationDto>>> {
    let scope = caller.partner_scope()?.cloned();
    page(state.store.registrations(scope).await?, &query, &uri)
}

/// Delete a registration (its history is kept)
#[utoipa::path(
    delete,
    path = "/v1/registrations/{name}",
    tag = "registrations",
    params(("name" = String, Path, description = "registration name")),
    responses((status = 204, description = "deleted"), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn delete_registration(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let name: RegistrationName = param(&name, "name")?;
    check_registration(&state.store, &caller, &name).await?;
    state.store.delete_registration(name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every mapping change, in recording order
#[utoipa::path(
    get,
    path = "/v1/registrations/{name}/history",
    tag = "registrations",
    params(
        ("name" = String, Path, description = "registration name"),
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::HistoryItemDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn registration_history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<HistoryItemDto>>> {
    let name: RegistrationName = param(&name, "name")?;
    check_registration(&state.store, &caller, &name).await?;
    page(state.store.registration_history(name).await?, &query, &uri)
}

/// Map a tenant to its customer subscription
#[utoipa::path(
    put,
    path = "/v1/registrations/{name}/customerSubscriptions/{subscriptionId}",
    tag = "registrations",
    params(
        ("name" = String, Path, description = "registration name"),
        ("subscriptionId" = String, Path, description = "the customer's CSP subscription"),
    ),
    request_body = crate::dto::CustomerSubscriptionBody,
    responses((status = 200, body = crate::dto::CustomerSubscriptionDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn put_customer_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, subscription_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<CustomerSubscriptionBody>,
) -> ApiResult<Json<CustomerSubscriptionDto>> {
    let name: RegistrationName = param(&name, "name")?;
    let subscription: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    check_registration(&state.store, &caller, &name).await?;
    let tenant: TenantId = field(&body.tenant_id, "tenantId")?;
    let effective_from = body
        .effective_from
        .as_deref()
        .map(|t| instant(t, "effectiveFrom"))
        .transpose()?;
    let mapping = state
        .store
        .put_customer_subscription(name, subscription, tenant, effective_from)
        .await?;
    Ok(Json(mapping.into()))
}

/// The mapping of a customer subscription in force
#[utoipa::path(
    get,
    path = "/v1/registrations/{name}/customerSubscriptions/{subscriptionId}",
    tag = "registrations",
    params(
        ("name" = String, Path, description = "registration name"),
        ("subscriptionId" = String, Path, description = "GUID"),
        ("asOf" = String, Query, description = "RFC 3339 instant"),
    ),
    responses((status = 200, body = crate::dto::CustomerSubscriptionDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_customer_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, subscription_id)): Path<(String, String)>,
    query: QueryParams,
) -> ApiResult<Json<CustomerSubscriptionDto>> {
    let name: RegistrationName = param(&name, "name")?;
    let subscription: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    let at = query.instant("asOf")?;
    let own_tenant = customer_tenant(&caller);
    check_mapping_reader(&state.store, &caller, &name).await?;
    let mapping = state
        .store
        .customer_subscription(name.clone(), subscription, at)
        .await;
    match (mapping, own_tenant) {
        // A customer sees its own tenant's mapping, and nothing else.
        (Ok(mapping), Some(tenant)) if mapping.tenant_id != tenant => {
            Err(ApiError::from(stackbill_store::StoreError::Rule(
                stackbill_core::RegistryError::CustomerSubscriptionNotFound {
                    subscription,
                    registration: name,
                    at: at.unwrap_or_else(|| state.store.now()),
                },
            )))
        }
        (mapping, _) => Ok(Json(mapping?.into())),
    }
}

/// The mappings in force
#[utoipa::path(
    get,
    path = "/v1/registrations/{name}/customerSubscriptions",
    tag = "registrations",
    params(
        ("name" = String, Path, description = "registration name"),
        ("asOf" = String, Query, description = "RFC 3339 instant"),
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::CustomerSubscriptionDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_customer_subscriptions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<CustomerSubscriptionDto>>> {
    let name: RegistrationName = param(&name, "name")?;
    let at = query.instant("asOf")?;
    let own_tenant = customer_tenant(&caller);
    check_mapping_reader(&state.store, &caller, &name).await?;
    let mut mappings = state.store.customer_subscriptions(name, at).await?;
    if let Some(tenant) = own_tenant {
        mappings.retain(|m| m.tenant_id == tenant);
    }
    page(mappings, &query, &uri)
}

/// End a tenant's mapping
#[utoipa::path(
    delete,
    path = "/v1/registrations/{name}/customerSubscriptions/{subscriptionId}",
    tag = "registrations",
    params(
        ("name" = String, Path, description = "registration name"),
        ("subscriptionId" = String, Path, description = "GUID"),
        ("effectiveFrom" = String, Query, description = "RFC 3339 instant"),
    ),
    responses((status = 204, description = "deleted"), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn delete_customer_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((name, subscription_id)): Path<(String, String)>,
    query: QueryParams,
) -> ApiResult<StatusCode> {
    let name: RegistrationName = param(&name, "name")?;
    let subscription: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    check_registration(&state.store, &caller, &name).await?;
    let effective_from = query.instant("effectiveFrom")?;
    state
        .store
        .delete_customer_subscription(name, subscription, effective_from)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
