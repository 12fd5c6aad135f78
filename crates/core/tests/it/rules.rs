//! Every rule and error code of SPEC §2, through the core's pure checks.

use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::rules::{
    CustomerSubscriptionFacts, RegistrationFacts, RegistrationPut,
    check_customer_subscription_delete, check_customer_subscription_put, check_registration_put,
};
use stackbill_core::{
    BillingModel, OfferType, RateCardName, Registration, RegistryError, Subscription, Timeline,
};

const DEFAULT: &str = "d0000000-0000-0000-0000-000000000001";
const CUSTOMER: &str = "c0000000-0000-0000-0000-000000000001";
const TENANT: &str = "70000000-0000-0000-0000-000000000001";
const CLOUD: &str = "ca000000-0000-0000-0000-000000000001";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn subscription(
    id: &str,
    offer_type: OfferType,
    partner: Option<&str>,
    tenant: Option<&str>,
) -> Subscription {
    Subscription {
        id: id.parse().unwrap(),
        offer_type,
        partner_id: partner.map(|p| p.parse().unwrap()),
        customer_tenant_id: tenant.map(|t| t.parse().unwrap()),
        display_name: String::new(),
        rate_card: RateCardName::default_card(),
        markup_percent: Decimal::ZERO,
    }
}

fn default_sub(offer_type: OfferType) -> Subscription {
    let partner = matches!(offer_type, OfferType::Csp | OfferType::Cspss).then_some("p1");
    let tenant = (offer_type == OfferType::Csp).then_some("70000000-0000-0000-0000-0000000000ff");
    subscription(DEFAULT, offer_type, partner, tenant)
}

fn customer_sub() -> Subscription {
    subscription(CUSTOMER, OfferType::Csp, Some("p1"), Some(TENANT))
}

fn registration(model: BillingModel) -> Registration {
    Registration {
        name: "stack1".parse().unwrap(),
        cloud_id: CLOUD.parse().unwrap(),
        default_subscription: DEFAULT.parse().unwrap(),
        billing_model: model,
    }
}

fn put_registration(
    requested: &Registration,
    same_name: Option<&Registration>,
    same_cloud: Option<&Registration>,
    default: Option<&Subscription>,
    timeline: Option<&Timeline>,
) -> Result<RegistrationPut, RegistryError> {
    check_registration_put(
        requested,
        RegistrationFacts {
            same_name,
            same_cloud,
            default_subscription: default,
            timeline,
            now: ts("2025-06-01T00:00:00Z"),
        },
    )
}

fn put_customer(
    reg: Option<&Registration>,
    default: Option<&Subscription>,
    customer: Option<&Subscription>,
    tenant: &str,
) -> Result<(), String> {
    check_customer_subscription_put(
        &"stack1".parse().unwrap(),
        CUSTOMER.parse().unwrap(),
        tenant.parse().unwrap(),
        ts("2025-01-01T00:00:00Z"),
        ts("2025-01-01T00:00:00Z"),
        CustomerSubscriptionFacts {
            registration: reg,
            default_subscription: default,
            customer_subscription: customer,
        },
    )
    .map(|_| ())
    .map_err(|e| e.code().as_str().to_owned())
}

#[test]
fn a_registration_needs_an_existing_default_subscription() {
    let reg = registration(BillingModel::PayAsYouUse);
    let err = put_registration(&reg, None, None, None, None).unwrap_err();
    assert_eq!(err.code().as_str(), "InvalidCustomerSubscriptionId");
    assert_eq!(err.target(), "subscriptionId");
    let default = default_sub(OfferType::Ea);
    assert_eq!(
        put_registration(&reg, None, None, Some(&default), None),
        Ok(RegistrationPut::Created)
    );
}

#[test]
fn a_cloud_is_registered_once() {
    let default = default_sub(OfferType::Cspss);
    let mut other = registration(BillingModel::PayAsYouUse);
    other.name = "other".parse().unwrap();
    let reg = registration(BillingModel::PayAsYouUse);
    let err = put_registration(&reg, None, Some(&other), Some(&default), None).unwrap_err();
    assert_eq!(err.code().as_str(), "CloudIdAlreadyRegistered");
    // The holder is not named: another partner may read the message (SPEC §7).
    assert!(!err.to_string().contains("other"), "{err}");
}

