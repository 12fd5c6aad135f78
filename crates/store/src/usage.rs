//! The usage write path: a batch of validated records is accepted, recognised as a
//! duplicate, or refused as a conflict, in one transaction that is committed and synced
//! before anything is reported; and the hourly pre-aggregate is kept in step.

use std::collections::HashSet;

use rustc_hash::FxHashMap as HashMap;
use std::sync::{Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension};
use rust_decimal::Decimal;
use stackbill_core::meters::builtin_meter;
use stackbill_core::period::{hour_number, hour_start};
use stackbill_core::usage::{UsageContext, check_references};
use stackbill_core::{CloudId, MeterId, SubscriptionId, TenantId, UsageError, UsageRecord};

use crate::db::{Conn, micros, params, parse};
use crate::error::{Result, StoreError};
use crate::store::{Store, run_blocking};

/// What became of one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Stored now.
    Accepted,
    /// Stored before with the same content; nothing changed.
    Duplicate,
    /// Stored before with other content; the stored record stands.
    Conflict,
    /// Refused (unknown stack or meter); nothing changed.
    Rejected(UsageError),
}

/// The kinds of repeated values stored once in `usage_values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ValueKind {
    Cloud = 1,
    Tenant = 2,
    Subscription = 3,
    Meter = 4,
    InstanceData = 5,
}

/// Value ids by kind, keyed by the typed value so that a hit costs no formatting.
#[derive(Debug, Default)]
pub(crate) struct ValueIds {
    clouds: HashMap<CloudId, i64>,
    tenants: HashMap<TenantId, i64>,
    subscriptions: HashMap<SubscriptionId, i64>,
    meters: HashMap<MeterId, i64>,
    instance_data: HashMap<String, i64>,
}

impl ValueIds {
    fn len(&self) -> usize {
        self.clouds.len()
            + self.tenants.len()
            + self.subscriptions.len()
            + self.meters.len()
            + self.instance_data.len()
    }

    fn extend(&mut self, other: Self) {
        self.clouds.extend(other.clouds);
        self.tenants.extend(other.tenants);
        self.subscriptions.extend(other.subscriptions);
        self.meters.extend(other.meters);
        self.instance_data.extend(other.instance_data);
    }
}

/// Committed `usage_values` ids, so repeated values cost no query. Ids are never reused
/// or removed, so a committed entry stays true; entries made by a transaction join only
/// after it commits.
#[derive(Debug, Default)]
pub(crate) struct ValueCache {
    ids: ValueIds,
}

/// Entries beyond which the cache starts afresh (bounded memory on huge catalogs).
const MAX_CACHED_VALUES: usize = 1 << 20;

impl ValueCache {
    fn merge(&mut self, pending: ValueIds) {
        if self.ids.len() + pending.len() > MAX_CACHED_VALUES {
            self.ids = ValueIds::default();
        }
        self.ids.extend(pending);
    }
}

fn value_id(conn: &Conn<'_>, kind: ValueKind, value: &str) -> Result<i64> {
    let found: Option<i64> = conn.query_opt(
        "SELECT value_id FROM usage_values WHERE kind = ?1 AND value = ?2",
        params![kind as i64, value],
        |row| row.get(0),
    )?;
    match found {
        Some(id) => Ok(id),
        None => conn.query_one(
            "INSERT INTO usage_values (kind, value) VALUES (?1, ?2) RETURNING value_id",
            params![kind as i64, value],
            |row| row.get(0),
        ),
    }
}

/// Resolves values to ids inside one transaction: the committed cache, then this
/// transaction's own new ids, then the table.
pub(crate) struct Values<'c> {
    pub(crate) cache: std::sync::MutexGuard<'c, ValueCache>,
    pub(crate) pending: ValueIds,
}

