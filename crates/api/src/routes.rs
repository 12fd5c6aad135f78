//! Handlers of the native API: parse, call the store, shape the answer.

use axum::Extension;
use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stackbill_core::rules::RegistrationPut;
use stackbill_core::{
    BillingModel, Meter, MeterId, Partner, PartnerId, RateCardName, Registration, RegistrationName,
    Subscription, SubscriptionId, TenantId,
};
use stackbill_store::Written;

use crate::access::{
    Caller, check_registration, check_subscription, forbidden, registration_not_found,
    subscription_not_found, subscription_partner,
};
use crate::dto::{
    CustomerSubscriptionBody, CustomerSubscriptionDto, HistoryItemDto, ListDto, MeterBody,
    MeterDto, PartnerBody, PartnerDto, RegistrationBody, RegistrationDto, SubscriptionBody,
    SubscriptionDto,
};
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams, decimal, field, instant, param};
use crate::page::page;
use crate::state::AppState;

type ApiResult<T = Response> = Result<T, ApiError>;

/// The tenant of a customer token: it sees that tenant's mappings and nothing else.
fn customer_tenant(caller: &Caller) -> Option<TenantId> {
    match caller {
        Caller::Customer(tenant) => Some(*tenant),
        _ => None,
    }
}

/// Checks that an identifier repeated in the body matches the path.
fn same_as_path<T: PartialEq + std::fmt::Display + std::str::FromStr>(
    body: Option<&str>,
    path: &T,
    name: &str,
) -> ApiResult<()>
where
    T::Err: std::fmt::Display,
{
    match body {
        Some(value) if field::<T>(value, name)? != *path => Err(ApiError::new(
            ErrorCode::InvalidRequestContent,
            format!("{name} in the body ('{value}') differs from the path ('{path}')"),
        )
        .with_target(name)),
        _ => Ok(()),
    }
}

fn written<T: Serialize>(written: Written, body: T) -> Response {
    let status = match written {
        Written::Created => StatusCode::CREATED,
        Written::Updated => StatusCode::OK,
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn healthz(State(state): State<AppState>) -> Response {
    let backend = state.store.backend_name();
    match state.store.health().await {
        Ok(()) => Json(serde_json::json!({"status": "ok", "database": "ok", "backend": backend}))
            .into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "status": "unavailable",
                    "database": "unavailable",
                    "backend": backend,
                })),
            )
                .into_response()
        }
    }
}

