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

use std::collections::hash_map::Entry;
use std::pin::pin;

use rustc_hash::FxHashMap as HashMap;
use stackbill_core::UsageRecord;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};

use super::batch::{Batch, Interned, SumMap, Sums};
use super::{Disposition, UsageWriter};
use crate::db::{Conn, PgConn, micros, params};
use crate::error::{Result, StoreError};
use crate::numeric::TotalParam;

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

/// A record of the batch that passed the reference checks: its position in the batch, its
/// interned form, and its month when that month is already final.
#[derive(Clone, Copy)]
struct Staged {
    position: usize,
    record: Interned,
    late_month: Option<i64>,
}

/// The stack references, record ids and `extra` values of `staged`, as arrays for `unnest`.
fn key_arrays<'r>(
    records: &'r [UsageRecord],
    staged: &[&Staged],
    extra: impl Fn(&Staged) -> i64,
) -> (Vec<i64>, Vec<&'r str>, Vec<i64>) {
    let clouds = staged.iter().map(|s| s.record.cloud).collect();
    let ids = staged
        .iter()
        .map(|s| records[s.position].id.as_str())
        .collect();
    let extras = staged.iter().map(|s| extra(s)).collect();
    (clouds, ids, extras)
}

/// The records already stored under the keys of `candidates`, by the batch position of the
/// candidate: one index probe per key, in one statement.
fn stored_before(
    pg: &PgConn<'_>,
    records: &[UsageRecord],
    candidates: &[&Staged],
) -> Result<HashMap<usize, Interned>> {
    let (clouds, ids, positions) = key_arrays(records, candidates, |s| s.position as i64);
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
        let position = usize::try_from(row.try_get::<_, i64>(0)?).map_err(StoreError::corrupt)?;
        stored.insert(
            position,
            Interned {
                cloud: row.try_get(1)?,
                tenant: row.try_get(2)?,
                subscription: row.try_get(3)?,
                meter: row.try_get(4)?,
                hour: row.try_get(5)?,
                instance: row.try_get(6)?,
                quantity: row.try_get(7)?,
            },
        );
    }
    Ok(stored)
}

/// Notes the just-stored records of final months in `usage_late`.
fn note_late(pg: &PgConn<'_>, records: &[UsageRecord], late: &[&Staged]) -> Result<()> {
    let (clouds, ids, months) = key_arrays(records, late, |s| s.late_month.unwrap_or(0));
    pg.execute(
        r#"INSERT INTO usage_late (month_hour, record_rowid)
           SELECT k.month_hour, r.rowid
           FROM unnest($1::bigint[], $2::text[], $3::bigint[]) AS k (cloud_ref, record_id,
           month_hour)
           JOIN usage_records r
             ON r.cloud_ref = k.cloud_ref AND r.record_id = k.record_id COLLATE "C""#,
        &[&clouds, &ids, &months],
    )?;
    Ok(())
}