macro_rules! typed_lookup {
    ($name:ident, $field:ident, $ty:ty, $kind:expr) => {
        pub(crate) fn $name(&mut self, conn: &Conn<'_>, value: $ty) -> Result<i64> {
            if let Some(&id) = self
                .cache
                .ids
                .$field
                .get(&value)
                .or_else(|| self.pending.$field.get(&value))
            {
                return Ok(id);
            }
            let id = value_id(conn, $kind, &value.to_string())?;
            self.pending.$field.insert(value, id);
            Ok(id)
        }
    };
}

impl Values<'_> {
    typed_lookup!(cloud, clouds, CloudId, ValueKind::Cloud);
    typed_lookup!(tenant, tenants, TenantId, ValueKind::Tenant);
    typed_lookup!(
        subscription,
        subscriptions,
        SubscriptionId,
        ValueKind::Subscription
    );
    typed_lookup!(meter, meters, MeterId, ValueKind::Meter);

    pub(crate) fn instance_data(&mut self, conn: &Conn<'_>, value: &str) -> Result<i64> {
        if let Some(&id) = self
            .cache
            .ids
            .instance_data
            .get(value)
            .or_else(|| self.pending.instance_data.get(value))
        {
            return Ok(id);
        }
        let id = value_id(conn, ValueKind::InstanceData, value)?;
        self.pending.instance_data.insert(value.to_owned(), id);
        Ok(id)
    }
}

/// The registry as one transaction sees it.
pub(crate) struct Registry {
    clouds: HashSet<CloudId>,
    meters: HashSet<MeterId>,
}

impl UsageContext for Registry {
    fn knows_stack(&self, cloud: CloudId) -> bool {
        self.clouds.contains(&cloud)
    }

    fn knows_meter(&self, meter: MeterId) -> bool {
        builtin_meter(meter).is_some() || self.meters.contains(&meter)
    }
}

pub(crate) fn load_registry(conn: &Conn<'_>) -> Result<Registry> {
    let mut clouds = HashSet::new();
    conn.query_each(
        "SELECT cloud_id FROM registrations WHERE deleted_at IS NULL",
        params![],
        |row| {
            clouds.insert(parse(&row.get::<String>(0)?)?);
            Ok(())
        },
    )?;
    let mut meters = HashSet::new();
    conn.query_each("SELECT meter_id FROM meters", params![], |row| {
        meters.insert(parse(&row.get::<String>(0)?)?);
        Ok(())
    })?;
    Ok(Registry { clouds, meters })
}

/// The first hours of the months finalized for anyone.
pub(crate) fn final_months(conn: &Conn<'_>) -> Result<HashSet<i64>> {
    let months = conn.query_map(
        "SELECT DISTINCT period FROM finalized_periods",
        params![],
        |row| {
            Ok(parse::<stackbill_core::Period>(&row.get::<String>(0)?)?
                .hours()
                .0)
        },
    )?;
    Ok(months.into_iter().collect())
}

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

pub(crate) type HourKey = (i64, i64, i64, i64);

/// A pre-aggregate kept in step with the accepted records.
#[derive(Clone, Copy)]
pub(crate) enum Sums {
    Hourly,
    Monthly,
}

impl Sums {
    /// The pre-aggregate's table and the column of its period (hour or month).
    pub(crate) fn table(self) -> (&'static str, &'static str) {
        match self {
            Self::Hourly => ("usage_hourly", "usage_hour"),
            Self::Monthly => ("usage_monthly", "month_hour"),
        }
    }

