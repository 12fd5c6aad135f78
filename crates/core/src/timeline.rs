//! The effective-dated history of a registration's tenant mappings (SPEC §2.4–2.5).
//!
//! Every change is an event kept forever. The mapping in force at `t` is the event with the
//! greatest `effective_from <= t`; between events with equal `effective_from`, the one
//! recorded last wins. "Recorded last" is the position in the recording order, never a
//! clock reading, so two changes in the same microsecond still have a winner.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use crate::ids::{SubscriptionId, TenantId};

/// One change of one tenant's mapping in one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingEvent {
    /// The directory whose usage is re-mapped.
    pub tenant_id: TenantId,
    /// Where the tenant's usage goes from `effective_from` on; `None` is a removal (the
    /// registration's default subscription pays).
    pub subscription: Option<SubscriptionId>,
    /// From when the change applies (may be backdated or scheduled).
    pub effective_from: Timestamp,
    /// When stackbill recorded the change.
    pub recorded_at: Timestamp,
}

/// A registration's mapping events in recording order, indexed for point-in-time queries.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    events: Vec<MappingEvent>,
    /// Per tenant: (effective_from, recording position) -> recording position.
    by_tenant: HashMap<TenantId, BTreeMap<(Timestamp, usize), usize>>,
}

impl Timeline {
    /// Builds a timeline from events given in recording order.
    pub fn new(events: impl IntoIterator<Item = MappingEvent>) -> Self {
        let mut timeline = Self::default();
        for event in events {
            timeline.record(event);
        }
        timeline
    }

    /// Appends an event recorded after every event already in the timeline.
    pub fn record(&mut self, event: MappingEvent) {
        let position = self.events.len();
        self.by_tenant
            .entry(event.tenant_id)
            .or_default()
            .insert((event.effective_from, position), position);
        self.events.push(event);
    }

    /// Every event, in recording order.
    pub fn events(&self) -> &[MappingEvent] {
        &self.events
    }

    /// The event that decides `tenant`'s mapping at `at`, removals included.
    pub fn event_in_force(&self, tenant: TenantId, at: Timestamp) -> Option<&MappingEvent> {
        let events = self.by_tenant.get(&tenant)?;
        let (_, &position) = events.range(..=(at, usize::MAX)).next_back()?;
        self.events.get(position)
    }

    /// The subscription `tenant` maps to at `at`, if any.
    pub fn mapping_at(&self, tenant: TenantId, at: Timestamp) -> Option<SubscriptionId> {
        self.event_in_force(tenant, at)?.subscription
    }

    /// The mapping events in force at `at` that map a tenant to a subscription, by tenant.
    pub fn mappings_at(&self, at: Timestamp) -> Vec<&MappingEvent> {
        let mut in_force: Vec<&MappingEvent> = self
            .by_tenant
            .keys()
            .filter_map(|&tenant| self.event_in_force(tenant, at))
            .filter(|event| event.subscription.is_some())
            .collect();
        in_force.sort_by_key(|event| event.tenant_id);
        in_force
    }

    /// The tenants whose mapping in force at `at` is `subscription` (normally at most one:
    /// a CSP subscription belongs to one directory), in tenant order.
    pub fn tenants_mapped_to(&self, subscription: SubscriptionId, at: Timestamp) -> Vec<TenantId> {
        self.mappings_at(at)
            .into_iter()
            .filter(|event| event.subscription == Some(subscription))
            .map(|event| event.tenant_id)
            .collect()
    }

    /// Whether any tenant is mapped to a subscription at `at` or at any later instant.
    pub fn has_mappings_from(&self, at: Timestamp) -> bool {
        self.by_tenant.keys().any(|&tenant| {
            self.mapping_at(tenant, at).is_some()
                || self.by_tenant[&tenant]
                    .range((at, usize::MAX)..)
                    .any(|(_, &position)| self.events[position].subscription.is_some())
        })
    }

    /// Whether `tenant`'s mapping changes at some instant strictly inside `(from, to)`.
    pub fn changes_within(&self, tenant: TenantId, from: Timestamp, to: Timestamp) -> bool {
        self.by_tenant
            .get(&tenant)
            .is_some_and(|events| events.range((from, usize::MAX)..(to, 0)).next().is_some())
    }

