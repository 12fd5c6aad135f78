//! The PostgreSQL write path for usage: set-based, a few round trips per batch whatever its
//! size. The batch's records go to a temporary table by binary `COPY`; one query finds the
//! keys already stored (duplicates and conflicts, compared by the database); one
//! `INSERT … SELECT … ON CONFLICT DO NOTHING` stores the rest; the pre-aggregates are
//! upserted from the batch's sums, computed here, in one statement each.
//!
//! Writers are serialized (`store_clock`), so nothing is stored between the key lookup and
//! the insert, and the record numbers (`rowid`) of a batch are all above those of every
//! batch committed before it.

use std::pin::pin;
use std::sync::{Mutex, PoisonError};

use rust_decimal::Decimal;
use rustc_hash::FxHashMap as HashMap;
use stackbill_core::UsageRecord;
use stackbill_core::period::hour_number;
use stackbill_core::usage::check_references;
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
    conn.batch(CREATE_INCOMING)?;
    copy_incoming(pg, now_micros, records, &staged)?;

    // Keys stored before this batch: duplicate when every field is the same value.
    conn.query_each(
        "SELECT i.pos,
                r.tenant_ref = i.tenant_ref AND r.subscription_ref = i.subscription_ref
                AND r.meter_ref = i.meter_ref AND r.quantity = i.quantity
                AND r.usage_hour = i.usage_hour
                AND r.instance_ref IS NOT DISTINCT FROM i.instance_ref
         FROM usage_incoming i JOIN usage_records r
           ON r.cloud_ref = i.cloud_ref AND r.record_id = i.record_id",
        params![],
        |row| {
            let position = usize::try_from(row.get::<i64>(0)?).map_err(StoreError::corrupt)?;
            let same: bool = row.get(1)?;
            dispositions[position] = Some(if same {
                Disposition::Duplicate
            } else {
                Disposition::Conflict
            });
            Ok(())
        },
    )?;

    // Every other key is new: the first record with it is stored, the later ones of the
    // batch are compared with it.
    let mut first: HashMap<(i64, &str), (usize, Refs)> = HashMap::default();
    let mut sums: HashMap<HourKey, (Decimal, i64)> = HashMap::default();
    for &(position, refs, _) in &staged {
        if dispositions[position].is_some() {
            continue;
        }
        let record = &records[position];
        match first.get(&(refs.cloud, record.id.as_str())) {
            Some(&(earlier, earlier_refs)) => {
                let same = earlier_refs == refs
                    && records[earlier].quantity.value() == record.quantity.value();
                dispositions[position] = Some(if same {
                    Disposition::Duplicate
                } else {
                    Disposition::Conflict
                });
            }
            None => {
                first.insert((refs.cloud, record.id.as_str()), (position, refs));
                let sum = sums
                    .entry((refs.cloud, refs.tenant, refs.meter, refs.hour))
                    .or_insert((Decimal::ZERO, 0));
                sum.0 = sum
                    .0
                    .checked_add(record.quantity.value())
                    .ok_or_else(|| StoreError::corrupt("an hourly usage sum exceeds 28 digits"))?;
                sum.1 += 1;
                dispositions[position] = Some(Disposition::Accepted);
            }
        }
    }
    if first.is_empty() {
        return finish(dispositions, values.pending);
    }
    let last_rowid: Option<i64> = conn.query_one(
        "WITH stored AS (
             INSERT INTO usage_records (cloud_ref, record_id, tenant_ref, subscription_ref,
                 meter_ref, quantity, usage_hour, instance_ref, reported_at, accepted_at)
             SELECT DISTINCT ON (cloud_ref, record_id) cloud_ref, record_id, tenant_ref,
                 subscription_ref, meter_ref, quantity, usage_hour, instance_ref, reported_at, ?1
             FROM usage_incoming ORDER BY cloud_ref, record_id, pos
             ON CONFLICT (cloud_ref, record_id) DO NOTHING
             RETURNING rowid)
         SELECT max(rowid) FROM stored",
        params![now_micros],
        |row| row.get(0),
    )?;
    let Some(last_rowid) = last_rowid else {
        return Err(StoreError::corrupt("a batch's new records were not stored"));
    };
    if staged.iter().any(|(_, _, late)| late.is_some()) {
        conn.execute(
            "INSERT INTO usage_late (month_hour, record_rowid)
             SELECT i.late_month, r.rowid FROM usage_incoming i JOIN usage_records r
               ON r.cloud_ref = i.cloud_ref AND r.record_id = i.record_id
             WHERE i.late_month IS NOT NULL AND r.accepted_at = ?1",
            params![now_micros],
        )?;
    }
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
fn copy_incoming(
    pg: &PgConn<'_>,
    now_micros: i64,
    records: &[UsageRecord],
    staged: &[(usize, Refs, Option<i64>)],
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