    fn statements(self) -> (&'static str, &'static str) {
        match self {
            Self::Hourly => (
                "SELECT quantity, records FROM usage_hourly
                 WHERE cloud_ref = ?1 AND tenant_ref = ?2 AND meter_ref = ?3 AND usage_hour = ?4",
                "INSERT INTO usage_hourly (cloud_ref, tenant_ref, meter_ref, usage_hour,
                 quantity, records)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (cloud_ref, tenant_ref, meter_ref, usage_hour)
                 DO UPDATE SET quantity = excluded.quantity, records = excluded.records",
            ),
            Self::Monthly => (
                "SELECT quantity, records FROM usage_monthly
                 WHERE cloud_ref = ?1 AND tenant_ref = ?2 AND meter_ref = ?3 AND month_hour = ?4",
                "INSERT INTO usage_monthly (cloud_ref, tenant_ref, meter_ref, month_hour,
                 quantity, records)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (month_hour, cloud_ref, tenant_ref, meter_ref)
                 DO UPDATE SET quantity = excluded.quantity, records = excluded.records",
            ),
        }
    }
}

/// Adds a batch's sums to a pre-aggregate, keyed (stack, tenant, meter, hour or month).
fn add_sums(conn: &Connection, table: Sums, sums: &HashMap<HourKey, (Decimal, i64)>) -> Result<()> {
    let (select, upsert) = table.statements();
    let mut select = conn.prepare_cached(select)?;
    let mut upsert = conn.prepare_cached(upsert)?;
    for (&(cloud, tenant, meter, at), &(quantity, records)) in sums {
        let existing: Option<(String, i64)> = select
            .query_row(rusqlite::params![cloud, tenant, meter, at], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        let (total, count) = match existing {
            Some((text, count)) => {
                let stored: Decimal = parse(&text)?;
                let total = stored
                    .checked_add(quantity)
                    .ok_or_else(|| StoreError::corrupt("a usage sum exceeds 28 digits"))?;
                (total, count + records)
            }
            None => (quantity, records),
        };
        upsert.execute(rusqlite::params![
            cloud,
            tenant,
            meter,
            at,
            total.normalize().to_string(),
            count
        ])?;
    }
    Ok(())
}

/// The first hour of the calendar month of an hour.
pub(crate) fn month_hour(hour: i64) -> Result<i64> {
    let start = hour_start(hour).map_err(StoreError::corrupt)?;
    Ok(stackbill_core::Period::containing(start).hours().0)
}

/// The month of each hour, remembered: a batch has few distinct hours and many records.
#[derive(Default)]
pub(crate) struct Months(HashMap<i64, i64>);

impl Months {
    pub(crate) fn of(&mut self, hour: i64) -> Result<i64> {
        if let Some(&month) = self.0.get(&hour) {
            return Ok(month);
        }
        let month = month_hour(hour)?;
        self.0.insert(hour, month);
        Ok(month)
    }
}

/// Folds hourly sums into monthly ones.
pub(crate) fn monthly(
    hourly: &HashMap<HourKey, (Decimal, i64)>,
    months: &mut Months,
) -> Result<HashMap<HourKey, (Decimal, i64)>> {
    let mut out: HashMap<HourKey, (Decimal, i64)> = HashMap::default();
    for (&(cloud, tenant, meter, hour), &(quantity, records)) in hourly {
        let month = months.of(hour)?;
        let sum = out
            .entry((cloud, tenant, meter, month))
            .or_insert((Decimal::ZERO, 0));
        sum.0 = sum
            .0
            .checked_add(quantity)
            .ok_or_else(|| StoreError::corrupt("a usage sum exceeds 28 digits"))?;
        sum.1 += records;
    }
    Ok(out)
}

/// A validated record as it is stored: its values by reference, its hour and its quantity.
/// Two records under one key are duplicates when these are equal (the quantity compared as a
/// value: `1.50` equals `1.5`), else conflicting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interned {
    pub(crate) cloud: i64,
    pub(crate) tenant: i64,
    pub(crate) subscription: i64,
    pub(crate) meter: i64,
    pub(crate) hour: i64,
    pub(crate) instance: Option<i64>,
    pub(crate) quantity: Decimal,
}

impl Interned {
    /// What becomes of this record when `stored` is already stored under its key.
    pub(crate) fn against(&self, stored: &Self) -> Disposition {
        if self == stored {
            Disposition::Duplicate
        } else {
            Disposition::Conflict
        }
    }
}

