//! The PostgreSQL write path for usage: set-based, a few round trips per batch whatever its
//! size. The first record of each key of the batch goes to a temporary table by binary
//! `COPY`, in key order; one `INSERT … SELECT … ON CONFLICT DO NOTHING` stores the new keys and
//! says how many; only when some keys were stored before are those records read back, to
//! tell duplicates from conflicts (compared on the interned references and the decimal
//! value). The pre-aggregates are upserted from the batch's sums, computed here, in one
//! statement each.
//!
//! Writers are serialized (`store_clock`), so nothing is stored between the insert and the
//! read-back, and the record numbers (`rowid`) of a batch are all above those of every batch
//! committed before it.

use std::pin::pin;
use std::sync::{Mutex, PoisonError};

use rust_decimal::Decimal;
use rustc_hash::FxHashMap as HashMap;
use stackbill_core::UsageRecord;
use stackbill_core::period::hour_number;
use stackbill_core::usage::check_references;
use std::collections::hash_map::Entry;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use crate::db::{Conn, PgConn, params};
use crate::directory::micros;
use crate::error::{Result, StoreError};
use crate::usage::{
    Disposition, HourKey, Months, ValueCache, ValueIds, Values, final_months, load_registry,
    monthly,
};

/// The batch's staging table, one per connection, emptied at every commit.
const CREATE_INCOMING: &str = r#"CREATE TEMP TABLE IF NOT EXISTS usage_incoming (
    pos BIGINT NOT NULL,
    cloud_ref BIGINT NOT NULL,
    record_id TEXT COLLATE "C" NOT NULL,
    tenant_ref BIGINT NOT NULL,
    subscription_ref BIGINT NOT NULL,
    meter_ref BIGINT NOT NULL,
    quantity NUMERIC NOT NULL,
    usage_hour BIGINT NOT NULL,
    instance_ref BIGINT,
    reported_at BIGINT NOT NULL,
    late_month BIGINT
) ON COMMIT DELETE ROWS"#;

const COPY_INCOMING: &str = "COPY usage_incoming (pos, cloud_ref, record_id, tenant_ref, \
    subscription_ref, meter_ref, quantity, usage_hour, instance_ref, reported_at, late_month) \
    FROM STDIN (FORMAT binary)";

const INCOMING_TYPES: &[Type] = &[
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::NUMERIC,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
];

/// One record of the batch, by reference: what is staged and compared.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Refs {
    cloud: i64,
    tenant: i64,
    subscription: i64,
    meter: i64,
    hour: i64,
    instance: Option<i64>,
}

/// Stores the staged records whose key is new; answers how many it stored and the last
/// record number.
const INSERT_NEW: &str = "WITH stored AS (
        INSERT INTO usage_records (cloud_ref, record_id, tenant_ref, subscription_ref,
            meter_ref, quantity, usage_hour, instance_ref, reported_at, accepted_at)
        SELECT cloud_ref, record_id, tenant_ref, subscription_ref, meter_ref, quantity,
            usage_hour, instance_ref, reported_at, ?1
        FROM usage_incoming
        ON CONFLICT (cloud_ref, record_id) DO NOTHING
        RETURNING rowid)
    SELECT count(*), max(rowid) FROM stored";

/// As [`INSERT_NEW`], also noting the new records of final months in `usage_late`.
const INSERT_NEW_AND_LATE: &str = "WITH stored AS (
        INSERT INTO usage_records (cloud_ref, record_id, tenant_ref, subscription_ref,
            meter_ref, quantity, usage_hour, instance_ref, reported_at, accepted_at)
        SELECT cloud_ref, record_id, tenant_ref, subscription_ref, meter_ref, quantity,
            usage_hour, instance_ref, reported_at, ?1
        FROM usage_incoming
        ON CONFLICT (cloud_ref, record_id) DO NOTHING
        RETURNING rowid, cloud_ref, record_id),
    late AS (
        INSERT INTO usage_late (month_hour, record_rowid)
        SELECT i.late_month, s.rowid FROM stored s JOIN usage_incoming i
          ON i.cloud_ref = s.cloud_ref AND i.record_id = s.record_id
        WHERE i.late_month IS NOT NULL)
    SELECT count(*), max(rowid) FROM stored";

