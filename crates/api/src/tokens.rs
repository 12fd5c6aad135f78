//! `POST|GET /v1/tokens`, `DELETE /v1/tokens/{id}`: API tokens, their secrets shown once.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use stackbill_core::{CloudId, PartnerId, TenantId};
use stackbill_store::{NewToken, Role, Store, TokenGrant, TokenRecord};

use crate::access::{Caller, cloud_partner, forbidden};
use crate::auth::{hash_secret, new_secret, new_token_id};
use crate::dto::ListDto;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, QueryParams, field, param};
use crate::state::AppState;

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenBody {
    /// `admin`, `partner`, `stack` or `customer`.
    pub role: String,
    /// A partner token's partner.
    pub partner_id: Option<String>,
    /// A stack token's stack.
    pub cloud_id: Option<String>,
    /// A customer token's tenant.
    pub tenant_id: Option<String>,
    /// A label for people.
    pub name: Option<String>,
}

/// A token, without its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenDto {
    id: String,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cloud_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    name: String,
    created_at: String,
    /// The secret: in the answer to the creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl From<TokenRecord> for TokenDto {
    fn from(t: TokenRecord) -> Self {
        Self {
            id: t.id,
            role: t.grant.role.as_str(),
            partner_id: t.grant.partner_id.map(|p| p.to_string()),
            cloud_id: t.grant.cloud_id.map(|c| c.to_string()),
            tenant_id: t.grant.tenant_id.map(|t| t.to_string()),
            name: t.grant.name,
            created_at: t.created_at.to_string(),
            token: None,
        }
    }
}

fn required<T>(value: Option<&str>, name: &str, role: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let value = value.ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequestContent,
            format!("a {role} token needs {name}"),
        )
        .with_target(name)
    })?;
    field(value, name)
}

/// The partner a customer tenant belongs to: the one its CSP subscriptions roll up to.
/// The partners with a subscription whose customer is `tenant`.
async fn tenant_partners(store: &Store, tenant: TenantId) -> Result<Vec<PartnerId>, ApiError> {
    let mut partners: Vec<PartnerId> = store
        .subscriptions(None)
        .await?
        .into_iter()
        .filter(|s| s.customer_tenant_id == Some(tenant))
        .filter_map(|s| s.partner_id)
        .collect();
    partners.sort();
    partners.dedup();
    Ok(partners)
}

/// Create a token; the secret is in this answer only
#[utoipa::path(
    post,
    path = "/v1/tokens",
    tag = "access",
    request_body = TokenBody,
    responses((status = 201, description = "created", body = TokenDto), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<Response, ApiError> {
    let dto = issue_token(&state.store, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(dto)).into_response())
}

/// Creates a token as `caller` may (SPEC §7): an admin any, a partner stack tokens for its
/// own stacks and customer tokens for its own tenants. The answer carries the secret, the only
/// time it is shown.
pub async fn issue_token(
    store: &Store,
    caller: &Caller,
    body: TokenBody,
) -> Result<TokenDto, ApiError> {
    let role = Role::parse(&body.role.to_ascii_lowercase()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidRequestContent,
            "role must be admin, partner, stack or customer",
        )
        .with_target("role")
    })?;
    let scope = caller.partner_scope()?.cloned();
    // Whose the token is: (partner, stack, tenant) as the role wants them.
    let (partner_id, cloud_id, tenant_id) = match role {
        Role::Admin | Role::Partner if scope.is_some() => {
            return Err(forbidden(
                "a partner token creates stack and customer tokens only",
            ));
        }
        Role::Admin => (None, None, None),
        Role::Partner => {
            let partner: PartnerId = required(body.partner_id.as_deref(), "partnerId", "partner")?;
            if store.partner(partner.clone()).await?.is_none() {
                return Err(ApiError::new(
                    ErrorCode::UnknownPartner,
                    format!("partner '{partner}' does not exist"),
                )
                .with_target("partnerId"));
            }
            (Some(partner), None, None)
        }
        Role::Stack => {
            let cloud: CloudId = required(body.cloud_id.as_deref(), "cloudId", "stack")?;
            let owner = cloud_partner(store, cloud).await?;
            if scope.is_some() && owner != scope {
                return Err(ApiError::new(
                    ErrorCode::RegistrationNotFound,
                    format!("no registration of cloud {cloud} was found"),
                )
                .with_target("cloudId"));
            }
            (owner, Some(cloud), None)
        }
        Role::Customer => {
            // A customer token is scoped to (partner, tenant): the tenant must be a customer
            // of that partner, the caller's own or the one an admin names.
            let tenant: TenantId = required(body.tenant_id.as_deref(), "tenantId", "customer")?;
            let partners = tenant_partners(store, tenant).await?;
            let asked: Option<PartnerId> = match (&scope, body.partner_id.as_deref()) {
                (Some(own), _) => Some(own.clone()),
                (None, Some(text)) => Some(param(text, "partnerId")?),
                (None, None) => None,
            };
            let owner = match asked {
                Some(partner) => partners.into_iter().find(|p| *p == partner),
                None if partners.len() > 1 => {
                    return Err(ApiError::new(
                        ErrorCode::InvalidRequestContent,
                        format!(
                            "tenant {tenant} is a customer of several partners; \
                             give partnerId"
                        ),
                    )
                    .with_target("partnerId"));
                }
                None => partners.into_iter().next(),
            };
            let Some(owner) = owner else {
                return Err(ApiError::new(
                    ErrorCode::SubscriptionNotFound,
                    format!("no subscription of tenant {tenant} was found"),
                )
                .with_target("tenantId"));
            };
            (Some(owner), None, Some(tenant))
        }
    };
    let secret = new_secret().map_err(|err| ApiError::new(ErrorCode::InternalServerError, err))?;
    let id = new_token_id().map_err(|err| ApiError::new(ErrorCode::InternalServerError, err))?;
    let grant = TokenGrant {
        role,
        partner_id,
        cloud_id,
        tenant_id,
        name: body.name.unwrap_or_default(),
    };
    let record = store
        .create_token(NewToken {
            id,
            grant,
            secret_sha256: hash_secret(&secret),
        })
        .await?;
    let mut dto = TokenDto::from(record);
    dto.token = Some(secret);
    Ok(dto)
}

/// Live tokens, without secrets
#[utoipa::path(
    get,
    path = "/v1/tokens",
    tag = "access",
    params(
        ("$top" = String, Query, description = "at most 1,000"),
        ("$skipToken" = String, Query, description = "from a nextLink"),
    ),
    responses((status = 200, body = crate::dto::ListDto<TokenDto>), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: QueryParams,
    uri: OriginalUri,
) -> Result<Json<ListDto<TokenDto>>, ApiError> {
    let scope = caller.partner_scope()?.cloned();
    crate::page::page(state.store.tokens(scope).await?, &query, &uri)
}

/// Revoke a token
#[utoipa::path(
    delete,
    path = "/v1/tokens/{id}",
    tag = "access",
    params(("id" = String, Path, description = "token id")),
    responses((status = 204, description = "deleted"), crate::error::ArmError),
    security(("bearer" = []))
)]
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let scope = caller.partner_scope()?.cloned();
    let not_found = || {
        ApiError::new(
            ErrorCode::TokenNotFound,
            format!("token '{id}' does not exist"),
        )
        .with_target("id")
    };
    if scope.is_some() && !state.store.tokens(scope).await?.iter().any(|t| t.id == id) {
        return Err(not_found());
    }
    if state.store.revoke_token(id.clone()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
