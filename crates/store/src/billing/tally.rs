//! One month's usage routed to the subscriptions that pay for it: the monthly pre-aggregate
//! for tenants whose routing holds all month, the hourly one for the others, and the records
//! accepted after an instant taken off one by one.

use rustc_hash::FxHashMap as HashMap;
use stackbill_core::total::Total;
use stackbill_core::{MeterId, SubscriptionId};

use crate::db::{Conn, params};
use crate::error::{Result, StoreError};
use crate::usage::last_rowid_by;
use crate::values::Refs;

/// Quantities routed to each subscription, per meter.
pub(crate) type PeriodUsage =
    std::collections::BTreeMap<SubscriptionId, std::collections::BTreeMap<MeterId, Total>>;

/// One month's usage routed by one routing table: quantity and record count per subscription
/// and meter (the count tells a line of zero quantity from no line at all).
#[derive(Clone)]
pub(crate) struct PeriodTally {
    period: stackbill_core::Period,
    sums: std::collections::BTreeMap<
        SubscriptionId,
        std::collections::BTreeMap<MeterId, (Total, i64)>,
    >,
}

impl PeriodTally {
    fn add(
        &mut self,
        refs: &Refs,
        subscription: SubscriptionId,
        meter_ref: i64,
        quantity: Total,
        records: i64,
    ) -> Result<()> {
        let entry = self
            .sums
            .entry(subscription)
            .or_default()
            .entry(refs.meter(meter_ref)?)
            .or_insert((Total::ZERO, 0));
        let sum = if records < 0 {
            entry.0.checked_sub(quantity)
        } else {
            entry.0.checked_add(quantity)
        };
        entry.0 = sum.ok_or_else(StoreError::usage_sum_overflow)?;
        entry.1 += records;
        Ok(())
    }

    /// Every accepted record of `period`: from the monthly totals for tenants whose routing
    /// is the same all month, from the hourly ones for the others.
    pub(crate) fn all(
        conn: &Conn<'_>,
        refs: &Refs,
        period: stackbill_core::Period,
        routing: &stackbill_core::routing::RoutingTable,
    ) -> Result<Self> {
        let mut tally = Self {
            period,
            sums: std::collections::BTreeMap::new(),
        };
        let (from_hour, to_hour) = period.hours();
        let (start, end) = (period.start(), period.end());
        let mut spans: HashMap<(i64, i64), Option<Option<SubscriptionId>>> = HashMap::default();
        let mut varying: Vec<(i64, i64)> = Vec::new();
        conn.query_each(
            "SELECT cloud_ref, tenant_ref, meter_ref, quantity, records FROM usage_monthly
             WHERE month_hour = ?1",
            params![from_hour],
            |row| {
                let pair: (i64, i64) = (row.get(0)?, row.get(1)?);
                let span = match spans.get(&pair) {
                    Some(span) => *span,
                    None => {
                        let span = routing.route_span(
                            refs.cloud(pair.0)?,
                            refs.tenant(pair.1)?,
                            start,
                            end,
                        );
                        if span.is_none() {
                            varying.push(pair);
                        }
                        *spans.entry(pair).or_insert(span)
                    }
                };
                if let Some(Some(subscription)) = span {
                    tally.add(refs, subscription, row.get(2)?, row.get(3)?, row.get(4)?)?;
                }
                Ok(())
            },
        )?;
        // Tenants re-mapped inside the month: hour by hour.
        for (cloud_ref, tenant_ref) in varying {
            conn.query_each(
                "SELECT meter_ref, usage_hour, quantity, records FROM usage_hourly
                 WHERE cloud_ref = ?1 AND tenant_ref = ?2 AND usage_hour >= ?3 AND usage_hour < ?4",
                params![cloud_ref, tenant_ref, from_hour, to_hour],
                |row| {
                    if let Some(subscription) =
                        refs.route(routing, cloud_ref, tenant_ref, row.get(1)?)?
                    {
                        tally.add(refs, subscription, row.get(0)?, row.get(2)?, row.get(3)?)?;
                    }
                    Ok(())
                },
            )?;
        }
        Ok(tally)
    }

    /// Takes off, one by one, the records accepted after `after` (and by `until`, when
    /// given), routed the same way. They are found through `usage_late` when the month was
    /// already final at `after`, else by their rowids.
    pub(crate) fn remove_accepted(
        &mut self,
        conn: &Conn<'_>,
        refs: &Refs,
        routing: &stackbill_core::routing::RoutingTable,
        after: i64,
        until: Option<i64>,
    ) -> Result<()> {
        let (from_hour, to_hour) = self.period.hours();
        let first = last_rowid_by(conn, after)?;
        let last = match until {
            Some(until) => last_rowid_by(conn, until)?,
            None => i64::MAX,
        };
        let final_by_then = conn.exists(
            "SELECT 1 FROM finalized_periods WHERE period = ?1 AND finalized_at <= ?2 LIMIT 1",
            params![self.period.to_string(), after],
        )?;
        let mut remove = |row: &crate::db::Row<'_>| {
            if let Some(subscription) =
                refs.route(routing, row.get(0)?, row.get(1)?, row.get(3)?)?
            {
                self.add(refs, subscription, row.get(2)?, row.get(4)?, -1)?;
            }
            Ok(())
        };
        if final_by_then {
            conn.query_each(
                "SELECT r.cloud_ref, r.tenant_ref, r.meter_ref, r.usage_hour, r.quantity
                 FROM usage_late l JOIN usage_records r ON r.rowid = l.record_rowid
                 WHERE l.month_hour = ?1 AND l.record_rowid > ?2 AND l.record_rowid <= ?3",
                params![from_hour, first, last],
                &mut remove,
            )
        } else {
            conn.query_each(
                "SELECT cloud_ref, tenant_ref, meter_ref, usage_hour, quantity FROM usage_records
                 WHERE rowid > ?3 AND rowid <= ?4 AND usage_hour >= ?1 AND usage_hour < ?2",
                params![from_hour, to_hour, first, last],
                &mut remove,
            )
        }
    }

    /// The quantities of the (subscription, meter) pairs that still have records.
    pub(crate) fn quantities(&self) -> PeriodUsage {
        self.sums
            .iter()
            .map(|(subscription, meters)| {
                let meters: std::collections::BTreeMap<MeterId, Total> = meters
                    .iter()
                    .filter(|(_, (_, records))| *records > 0)
                    .map(|(meter, (quantity, _))| (*meter, *quantity))
                    .collect();
                (*subscription, meters)
            })
            .filter(|(_, meters)| !meters.is_empty())
            .collect()
    }
}

/// Quantities of `period` routed to each subscription by `routing`, per meter, counting the
/// records accepted by `accepted_by` (`None`: all).
pub(crate) fn routed_period_usage(
    conn: &Conn<'_>,
    period: stackbill_core::Period,
    routing: &stackbill_core::routing::RoutingTable,
    accepted_by: Option<i64>,
) -> Result<PeriodUsage> {
    let refs = Refs::load(conn)?;
    let mut tally = PeriodTally::all(conn, &refs, period, routing)?;
    if let Some(accepted_by) = accepted_by {
        tally.remove_accepted(conn, &refs, routing, accepted_by, None)?;
    }
    Ok(tally.quantities())
}