/// The records stored before this batch (accepted before `now_micros`) under the staged
/// keys: references and quantity, by the staged position of the key.
fn stored_before(conn: &Conn<'_>, now_micros: i64) -> Result<HashMap<i64, (Refs, Decimal)>> {
    let mut stored = HashMap::default();
    conn.query_each(
        "SELECT i.pos, r.cloud_ref, r.tenant_ref, r.subscription_ref, r.meter_ref,
                r.usage_hour, r.instance_ref, r.quantity
         FROM usage_incoming i JOIN usage_records r
           ON r.cloud_ref = i.cloud_ref AND r.record_id = i.record_id
         WHERE r.accepted_at <> ?1",
        params![now_micros],
        |row| {
            let refs = Refs {
                cloud: row.get(1)?,
                tenant: row.get(2)?,
                subscription: row.get(3)?,
                meter: row.get(4)?,
                hour: row.get(5)?,
                instance: row.get(6)?,
            };
            stored.insert(row.get::<i64>(0)?, (refs, row.get(7)?));
            Ok(())
        },
    )?;
    Ok(stored)
}

/// Stores a batch inside the caller's write transaction on `conn` (whose PostgreSQL side is
/// `pg`). The answer has one disposition per record, in order, and the value ids the
/// transaction made.
pub(crate) fn ingest(
    conn: &Conn<'_>,
    pg: &PgConn<'_>,
    now_micros: i64,
    cache: &Mutex<ValueCache>,
    records: &[UsageRecord],
) -> Result<(Vec<Disposition>, ValueIds)> {
    let registry = load_registry(conn)?;
    let final_months = final_months(conn)?;
    let mut months = Months::default();
    let mut values = Values {
        cache: cache.lock().unwrap_or_else(PoisonError::into_inner),
        pending: ValueIds::default(),
    };
    let mut dispositions: Vec<Option<Disposition>> = vec![None; records.len()];
    // The records to stage, with their references.
    let mut staged: Vec<(usize, Refs, Option<i64>)> = Vec::with_capacity(records.len());
    for (position, record) in records.iter().enumerate() {
        if let Err(err) = check_references(record, &registry) {
            dispositions[position] = Some(Disposition::Rejected(err));
            continue;
        }
        let hour = hour_number(record.usage_start);
        let refs = Refs {
            cloud: values.cloud(conn, record.cloud_id)?,
            tenant: values.tenant(conn, record.tenant_id)?,
            subscription: values.subscription(conn, record.subscription_id)?,
            meter: values.meter(conn, record.meter_id)?,
            hour,
            instance: record
                .instance_data
                .as_deref()
                .map(|data| values.instance_data(conn, data))
                .transpose()?,
        };
        let late_month = if final_months.is_empty() {
            None
        } else {
            Some(months.of(hour)?).filter(|month| final_months.contains(month))
        };
        staged.push((position, refs, late_month));
    }
    if staged.is_empty() {
        return finish(dispositions, values.pending);
    }
    // The first record of each key goes to the database, in key order (neighbouring index
    // pages); the later ones of the batch are decided here once the first is.
    let mut first: HashMap<(i64, &str), usize> = HashMap::default();
    let mut candidates: Vec<usize> = Vec::with_capacity(staged.len());
    for (index, &(position, refs, _)) in staged.iter().enumerate() {
        if let Entry::Vacant(vacant) = first.entry((refs.cloud, records[position].id.as_str())) {
            vacant.insert(index);
            candidates.push(index);
        }
    }
    candidates.sort_by(|&a, &b| {
        let (pa, ra, _) = staged[a];
        let (pb, rb, _) = staged[b];
        (ra.cloud, records[pa].id.as_str()).cmp(&(rb.cloud, records[pb].id.as_str()))
    });
    conn.batch(CREATE_INCOMING)?;
    copy_incoming(
        pg,
        now_micros,
        records,
        candidates.iter().map(|&c| &staged[c]),
    )?;

    // Insert the new keys. When some keys were stored before, their records are read back
    // (the rows not accepted by this transaction) to be compared.
    let any_late = staged.iter().any(|(_, _, late)| late.is_some());
    let (inserted, last_rowid): (i64, Option<i64>) = conn.query_one(
        if any_late {
            INSERT_NEW_AND_LATE
        } else {
            INSERT_NEW
        },
        params![now_micros],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let stored = if usize::try_from(inserted).ok() == Some(candidates.len()) {
        HashMap::default()
    } else {
        stored_before(conn, now_micros)?
    };

    // Decide every staged record: the first of a new key is accepted; any other is compared
    // with the stored record of its key (stored before, or by this batch).
    let mut sums: HashMap<HourKey, (Decimal, i64)> = HashMap::default();
    let mut accepted = 0usize;
    for &(position, refs, _) in &staged {
        let record = &records[position];
        let (earliest, earliest_refs, _) = first
            .get(&(refs.cloud, record.id.as_str()))
            .map(|&index| staged[index])
            .ok_or_else(|| StoreError::corrupt("a staged key has no first record"))?;
        let reference = match stored.get(&(earliest as i64)) {
            Some(&(stored_refs, quantity)) => Some((stored_refs, quantity)),
            None if earliest == position => None,
            None => Some((earliest_refs, records[earliest].quantity.value())),
        };
        dispositions[position] = Some(match reference {
            None => {
                let sum = sums
                    .entry((refs.cloud, refs.tenant, refs.meter, refs.hour))
                    .or_insert((Decimal::ZERO, 0));
                sum.0 = sum
                    .0
                    .checked_add(record.quantity.value())
                    .ok_or_else(|| StoreError::corrupt("an hourly usage sum exceeds 28 digits"))?;
                sum.1 += 1;
                accepted += 1;
                Disposition::Accepted
            }
            Some((other, quantity)) if other == refs && quantity == record.quantity.value() => {
                Disposition::Duplicate
            }
            Some(_) => Disposition::Conflict,
        });
    }
    if accepted == 0 {
        return finish(dispositions, values.pending);
    }
    let Some(last_rowid) = last_rowid else {
        return Err(StoreError::corrupt("a batch's new records were not stored"));
    };
    conn.execute(
        "INSERT INTO usage_batches (accepted_at, last_rowid) VALUES (?1, ?2)",
        params![now_micros, last_rowid],
    )?;
    add_sums(
        pg,
        "usage_monthly",
        "month_hour",
        &monthly(&sums, &mut months)?,
    )?;
    add_sums(pg, "usage_hourly", "usage_hour", &sums)?;
    finish(dispositions, values.pending)
}

fn finish(
    dispositions: Vec<Option<Disposition>>,
    pending: ValueIds,
) -> Result<(Vec<Disposition>, ValueIds)> {
    let dispositions = dispositions
        .into_iter()
        .map(|d| d.ok_or_else(|| StoreError::corrupt("a record of the batch was not decided")))
        .collect::<Result<Vec<_>>>()?;
    Ok((dispositions, pending))
}

/// Copies the staged records into `usage_incoming`, in binary.
fn copy_incoming<'s>(
    pg: &PgConn<'_>,
    now_micros: i64,
    records: &[UsageRecord],
    staged: impl Iterator<Item = &'s (usize, Refs, Option<i64>)>,
) -> Result<()> {
    pg.block_on(async {
        let sink = pg.client.copy_in(COPY_INCOMING).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, INCOMING_TYPES));
        for &(position, refs, late_month) in staged {
            let record = &records[position];
            let reported = record.reported_time.map_or(now_micros, micros);
            let quantity = record.quantity.value();
            let row: [&(dyn ToSql + Sync); 11] = [
                &(position as i64),
                &refs.cloud,
                &record.id.as_str(),
                &refs.tenant,
                &refs.subscription,
                &refs.meter,
                &quantity,
                &refs.hour,
                &refs.instance,
                &reported,
                &late_month,
            ];
            writer.as_mut().write(&row).await?;
        }
        writer.finish().await?;
        Ok(())
    })
}

