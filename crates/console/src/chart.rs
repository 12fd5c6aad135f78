//! A month's usage per day and meter, as the JSON the console's charts draw: quantities as
//! exact decimal strings, the largest meters only, and `<` escaped so that no text can close
//! the inert script element the JSON sits in.

use std::collections::BTreeMap;

use jiff::Timestamp;
use stackbill_api::billing::InvoiceNames;
use stackbill_core::total::Total;
use stackbill_core::{MeterId, Period};
use stackbill_store::UsageAggregate;

/// Meters charted, the largest first.
const CHARTED_METERS: usize = 6;

/// Daily sums per meter over a month, up to today.
pub(crate) struct DailyUsage {
    first: i64,
    end: i64,
    days: usize,
    sums: BTreeMap<MeterId, Vec<Total>>,
}

impl DailyUsage {
    /// The days of `period` up to the one holding `now` (later days have no usage to draw).
    pub(crate) fn new(period: Period, now: Timestamp) -> Self {
        let (first, end) = period.hours();
        let today_end = (stackbill_core::period::hour_number(now).div_euclid(24) + 1) * 24;
        let end = end.min(today_end.max(first));
        Self {
            first,
            end,
            days: usize::try_from((end - first).div_euclid(24)).unwrap_or(0),
            sums: BTreeMap::new(),
        }
    }

    /// The hours to ask the store for: `[first, end)`.
    pub(crate) fn hours(&self) -> (i64, i64) {
        (self.first, self.end)
    }

    /// Adds daily aggregates (buckets of 24 hours from `first`).
    pub(crate) fn add(&mut self, aggregates: Vec<UsageAggregate>) {
        for aggregate in aggregates {
            let Ok(day) = usize::try_from((aggregate.start_hour - self.first).div_euclid(24))
            else {
                continue;
            };
            let values = self
                .sums
                .entry(aggregate.meter_id)
                .or_insert_with(|| vec![Total::ZERO; self.days]);
            if let Some(value) = values.get_mut(day) {
                *value = value.checked_add(aggregate.quantity).unwrap_or(*value);
            }
        }
    }

    /// The charts' JSON, meters named from the catalog.
    pub(crate) fn json(self, names: &InvoiceNames) -> String {
        let total = |values: &[Total]| {
            values
                .iter()
                .fold(Total::ZERO, |sum, v| sum.checked_add(*v).unwrap_or(sum))
        };
        let mut meters: Vec<(MeterId, Vec<Total>)> = self.sums.into_iter().collect();
        meters.sort_by_key(|m| std::cmp::Reverse(total(&m.1)));
        meters.truncate(CHARTED_METERS);
        let days: Vec<i64> = (self.first..self.end)
            .step_by(24)
            .map(|hour| hour * 3600)
            .collect();
        let meters: Vec<serde_json::Value> = meters
            .iter()
            .map(|(id, values)| {
                let meter = names.meters.get(id);
                serde_json::json!({
                    "id": id.to_string(),
                    "name": meter.map_or_else(|| id.to_string(), |m| m.name.clone()),
                    "unit": meter.map(|m| m.unit.clone()).unwrap_or_default(),
                    "values": values.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({ "days": days, "meters": meters })
            .to_string()
            .replace('<', "\\u003c")
    }
}