/// What one write transaction decides a batch against, loaded once per batch, and the
/// batch's accepted sums per (stack, tenant, meter, hour).
pub(crate) struct Batch<'c> {
    registry: Registry,
    final_months: HashSet<i64>,
    months: Months,
    values: Values<'c>,
    pub(crate) sums: HashMap<HourKey, (Decimal, i64)>,
}

impl<'c> Batch<'c> {
    /// Loads the registry and the final months; the value cache is held for the whole batch
    /// (batches are written one at a time anyway).
    pub(crate) fn load(conn: &Conn<'_>, cache: &'c Mutex<ValueCache>) -> Result<Self> {
        Ok(Self {
            registry: load_registry(conn)?,
            final_months: final_months(conn)?,
            months: Months::default(),
            values: Values {
                cache: cache.lock().unwrap_or_else(PoisonError::into_inner),
                pending: ValueIds::default(),
            },
            sums: HashMap::default(),
        })
    }

    /// The record by reference, or why it is refused (unknown stack or meter).
    pub(crate) fn intern(
        &mut self,
        conn: &Conn<'_>,
        record: &UsageRecord,
    ) -> Result<std::result::Result<Interned, UsageError>> {
        if let Err(err) = check_references(record, &self.registry) {
            return Ok(Err(err));
        }
        let values = &mut self.values;
        Ok(Ok(Interned {
            cloud: values.cloud(conn, record.cloud_id)?,
            tenant: values.tenant(conn, record.tenant_id)?,
            subscription: values.subscription(conn, record.subscription_id)?,
            meter: values.meter(conn, record.meter_id)?,
            hour: hour_number(record.usage_start),
            instance: record
                .instance_data
                .as_deref()
                .map(|data| values.instance_data(conn, data))
                .transpose()?,
            quantity: record.quantity.value(),
        }))
    }

    /// The first hour of the record's month when that month was already final (for anyone):
    /// the record is then noted in `usage_late`.
    pub(crate) fn late_month(&mut self, record: &Interned) -> Result<Option<i64>> {
        if self.final_months.is_empty() {
            return Ok(None);
        }
        let month = self.months.of(record.hour)?;
        Ok(self.final_months.contains(&month).then_some(month))
    }

    /// Counts an accepted record in the batch's sums.
    pub(crate) fn accept(&mut self, record: &Interned) -> Result<Disposition> {
        let sum = self
            .sums
            .entry((record.cloud, record.tenant, record.meter, record.hour))
            .or_insert((Decimal::ZERO, 0));
        sum.0 = sum
            .0
            .checked_add(record.quantity)
            .ok_or_else(|| StoreError::corrupt("an hourly usage sum exceeds 28 digits"))?;
        sum.1 += 1;
        Ok(Disposition::Accepted)
    }

    /// The batch's monthly sums.
    pub(crate) fn monthly_sums(&mut self) -> Result<HashMap<HourKey, (Decimal, i64)>> {
        monthly(&self.sums, &mut self.months)
    }

    /// One disposition per record, every one decided, and the value ids the batch made.
    pub(crate) fn finish(
        self,
        dispositions: Vec<Option<Disposition>>,
    ) -> Result<(Vec<Disposition>, ValueIds)> {
        let dispositions = dispositions
            .into_iter()
            .map(|d| d.ok_or_else(|| StoreError::corrupt("a record of the batch was not decided")))
            .collect::<Result<Vec<_>>>()?;
        Ok((dispositions, self.values.pending))
    }
}