impl UsageWriter for PgConn<'_> {
    fn store_records(
        &self,
        conn: &Conn<'_>,
        batch: &mut Batch<'_>,
        records: &[UsageRecord],
        now_micros: i64,
        dispositions: &mut [Option<Disposition>],
    ) -> Result<Option<i64>> {
        let pg = self;
        let mut staged: Vec<Staged> = Vec::with_capacity(records.len());
        for (position, record) in records.iter().enumerate() {
            match batch.intern(conn, record)? {
                Ok(interned) => staged.push(Staged {
                    position,
                    record: interned,
                    late_month: batch.late_month(&interned)?,
                }),
                Err(err) => dispositions[position] = Some(Disposition::Rejected(err)),
            }
        }
        // The first record of each key goes to the database, in key order (neighbouring index
        // pages); the later ones of the batch are decided here against it.
        let mut first: HashMap<(i64, &str), &Staged> = HashMap::default();
        let mut candidates: Vec<&Staged> = Vec::with_capacity(staged.len());
        for entry in &staged {
            let key = (entry.record.cloud, records[entry.position].id.as_str());
            if let Entry::Vacant(vacant) = first.entry(key) {
                vacant.insert(entry);
                candidates.push(entry);
            }
        }
        candidates.sort_by_key(|s| (s.record.cloud, records[s.position].id.as_str()));
        let stored = if candidates.is_empty() {
            HashMap::default()
        } else {
            stored_before(pg, records, &candidates)?
        };
        let new: Vec<&Staged> = candidates
            .iter()
            .copied()
            .filter(|s| !stored.contains_key(&s.position))
            .collect();

        // The first record of a new key is accepted; any other is compared with the record
        // stored under its key, before this batch or by it.
        for entry in &staged {
            let key = (entry.record.cloud, records[entry.position].id.as_str());
            let earliest = first
                .get(&key)
                .ok_or_else(|| StoreError::corrupt("a staged key has no first record"))?;
            dispositions[entry.position] = Some(match stored.get(&earliest.position) {
                Some(before) => entry.record.against(before),
                None if earliest.position == entry.position => batch.accept(&entry.record)?,
                None => entry.record.against(&earliest.record),
            });
        }
        if new.is_empty() {
            return Ok(None);
        }
        copy_records(pg, now_micros, records, &new)?;
        let late: Vec<&Staged> = new
            .iter()
            .copied()
            .filter(|s| s.late_month.is_some())
            .collect();
        if !late.is_empty() {
            note_late(pg, records, &late)?;
        }
        let last_rowid: i64 = conn.query_one(
            "SELECT currval(pg_get_serial_sequence('usage_records', 'rowid'))",
            params![],
            |row| row.get(0),
        )?;
        Ok(Some(last_rowid))
    }

    /// One `unnest` upsert: `quantity = quantity + excluded.quantity`, exact `NUMERIC`.
    fn add_sums(&self, sums_of: Sums, sums: &SumMap) -> Result<()> {
        add_sums(self, sums_of, sums)
    }
}

/// Copies new records straight into `usage_records`, in binary (the table's record numbers
/// are assigned in this order).
fn copy_records(
    pg: &PgConn<'_>,
    now_micros: i64,
    records: &[UsageRecord],
    new: &[&Staged],
) -> Result<()> {
    pg.block_on(async {
        let sink = pg.client.copy_in(COPY_RECORDS).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, RECORD_TYPES));
        for entry in new {
            let record = &records[entry.position];
            let reported = record.reported_time.map_or(now_micros, micros);
            let r = &entry.record;
            let row: [&(dyn ToSql + Sync); 10] = [
                &r.cloud,
                &record.id.as_str(),
                &r.tenant,
                &r.subscription,
                &r.meter,
                &r.quantity,
                &r.hour,
                &r.instance,
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
fn add_sums(pg: &PgConn<'_>, sums_of: Sums, sums: &SumMap) -> Result<()> {
    let (table, period) = sums_of.table();
    let mut columns: [Vec<i64>; 5] = Default::default();
    let mut quantities: Vec<TotalParam> = Vec::with_capacity(sums.len());
    for (key, sum) in sums {
        let values = [key.cloud, key.tenant, key.meter, key.at, sum.records];
        for (column, value) in columns.iter_mut().zip(values) {
            column.push(value);
        }
        quantities.push(TotalParam(sum.quantity));
    }
    let sql = format!(
        "INSERT INTO {table} (cloud_ref, tenant_ref, meter_ref, {period}, quantity, records)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[],
         $5::numeric[], $6::bigint[])
         ON CONFLICT (cloud_ref, tenant_ref, meter_ref, {period}) DO UPDATE
         SET quantity = {table}.quantity + excluded.quantity,
             records = {table}.records + excluded.records"
    );
    let [clouds, tenants, meters, periods, counts] = &columns;
    pg.execute(
        &sql,
        &[clouds, tenants, meters, periods, &quantities, counts],
    )?;
    Ok(())
}