/// Create or rename a partner (admin)
#[utoipa::path(
    put,
    path = "/v1/partners/{partnerId}",
    tag = "directory",
    params(("partnerId" = String, Path, description = "the partner")),
    request_body = crate::dto::PartnerBody,
    responses(
        (status = 200, body = crate::dto::PartnerDto),
        (status = 201, description = "created", body = crate::dto::PartnerDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_partner(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(partner_id): Path<String>,
    JsonBody(body): JsonBody<PartnerBody>,
) -> ApiResult {
    let id: PartnerId = param(&partner_id, "partnerId")?;
    same_as_path(body.partner_id.as_deref(), &id, "partnerId")?;
    caller.admin()?;
    let partner = Partner {
        id,
        name: body.name,
    };
    let outcome = state.store.put_partner(partner.clone()).await?;
    Ok(written(outcome, PartnerDto::from(partner)))
}

/// One partner
#[utoipa::path(
    get,
    path = "/v1/partners/{partnerId}",
    tag = "directory",
    params(("partnerId" = String, Path, description = "the partner")),
    responses((status = 200, body = crate::dto::PartnerDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_partner(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(partner_id): Path<String>,
) -> ApiResult<Json<PartnerDto>> {
    let id: PartnerId = param(&partner_id, "partnerId")?;
    let visible = caller.partner_scope()?.is_none_or(|own| *own == id);
    let partner = state
        .store
        .partner(id.clone())
        .await?
        .filter(|_| visible)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PartnerNotFound,
                format!("partner '{id}' does not exist"),
            )
            .with_target("partnerId")
        })?;
    Ok(Json(partner.into()))
}

/// Partners
#[utoipa::path(
    get,
    path = "/v1/partners",
    tag = "directory",
    params(
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::PartnerDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_partners(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<PartnerDto>>> {
    let scope = caller.partner_scope()?;
    let mut partners = state.store.partners().await?;
    partners.retain(|p| scope.is_none_or(|own| *own == p.id));
    page(partners, &query, &uri)
}

/// Create or replace a billing subscription
#[utoipa::path(
    put,
    path = "/v1/subscriptions/{subscriptionId}",
    tag = "directory",
    params(("subscriptionId" = String, Path, description = "GUID")),
    request_body = crate::dto::SubscriptionBody,
    responses(
        (status = 200, body = crate::dto::SubscriptionDto),
        (status = 201, description = "created", body = crate::dto::SubscriptionDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subscription_id): Path<String>,
    JsonBody(body): JsonBody<SubscriptionBody>,
) -> ApiResult {
    let id: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    same_as_path(body.subscription_id.as_deref(), &id, "subscriptionId")?;
    if let Some(own) = caller.partner_scope()? {
        // A partner manages its own subscriptions, and only under its own name.
        let existing = subscription_partner(&state.store, id).await?;
        let exists = state.store.subscription(id).await?.is_some();
        if exists && existing.as_ref() != Some(own) {
            return Err(subscription_not_found(id));
        }
        if body.partner_id.as_deref() != Some(own.as_str()) {
            return Err(forbidden(format!(
                "a partner token manages only subscriptions with partnerId '{own}'"
            ))
            .with_target("partnerId"));
        }
    }
    let subscription = Subscription {
        id,
        offer_type: field(&body.offer_type, "offerType")?,
        partner_id: body
            .partner_id
            .as_deref()
            .map(|p| field(p, "partnerId"))
            .transpose()?,
        customer_tenant_id: body
            .customer_tenant_id
            .as_deref()
            .map(|t| field(t, "customerTenantId"))
            .transpose()?,
        display_name: body.display_name.unwrap_or_default(),
        rate_card: match body.rate_card.as_deref() {
            Some(name) => field(name, "rateCard")?,
            None => RateCardName::default_card(),
        },
        markup_percent: match &body.markup_percent {
            Some(value) => decimal(value, "markupPercent")?,
            None => rust_decimal::Decimal::ZERO,
        },
    };
    let outcome = state.store.put_subscription(subscription.clone()).await?;
    Ok(written(outcome, SubscriptionDto::from(subscription)))
}

/// One billing subscription
#[utoipa::path(
    get,
    path = "/v1/subscriptions/{subscriptionId}",
    tag = "directory",
    params(("subscriptionId" = String, Path, description = "GUID")),
    responses((status = 200, body = crate::dto::SubscriptionDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_subscription(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(subscription_id): Path<String>,
) -> ApiResult<Json<SubscriptionDto>> {
    let id: SubscriptionId = param(&subscription_id, "subscriptionId")?;
    check_subscription(&state.store, &caller, id).await?;
    let subscription = state.store.subscription(id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::SubscriptionNotFound,
            format!("subscription {id} does not exist"),
        )
        .with_target("subscriptionId")
    })?;
    Ok(Json(subscription.into()))
}

/// Billing subscriptions
#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    tag = "directory",
    params(
        ("partnerId" = String, Query, description = "only this partner's"),
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::SubscriptionDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_subscriptions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<SubscriptionDto>>> {
    let mut partner = query.parsed::<PartnerId>("partnerId")?;
    if let Some(own) = caller.partner_scope()? {
        if partner.as_ref().is_some_and(|p| p != own) {
            return page(Vec::<Subscription>::new(), &query, &uri);
        }
        partner = Some(own.clone());
    }
    page(state.store.subscriptions(partner).await?, &query, &uri)
}

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
    if own_tenant.is_none() {
        check_registration(&state.store, &caller, &name).await?;
    }
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
    if own_tenant.is_none() {
        check_registration(&state.store, &caller, &name).await?;
    }
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

/// Add or override a meter (admin)
#[utoipa::path(
    put,
    path = "/v1/meters/{meterId}",
    tag = "meters",
    params(("meterId" = String, Path, description = "GUID")),
    request_body = crate::dto::MeterBody,
    responses(
        (status = 200, body = crate::dto::MeterDto),
        (status = 201, description = "created", body = crate::dto::MeterDto),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn put_meter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(meter_id): Path<String>,
    JsonBody(body): JsonBody<MeterBody>,
) -> ApiResult {
    let id: MeterId = param(&meter_id, "meterId")?;
    same_as_path(body.meter_id.as_deref(), &id, "meterId")?;
    caller.admin()?;
    let meter = Meter {
        id,
        name: body.name,
        unit: body.unit,
        category: body.category,
    };
    let outcome = state.store.put_meter(meter.clone()).await?;
    Ok(written(outcome, MeterDto::from(meter)))
}

/// One meter
#[utoipa::path(
    get,
    path = "/v1/meters/{meterId}",
    tag = "meters",
    params(("meterId" = String, Path, description = "GUID")),
    responses((status = 200, body = crate::dto::MeterDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn get_meter(
    State(state): State<AppState>,
    Path(meter_id): Path<String>,
) -> ApiResult<Json<MeterDto>> {
    let id: MeterId = param(&meter_id, "meterId")?;
    let meter = state.store.meter(id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::MeterNotFound,
            format!("meter {id} is not in the catalog"),
        )
        .with_target("meterId")
    })?;
    Ok(Json(meter.into()))
}

/// The meter catalog
#[utoipa::path(
    get,
    path = "/v1/meters",
    tag = "meters",
    params(
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses(
        (status = 200, body = crate::dto::ListDto<crate::dto::MeterDto>),
        crate::error::ArmError,
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list_meters(
    State(state): State<AppState>,
    query: QueryParams,
    uri: OriginalUri,
) -> ApiResult<Json<ListDto<MeterDto>>> {
    page(state.store.meters().await?, &query, &uri)
}
