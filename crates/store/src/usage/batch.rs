//! What a usage write transaction decides a batch against (the registry and the final months,
//! loaded once per batch), the interned form of a record whose equality is the
//! duplicate-or-conflict rule, and the batch's sums for the pre-aggregates. Both backends'
//! writers decide through these.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use jiff::Timestamp;
use rust_decimal::Decimal;
use rustc_hash::FxHashMap as HashMap;
use stackbill_core::meters::builtin_meter;
use stackbill_core::period::{hour_number, hour_start};
use stackbill_core::routing::Coverage;
use stackbill_core::total::Total;
use stackbill_core::usage::{UsageContext, check_references};
use stackbill_core::{CloudId, MeterId, UsageError, UsageRecord};

use super::Disposition;
use crate::db::{Conn, params, parse};
use crate::directory::load_registrations_ever;
use crate::error::{Result, StoreError};
use crate::values::{ValueCache, ValueIds, Values};

/// The registry as one transaction sees it.
pub(crate) struct Registry {
    clouds: Coverage,
    meters: HashSet<MeterId>,
}

impl UsageContext for Registry {
    fn knows_stack(&self, cloud: CloudId, at: Timestamp) -> bool {
        self.clouds.covers(cloud, at)
    }

    fn knows_meter(&self, meter: MeterId) -> bool {
        builtin_meter(meter).is_some() || self.meters.contains(&meter)
    }
}

pub(crate) fn load_registry(conn: &Conn<'_>) -> Result<Registry> {
    // Every registration, live or deleted, in the order they were created: each covers the
    // usage from its predecessor's deletion to its own.
    let registrations: Vec<_> = load_registrations_ever(conn, None, None)?
        .into_iter()
        .map(|(_, registration, deleted)| (registration.cloud_id, deleted))
        .collect();
    let clouds = Coverage::new(&registrations);
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

/// The key of a pre-aggregate's row: stack, tenant and meter references and the period,
/// an hour number (hourly sums) or the first hour of the month (monthly sums).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SumKey {
    pub(crate) cloud: i64,
    pub(crate) tenant: i64,
    pub(crate) meter: i64,
    pub(crate) at: i64,
}

/// The accepted quantity and record count under one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sum {
    pub(crate) quantity: Total,
    pub(crate) records: i64,
}

impl Sum {
    /// Adds `other`; a quantity beyond 28 digits is an overflow, never a rounded sum.
    pub(crate) fn add(&mut self, other: Self) -> Result<()> {
        self.quantity = (self.quantity.checked_add(other.quantity))
            .ok_or_else(StoreError::usage_sum_overflow)?;
        self.records += other.records;
        Ok(())
    }
}

/// A batch's sums, or a pre-aggregate's.
pub(crate) type SumMap = HashMap<SumKey, Sum>;

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
}

/// The first hour of the calendar month of an hour.
fn month_hour(hour: i64) -> Result<i64> {
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
fn monthly(hourly: &SumMap, months: &mut Months) -> Result<SumMap> {
    let mut out = SumMap::default();
    for (key, sum) in hourly {
        let month = SumKey {
            at: months.of(key.at)?,
            ..*key
        };
        out.entry(month).or_default().add(*sum)?;
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
    pub(crate) sums: SumMap,
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
            sums: SumMap::default(),
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
        let key = SumKey {
            cloud: record.cloud,
            tenant: record.tenant,
            meter: record.meter,
            at: record.hour,
        };
        self.sums.entry(key).or_default().add(Sum {
            quantity: Total::from_decimal(record.quantity),
            records: 1,
        })?;
        Ok(Disposition::Accepted)
    }

    /// The batch's monthly sums.
    pub(crate) fn monthly_sums(&mut self) -> Result<SumMap> {
        monthly(&self.sums, &mut self.months)
    }

    /// The value ids the batch made, to join the cache once committed.
    pub(crate) fn into_pending(self) -> ValueIds {
        self.values.pending
    }
}