#[test]
fn a_re_put_may_change_only_the_billing_model() {
    let default = default_sub(OfferType::Cspss);
    let existing = registration(BillingModel::PayAsYouUse);
    assert_eq!(
        put_registration(
            &existing,
            Some(&existing),
            Some(&existing),
            Some(&default),
            None
        ),
        Ok(RegistrationPut::Unchanged)
    );
    let dev = registration(BillingModel::Development);
    assert_eq!(
        put_registration(&dev, Some(&existing), Some(&existing), Some(&default), None),
        Ok(RegistrationPut::Updated)
    );
    let mut moved = registration(BillingModel::PayAsYouUse);
    moved.default_subscription = CUSTOMER.parse().unwrap();
    let customer = customer_sub();
    let err = put_registration(
        &moved,
        Some(&existing),
        Some(&existing),
        Some(&customer),
        None,
    )
    .unwrap_err();
    assert_eq!(err.code().as_str(), "DefaultSubscriptionChange");
    let mut recloud = registration(BillingModel::PayAsYouUse);
    recloud.cloud_id = "ca000000-0000-0000-0000-000000000002".parse().unwrap();
    let err = put_registration(&recloud, Some(&existing), None, Some(&default), None).unwrap_err();
    assert_eq!(err.code().as_str(), "CloudIdChange");
}

#[test]
fn a_registration_with_mapped_tenants_cannot_become_capacity() {
    let default = default_sub(OfferType::Cspss);
    let existing = registration(BillingModel::PayAsYouUse);
    let capacity = registration(BillingModel::Capacity);
    let mapped = Timeline::new([stackbill_core::MappingEvent {
        tenant_id: TENANT.parse().unwrap(),
        subscription: Some(CUSTOMER.parse().unwrap()),
        effective_from: ts("2025-01-01T00:00:00Z"),
        recorded_at: ts("2025-01-01T00:00:00Z"),
    }]);
    let err = put_registration(
        &capacity,
        Some(&existing),
        Some(&existing),
        Some(&default),
        Some(&mapped),
    )
    .unwrap_err();
    assert_eq!(err.code().as_str(), "CustomerSubscriptionsNotAllowed");
    assert_eq!(
        put_registration(
            &capacity,
            Some(&existing),
            Some(&existing),
            Some(&default),
            Some(&Timeline::default())
        ),
        Ok(RegistrationPut::Updated)
    );
}

/// Registration, default subscription, customer subscription, tenant, expected code.
type Case<'a> = (
    Option<&'a Registration>,
    Option<&'a Subscription>,
    Option<&'a Subscription>,
    &'a str,
    &'a str,
);

#[test]
fn customer_subscription_checks_run_in_the_spec_order() {
    let payg = registration(BillingModel::PayAsYouUse);
    let capacity = registration(BillingModel::Capacity);
    let cspss = default_sub(OfferType::Cspss);
    let csp_default = default_sub(OfferType::Csp);
    let ea = default_sub(OfferType::Ea);
    let customer = customer_sub();
    let ea_customer = subscription(CUSTOMER, OfferType::Ea, None, None);
    let cspss_customer = subscription(CUSTOMER, OfferType::Cspss, Some("p1"), None);
    let foreign = subscription(CUSTOMER, OfferType::Csp, Some("p2"), Some(TENANT));
    let wrong_tenant = "70000000-0000-0000-0000-000000000002";

    // Each row breaks one more rule than the next; the first broken rule is the answer.
    let table: Vec<Case<'_>> = vec![
        (None, Some(&ea), None, wrong_tenant, "RegistrationNotFound"),
        (
            Some(&capacity),
            Some(&ea),
            None,
            wrong_tenant,
            "CustomerSubscriptionsNotAllowed",
        ),
        (
            Some(&payg),
            Some(&ea),
            None,
            wrong_tenant,
            "UnauthorizedCspRegistration",
        ),
        (
            Some(&payg),
            Some(&cspss),
            None,
            wrong_tenant,
            "InvalidCustomerSubscriptionId",
        ),
        (
            Some(&payg),
            Some(&cspss),
            Some(&ea_customer),
            wrong_tenant,
            "InvalidCSPSubscription",
        ),
        (
            Some(&payg),
            Some(&cspss),
            Some(&cspss_customer),
            wrong_tenant,
            "InvalidCSPSubscription",
        ),
        (
            Some(&payg),
            Some(&cspss),
            Some(&foreign),
            wrong_tenant,
            "BadCustomerSubscriptionId",
        ),
        (
            Some(&payg),
            Some(&cspss),
            Some(&customer),
            wrong_tenant,
            "TenantMismatch",
        ),
    ];
    for (reg, default, cust, tenant, code) in table {
        assert_eq!(
            put_customer(reg, default, cust, tenant),
            Err(code.to_owned()),
            "{code}"
        );
    }
    assert_eq!(
        put_customer(Some(&payg), Some(&cspss), Some(&customer), TENANT),
        Ok(())
    );
    assert_eq!(
        put_customer(Some(&payg), Some(&csp_default), Some(&customer), TENANT),
        Ok(())
    );
    let dev = registration(BillingModel::Development);
    assert_eq!(
        put_customer(Some(&dev), Some(&cspss), Some(&customer), TENANT),
        Ok(())
    );
}

