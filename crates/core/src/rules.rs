//! The registration rules of SPEC §2, as pure checks over the facts a change depends on.
//!
//! A storage adapter loads the facts inside one transaction, calls a check, and writes the
//! change only if the check passed, so the rules live here once for every store.

use jiff::Timestamp;

use crate::directory::{BillingModel, OfferType, Registration, Subscription};
use crate::error_code::ErrorCode;
use crate::ids::{CloudId, RegistrationName, SubscriptionId, TenantId};
use crate::timeline::{MappingEvent, Timeline};

/// A registration rule that a requested change breaks. Messages follow the wording of
/// Azure's registration errors where Azure has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The subscription named does not exist.
    #[error("The {subscription} is not valid. Make sure a valid Azure subscription is provided.")]
    InvalidCustomerSubscriptionId {
        /// The subscription named.
        subscription: SubscriptionId,
        /// The field that named it.
        target: &'static str,
    },
    /// Another registration already holds the stack.
    #[error(
        "Cloud identifier {cloud_id} is already registered. Reusing cloud identifiers is not allowed."
    )]
    CloudIdAlreadyRegistered {
        /// The stack.
        cloud_id: CloudId,
        /// The registration holding it (kept out of the message, which another partner may
        /// read).
        registration: RegistrationName,
    },
    /// The default subscription is fixed for the registration's life.
    #[error(
        "Registration '{registration}' has default subscription {current}; changing it to {requested} requires deleting the registration first."
    )]
    DefaultSubscriptionChange {
        /// The registration.
        registration: RegistrationName,
        /// Its default subscription.
        current: SubscriptionId,
        /// The one asked for.
        requested: SubscriptionId,
    },
    /// The stack of a registration is fixed for the registration's life.
    #[error(
        "Registration '{registration}' registers cloud {current}; registering cloud {requested} requires a new registration."
    )]
    CloudIdChange {
        /// The registration.
        registration: RegistrationName,
        /// Its stack.
        current: CloudId,
        /// The one asked for.
        requested: CloudId,
    },
    /// No live registration has that name.
    #[error("The provided registration '{registration}' was not found.")]
    RegistrationNotFound {
        /// The name asked for.
        registration: RegistrationName,
    },
    /// Capacity registrations cannot bill tenants separately.
    #[error(
        "Customer subscription operations are not supported for registration '{registration}' with billing model Capacity. In order to use this feature, re-register with Pay As You Use licensing."
    )]
    CustomerSubscriptionsNotAllowed {
        /// The registration.
        registration: RegistrationName,
    },
    /// Multi-tenant billing needs a CSP or CSPSS default subscription.
    #[error(
        "The provided registration '{registration}' is not approved to use multi-tenancy: its default subscription {default_subscription} is {offer_type}, not CSP or CSPSS."
    )]
    UnauthorizedCspRegistration {
        /// The registration.
        registration: RegistrationName,
        /// Its default subscription.
        default_subscription: SubscriptionId,
        /// The default subscription's offer type.
        offer_type: OfferType,
    },
    /// A customer subscription must be a CSP one.
    #[error(
        "The provided {subscription} is not a valid CSP subscription (its offer type is {offer_type}). Make sure a valid Azure subscription is provided."
    )]
    InvalidCspSubscription {
        /// The subscription.
        subscription: SubscriptionId,
        /// Its offer type.
        offer_type: OfferType,
    },
    /// Nobody registers someone else's customers.
    #[error(
        "The provided {subscription} and the '{registration}' subscription identifier are not owned by the same Microsoft CSP. Check that the customer subscription identifier is correct."
    )]
    BadCustomerSubscriptionId {
        /// The customer subscription.
        subscription: SubscriptionId,
        /// The registration.
        registration: RegistrationName,
    },
    /// The tenant named is not the subscription's customer directory.
    #[error("Subscription {subscription} belongs to directory {expected}, not to tenant {tenant}.")]
    TenantMismatch {
        /// The tenant named in the request.
        tenant: TenantId,
        /// The subscription.
        subscription: SubscriptionId,
        /// The subscription's customer directory.
        expected: TenantId,
    },
    /// No tenant is mapped to that subscription at that instant.
    #[error(
        "{subscription} was not found under '{registration}' at {at}. Make sure the subscription ID was added to the registration using the PUT operation."
    )]
    CustomerSubscriptionNotFound {
        /// The subscription.
        subscription: SubscriptionId,
        /// The registration.
        registration: RegistrationName,
        /// The instant asked about.
        at: Timestamp,
    },
}