    /// The timeline as it was known at `recorded_by`: only events recorded up to then.
    pub fn as_recorded_by(&self, recorded_by: Timestamp) -> Self {
        Self::new(
            self.events
                .iter()
                .filter(|event| event.recorded_at <= recorded_by)
                .cloned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tenant(n: u8) -> TenantId {
        format!("{n:032x}").parse().unwrap()
    }

    fn sub(n: u8) -> SubscriptionId {
        format!("{:032x}", u128::from(n) << 64).parse().unwrap()
    }

    fn event(t: u8, s: Option<u8>, from: &str) -> MappingEvent {
        MappingEvent {
            tenant_id: tenant(t),
            subscription: s.map(sub),
            effective_from: ts(from),
            recorded_at: ts("2030-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn greatest_effective_from_at_or_before_wins() {
        let timeline = Timeline::new([
            event(1, Some(1), "2025-01-01T00:00:00Z"),
            event(1, Some(2), "2025-03-01T00:00:00Z"),
            event(1, None, "2025-02-01T00:00:00Z"),
        ]);
        assert_eq!(
            timeline.mapping_at(tenant(1), ts("2024-12-31T23:59:59Z")),
            None
        );
        assert_eq!(
            timeline.mapping_at(tenant(1), ts("2025-01-01T00:00:00Z")),
            Some(sub(1))
        );
        assert_eq!(
            timeline.mapping_at(tenant(1), ts("2025-02-01T00:00:00Z")),
            None
        );
        assert_eq!(
            timeline.mapping_at(tenant(1), ts("2025-02-28T23:00:00Z")),
            None
        );
        assert_eq!(
            timeline.mapping_at(tenant(1), ts("2025-03-01T00:00:00Z")),
            Some(sub(2))
        );
        assert_eq!(
            timeline.mapping_at(tenant(2), ts("2025-03-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn equal_effective_from_recorded_last_wins() {
        let timeline = Timeline::new([
            event(1, Some(1), "2025-01-01T00:00:00Z"),
            event(1, Some(2), "2025-01-01T00:00:00Z"),
        ]);
        assert_eq!(
            timeline.mapping_at(tenant(1), ts("2025-06-01T00:00:00Z")),
            Some(sub(2))
        );
        let timeline = Timeline::new([
            event(1, Some(2), "2025-01-01T00:00:00Z"),
            event(1, None, "2025-01-01T00:00:00Z"),
        ]);
        assert_eq!(
            timeline.mapping_at(tenant(1), ts("2025-06-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn mappings_at_lists_only_live_mappings_by_tenant() {
        let timeline = Timeline::new([
            event(2, Some(2), "2025-01-01T00:00:00Z"),
            event(1, Some(1), "2025-01-01T00:00:00Z"),
            event(3, Some(3), "2025-01-01T00:00:00Z"),
            event(3, None, "2025-02-01T00:00:00Z"),
        ]);
        let tenants: Vec<_> = timeline
            .mappings_at(ts("2025-03-01T00:00:00Z"))
            .iter()
            .map(|e| e.tenant_id)
            .collect();
        assert_eq!(tenants, vec![tenant(1), tenant(2)]);
        assert_eq!(
            timeline.tenants_mapped_to(sub(2), ts("2025-03-01T00:00:00Z")),
            vec![tenant(2)]
        );
        assert!(
            timeline
                .tenants_mapped_to(sub(3), ts("2025-03-01T00:00:00Z"))
                .is_empty()
        );
        assert!(timeline.has_mappings_from(ts("2024-01-01T00:00:00Z")));
    }

    #[test]
    fn has_mappings_from_sees_scheduled_mappings() {
        let timeline = Timeline::new([event(1, Some(1), "2026-01-01T00:00:00Z")]);
        assert!(timeline.has_mappings_from(ts("2025-01-01T00:00:00Z")));
        let timeline = Timeline::new([
            event(1, Some(1), "2024-01-01T00:00:00Z"),
            event(1, None, "2024-06-01T00:00:00Z"),
        ]);
        assert!(!timeline.has_mappings_from(ts("2025-01-01T00:00:00Z")));
    }

    #[test]
    fn changes_within_is_strictly_inside_the_span() {
        let timeline = Timeline::new([
            event(1, Some(1), "2025-05-01T00:00:00Z"),
            event(1, None, "2025-06-01T00:00:00Z"),
            event(2, Some(2), "2025-05-10T00:00:00Z"),
        ]);
        let (may, june) = (ts("2025-05-01T00:00:00Z"), ts("2025-06-01T00:00:00Z"));
        assert!(
            !timeline.changes_within(tenant(1), may, june),
            "changes at the ends do not count"
        );
        assert!(timeline.changes_within(tenant(2), may, june));
        assert!(!timeline.changes_within(tenant(3), may, june));
    }

    #[test]
    fn as_recorded_by_forgets_later_changes() {
        let mut late = event(1, Some(2), "2025-01-01T00:00:00Z");
        late.recorded_at = ts("2031-01-01T00:00:00Z");
        let timeline = Timeline::new([event(1, Some(1), "2025-01-01T00:00:00Z"), late]);
        let at = ts("2025-06-01T00:00:00Z");
        assert_eq!(timeline.mapping_at(tenant(1), at), Some(sub(2)));
        let then = timeline.as_recorded_by(ts("2030-06-01T00:00:00Z"));
        assert_eq!(then.mapping_at(tenant(1), at), Some(sub(1)));
    }
}
