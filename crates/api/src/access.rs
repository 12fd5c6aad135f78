//! Who may do what (SPEC §7): the caller behind a bearer token, and the checks handlers run
//! before they touch anything. Another partner's objects answer 404, exactly as missing ones
//! do, so their existence does not leak.

use stackbill_core::{
    CloudId, PartnerId, RegistrationName, RegistryError, SubscriptionId, TenantId,
};
use stackbill_store::{Role, Store, StoreError, TokenGrant};

use crate::error::{ApiError, ErrorCode};

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Everything.
    Admin,
    /// One partner's registrations, subscriptions, prices, usage and invoices.
    Partner(PartnerId),
    /// Forwarding one stack's usage.
    Stack(CloudId),
    /// Seeing one tenant's registration status with one partner (SPEC §7).
    Customer(PartnerId, TenantId),
}

impl Caller {
    /// The caller a stored grant stands for, if the grant carries its scope.
    pub fn from_grant(grant: &TokenGrant) -> Option<Self> {
        match grant.role {
            Role::Admin => Some(Self::Admin),
            Role::Partner => grant.partner_id.clone().map(Self::Partner),
            Role::Stack => grant.cloud_id.map(Self::Stack),
            Role::Customer => Some(Self::Customer(grant.partner_id.clone()?, grant.tenant_id?)),
        }
    }

    /// Only an admin may.
    pub(crate) fn admin(&self) -> Result<(), ApiError> {
        match self {
            Self::Admin => Ok(()),
            _ => Err(forbidden("this operation needs an admin token")),
        }
    }

    /// Admins see everything (`None`); a partner sees its own (`Some`); others may not.
    /// Whose data the caller sees: everybody's (`None`, an admin) or one partner's; a customer
    /// or a stack is refused.
    pub fn partner_scope(&self) -> Result<Option<&PartnerId>, ApiError> {
        match self {
            Self::Admin => Ok(None),
            Self::Partner(partner) => Ok(Some(partner)),
            Self::Customer(..) => Err(usage_not_visible()),
            Self::Stack(_) => Err(forbidden("a stack token may only send usage")),
        }
    }
}

/// Whose data a call names with its `partnerId` parameter: an admin any partner's or every
/// one's (`None`); a partner's token its own, and naming another partner is refused with
/// `refusal` ("a partner token exports its own invoices only").
pub(crate) fn partner_param(
    caller: &Caller,
    query: &crate::extract::QueryParams,
    refusal: &str,
) -> Result<Option<PartnerId>, ApiError> {
    let named = query.parsed::<PartnerId>("partnerId")?;
    match caller.partner_scope()? {
        Some(own) if named.as_ref().is_some_and(|p| p != own) => {
            Err(forbidden(refusal).with_target("partnerId"))
        }
        Some(own) => Ok(Some(own.clone())),
        None => Ok(named),
    }
}

/// The required `period` parameter (`YYYY-MM`).
pub(crate) fn period_param(
    query: &crate::extract::QueryParams,
) -> Result<stackbill_core::Period, ApiError> {
    query.parsed("period")?.ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidParameter, "period is required (YYYY-MM)")
            .with_target("period")
    })
}

/// 403 for a role that may not call a route at all.
pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::AuthorizationFailed, message)
}

/// 403 for a customer asking for usage or invoices of a CSP subscription.
pub(crate) fn usage_not_visible() -> ApiError {
    ApiError::new(
        ErrorCode::UsageNotVisible,
        "usage and invoices of a CSP subscription are billed to its partner \
         and not visible to the customer",
    )
}

pub(crate) fn registration_not_found(name: &RegistrationName) -> ApiError {
    ApiError::from(StoreError::Rule(RegistryError::RegistrationNotFound {
        registration: name.clone(),
    }))
}

pub(crate) fn subscription_not_found(id: SubscriptionId) -> ApiError {
    ApiError::new(
        ErrorCode::SubscriptionNotFound,
        format!("subscription {id} does not exist"),
    )
    .with_target("subscriptionId")
}

/// The partner a subscription rolls up to.
pub(crate) async fn subscription_partner(
    store: &Store,
    id: SubscriptionId,
) -> Result<Option<PartnerId>, ApiError> {
    Ok(store.subscription(id).await?.and_then(|s| s.partner_id))
}

/// The partner a registration belongs to: the one its default subscription rolls up to.
pub(crate) async fn registration_partner(
    store: &Store,
    name: &RegistrationName,
) -> Result<Option<PartnerId>, ApiError> {
    match store.registration(name.clone()).await? {
        Some(registration) => subscription_partner(store, registration.default_subscription).await,
        None => Ok(None),
    }
}

/// Admins and the owning partner may manage a registration; to another partner it does not exist.
pub async fn check_registration(
    store: &Store,
    caller: &Caller,
    name: &RegistrationName,
) -> Result<(), ApiError> {
    if let Some(partner) = caller.partner_scope()? {
        let owner = registration_partner(store, name).await?;
        if owner.as_ref() != Some(partner) {
            return Err(registration_not_found(name));
        }
    }
    Ok(())
}

/// Who may read a registration's mappings: as [`check_registration`], and a customer whose
/// token's partner owns the registration (it then sees its own tenant's mappings only).
pub(crate) async fn check_mapping_reader(
    store: &Store,
    caller: &Caller,
    name: &RegistrationName,
) -> Result<(), ApiError> {
    match caller {
        Caller::Customer(partner, _) => {
            if registration_partner(store, name).await?.as_ref() != Some(partner) {
                return Err(registration_not_found(name));
            }
            Ok(())
        }
        _ => check_registration(store, caller, name).await,
    }
}

/// Admins and the owning partner may see a subscription's data; to another partner it does
/// not exist; a customer never sees a CSP subscription's usage or invoices.
pub async fn check_subscription(
    store: &Store,
    caller: &Caller,
    id: SubscriptionId,
) -> Result<(), ApiError> {
    if let Some(partner) = caller.partner_scope()? {
        let owner = subscription_partner(store, id).await?;
        if owner.as_ref() != Some(partner) {
            return Err(subscription_not_found(id));
        }
    }
    Ok(())
}

/// The partner owning the registration of a stack.
pub(crate) async fn cloud_partner(
    store: &Store,
    cloud: CloudId,
) -> Result<Option<PartnerId>, ApiError> {
    match store.registration_of_cloud(cloud).await? {
        Some(registration) => subscription_partner(store, registration.default_subscription).await,
        None => Ok(None),
    }
}