#[test]
fn a_delete_ends_the_mapping_in_force_at_its_instant() {
    let reg = registration(BillingModel::PayAsYouUse);
    let name = reg.name.clone();
    let sub = CUSTOMER.parse().unwrap();
    let timeline = Timeline::new([stackbill_core::MappingEvent {
        tenant_id: TENANT.parse().unwrap(),
        subscription: Some(sub),
        effective_from: ts("2025-03-01T00:00:00Z"),
        recorded_at: ts("2025-01-01T00:00:00Z"),
    }]);
    let now = ts("2025-06-01T00:00:00Z");
    let err = check_customer_subscription_delete(&name, None, sub, now, now).unwrap_err();
    assert_eq!(err.code().as_str(), "RegistrationNotFound");
    let before = ts("2025-02-01T00:00:00Z");
    let err = check_customer_subscription_delete(&name, Some((&reg, &timeline)), sub, before, now)
        .unwrap_err();
    assert_eq!(err.code().as_str(), "CustomerSubscriptionNotFound");
    let events =
        check_customer_subscription_delete(&name, Some((&reg, &timeline)), sub, now, now).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].tenant_id, TENANT.parse().unwrap());
    assert_eq!(events[0].subscription, None);
    assert_eq!(events[0].effective_from, now);
}

#[test]
fn routing_falls_back_to_the_default_subscription() {
    let reg = registration(BillingModel::PayAsYouUse);
    let sub = CUSTOMER.parse().unwrap();
    let tenant = TENANT.parse().unwrap();
    let timeline = Timeline::new([
        stackbill_core::MappingEvent {
            tenant_id: tenant,
            subscription: Some(sub),
            effective_from: ts("2025-03-01T00:00:00Z"),
            recorded_at: ts("2025-01-01T00:00:00Z"),
        },
        stackbill_core::MappingEvent {
            tenant_id: tenant,
            subscription: None,
            effective_from: ts("2025-04-01T00:00:00Z"),
            recorded_at: ts("2025-01-02T00:00:00Z"),
        },
    ]);
    let table = stackbill_core::routing::RoutingTable::new([(reg.clone(), timeline, None)]);
    let cloud = reg.cloud_id;
    assert_eq!(
        table.route(cloud, tenant, ts("2025-02-28T23:00:00Z")),
        Some(reg.default_subscription)
    );
    assert_eq!(
        table.route(cloud, tenant, ts("2025-03-01T00:00:00Z")),
        Some(sub)
    );
    assert_eq!(
        table.route(cloud, tenant, ts("2025-04-01T00:00:00Z")),
        Some(reg.default_subscription)
    );
    let stranger = "70000000-0000-0000-0000-000000000009".parse().unwrap();
    assert_eq!(
        table.route(cloud, stranger, ts("2025-03-15T00:00:00Z")),
        Some(reg.default_subscription)
    );
    let unknown = "ca000000-0000-0000-0000-000000000009".parse().unwrap();
    assert_eq!(
        table.route(unknown, tenant, ts("2025-03-15T00:00:00Z")),
        None
    );
}
