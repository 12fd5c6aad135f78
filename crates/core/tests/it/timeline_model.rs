//! The mapping timeline checked against a naive model: random sequences of add, replace and
//! remove events with random (also equal, backdated and future) effective instants.

use jiff::Timestamp;
use proptest::prelude::*;
use stackbill_core::rules::check_customer_subscription_delete;
use stackbill_core::{
    BillingModel, MappingEvent, Registration, RegistrationName, SubscriptionId, TenantId, Timeline,
};

const TENANTS: u8 = 3;
const INSTANTS: i64 = 6;

#[derive(Debug, Clone)]
enum Op {
    /// Map a tenant to a subscription (an add, or a replace when it has one).
    Put { tenant: u8, sub: u8, at: i64 },
    /// Remove whichever tenant is mapped to `sub` at `at`.
    Remove { sub: u8, at: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..TENANTS, 0..4u8, 0..INSTANTS).prop_map(|(tenant, sub, at)| Op::Put { tenant, sub, at }),
        2 => (0..4u8, 0..INSTANTS).prop_map(|(sub, at)| Op::Remove { sub, at }),
    ]
}

fn instant(hour: i64) -> Timestamp {
    Timestamp::from_second(1_735_689_600 + hour * 3600).unwrap()
}

fn tenant(n: u8) -> TenantId {
    format!("{:032x}", u128::from(n) + 1).parse().unwrap()
}

/// Each tenant owns its own subscriptions: (tenant, n) -> a distinct id, as CSP requires.
fn sub(tenant_n: u8, n: u8) -> SubscriptionId {
    format!(
        "{:032x}",
        (u128::from(tenant_n) << 64) | (u128::from(n) + 1)
    )
    .parse()
    .unwrap()
}

/// The naive model: a list of events scanned in full on every question.
#[derive(Default)]
struct Model {
    events: Vec<(TenantId, Option<SubscriptionId>, i64)>,
}

impl Model {
    fn mapping_at(&self, who: TenantId, at: i64) -> Option<SubscriptionId> {
        let mut best: Option<(i64, Option<SubscriptionId>)> = None;
        for &(t, s, from) in &self.events {
            // Later in the list = recorded later, so `>=` lets it win ties.
            if t == who && from <= at && best.is_none_or(|(b, _)| from >= b) {
                best = Some((from, s));
            }
        }
        best.and_then(|(_, s)| s)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn timeline_matches_the_naive_model(ops in prop::collection::vec(op(), 0..40)) {
        let registration = Registration {
            name: "r".parse::<RegistrationName>().unwrap(),
            cloud_id: format!("{:032x}", 7).parse().unwrap(),
            default_subscription: format!("{:032x}", 9).parse().unwrap(),
            billing_model: BillingModel::PayAsYouUse,
        };
        let mut timeline = Timeline::default();
        let mut model = Model::default();
        for (step, op) in ops.into_iter().enumerate() {
            let recorded_at = instant(1000 + step as i64);
            match op {
                Op::Put { tenant: t, sub: s, at } => {
                    let event = MappingEvent {
                        tenant_id: tenant(t),
                        subscription: Some(sub(t, s)),
                        effective_from: instant(at),
                        recorded_at,
                    };
                    timeline.record(event);
                    model.events.push((tenant(t), Some(sub(t, s)), at));
                }
                Op::Remove { sub: s, at } => {
                    // The subscription of the tenant chosen by the low bits: any tenant's.
                    let owner = s % TENANTS;
                    let target = sub(owner, s);
                    let expected: Vec<TenantId> = (0..TENANTS)
                        .map(tenant)
                        .filter(|&t| model.mapping_at(t, at) == Some(target))
                        .collect();
                    let result = check_customer_subscription_delete(
                        &registration.name,
                        Some((&registration, &timeline)),
                        target,
                        instant(at),
                        recorded_at,
                    );
                    match result {
                        Ok(events) => {
                            let removed: Vec<TenantId> = events.iter().map(|e| e.tenant_id).collect();
                            prop_assert_eq!(&removed, &expected);
                            for event in events {
                                model.events.push((event.tenant_id, None, at));
                                timeline.record(event);
                            }
                        }
                        Err(err) => {
                            prop_assert_eq!(err.code().as_str(), "CustomerSubscriptionNotFound");
                            prop_assert!(expected.is_empty());
                        }
                    }
                }
            }
            for t in 0..TENANTS {
                for at in -1..=INSTANTS {
                    prop_assert_eq!(timeline.mapping_at(tenant(t), instant(at)), model.mapping_at(tenant(t), at));
                    let routed = stackbill_core::routing::route(&registration, &timeline, tenant(t), instant(at));
                    prop_assert_eq!(routed, model.mapping_at(tenant(t), at).unwrap_or(registration.default_subscription));
                }
            }
            for at in -1..=INSTANTS {
                let listed: Vec<(TenantId, Option<SubscriptionId>)> = timeline
                    .mappings_at(instant(at))
                    .iter()
                    .map(|e| (e.tenant_id, e.subscription))
                    .collect();
                let mut expected: Vec<(TenantId, Option<SubscriptionId>)> = (0..TENANTS)
                    .filter_map(|t| model.mapping_at(tenant(t), at).map(|s| (tenant(t), Some(s))))
                    .collect();
                expected.sort();
                prop_assert_eq!(listed, expected);
            }
        }
    }
}
