//! Routing (SPEC §4): which billing subscription pays for a tenant's usage on a stack.
//!
//! Registrations of one stack follow one another in time. A registration covers the usage
//! that starts from the deletion of the previous registration of its stack (or from the
//! beginning, if there was none) until its own deletion ([`Span`]), and a record is routed
//! by the registration covering its start. Deleting or re-creating a registration therefore
//! never moves earlier usage: the deleted one keeps billing the hours it covered.

use std::collections::HashMap;

use jiff::Timestamp;

use crate::directory::Registration;
use crate::ids::{CloudId, SubscriptionId, TenantId};
use crate::timeline::Timeline;
use crate::usage::{UsageError, UsageErrorCode, UsageRecord};

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

/// The usage start times a registration covers: `[from, until)`, unbounded where `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    /// The deletion of the previous registration of the stack; `None`: the beginning.
    pub from: Option<Timestamp>,
    /// The registration's own deletion; `None`: it is live.
    pub until: Option<Timestamp>,
}

impl Span {
    /// Whether usage starting at `at` is covered.
    pub fn contains(&self, at: Timestamp) -> bool {
        self.from.is_none_or(|from| from <= at) && self.until.is_none_or(|until| at < until)
    }

    /// Whether one of the span's ends lies strictly inside `(from, to)`, so that the hours of
    /// `[from, to)` are not all covered alike.
    fn splits(&self, from: Timestamp, to: Timestamp) -> bool {
        [self.from, self.until]
            .into_iter()
            .flatten()
            .any(|end| from < end && end < to)
    }
}

/// The spans of registrations, given each one's stack and deletion in the order they were
/// created; the answer is in the same order.
pub fn spans(registrations: &[(CloudId, Option<Timestamp>)]) -> Vec<Span> {
    let mut previous_deletion: HashMap<CloudId, Option<Timestamp>> = HashMap::new();
    registrations
        .iter()
        .map(|&(cloud, deleted)| {
            let from = previous_deletion.insert(cloud, deleted).flatten();
            Span {
                from,
                until: deleted,
            }
        })
        .collect()
}

/// Whether a stack token of `cloud` may forward `record` (SPEC §7): a record of its stack,
/// for an hour its live registration covers (`live`: that registration's span; `None`: the
/// stack has none). Hours a previous registration covered are not its to send.
pub fn check_stack_record(
    record: &UsageRecord,
    cloud: CloudId,
    live: Option<Span>,
) -> Result<(), UsageError> {
    let refuse = |target, message: String| {
        Err(UsageError::new(
            UsageErrorCode::ForbiddenStack,
            target,
            message,
        ))
    };
    if record.cloud_id != cloud {
        return refuse(
            "cloudId",
            format!(
                "this token sends usage of cloud {cloud} only, not {}",
                record.cloud_id
            ),
        );
    }
    match live {
        None => refuse("cloudId", format!("cloud {cloud} has no registration")),
        Some(span) if span.from.is_some_and(|from| record.usage_start < from) => refuse(
            "usageStartTime",
            format!(
                "this token's registration covers usage from {} on; earlier hours belong to \
                 a previous registration of the stack",
                span.from.map(|f| f.to_string()).unwrap_or_default()
            ),
        ),
        Some(_) => Ok(()),
    }
}

/// Which stacks are registered when: the spans of every registration, live or deleted.
#[derive(Debug, Clone, Default)]
pub struct Coverage {
    by_cloud: HashMap<CloudId, Vec<Span>>,
}

impl Coverage {
    /// From each registration's stack and deletion, in the order they were created.
    pub fn new(registrations: &[(CloudId, Option<Timestamp>)]) -> Self {
        let mut by_cloud: HashMap<CloudId, Vec<Span>> = HashMap::new();
        for (&(cloud, _), span) in registrations.iter().zip(spans(registrations)) {
            by_cloud.entry(cloud).or_default().push(span);
        }
        Self { by_cloud }
    }

    /// Whether some registration of `cloud` covers usage starting at `at`.
    pub fn covers(&self, cloud: CloudId, at: Timestamp) -> bool {
        self.by_cloud
            .get(&cloud)
            .is_some_and(|spans| spans.iter().any(|span| span.contains(at)))
    }
}

/// A registration, its mapping timeline and the span of usage it covers.
#[derive(Debug, Clone)]
struct Covering {
    span: Span,
    registration: Registration,
    timeline: Timeline,
}

/// Every registration of every stack, live or deleted, with its timeline and span: the whole
/// input of routing.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    by_cloud: HashMap<CloudId, Vec<Covering>>,
}

impl RoutingTable {
    /// Builds the table from registrations with their timelines and deletions, in the order
    /// they were created.
    pub fn new(
        entries: impl IntoIterator<Item = (Registration, Timeline, Option<Timestamp>)>,
    ) -> Self {
        let entries: Vec<_> = entries.into_iter().collect();
        let ends: Vec<(CloudId, Option<Timestamp>)> = entries
            .iter()
            .map(|(registration, _, deleted)| (registration.cloud_id, *deleted))
            .collect();
        let mut by_cloud: HashMap<CloudId, Vec<Covering>> = HashMap::new();
        for ((registration, timeline, _), span) in entries.into_iter().zip(spans(&ends)) {
            by_cloud
                .entry(registration.cloud_id)
                .or_default()
                .push(Covering {
                    span,
                    registration,
                    timeline,
                });
        }
        Self { by_cloud }
    }

    fn covering(&self, cloud: CloudId, at: Timestamp) -> Option<&Covering> {
        self.by_cloud
            .get(&cloud)?
            .iter()
            .find(|covering| covering.span.contains(at))
    }

