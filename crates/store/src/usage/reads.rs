//! Reads of stored usage: aggregates per meter and hour or day, and the raw records.

use rust_decimal::Decimal;
use rustc_hash::FxHashMap as HashMap;
use stackbill_core::period::hour_start;
use stackbill_core::routing::Span;
use stackbill_core::total::Total;
use stackbill_core::{CloudId, MeterId, SubscriptionId, TenantId, UsageRecord};

use crate::db::{Conn, params};
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::values::{Refs, ValueKind, resolve, values_of_kind};

/// The last record rowid committed by `at` (0 when none was).
pub(crate) fn last_rowid_by(conn: &Conn<'_>, at: i64) -> Result<i64> {
    Ok(conn
        .query_one(
            "SELECT max(last_rowid) FROM usage_batches WHERE accepted_at <= ?1",
            params![at],
            |row| row.get::<Option<i64>>(0),
        )?
        .unwrap_or(0))
}

/// Whose usage an aggregate query sums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageScope {
    /// Usage billed to a subscription, after routing.
    Subscription(SubscriptionId),
    /// Usage of one tenant, on every stack.
    Tenant(TenantId),
    /// Usage of one stack.
    Cloud(CloudId),
    /// Usage of one stack that starts within some of its registrations' spans (those of one
    /// partner: it sees its own registrations' usage, not its predecessors').
    CloudWithin(CloudId, Vec<Span>),
}

/// One meter's usage in one hour or day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageAggregate {
    /// The meter.
    pub meter_id: MeterId,
    /// The first hour of the bucket, in whole hours since the Unix epoch.
    pub start_hour: i64,
    /// The sum of accepted quantities.
    pub quantity: Total,
}

impl Store {
    /// Sums accepted usage per meter and hour (or day, with `hours_per_bucket` 24) over
    /// `[from_hour, to_hour)`, for one scope, in bucket then meter order.
    pub async fn usage_aggregates(
        &self,
        scope: UsageScope,
        from_hour: i64,
        to_hour: i64,
        hours_per_bucket: i64,
    ) -> Result<Vec<UsageAggregate>> {
        let routing = match scope {
            UsageScope::Subscription(_) => Some(self.routing_table().await?),
            _ => None,
        };
        self.read(move |conn| {
            let refs = Refs::load(conn)?;
            let mut sums: std::collections::BTreeMap<(i64, MeterId), Total> =
                std::collections::BTreeMap::new();
            conn.query_each(
                "SELECT cloud_ref, tenant_ref, meter_ref, usage_hour, quantity FROM usage_hourly
                 WHERE usage_hour >= ?1 AND usage_hour < ?2",
                params![from_hour, to_hour],
                |row| {
                    let (cloud_ref, tenant_ref, meter_ref, hour): (i64, i64, i64, i64) =
                        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
                    let wanted = match (&scope, &routing) {
                        (UsageScope::Cloud(wanted), _) => refs.cloud(cloud_ref)? == *wanted,
                        (UsageScope::CloudWithin(wanted, spans), _) => {
                            refs.cloud(cloud_ref)? == *wanted && {
                                let start = hour_start(hour).map_err(StoreError::corrupt)?;
                                spans.iter().any(|span| span.contains(start))
                            }
                        }
                        (UsageScope::Tenant(wanted), _) => refs.tenant(tenant_ref)? == *wanted,
                        (UsageScope::Subscription(wanted), Some(routing)) => {
                            refs.route(routing, cloud_ref, tenant_ref, hour)? == Some(*wanted)
                        }
                        (UsageScope::Subscription(_), None) => false,
                    };
                    if !wanted {
                        return Ok(());
                    }
                    let meter = refs.meter(meter_ref)?;
                    let quantity: Total = row.get(4)?;
                    let bucket = hour - hour.rem_euclid(hours_per_bucket);
                    let sum = sums.entry((bucket, meter)).or_insert(Total::ZERO);
                    *sum =
                        (sum.checked_add(quantity)).ok_or_else(StoreError::usage_sum_overflow)?;
                    Ok(())
                },
            )?;
            Ok(sums
                .into_iter()
                .map(|((start_hour, meter_id), quantity)| UsageAggregate {
                    meter_id,
                    start_hour,
                    quantity,
                })
                .collect())
        })
        .await
    }
}

/// Which stored records to list.
#[derive(Default)]
pub(crate) struct RecordFilter<'a> {
    /// Only this meter's.
    pub(crate) meter: Option<MeterId>,
    /// Only those routed to this subscription by this table.
    pub(crate) routed_to: Option<(SubscriptionId, &'a stackbill_core::routing::RoutingTable)>,
    /// Only those accepted by this instant (microseconds).
    pub(crate) accepted_by: Option<i64>,
    /// Only those reported in `[from, to)` (microseconds).
    pub(crate) reported: Option<(i64, i64)>,
}

