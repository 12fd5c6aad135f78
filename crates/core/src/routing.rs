//! Routing (SPEC §4): which billing subscription pays for a tenant's usage on a stack.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::directory::Registration;
use crate::ids::{CloudId, SubscriptionId, TenantId};
use crate::timeline::Timeline;

/// Routes usage of `tenant` starting at `usage_start` on the stack of `registration`: the
/// customer subscription mapped to the tenant then, else the default subscription.
pub fn route(
    registration: &Registration,
    timeline: &Timeline,
    tenant: TenantId,
    usage_start: Timestamp,
) -> SubscriptionId {
    timeline
        .mapping_at(tenant, usage_start)
        .unwrap_or(registration.default_subscription)
}

/// Every registration with its timeline, keyed by stack: the whole input of routing.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    by_cloud: HashMap<CloudId, (Registration, Timeline)>,
}

impl RoutingTable {
    /// Builds the table from registrations and their timelines.
    pub fn new(entries: impl IntoIterator<Item = (Registration, Timeline)>) -> Self {
        Self {
            by_cloud: entries
                .into_iter()
                .map(|(registration, timeline)| (registration.cloud_id, (registration, timeline)))
                .collect(),
        }
    }

    /// Routes every hour of `[from, to)` at once when they all go to the same place:
    /// `Some(route)` (the route being `None` for an unregistered stack), or `None` when the
    /// tenant's mapping changes inside the span and each hour must be routed on its own.
    pub fn route_span(
        &self,
        cloud: CloudId,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Option<Option<SubscriptionId>> {
        let Some((registration, timeline)) = self.by_cloud.get(&cloud) else {
            return Some(None);
        };
        if timeline.changes_within(tenant, from, to) {
            return None;
        }
        Some(Some(route(registration, timeline, tenant, from)))
    }

    /// Routes one usage hour; `None` when the stack is not registered.
    pub fn route(
        &self,
        cloud: CloudId,
        tenant: TenantId,
        usage_start: Timestamp,
    ) -> Option<SubscriptionId> {
        let (registration, timeline) = self.by_cloud.get(&cloud)?;
        Some(route(registration, timeline, tenant, usage_start))
    }
}