    /// Routes every hour of `[from, to)` at once when they all go to the same place:
    /// `Some(route)` (the route being `None` where no registration covers them), or `None`
    /// when a registration or the tenant's mapping changes inside the span and each hour must
    /// be routed on its own.
    pub fn route_span(
        &self,
        cloud: CloudId,
        tenant: TenantId,
        from: Timestamp,
        to: Timestamp,
    ) -> Option<Option<SubscriptionId>> {
        let coverings = self.by_cloud.get(&cloud).map_or(&[][..], Vec::as_slice);
        if coverings.iter().any(|c| c.span.splits(from, to)) {
            return None;
        }
        let Some(covering) = self.covering(cloud, from) else {
            return Some(None);
        };
        if covering.timeline.changes_within(tenant, from, to) {
            return None;
        }
        Some(Some(route(
            &covering.registration,
            &covering.timeline,
            tenant,
            from,
        )))
    }

    /// Every stack any registration was ever made for.
    pub fn clouds(&self) -> Vec<CloudId> {
        let mut clouds: Vec<CloudId> = self.by_cloud.keys().copied().collect();
        clouds.sort();
        clouds
    }

    /// The table of one stack only: the usage of every other stack routes nowhere.
    pub fn only(&self, cloud: CloudId) -> Self {
        Self {
            by_cloud: (self.by_cloud.get(&cloud))
                .map(|coverings| HashMap::from([(cloud, coverings.clone())]))
                .unwrap_or_default(),
        }
    }

    /// The name of the registration that covers the stack's usage at `at`.
    pub fn registration_at(&self, cloud: CloudId, at: Timestamp) -> Option<&Registration> {
        Some(&self.covering(cloud, at)?.registration)
    }

    /// The default subscription of the registration that covers the stack's usage at
    /// `at`: where a tenant without a subscription of its own is billed.
    pub fn default_subscription(&self, cloud: CloudId, at: Timestamp) -> Option<SubscriptionId> {
        Some(self.covering(cloud, at)?.registration.default_subscription)
    }

    /// Routes one usage hour; `None` when no registration of the stack covers it.
    pub fn route(
        &self,
        cloud: CloudId,
        tenant: TenantId,
        usage_start: Timestamp,
    ) -> Option<SubscriptionId> {
        let covering = self.covering(cloud, usage_start)?;
        Some(route(
            &covering.registration,
            &covering.timeline,
            tenant,
            usage_start,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn registrations_of_a_stack_follow_one_another() {
        let a: CloudId = "ca000000-0000-0000-0000-000000000001".parse().unwrap();
        let b: CloudId = "ca000000-0000-0000-0000-000000000002".parse().unwrap();
        let first_gone = ts("2025-11-05T10:00:00Z");
        let second_gone = ts("2025-12-01T00:00:00Z");
        let spans = spans(&[
            (a, Some(first_gone)),
            (b, None),
            (a, Some(second_gone)),
            (a, None),
        ]);
        assert_eq!(
            spans,
            [
                Span {
                    from: None,
                    until: Some(first_gone)
                },
                Span::default(),
                Span {
                    from: Some(first_gone),
                    until: Some(second_gone)
                },
                Span {
                    from: Some(second_gone),
                    until: None
                },
            ]
        );
        assert!(spans[0].contains(ts("2020-01-01T00:00:00Z")));
        assert!(!spans[0].contains(first_gone));
        assert!(spans[2].contains(first_gone));
        let coverage = Coverage::new(&[(a, Some(first_gone))]);
        assert!(coverage.covers(a, ts("2025-10-01T00:00:00Z")));
        assert!(!coverage.covers(a, first_gone), "deleted: nothing after");
        assert!(!coverage.covers(b, ts("2025-10-01T00:00:00Z")));
    }

    #[test]
    fn a_stack_token_sends_its_live_registrations_hours_only() {
        let cloud: CloudId = "ca000000-0000-0000-0000-000000000001".parse().unwrap();
        let other: CloudId = "ca000000-0000-0000-0000-000000000002".parse().unwrap();
        let record = |cloud: CloudId, start: &str| UsageRecord {
            id: crate::usage::RecordId::new("r").unwrap(),
            cloud_id: cloud,
            tenant_id: "70000000-0000-0000-0000-000000000001".parse().unwrap(),
            subscription_id: "50000000-0000-0000-0000-000000000001".parse().unwrap(),
            meter_id: "b4438d5d-453b-4ee1-b42a-dc72e377f1e4".parse().unwrap(),
            quantity: crate::usage::Quantity::ZERO,
            usage_start: ts(start),
            reported_time: None,
            instance_data: None,
        };
        let live = Span {
            from: Some(ts("2025-06-15T12:00:00Z")),
            until: None,
        };
        let target = |r: Result<(), UsageError>| r.map_err(|e| (e.code, e.target.into_owned()));
        assert_eq!(
            target(check_stack_record(
                &record(cloud, "2025-06-16T00:00:00Z"),
                cloud,
                Some(live)
            )),
            Ok(())
        );
        assert_eq!(
            target(check_stack_record(
                &record(cloud, "2025-06-15T11:00:00Z"),
                cloud,
                Some(live)
            )),
            Err((UsageErrorCode::ForbiddenStack, "usageStartTime".to_owned()))
        );
        assert_eq!(
            target(check_stack_record(
                &record(other, "2025-06-16T00:00:00Z"),
                cloud,
                Some(live)
            )),
            Err((UsageErrorCode::ForbiddenStack, "cloudId".to_owned()))
        );
        assert!(check_stack_record(&record(cloud, "2025-06-16T00:00:00Z"), cloud, None).is_err());
        assert_eq!(
            target(check_stack_record(
                &record(cloud, "2001-01-01T00:00:00Z"),
                cloud,
                Some(Span::default())
            )),
            Ok(())
        );
    }
}
