//! Counts of refused records per hour and code, for operators: the adapters add a batch's
//! refusals after ingesting it, and the console shows the recent ones.

use stackbill_core::PartnerId;
use stackbill_core::period::hour_number;

use crate::db::params;
use crate::error::Result;
use crate::store::Store;

/// Records refused in one hour with one code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectionCount {
    /// The hour (since the epoch) they were refused in.
    pub hour: i64,
    /// The code (`UnknownMeter`, `Conflict`, ...).
    pub code: String,
    /// How many.
    pub records: u64,
}

impl Store {
    /// Adds refused records, by code, to the current hour's counts, and to `partner`'s (whose
    /// stack sent them) for its hourly `usage.rejected` digest.
    pub async fn count_rejections(
        &self,
        partner: Option<PartnerId>,
        counts: Vec<(&'static str, u64)>,
    ) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        self.write(move |tx, now| {
            let hour = hour_number(now);
            for (code, records) in &counts {
                tx.execute(
                    "INSERT INTO rejection_counts (hour, code, records) VALUES (?1, ?2, ?3)
                     ON CONFLICT (hour, code) DO UPDATE
                     SET records = rejection_counts.records + excluded.records",
                    params![hour, *code, i64::try_from(*records).unwrap_or(i64::MAX)],
                )?;
                if let Some(partner) = &partner {
                    tx.execute(
                        "INSERT INTO partner_rejections (hour, partner_id, code, records)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (hour, partner_id, code) DO UPDATE
                         SET records = partner_rejections.records + excluded.records",
                        params![
                            hour,
                            partner.as_str(),
                            *code,
                            i64::try_from(*records).unwrap_or(i64::MAX)
                        ],
                    )?;
                }
            }
            Ok(())
        })
        .await
    }

    /// The counts from hour `since` on, latest hour first, then by code.
    pub async fn rejection_counts(&self, since: i64) -> Result<Vec<RejectionCount>> {
        self.read(move |conn| {
            conn.query_map(
                "SELECT hour, code, records FROM rejection_counts WHERE hour >= ?1
                 ORDER BY hour DESC, code",
                params![since],
                |row| {
                    Ok(RejectionCount {
                        hour: row.get(0)?,
                        code: row.get(1)?,
                        records: u64::try_from(row.get::<i64>(2)?).unwrap_or(0),
                    })
                },
            )
        })
        .await
    }
}