impl RegistryError {
    /// The error code, as Azure names it where Azure has one.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidCustomerSubscriptionId { .. } => ErrorCode::InvalidCustomerSubscriptionId,
            Self::CloudIdAlreadyRegistered { .. } => ErrorCode::CloudIdAlreadyRegistered,
            Self::DefaultSubscriptionChange { .. } => ErrorCode::DefaultSubscriptionChange,
            Self::CloudIdChange { .. } => ErrorCode::CloudIdChange,
            Self::RegistrationNotFound { .. } => ErrorCode::RegistrationNotFound,
            Self::CustomerSubscriptionsNotAllowed { .. } => {
                ErrorCode::CustomerSubscriptionsNotAllowed
            }
            Self::UnauthorizedCspRegistration { .. } => ErrorCode::UnauthorizedCspRegistration,
            Self::InvalidCspSubscription { .. } => ErrorCode::InvalidCspSubscription,
            Self::BadCustomerSubscriptionId { .. } => ErrorCode::BadCustomerSubscriptionId,
            Self::TenantMismatch { .. } => ErrorCode::TenantMismatch,
            Self::CustomerSubscriptionNotFound { .. } => ErrorCode::CustomerSubscriptionNotFound,
        }
    }

    /// The request field the error is about.
    pub fn target(&self) -> &'static str {
        match self {
            Self::InvalidCustomerSubscriptionId { target, .. } => target,
            Self::CloudIdAlreadyRegistered { .. } | Self::CloudIdChange { .. } => "cloudId",
            Self::DefaultSubscriptionChange { .. } => "subscriptionId",
            Self::RegistrationNotFound { .. }
            | Self::CustomerSubscriptionsNotAllowed { .. }
            | Self::UnauthorizedCspRegistration { .. } => "registration",
            Self::InvalidCspSubscription { .. }
            | Self::BadCustomerSubscriptionId { .. }
            | Self::CustomerSubscriptionNotFound { .. } => "subscriptionId",
            Self::TenantMismatch { .. } => "tenantId",
        }
    }
}

/// What a registration PUT does when its checks pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationPut {
    /// A new registration.
    Created,
    /// The existing registration's billing model changes.
    Updated,
    /// The same registration again.
    Unchanged,
}

/// The facts a registration PUT is checked against.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationFacts<'a> {
    /// The live registration with the requested name.
    pub same_name: Option<&'a Registration>,
    /// The live registration holding the requested cloud, if another one does.
    pub same_cloud: Option<&'a Registration>,
    /// The requested default subscription.
    pub default_subscription: Option<&'a Subscription>,
    /// The mapping timeline of the registration with the requested name.
    pub timeline: Option<&'a Timeline>,
    /// The moment of the change.
    pub now: Timestamp,
}

/// SPEC §2.1–2.2: checks a registration create or re-put.
pub fn check_registration_put(
    requested: &Registration,
    facts: RegistrationFacts<'_>,
) -> Result<RegistrationPut, RegistryError> {
    if facts.default_subscription.is_none() {
        return Err(RegistryError::InvalidCustomerSubscriptionId {
            subscription: requested.default_subscription,
            target: "subscriptionId",
        });
    }
    if let Some(existing) = facts.same_name {
        if existing.default_subscription != requested.default_subscription {
            return Err(RegistryError::DefaultSubscriptionChange {
                registration: existing.name.clone(),
                current: existing.default_subscription,
                requested: requested.default_subscription,
            });
        }
        if existing.cloud_id != requested.cloud_id {
            return Err(RegistryError::CloudIdChange {
                registration: existing.name.clone(),
                current: existing.cloud_id,
                requested: requested.cloud_id,
            });
        }
    }
    if let Some(holder) = facts.same_cloud
        && holder.name != requested.name
    {
        return Err(RegistryError::CloudIdAlreadyRegistered {
            cloud_id: requested.cloud_id,
            registration: holder.name.clone(),
        });
    }
    let Some(existing) = facts.same_name else {
        return Ok(RegistrationPut::Created);
    };
    if existing.billing_model == requested.billing_model {
        return Ok(RegistrationPut::Unchanged);
    }
    // A Capacity registration may not bill tenants separately, so it may not become one
    // while tenants are mapped now or from a scheduled instant on.
    if requested.billing_model == BillingModel::Capacity
        && facts
            .timeline
            .is_some_and(|timeline| timeline.has_mappings_from(facts.now))
    {
        return Err(RegistryError::CustomerSubscriptionsNotAllowed {
            registration: existing.name.clone(),
        });
    }
    Ok(RegistrationPut::Updated)
}