/// Adds a batch's sums to a pre-aggregate keyed (stack, tenant, meter, `period` column).
fn add_sums(
    pg: &PgConn<'_>,
    table: &str,
    period: &str,
    sums: &HashMap<HourKey, (Decimal, i64)>,
) -> Result<()> {
    let mut columns: [Vec<i64>; 5] = Default::default();
    let mut quantities: Vec<Decimal> = Vec::with_capacity(sums.len());
    for (&(cloud, tenant, meter, at), &(quantity, records)) in sums {
        for (column, value) in columns.iter_mut().zip([cloud, tenant, meter, at, records]) {
            column.push(value);
        }
        quantities.push(quantity);
    }
    let sql = format!(
        "INSERT INTO {table} (cloud_ref, tenant_ref, meter_ref, {period}, quantity, records)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::numeric[], $6::bigint[])
         ON CONFLICT (cloud_ref, tenant_ref, meter_ref, {period}) DO UPDATE
         SET quantity = {table}.quantity + excluded.quantity, records = {table}.records + excluded.records"
    );
    let [clouds, tenants, meters, periods, counts] = &columns;
    pg.block_on(async {
        let statement = pg.client.prepare_cached(&sql).await?;
        pg.client
            .execute(
                &statement,
                &[clouds, tenants, meters, periods, &quantities, counts],
            )
            .await
    })?;
    Ok(())
}
