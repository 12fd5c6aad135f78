//! Domain fixtures: the CSP most tests need, built through the store's public calls, so
//! that a test says what it is about and not how a partner is made.
//!
//! - [`csp`]: partner `p1` with a CSPSS default subscription and CSP customer subscriptions;
//! - [`register`]: a PayAsYouUse registration of a stack with that default;
//! - [`map_tenants`]: tenants billed to their customer subscriptions from an instant;
//! - [`month_of_usage`]: hourly records of tenants and meters over one period.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // a failed fixture is a failed test

use jiff::{SignedDuration, Timestamp};
use stackbill_core::{
    BillingModel, CloudId, MeterId, OfferType, Partner, PartnerId, Period, Quantity, RateCardName,
    RecordId, Registration, RegistrationName, Subscription, SubscriptionId, TenantId, UsageRecord,
};
use stackbill_store::Store;

/// The partner's id.
pub const PARTNER: &str = "p1";
/// The partner's CSPSS default subscription.
pub const DEFAULT: &str = "d0000000-0000-0000-0000-000000000001";
/// The first stack.
pub const CLOUD: &str = "ca000000-0000-0000-0000-000000000001";
/// The stack user subscription records name (stackbill bills by tenant, not by it).
pub const STACK_SUBSCRIPTION: &str = "50000000-0000-0000-0000-000000000001";
/// Two catalog meters: TableCapacity (GB*hours) and Static IP Address Usage.
pub const METERS: [&str; 2] = [
    "b4438d5d-453b-4ee1-b42a-dc72e377f1e4",
    "f271a8a3-88c4-4d93-956a-063e1d2fa80b",
];

/// Tenant `n` (a directory of a stack).
pub fn tenant(n: u8) -> TenantId {
    format!("70000000-0000-0000-0000-{n:012x}").parse().unwrap()
}

/// Customer subscription `n`, of tenant `n`.
pub fn customer(n: u8) -> SubscriptionId {
    format!("c0000000-0000-0000-0000-{n:012x}").parse().unwrap()
}

/// Stack `n`'s cloud id (stack 1 is [`CLOUD`]).
pub fn cloud(n: u8) -> CloudId {
    format!("ca000000-0000-0000-0000-{n:012x}").parse().unwrap()
}

/// The partner `p1`.
pub fn partner() -> Partner {
    Partner {
        id: PARTNER.parse().unwrap(),
        name: "Contoso CSP".to_owned(),
    }
}

/// A subscription of `p1` with the default rate card.
pub fn subscription(
    id: SubscriptionId,
    offer_type: OfferType,
    customer_tenant: Option<TenantId>,
    markup_percent: &str,
) -> Subscription {
    Subscription {
        id,
        offer_type,
        partner_id: Some(PARTNER.parse::<PartnerId>().unwrap()),
        customer_tenant_id: customer_tenant,
        display_name: String::new(),
        rate_card: RateCardName::default_card(),
        markup_percent: markup_percent.parse().unwrap(),
    }
}

/// Partner `p1`, its CSPSS default subscription, and one CSP subscription per markup:
/// customer `n` of tenant `n`, from 1.
pub async fn csp(store: &Store, markups: &[&str]) {
    store.put_partner(partner()).await.unwrap();
    let default = subscription(DEFAULT.parse().unwrap(), OfferType::Cspss, None, "0");
    store.put_subscription(default).await.unwrap();
    for (n, markup) in (1..).zip(markups) {
        let sub = subscription(customer(n), OfferType::Csp, Some(tenant(n)), markup);
        store.put_subscription(sub).await.unwrap();
    }
}

/// Registers stack `cloud` as `name`, PayAsYouUse, with the default subscription.
pub async fn register(store: &Store, name: &str, cloud: CloudId) {
    store
        .put_registration(Registration {
            name: name.parse().unwrap(),
            cloud_id: cloud,
            default_subscription: DEFAULT.parse().unwrap(),
            billing_model: BillingModel::PayAsYouUse,
        })
        .await
        .unwrap();
}

/// Bills each of `tenants` on registration `name` to its customer subscription from `from`.
pub async fn map_tenants(store: &Store, name: &str, tenants: &[u8], from: Timestamp) {
    let name: RegistrationName = name.parse().unwrap();
    for &n in tenants {
        store
            .put_customer_subscription(name.clone(), customer(n), tenant(n), Some(from))
            .await
            .unwrap();
    }
}

/// One record per hour of `period`, tenant and meter on stack `cloud`, each of `quantity`;
/// ids are `{prefix}-{tenant}-{meter}-{hour}`.
pub fn month_of_usage(
    prefix: &str,
    cloud: CloudId,
    period: Period,
    tenants: &[u8],
    meters: &[&str],
    quantity: &str,
) -> Vec<UsageRecord> {
    let quantity = Quantity::parse(quantity).unwrap();
    let (first, end) = period.hours();
    let hours = end - first;
    let mut records = Vec::new();
    for &n in tenants {
        for (m, meter) in meters.iter().enumerate() {
            let meter: MeterId = meter.parse().unwrap();
            for hour in 0..hours {
                let start = period.start() + SignedDuration::from_hours(hour);
                records.push(UsageRecord {
                    id: RecordId::new(&format!("{prefix}-{n}-{m}-{hour}")).unwrap(),
                    cloud_id: cloud,
                    tenant_id: tenant(n),
                    subscription_id: STACK_SUBSCRIPTION.parse().unwrap(),
                    meter_id: meter,
                    quantity,
                    usage_start: start,
                    reported_time: None,
                    instance_data: None,
                });
            }
        }
    }
    records
}