/// The SQLite write path: record by record through the key index, in key order.
fn ingest_sqlite(
    tx: &Connection,
    now_micros: i64,
    cache: &Mutex<ValueCache>,
    records: &[UsageRecord],
) -> Result<(Vec<Disposition>, ValueIds)> {
    let conn = Conn::Sqlite(tx);
    let mut batch = Batch::load(&conn, cache)?;
    let mut late =
        tx.prepare_cached("INSERT INTO usage_late (month_hour, record_rowid) VALUES (?1, ?2)")?;
    let mut last_rowid = None;
    let mut insert = tx.prepare_cached(
        "INSERT INTO usage_records (cloud_ref, record_id, tenant_ref, subscription_ref, meter_ref,
            quantity, usage_hour, instance_ref, reported_at, accepted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (cloud_ref, record_id) DO NOTHING",
    )?;
    let mut existing = tx.prepare_cached(
        "SELECT tenant_ref, subscription_ref, meter_ref, quantity, usage_hour, instance_ref
         FROM usage_records WHERE cloud_ref = ?1 AND record_id = ?2",
    )?;
    let mut dispositions: Vec<Option<Disposition>> = vec![None; records.len()];
    let mut text = String::new();
    // Inserting in key order keeps the key index's cursor on neighbouring pages. The sort
    // is stable, so of two records with one key the earlier in the batch is stored first.
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by(|&a, &b| {
        (records[a].cloud_id, records[a].id.as_str())
            .cmp(&(records[b].cloud_id, records[b].id.as_str()))
    });
    for position in order {
        let record = &records[position];
        let interned = match batch.intern(&conn, record)? {
            Ok(interned) => interned,
            Err(err) => {
                dispositions[position] = Some(Disposition::Rejected(err));
                continue;
            }
        };
        text.clear();
        {
            use std::fmt::Write as _;
            let _ = write!(text, "{}", record.quantity);
        }
        let reported = record.reported_time.map_or(now_micros, micros);
        let inserted = insert.execute(rusqlite::params![
            interned.cloud,
            record.id.as_str(),
            interned.tenant,
            interned.subscription,
            interned.meter,
            text.as_str(),
            interned.hour,
            interned.instance,
            reported,
            now_micros
        ])?;
        dispositions[position] = Some(if inserted == 1 {
            let rowid = tx.last_insert_rowid();
            last_rowid = Some(rowid);
            if let Some(month) = batch.late_month(&interned)? {
                late.execute(rusqlite::params![month, rowid])?;
            }
            batch.accept(&interned)?
        } else {
            let (tenant, subscription, meter, quantity, hour, instance): (
                i64,
                i64,
                i64,
                String,
                i64,
                Option<i64>,
            ) = existing.query_row(
                rusqlite::params![interned.cloud, record.id.as_str()],
                |row| row.try_into(),
            )?;
            interned.against(&Interned {
                cloud: interned.cloud,
                tenant,
                subscription,
                meter,
                hour,
                instance,
                quantity: parse(&quantity)?,
            })
        });
    }
    if let Some(rowid) = last_rowid {
        tx.prepare_cached("INSERT INTO usage_batches (accepted_at, last_rowid) VALUES (?1, ?2)")?
            .execute(rusqlite::params![now_micros, rowid])?;
    }
    add_sums(tx, Sums::Monthly, &batch.monthly_sums()?)?;
    add_sums(tx, Sums::Hourly, &batch.sums)?;
    batch.finish(dispositions)
}

impl Store {
    /// Stores a batch of validated records in one transaction, committed and synced before
    /// it returns. The answer has one disposition per record, in order.
    pub async fn ingest(&self, records: Vec<UsageRecord>) -> Result<Vec<Disposition>> {
        Ok(self.ingest_returning(records).await?.1)
    }