/// The stored records whose usage hour is in `[from_hour, to_hour)` and that pass `filter`,
/// by stack and id, as they were stored (reported time included).
pub(crate) fn load_records(
    conn: &Conn<'_>,
    from_hour: i64,
    to_hour: i64,
    filter: &RecordFilter<'_>,
) -> Result<Vec<UsageRecord>> {
    let refs = Refs::load(conn)?;
    let subscriptions: HashMap<i64, SubscriptionId> =
        values_of_kind(conn, ValueKind::Subscription)?;
    let meter_ref = match filter.meter {
        Some(meter) => match refs.meter_ref(meter) {
            Some(reference) => Some(reference),
            None => return Ok(Vec::new()),
        },
        None => None,
    };
    let (reported_from, reported_to) = filter.reported.unzip();
    let mut records = Vec::new();
    conn.query_each(
        "SELECT r.cloud_ref, r.record_id, r.tenant_ref, r.subscription_ref, r.meter_ref,
                r.quantity, r.usage_hour, v.value, r.reported_at
         FROM usage_records r LEFT JOIN usage_values v ON v.value_id = r.instance_ref
         WHERE r.usage_hour >= ?1 AND r.usage_hour < ?2
           AND (CAST(?3 AS BIGINT) IS NULL OR r.meter_ref = ?3)
           AND (CAST(?4 AS BIGINT) IS NULL OR r.accepted_at <= ?4)
           AND (CAST(?5 AS BIGINT) IS NULL OR r.reported_at >= ?5)
           AND (CAST(?6 AS BIGINT) IS NULL OR r.reported_at < ?6)",
        params![
            from_hour,
            to_hour,
            meter_ref,
            filter.accepted_by,
            reported_from,
            reported_to
        ],
        |row| {
            let hour: i64 = row.get(6)?;
            let usage_start = hour_start(hour).map_err(StoreError::corrupt)?;
            let cloud_id = refs.cloud(row.get(0)?)?;
            let tenant_id = refs.tenant(row.get(2)?)?;
            if let Some((subscription, routing)) = filter.routed_to
                && routing.route(cloud_id, tenant_id, usage_start) != Some(subscription)
            {
                return Ok(());
            }
            records.push(UsageRecord {
                cloud_id,
                id: stackbill_core::RecordId::new(&row.get::<String>(1)?)
                    .map_err(StoreError::corrupt)?,
                tenant_id,
                subscription_id: resolve(&subscriptions, row.get(3)?)?,
                meter_id: refs.meter(row.get(4)?)?,
                quantity: stackbill_core::Quantity::parse(&row.get::<Decimal>(5)?.to_string())
                    .map_err(StoreError::corrupt)?,
                usage_start,
                reported_time: Some(crate::db::instant(row.get(8)?)?),
                instance_data: row.get(7)?,
            });
            Ok(())
        },
    )?;
    records.sort_by(|a, b| (a.cloud_id, &a.id).cmp(&(b.cloud_id, &b.id)));
    Ok(records)
}

impl Store {
    /// The accepted records whose usage hour is in `[from_hour, to_hour)`, by stack and id,
    /// as they were stored (reported time included).
    pub async fn usage_records(&self, from_hour: i64, to_hour: i64) -> Result<Vec<UsageRecord>> {
        self.read(move |conn| load_records(conn, from_hour, to_hour, &RecordFilter::default()))
            .await
    }
}

impl Store {
    /// The usage billed to `subscription` (routed by today's registrations) whose reported
    /// time is in `[from, to)`, summed per usage bucket of `bucket_hours` (its first hour),
    /// meter and, with `details`, instance data. The rows are summed as they are read, so
    /// memory follows the number of sums, not of records; the Azure usage API selects by
    /// reported time, which no index follows, so every record is read.
    pub async fn reported_usage(
        &self,
        subscription: SubscriptionId,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
        bucket_hours: i64,
        details: bool,
    ) -> Result<ReportedUsage> {
        self.read(move |conn| {
            let routing = crate::directory::load_routing(conn, None)?;
            let refs = Refs::load(conn)?;
            let mut sums = ReportedUsage::new();
            conn.query_each(
                "SELECT r.cloud_ref, r.tenant_ref, r.meter_ref, r.quantity, r.usage_hour,
                        CASE WHEN CAST(?3 AS BIGINT) = 1 THEN v.value END
                 FROM usage_records r LEFT JOIN usage_values v ON v.value_id = r.instance_ref
                 WHERE r.reported_at >= ?1 AND r.reported_at < ?2",
                params![
                    from.as_microsecond(),
                    to.as_microsecond(),
                    i64::from(details)
                ],
                |row| {
                    let hour: i64 = row.get(4)?;
                    let usage_start = hour_start(hour).map_err(StoreError::corrupt)?;
                    let (cloud, tenant) = (refs.cloud(row.get(0)?)?, refs.tenant(row.get(1)?)?);
                    if routing.route(cloud, tenant, usage_start) != Some(subscription) {
                        return Ok(());
                    }
                    let bucket = hour - hour.rem_euclid(bucket_hours);
                    let key = (
                        bucket,
                        refs.meter(row.get(2)?)?,
                        row.get::<Option<String>>(5)?,
                    );
                    let quantity: Total = row.get(3)?;
                    let sum = sums.entry(key).or_insert(Total::ZERO);
                    *sum =
                        (sum.checked_add(quantity)).ok_or_else(StoreError::usage_sum_overflow)?;
                    Ok(())
                },
            )?;
            Ok(sums)
        })
        .await
    }
}

/// Usage sums by (first hour of the bucket, meter, instance data when asked for).
pub type ReportedUsage = std::collections::BTreeMap<(i64, MeterId, Option<String>), Total>;
