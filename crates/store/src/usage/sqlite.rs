//! The SQLite usage writer: record by record through the key index, in key order.

use rusqlite::{Connection, OptionalExtension};
use stackbill_core::UsageRecord;
use stackbill_core::total::Total;

use super::batch::{Batch, Interned, SumMap, Sums};
use super::{Disposition, UsageWriter};
use crate::db::{Conn, micros, parse};
use crate::error::Result;

/// The select and upsert of one pre-aggregate row, keyed (stack, tenant, meter, period).
fn statements(table: Sums) -> (String, String) {
    let (table, period) = table.table();
    let key = format!("cloud_ref, tenant_ref, meter_ref, {period}");
    (
        format!(
            "SELECT quantity, records FROM {table}
             WHERE cloud_ref = ?1 AND tenant_ref = ?2 AND meter_ref = ?3 AND {period} = ?4"
        ),
        format!(
            "INSERT INTO {table} ({key}, quantity, records) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT ({key})
             DO UPDATE SET quantity = excluded.quantity, records = excluded.records"
        ),
    )
}

impl UsageWriter for Connection {
    fn store_records(
        &self,
        conn: &Conn<'_>,
        batch: &mut Batch<'_>,
        records: &[UsageRecord],
        now_micros: i64,
        dispositions: &mut [Option<Disposition>],
    ) -> Result<Option<i64>> {
        let mut late = self
            .prepare_cached("INSERT INTO usage_late (month_hour, record_rowid) VALUES (?1, ?2)")?;
        let mut last_rowid = None;
        let mut insert = self.prepare_cached(
            "INSERT INTO usage_records (cloud_ref, record_id, tenant_ref, subscription_ref, meter_ref,
                quantity, usage_hour, instance_ref, reported_at, accepted_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (cloud_ref, record_id) DO NOTHING",
        )?;
        let mut existing = self.prepare_cached(
            "SELECT tenant_ref, subscription_ref, meter_ref, quantity, usage_hour, instance_ref
             FROM usage_records WHERE cloud_ref = ?1 AND record_id = ?2",
        )?;
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
            let interned = match batch.intern(conn, record)? {
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
                let rowid = self.last_insert_rowid();
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
        Ok(last_rowid)
    }

    /// Reads each row the sums touch and writes it back added to, in exact decimals.
    fn add_sums(&self, table: Sums, sums: &SumMap) -> Result<()> {
        let (select, upsert) = statements(table);
        let mut select = self.prepare_cached(&select)?;
        let mut upsert = self.prepare_cached(&upsert)?;
        for (key, sum) in sums {
            let keys = rusqlite::params![key.cloud, key.tenant, key.meter, key.at];
            let existing: Option<(String, i64)> = select
                .query_row(keys, |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let mut total = *sum;
            if let Some((quantity, records)) = existing {
                total.add(super::batch::Sum {
                    quantity: parse::<Total>(&quantity)?,
                    records,
                })?;
            }
            upsert.execute(rusqlite::params![
                key.cloud,
                key.tenant,
                key.meter,
                key.at,
                total.quantity.to_string(),
                total.records
            ])?;
        }
        Ok(())
    }
}