    /// As [`Store::ingest`], handing the records back beside their dispositions, so that a
    /// caller reporting conflicts and rejections by id need not copy every id beforehand.
    pub async fn ingest_returning(
        &self,
        records: Vec<UsageRecord>,
    ) -> Result<(Vec<UsageRecord>, Vec<Disposition>)> {
        let store = self.clone();
        let (records, dispositions, pending) = self
            .write(move |tx, now| {
                let cache = store.value_cache();
                let (dispositions, pending) = match tx {
                    Conn::Sqlite(tx) => ingest_sqlite(tx, micros(now), cache, &records)?,
                    Conn::Postgres(pg) => {
                        crate::usage_postgres::ingest(tx, pg, micros(now), cache, &records)?
                    }
                };
                Ok((records, dispositions, pending))
            })
            .await?;
        // The cache is taken on a blocking thread, never on a runtime worker: a writer holds
        // it for a whole batch, and on PostgreSQL that writer waits on the driver's connection
        // task, which only the workers run. A worker blocked here would stall both for good.
        // Once the values are known (most batches), there is nothing to merge.
        if pending.len() > 0 {
            let store = self.clone();
            run_blocking(move || {
                store
                    .value_cache()
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .merge(pending);
                Ok(())
            })
            .await?;
        }
        Ok((records, dispositions))
    }
}

/// Whose usage an aggregate query sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageScope {
    /// Usage billed to a subscription, after routing.
    Subscription(SubscriptionId),
    /// Usage of one tenant, on every stack.
    Tenant(TenantId),
    /// Usage of one stack.
    Cloud(CloudId),
}

/// One meter's usage in one hour or day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageAggregate {
    /// The meter.
    pub meter_id: MeterId,
    /// The first hour of the bucket, in whole hours since the Unix epoch.
    pub start_hour: i64,
    /// The sum of accepted quantities.
    pub quantity: Decimal,
}

fn values_of_kind<T>(conn: &Conn<'_>, kind: ValueKind) -> Result<HashMap<i64, T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let mut values = HashMap::default();
    conn.query_each(
        "SELECT value_id, value FROM usage_values WHERE kind = ?1",
        params![kind as i64],
        |row| {
            values.insert(row.get::<i64>(0)?, parse(&row.get::<String>(1)?)?);
            Ok(())
        },
    )?;
    Ok(values)
}

