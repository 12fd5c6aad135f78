//! The events a batch of usage causes, found in the batch's own transaction: a tenant's first
//! usage of a month billed to its stack's default subscription, and usage of a month already
//! final. The outbox (`outbox.rs`) stores and delivers them.

use jiff::Timestamp;
use serde_json::json;
use stackbill_core::PartnerId;
use stackbill_core::events::{EventType, Subscribed};

use crate::db::{Conn, params, parse};
use crate::error::Result;
use crate::outbox::{emit, mark_once, subscribed};

/// The events a committed batch of usage causes, in its transaction:
/// `usage.unmapped_tenant` when a tenant's first usage of a month goes to its stack's default
/// subscription, and `invoice.adjusted` when usage of a month already final for the partner
/// billed makes an adjustment on its next open invoice. Only tenant-months not seen before,
/// and records of final months, are routed; nothing is done when no endpoint wants either.
pub(crate) fn emit_for_batch(
    conn: &Conn<'_>,
    records: &[stackbill_core::UsageRecord],
    accepted: impl Fn(usize) -> bool,
    now: Timestamp,
) -> Result<()> {
    use std::collections::BTreeMap;

    use stackbill_core::{CloudId, Period, SubscriptionId, TenantId};

    // One read of what the endpoints want, on every batch.
    let subscribed = subscribed(conn)?;
    let wanted = |kind| subscribed.iter().any(|s: &Subscribed| s.includes(kind));
    let unmapped = wanted(EventType::UsageUnmappedTenant);
    let adjusted = wanted(EventType::InvoiceAdjusted);
    if !unmapped && !adjusted {
        return Ok(());
    }
    let mut first: BTreeMap<(CloudId, TenantId, Period), Timestamp> = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        if accepted(index) {
            let key = (
                record.cloud_id,
                record.tenant_id,
                Period::containing(record.usage_start),
            );
            let at = first.entry(key).or_insert(record.usage_start);
            *at = (*at).min(record.usage_start);
        }
    }
    if first.is_empty() {
        return Ok(());
    }
    let finals = crate::finals::load_finalized(conn, None)?;
    let mut to_route = Vec::new();
    for ((cloud, tenant, period), at) in first {
        let new = unmapped && mark_once(conn, &format!("seen:{cloud}:{tenant}:{period}"), now)?;
        let late = adjusted && finals.any_final(period);
        if new || late {
            to_route.push((cloud, tenant, period, at, new));
        }
    }
    if to_route.is_empty() {
        return Ok(());
    }
    let routing = crate::directory::load_routing(conn, None)?;
    let mut partners: BTreeMap<SubscriptionId, Option<PartnerId>> = BTreeMap::new();
    for (cloud, tenant, period, at, new) in to_route {
        let Some(subscription) = routing.route(cloud, tenant, at) else {
            continue;
        };
        let partner = match partners.get(&subscription) {
            Some(known) => known.clone(),
            None => {
                let found: Option<Option<String>> = conn.query_opt(
                    "SELECT partner_id FROM subscriptions WHERE subscription_id = ?1",
                    params![subscription.to_string()],
                    |row| row.get(0),
                )?;
                let partner = found.flatten().map(|p| parse(&p)).transpose()?;
                partners.insert(subscription, partner.clone());
                partner
            }
        };
        let Some(partner) = partner else {
            continue;
        };
        if new && routing.default_subscription(cloud, at) == Some(subscription) {
            let data = json!({
                "cloudId": cloud.to_string(),
                "tenantId": tenant.to_string(),
                "period": period.to_string(),
                "subscriptionId": subscription.to_string(),
                "firstUsageAt": at.to_string(),
            });
            emit(conn, &partner, EventType::UsageUnmappedTenant, data, now)?;
        }
        if adjusted && finals.final_at(period, Some(&partner)).is_some() {
            let open = finals.next_open(period, Some(&partner));
            let mark = format!("adjusted:{subscription}:{open}:{period}");
            if mark_once(conn, &mark, now)? {
                let data = json!({
                    "subscriptionId": subscription.to_string(),
                    "period": open.to_string(),
                    "adjustedPeriod": period.to_string(),
                    "reason": "LateUsage",
                });
                emit(conn, &partner, EventType::InvoiceAdjusted, data, now)?;
            }
        }
    }
    Ok(())
}
