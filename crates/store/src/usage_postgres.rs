//! The PostgreSQL write path for usage: set-based, a few round trips per batch whatever its
//! size. One statement probes the key index for every distinct key of the batch and brings
//! back the records already stored under them (duplicates or conflicts, compared here on the
//! interned references and the decimal value); the new records, the first of each key, are
//! copied straight into `usage_records` with binary `COPY`, in key order. The pre-aggregates
//! are upserted from the batch's sums, computed here, in one statement each.
//!
//! Writers are serialized (`store_clock`), so nothing is stored between the probe and the
//! copy, and the record numbers (`rowid`) of a batch are all above those of every batch
//! committed before it. The primary key `(cloud_ref, record_id)` stays the last word: were
//! a key ever stored twice, the copy would fail and the batch with it, never count twice.

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

const COPY_RECORDS: &str = "COPY usage_records (cloud_ref, record_id, tenant_ref, \
    subscription_ref, meter_ref, quantity, usage_hour, instance_ref, reported_at, accepted_at) \
    FROM STDIN (FORMAT binary)";

const RECORD_TYPES: &[Type] = &[
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

/// The keys, record ids and `extra` values of the staged records at `indexes`, as arrays.
fn key_arrays<'r>(
    records: &'r [UsageRecord],
    staged: &[(usize, Refs, Option<i64>)],
    indexes: &[usize],
    extra: impl Fn(&(usize, Refs, Option<i64>)) -> i64,
) -> (Vec<i64>, Vec<&'r str>, Vec<i64>) {
    let mut clouds = Vec::with_capacity(indexes.len());
    let mut ids = Vec::with_capacity(indexes.len());
    let mut extras = Vec::with_capacity(indexes.len());
    for &index in indexes {
        let entry = &staged[index];
        clouds.push(entry.1.cloud);
        ids.push(records[entry.0].id.as_str());
        extras.push(extra(entry));
    }
    (clouds, ids, extras)
}

/// The records already stored under the keys of the candidates (references and quantity),
/// by the batch position of the candidate: one index probe per key, in one statement.
fn stored_before(
    pg: &PgConn<'_>,
    records: &[UsageRecord],
    staged: &[(usize, Refs, Option<i64>)],
    candidates: &[usize],
) -> Result<HashMap<i64, (Refs, Decimal)>> {
    let (clouds, ids, positions) = key_arrays(records, staged, candidates, |entry| entry.0 as i64);
    let rows = pg.query(
        r#"SELECT k.pos, r.cloud_ref, r.tenant_ref, r.subscription_ref, r.meter_ref,
                  r.usage_hour, r.instance_ref, r.quantity
           FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS k (cloud_ref, record_id, pos)
           JOIN usage_records r
             ON r.cloud_ref = k.cloud_ref AND r.record_id = k.record_id COLLATE "C""#,
        &[&clouds, &ids, &positions],
    )?;
    let mut stored = HashMap::default();
    for row in rows {
        let refs = Refs {
            cloud: row.try_get(1)?,
            tenant: row.try_get(2)?,
            subscription: row.try_get(3)?,
            meter: row.try_get(4)?,
            hour: row.try_get(5)?,
            instance: row.try_get(6)?,
        };
        stored.insert(row.try_get::<_, i64>(0)?, (refs, row.try_get(7)?));
    }
    Ok(stored)
}

/// Notes the just-stored records of final months in `usage_late`.
fn note_late(
    pg: &PgConn<'_>,
    records: &[UsageRecord],
    staged: &[(usize, Refs, Option<i64>)],
    late: &[usize],
) -> Result<()> {
    let (clouds, ids, months) = key_arrays(records, staged, late, |entry| entry.2.unwrap_or(0));
    pg.execute(
        r#"INSERT INTO usage_late (month_hour, record_rowid)
           SELECT k.month_hour, r.rowid
           FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS k (cloud_ref, record_id, month_hour)
           JOIN usage_records r
             ON r.cloud_ref = k.cloud_ref AND r.record_id = k.record_id COLLATE "C""#,
        &[&clouds, &ids, &months],
    )?;
    Ok(())
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
    // The keys stored before this batch, with their records, to be compared; the other
    // candidates are new and are copied straight into the table.
    let stored = stored_before(pg, records, &staged, &candidates)?;
    let new: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&c| !stored.contains_key(&(staged[c].0 as i64)))
        .collect();
    let last_rowid = if new.is_empty() {
        None
    } else {
        copy_records(pg, now_micros, records, new.iter().map(|&c| &staged[c]))?;
        let late: Vec<usize> = new
            .iter()
            .copied()
            .filter(|&c| staged[c].2.is_some())
            .collect();
        if !late.is_empty() {
            note_late(pg, records, &staged, &late)?;
        }
        Some(conn.query_one(
            "SELECT currval(pg_get_serial_sequence('usage_records', 'rowid'))",
            params![],
            |row| row.get::<i64>(0),
        )?)
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

/// Copies new records straight into `usage_records`, in binary (the table's record numbers
/// are assigned in this order).
fn copy_records<'s>(
    pg: &PgConn<'_>,
    now_micros: i64,
    records: &[UsageRecord],
    staged: impl Iterator<Item = &'s (usize, Refs, Option<i64>)>,
) -> Result<()> {
    pg.block_on(async {
        let sink = pg.client.copy_in(COPY_RECORDS).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, RECORD_TYPES));
        for &(position, refs, _) in staged {
            let record = &records[position];
            let reported = record.reported_time.map_or(now_micros, micros);
            let quantity = record.quantity.value();
            let row: [&(dyn ToSql + Sync); 10] = [
                &refs.cloud,
                &record.id.as_str(),
                &refs.tenant,
                &refs.subscription,
                &refs.meter,
                &quantity,
                &refs.hour,
                &refs.instance,
                &reported,
                &now_micros,
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
    pg.execute(
        &sql,
        &[clouds, tenants, meters, periods, &quantities, counts],
    )?;
    Ok(())
}