/// The value behind a reference.
fn resolve<T: Copy>(values: &HashMap<i64, T>, reference: i64) -> Result<T> {
    values
        .get(&reference)
        .copied()
        .ok_or_else(|| StoreError::corrupt(format!("unknown value reference {reference}")))
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
            let mut sums: std::collections::BTreeMap<(i64, MeterId), Decimal> =
                std::collections::BTreeMap::new();
            conn.query_each(
                "SELECT cloud_ref, tenant_ref, meter_ref, usage_hour, quantity FROM usage_hourly
                 WHERE usage_hour >= ?1 AND usage_hour < ?2",
                params![from_hour, to_hour],
                |row| {
                    let (cloud_ref, tenant_ref, meter_ref, hour): (i64, i64, i64, i64) =
                        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
                    let wanted = match (scope, &routing) {
                        (UsageScope::Cloud(wanted), _) => {
                            resolve(&refs.clouds, cloud_ref)? == wanted
                        }
                        (UsageScope::Tenant(wanted), _) => {
                            resolve(&refs.tenants, tenant_ref)? == wanted
                        }
                        (UsageScope::Subscription(wanted), Some(routing)) => {
                            refs.route(routing, cloud_ref, tenant_ref, hour)? == Some(wanted)
                        }
                        (UsageScope::Subscription(_), None) => false,
                    };
                    if !wanted {
                        return Ok(());
                    }
                    let meter = resolve(&refs.meters, meter_ref)?;
                    let quantity: Decimal = row.get(4)?;
                    let bucket = hour - hour.rem_euclid(hours_per_bucket);
                    let sum = sums.entry((bucket, meter)).or_insert(Decimal::ZERO);
                    *sum = sum
                        .checked_add(quantity)
                        .ok_or_else(|| StoreError::corrupt("a usage sum exceeds 28 digits"))?;
                    Ok(())
                },
            )?;
            Ok(sums
                .into_iter()
                .map(|((start_hour, meter_id), quantity)| UsageAggregate {
                    meter_id,
                    start_hour,
                    quantity: quantity.normalize(),
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
        Some(meter) => match refs.meters.iter().find(|(_, m)| **m == meter) {
            Some((reference, _)) => Some(*reference),
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
            let cloud_id = resolve(&refs.clouds, row.get(0)?)?;
            let tenant_id = resolve(&refs.tenants, row.get(2)?)?;
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
                meter_id: resolve(&refs.meters, row.get(4)?)?,
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

/// Quantities routed to each subscription, per meter.
pub(crate) type PeriodUsage =
    std::collections::BTreeMap<SubscriptionId, std::collections::BTreeMap<MeterId, Decimal>>;

/// The typed values behind the references of usage rows.
pub(crate) struct Refs {
    clouds: HashMap<i64, CloudId>,
    tenants: HashMap<i64, TenantId>,
    meters: HashMap<i64, MeterId>,
}

impl Refs {
    pub(crate) fn load(conn: &Conn<'_>) -> Result<Self> {
        Ok(Self {
            clouds: values_of_kind(conn, ValueKind::Cloud)?,
            tenants: values_of_kind(conn, ValueKind::Tenant)?,
            meters: values_of_kind(conn, ValueKind::Meter)?,
        })
    }

    /// Routes the usage of a (stack, tenant) reference pair in one hour.
    fn route(
        &self,
        routing: &stackbill_core::routing::RoutingTable,
        cloud_ref: i64,
        tenant_ref: i64,
        hour: i64,
    ) -> Result<Option<SubscriptionId>> {
        let start = hour_start(hour).map_err(StoreError::corrupt)?;
        Ok(routing.route(
            resolve(&self.clouds, cloud_ref)?,
            resolve(&self.tenants, tenant_ref)?,
            start,
        ))
    }
}

/// One month's usage routed by one routing table: quantity and record count per subscription
/// and meter (the count tells a line of zero quantity from no line at all).
#[derive(Clone)]
pub(crate) struct PeriodTally {
    period: stackbill_core::Period,
    sums: std::collections::BTreeMap<
        SubscriptionId,
        std::collections::BTreeMap<MeterId, (Decimal, i64)>,
    >,
}

impl PeriodTally {
    fn add(
        &mut self,
        refs: &Refs,
        subscription: SubscriptionId,
        meter_ref: i64,
        quantity: Decimal,
        records: i64,
    ) -> Result<()> {
        let entry = self
            .sums
            .entry(subscription)
            .or_default()
            .entry(resolve(&refs.meters, meter_ref)?)
            .or_insert((Decimal::ZERO, 0));
        let change = if records < 0 { -quantity } else { quantity };
        entry.0 = entry
            .0
            .checked_add(change)
            .ok_or_else(|| StoreError::corrupt("a usage sum exceeds 28 digits"))?;
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
                            resolve(&refs.clouds, pair.0)?,
                            resolve(&refs.tenants, pair.1)?,
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
                let meters: std::collections::BTreeMap<MeterId, Decimal> = meters
                    .iter()
                    .filter(|(_, (_, records))| *records > 0)
                    .map(|(meter, (quantity, _))| (*meter, quantity.normalize()))
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

impl Store {
    /// The records billed to `subscription` (routed by today's registrations) whose reported
    /// time is in `[from, to)`. Reads every record: the Azure usage API selects by reported time,
    /// which no index follows.
    pub async fn records_reported_between(
        &self,
        subscription: SubscriptionId,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<UsageRecord>> {
        self.read(move |conn| {
            let routing = crate::directory::load_routing(conn, None)?;
            let filter = RecordFilter {
                routed_to: Some((subscription, &routing)),
                reported: Some((from.as_microsecond(), to.as_microsecond())),
                ..RecordFilter::default()
            };
            load_records(conn, 0, i64::MAX, &filter)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use std::sync::Arc;
    use std::sync::mpsc::{Sender, channel};
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    use rust_decimal::Decimal;
    use stackbill_core::{
        BillingModel, OfferType, Partner, Quantity, RateCardName, RecordId, Registration,
        Subscription,
    };

    use super::*;
    use crate::SystemClock;

    /// Says when the future it wakes can go on.
    struct Signal(Mutex<Sender<()>>);

    impl Wake for Signal {
        fn wake(self: Arc<Self>) {
            let _ = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .send(());
        }
    }

    fn record() -> UsageRecord {
        UsageRecord {
            id: RecordId::new("r1").unwrap(),
            cloud_id: "ca000000-0000-0000-0000-000000000001".parse().unwrap(),
            tenant_id: "70000000-0000-0000-0000-000000000001".parse().unwrap(),
            subscription_id: "50000000-0000-0000-0000-000000000001".parse().unwrap(),
            meter_id: "b4438d5d-453b-4ee1-b42a-dc72e377f1e4".parse().unwrap(),
            quantity: Quantity::parse("1").unwrap(),
            usage_start: "2025-06-01T00:00:00Z".parse().unwrap(),
            reported_time: None,
            instance_data: None,
        }
    }

    /// A store whose one stack is registered, so that a record of it is stored.
    async fn registered(store: &Store) {
        store
            .put_partner(Partner {
                id: "p1".parse().unwrap(),
                name: "p".into(),
            })
            .await
            .unwrap();
        let default: SubscriptionId = "d0000000-0000-0000-0000-000000000001".parse().unwrap();
        store
            .put_subscription(Subscription {
                id: default,
                offer_type: OfferType::Cspss,
                partner_id: Some("p1".parse().unwrap()),
                customer_tenant_id: None,
                display_name: String::new(),
                rate_card: RateCardName::default_card(),
                markup_percent: Decimal::ZERO,
            })
            .await
            .unwrap();
        store
            .put_registration(Registration {
                name: "stack1".parse().unwrap(),
                cloud_id: record().cloud_id,
                default_subscription: default,
                billing_model: BillingModel::PayAsYouUse,
            })
            .await
            .unwrap();
    }

    /// An ingestion whose transaction has committed (and made values the cache has not seen)
    /// goes on without waiting, on the thread that polls it, for the value cache that another
    /// writer holds. That writer may be
    /// waiting on the PostgreSQL driver, whose connection tasks only the runtime's workers
    /// run: a worker waiting for the cache would stall both.
    #[test]
    fn a_committed_batch_does_not_wait_for_the_value_cache_on_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db"), Arc::new(SystemClock)).unwrap();
        let holder = store.clone();
        let (woken, wakes) = channel();
        let (committed, is_committed) = channel();
        let (go, may_go) = channel::<()>();
        let (polled, was_polled) = channel();
        let poller = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(registered(&store));
            let _inside = runtime.enter();
            let waker = Waker::from(Arc::new(Signal(Mutex::new(woken))));
            let mut context = Context::from_waker(&waker);
            let mut ingest = Box::pin(store.ingest(vec![record()]));
            // The first poll hands the transaction to a blocking thread; the wake says it
            // has committed.
            assert!(ingest.as_mut().poll(&mut context).is_pending());
            wakes.recv().unwrap();
            committed.send(()).unwrap();
            may_go.recv().unwrap();
            let second = ingest.as_mut().poll(&mut context).is_pending();
            polled.send(second).unwrap();
            runtime.block_on(ingest).unwrap()
        });
        is_committed.recv().unwrap();
        let cache = holder
            .value_cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        go.send(()).unwrap();
        let second = was_polled.recv_timeout(Duration::from_secs(10));
        drop(cache);
        assert_eq!(
            second,
            Ok(true),
            "the poll after the commit came back, still pending, while the cache was held"
        );
        let dispositions = poller.join().unwrap();
        assert_eq!(dispositions, [Disposition::Accepted]);
    }
}