/// The facts a customer-subscription PUT is checked against.
#[derive(Debug, Clone, Copy)]
pub struct CustomerSubscriptionFacts<'a> {
    /// The live registration named in the path.
    pub registration: Option<&'a Registration>,
    /// Its default subscription.
    pub default_subscription: Option<&'a Subscription>,
    /// The customer subscription named in the path.
    pub customer_subscription: Option<&'a Subscription>,
}

/// SPEC §2.3: checks a customer-subscription PUT, in the listed order, and returns the
/// event to record.
pub fn check_customer_subscription_put(
    registration_name: &RegistrationName,
    subscription: SubscriptionId,
    tenant: TenantId,
    effective_from: Timestamp,
    recorded_at: Timestamp,
    facts: CustomerSubscriptionFacts<'_>,
) -> Result<MappingEvent, RegistryError> {
    let Some(registration) = facts.registration else {
        return Err(RegistryError::RegistrationNotFound {
            registration: registration_name.clone(),
        });
    };
    if registration.billing_model == BillingModel::Capacity {
        return Err(RegistryError::CustomerSubscriptionsNotAllowed {
            registration: registration.name.clone(),
        });
    }
    let default = facts
        .default_subscription
        .filter(|d| matches!(d.offer_type, OfferType::Csp | OfferType::Cspss));
    let Some(default) = default else {
        return Err(RegistryError::UnauthorizedCspRegistration {
            registration: registration.name.clone(),
            default_subscription: registration.default_subscription,
            offer_type: facts
                .default_subscription
                .map_or(OfferType::Payg, |d| d.offer_type),
        });
    };
    let Some(customer) = facts.customer_subscription else {
        return Err(RegistryError::InvalidCustomerSubscriptionId {
            subscription,
            target: "subscriptionId",
        });
    };
    if customer.offer_type != OfferType::Csp {
        return Err(RegistryError::InvalidCspSubscription {
            subscription,
            offer_type: customer.offer_type,
        });
    }
    if customer.partner_id.is_none() || customer.partner_id != default.partner_id {
        return Err(RegistryError::BadCustomerSubscriptionId {
            subscription,
            registration: registration.name.clone(),
        });
    }
    match customer.customer_tenant_id {
        Some(expected) if expected == tenant => {}
        expected => {
            return Err(RegistryError::TenantMismatch {
                tenant,
                subscription,
                expected: expected.unwrap_or(tenant),
            });
        }
    }
    Ok(MappingEvent {
        tenant_id: tenant,
        subscription: Some(subscription),
        effective_from,
        recorded_at,
    })
}

/// SPEC §2.4: a DELETE of a customer subscription at `effective_from` ends the mapping of
/// the tenant whose mapping in force then is that subscription. Returns the removal events
/// to record.
pub fn check_customer_subscription_delete(
    registration_name: &RegistrationName,
    registration: Option<(&Registration, &Timeline)>,
    subscription: SubscriptionId,
    effective_from: Timestamp,
    recorded_at: Timestamp,
) -> Result<Vec<MappingEvent>, RegistryError> {
    let Some((registration, timeline)) = registration else {
        return Err(RegistryError::RegistrationNotFound {
            registration: registration_name.clone(),
        });
    };
    let tenants = timeline.tenants_mapped_to(subscription, effective_from);
    if tenants.is_empty() {
        return Err(RegistryError::CustomerSubscriptionNotFound {
            subscription,
            registration: registration.name.clone(),
            at: effective_from,
        });
    }
    Ok(tenants
        .into_iter()
        .map(|tenant_id| MappingEvent {
            tenant_id,
            subscription: None,
            effective_from,
            recorded_at,
        })
        .collect())
}
