//! Billing decisions over loaded facts (SPEC §6): when a period is final for whom, which
//! final periods owe adjustments to a draft, and what explains the change of an invoice
//! between two instants. The store loads the facts and writes the results; nothing here
//! reads a database or a clock.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use rust_decimal::Decimal;

use crate::error_code::ErrorCode;
use crate::ids::{CloudId, MeterId, PartnerId, RateCardName};
use crate::invoice::{Adjustment, AdjustmentReason, InvoiceLine};
use crate::period::Period;
use crate::rating::RatingError;
use crate::total::Total;
use crate::usage::{RecordId, UsageRecord};

/// Why billing refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    /// A period can be finalized only once it has ended.
    #[error("period {period} has not ended yet; it can be finalized from {end} on")]
    PeriodNotEnded {
        /// The period.
        period: Period,
        /// Its end.
        end: Timestamp,
    },
    /// Rating failed (overflow, or an invalid rate card).
    #[error(transparent)]
    Rating(#[from] RatingError),
    /// One subscription's invoice cannot be computed.
    #[error("subscription {subscription}: {error}")]
    Subscription {
        /// The subscription.
        subscription: crate::ids::SubscriptionId,
        /// Why.
        error: Box<BillingError>,
    },
}

impl BillingError {
    /// The error code.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::PeriodNotEnded { .. } => ErrorCode::PeriodNotEnded,
            Self::Rating(rating) => rating.code(),
            Self::Subscription { error, .. } => error.code(),
        }
    }

    /// The field the error is about, when it is about one.
    pub const fn target(&self) -> Option<&'static str> {
        match self {
            Self::PeriodNotEnded { .. } => Some("period"),
            Self::Rating(rating) => rating.target(),
            Self::Subscription { error, .. } => error.target(),
        }
    }
}

/// One recorded change of a subscription's pricing (SPEC §5): from `from` on (`None`: from
/// the beginning), its usage is rated with `rate_card` and `markup_percent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricingVersion {
    /// The first period it applies to; `None`: every period.
    pub from: Option<Period>,
    /// The rate card's name.
    pub rate_card: RateCardName,
    /// The markup, in percent.
    pub markup_percent: Decimal,
}

/// The pricing of `period` among a subscription's versions in the order they were recorded:
/// the last one recorded that applies from `period` or earlier. A later change from an
/// earlier period thus overrides an earlier change from a later one.
pub fn pricing_in(versions: &[PricingVersion], period: Period) -> Option<&PricingVersion> {
    versions
        .iter()
        .rev()
        .find(|v| v.from.is_none_or(|from| from <= period))
}

/// A period can be finalized once it has ended.
pub fn check_finalizable(period: Period, now: Timestamp) -> Result<(), BillingError> {
    if now < period.end() {
        return Err(BillingError::PeriodNotEnded {
            period,
            end: period.end(),
        });
    }
    Ok(())
}

/// Whose invoices a finalization froze: every partner's, or one partner's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartnerScope {
    /// Every subscription's invoices.
    All,
    /// The invoices of one partner's subscriptions.
    Partner(PartnerId),
    /// The invoices of the subscriptions of no partner (EA, pay-as-you-go): frozen on their
    /// own when a finalization of every partner's could not freeze some partner's.
    Unpartnered,
}

impl PartnerScope {
    /// The scope of a call that names a partner, or none.
    pub fn of(partner: Option<&PartnerId>) -> Self {
        partner.map_or(Self::All, |p| Self::Partner(p.clone()))
    }
}

/// Every finalization: when each (period, scope) became final.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finalizations(BTreeMap<(Period, PartnerScope), Timestamp>);

impl FromIterator<(Period, PartnerScope, Timestamp)> for Finalizations {
    fn from_iter<I: IntoIterator<Item = (Period, PartnerScope, Timestamp)>>(iter: I) -> Self {
        Self(
            iter.into_iter()
                .map(|(period, scope, at)| ((period, scope), at))
                .collect(),
        )
    }
}

impl Finalizations {
    /// When `period` became final for a subscription of `partner` (by a finalization of
    /// every partner's or of its own, whichever came first), if it has.
    pub fn final_at(&self, period: Period, partner: Option<&PartnerId>) -> Option<Timestamp> {
        let all = self.0.get(&(period, PartnerScope::All)).copied();
        let own_scope = partner.map_or(PartnerScope::Unpartnered, |p| {
            PartnerScope::Partner(p.clone())
        });
        let own = self.0.get(&(period, own_scope)).copied();
        match (all, own) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether `period` is final for anyone (every partner's, one partner's, or the
    /// subscriptions of no partner).
    pub fn any_final(&self, period: Period) -> bool {
        self.0.keys().any(|(p, _)| *p == period)
    }

    /// The earliest period after `period` that is not final for `partner`: where that
    /// partner's adjustments of `period` are billed.
    pub fn next_open(&self, period: Period, partner: Option<&PartnerId>) -> Period {
        let mut next = period.next();
        while self.final_at(next, partner).is_some() {
            next = next.next();
        }
        next
    }

    /// When `final_period` became final for a subscription of `partner`, if the
    /// adjustments of that period are billed on its invoice for `draft`.
    pub fn owes(
        &self,
        final_period: Period,
        draft: Period,
        partner: Option<&PartnerId>,
    ) -> Option<Timestamp> {
        let at = self.final_at(final_period, partner)?;
        (self.next_open(final_period, partner) == draft).then_some(at)
    }

    /// The final periods before `draft` whose adjustments some subscription bills on its
    /// draft of `draft`, given the partners that own subscriptions (`None`: no partner).
    /// Only these can owe adjustments, so only these need to be read.
    pub fn owing_adjustments<'a>(
        &self,
        draft: Period,
        partners: impl IntoIterator<Item = Option<&'a PartnerId>>,
    ) -> BTreeSet<Period> {
        let scopes: BTreeSet<Option<&PartnerId>> = std::iter::once(None).chain(partners).collect();
        self.0
            .keys()
            .map(|(period, _)| *period)
            .filter(|period| *period < draft)
            .filter(|period| {
                scopes
                    .iter()
                    .any(|&scope| self.owes(*period, draft, scope).is_some())
            })
            .collect()
    }
}

/// Records and their quantity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordCount {
    /// How many records.
    pub records: usize,
    /// Their quantities added up.
    pub quantity: Total,
}

/// One meter's change on an invoice between two instants, and what explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterChange {
    /// The meter.
    pub meter_id: MeterId,
    /// The line's quantity at the first instant, and at the second.
    pub quantity: (Total, Total),
    /// The line's amount at the first instant, and at the second.
    pub amount: (Decimal, Decimal),
    /// Records accepted between the two instants: new usage in an open month, late usage
    /// in a final one.
    pub added: RecordCount,
    /// Records known at the first instant, routed here by the registrations of the second.
    pub rerouted_in: RecordCount,
    /// Records billed here at the first instant, routed elsewhere by the second.
    pub rerouted_out: RecordCount,
    /// The amount changed and the rate card's version differs between the instants.
    pub price_changed: bool,
}

/// One adjustment's change on an invoice between two instants: (corrected period, meter,
/// reason) with its quantity and amount at each (zero where it was not there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdjustmentChange {
    /// The final period it corrects.
    pub period: Period,
    /// The meter.
    pub meter_id: MeterId,
    /// Why.
    pub reason: AdjustmentReason,
    /// Its quantity at the first instant, and at the second.
    pub quantity: (Total, Total),
    /// Its amount at the first instant, and at the second.
    pub amount: (Decimal, Decimal),
}

/// The adjustments that differ between an invoice's adjustments at two instants, by
/// (period, meter, reason).
pub fn adjustment_changes(
    from: &[Adjustment],
    to: &[Adjustment],
) -> Result<Vec<AdjustmentChange>, RatingError> {
    type Sums = BTreeMap<(Period, MeterId, AdjustmentReason), (Total, Decimal)>;
    let sums = |adjustments: &[Adjustment]| -> Result<Sums, RatingError> {
        let mut out = Sums::new();
        for a in adjustments {
            let overflow = || RatingError::Overflow {
                meter_id: a.meter_id,
                what: "the adjustments of one meter",
            };
            let entry = out
                .entry((a.period, a.meter_id, a.reason))
                .or_insert((Total::ZERO, Decimal::ZERO));
            entry.0 = entry.0.checked_add(a.quantity).ok_or_else(overflow)?;
            entry.1 = crate::sum::exact_add(entry.1, a.amount).ok_or_else(overflow)?;
        }
        Ok(out)
    };
    let (before, after) = (sums(from)?, sums(to)?);
    let keys: BTreeSet<_> = before.keys().chain(after.keys()).copied().collect();
    let zero = (Total::ZERO, Decimal::ZERO);
    Ok(keys
        .into_iter()
        .filter_map(|key| {
            let (q1, a1) = before.get(&key).copied().unwrap_or(zero);
            let (q2, a2) = after.get(&key).copied().unwrap_or(zero);
            let (period, meter_id, reason) = key;
            (q1 != q2 || a1 != a2).then_some(AdjustmentChange {
                period,
                meter_id,
                reason,
                quantity: (q1, q2),
                amount: (a1, a2),
            })
        })
        .collect())
}

/// What an invoice's change between two instants is computed from.
#[derive(Debug, Clone, Copy)]
pub struct DiffFacts<'a> {
    /// The invoice's lines at the first instant.
    pub lines_from: &'a [InvoiceLine],
    /// The invoice's lines at the second instant.
    pub lines_to: &'a [InvoiceLine],
    /// The records billed at the first instant.
    pub billed_from: &'a [UsageRecord],
    /// The records billed at the second instant.
    pub billed_to: &'a [UsageRecord],
    /// The records accepted by the first instant, routed by the registrations of the second.
    pub known_from_routed_to: &'a [UsageRecord],
    /// Whether the subscription's rate card differs between the instants.
    pub rate_card_changed: bool,
}

type Keyed<'a> = BTreeMap<MeterId, BTreeMap<(CloudId, &'a RecordId), Decimal>>;

fn keyed(records: &[UsageRecord]) -> Keyed<'_> {
    let mut out: Keyed<'_> = BTreeMap::new();
    for r in records {
        out.entry(r.meter_id)
            .or_default()
            .insert((r.cloud_id, &r.id), r.quantity.value());
    }
    out
}

/// The records of `a` that `b` lacks.
fn only_in(
    meter_id: MeterId,
    a: &BTreeMap<(CloudId, &RecordId), Decimal>,
    b: &BTreeMap<(CloudId, &RecordId), Decimal>,
) -> Result<RecordCount, RatingError> {
    let mut count = RecordCount::default();
    for (key, quantity) in a {
        if !b.contains_key(key) {
            count.records += 1;
            let quantity = Total::from_decimal(*quantity);
            count.quantity = count
                .quantity
                .checked_add(quantity)
                .ok_or(RatingError::Overflow {
                    meter_id,
                    what: "the quantity of the records explaining a change",
                })?;
        }
    }
    Ok(count)
}

/// Explains, meter by meter, how an invoice changed between two instants: records that
/// arrived between the instants, records re-routed here or away by registration changes, and rate card
/// changes. Meters whose line and records did not change are left out.
pub fn explain_change(facts: DiffFacts<'_>) -> Result<Vec<MeterChange>, RatingError> {
    let (from, to, known) = (
        keyed(facts.billed_from),
        keyed(facts.billed_to),
        keyed(facts.known_from_routed_to),
    );
    let line = |lines: &[InvoiceLine], meter: MeterId| {
        lines
            .iter()
            .find(|l| l.meter_id == meter)
            .map_or((Total::ZERO, Decimal::ZERO), |l| (l.quantity, l.amount))
    };
    let mut meters: BTreeSet<MeterId> = from.keys().chain(to.keys()).copied().collect();
    meters.extend(facts.lines_from.iter().map(|l| l.meter_id));
    meters.extend(facts.lines_to.iter().map(|l| l.meter_id));
    let empty = BTreeMap::new();
    let mut changes = Vec::new();
    for meter_id in meters {
        let (q1, a1) = line(facts.lines_from, meter_id);
        let (q2, a2) = line(facts.lines_to, meter_id);
        let (r1, r2, k) = (
            from.get(&meter_id).unwrap_or(&empty),
            to.get(&meter_id).unwrap_or(&empty),
            known.get(&meter_id).unwrap_or(&empty),
        );
        let added = only_in(meter_id, r2, k)?;
        let rerouted_in = only_in(meter_id, k, r1)?;
        let rerouted_out = only_in(meter_id, r1, k)?;
        if q1 == q2 && a1 == a2 && added.records + rerouted_in.records + rerouted_out.records == 0 {
            continue;
        }
        changes.push(MeterChange {
            meter_id,
            quantity: (q1, q2),
            amount: (a1, a2),
            added,
            rerouted_in,
            rerouted_out,
            price_changed: facts.rate_card_changed && a1 != a2,
        });
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use super::*;
    use crate::usage::Quantity;

    fn period(text: &str) -> Period {
        text.parse().unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn partner(name: &str) -> PartnerId {
        name.parse().unwrap()
    }

    #[test]
    fn a_partner_finalization_and_an_all_partner_one_both_make_a_period_final() {
        let p1 = partner("p1");
        let finalized: Finalizations = [
            (
                period("2025-04"),
                PartnerScope::All,
                at("2025-05-02T00:00:00Z"),
            ),
            (
                period("2025-05"),
                PartnerScope::Partner(p1.clone()),
                at("2025-06-01T00:00:00Z"),
            ),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            finalized.final_at(period("2025-05"), Some(&p1)),
            Some(at("2025-06-01T00:00:00Z"))
        );
        assert_eq!(finalized.final_at(period("2025-05"), None), None);
        assert_eq!(
            finalized.next_open(period("2025-04"), Some(&p1)),
            period("2025-06")
        );
        assert_eq!(
            finalized.next_open(period("2025-04"), None),
            period("2025-05")
        );
        // April's adjustments go on June's drafts for p1, on May's for everyone else.
        assert_eq!(
            finalized.owes(period("2025-04"), period("2025-06"), Some(&p1)),
            Some(at("2025-05-02T00:00:00Z"))
        );
        assert_eq!(
            finalized.owes(period("2025-04"), period("2025-05"), Some(&p1)),
            None
        );
        assert_eq!(
            finalized.owing_adjustments(period("2025-06"), [Some(&p1)]),
            BTreeSet::from([period("2025-04"), period("2025-05")])
        );
        assert_eq!(
            finalized.owing_adjustments(period("2025-05"), [Some(&p1)]),
            BTreeSet::from([period("2025-04")])
        );
        assert_eq!(
            finalized.owing_adjustments(period("2025-07"), [Some(&p1)]),
            BTreeSet::new()
        );
    }

    #[test]
    fn a_period_is_finalizable_from_its_end_on() {
        assert!(check_finalizable(period("2025-05"), at("2025-05-31T23:59:59Z")).is_err());
        assert!(check_finalizable(period("2025-05"), at("2025-06-01T00:00:00Z")).is_ok());
    }

    fn record(id: &str, meter: MeterId, quantity: &str) -> UsageRecord {
        UsageRecord {
            id: RecordId::new(id).unwrap(),
            cloud_id: "ca000000-0000-0000-0000-000000000001".parse().unwrap(),
            tenant_id: "70000000-0000-0000-0000-000000000001".parse().unwrap(),
            subscription_id: "50000000-0000-0000-0000-000000000001".parse().unwrap(),
            meter_id: meter,
            quantity: Quantity::parse(quantity).unwrap(),
            usage_start: at("2025-05-01T00:00:00Z"),
            reported_time: None,
            instance_data: None,
        }
    }

    #[test]
    fn a_change_is_explained_by_late_and_rerouted_records() {
        let meter: MeterId = "b4438d5d-453b-4ee1-b42a-dc72e377f1e4".parse().unwrap();
        let line = |quantity: &str, amount: &str| InvoiceLine {
            meter_id: meter,
            quantity: quantity.parse().unwrap(),
            amount: amount.parse().unwrap(),
            unpriced: false,
            price: None,
            markup_percent: None,
        };
        // Billed then: a, b. Now: b (a re-routed away), c (re-routed here), d (late).
        let then = [record("a", meter, "1"), record("b", meter, "2")];
        let known = [record("b", meter, "2"), record("c", meter, "4")];
        let now = [
            record("b", meter, "2"),
            record("c", meter, "4"),
            record("d", meter, "8"),
        ];
        let changes = explain_change(DiffFacts {
            lines_from: &[line("3", "0.30")],
            lines_to: &[line("14", "1.40")],
            billed_from: &then,
            billed_to: &now,
            known_from_routed_to: &known,
            rate_card_changed: false,
        })
        .unwrap();
        let count = |records, quantity: &str| RecordCount {
            records,
            quantity: quantity.parse().unwrap(),
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].added, count(1, "8"));
        assert_eq!(changes[0].rerouted_in, count(1, "4"));
        assert_eq!(changes[0].rerouted_out, count(1, "1"));
        assert!(!changes[0].price_changed);
        let unchanged = explain_change(DiffFacts {
            lines_from: &[line("3", "0.30")],
            lines_to: &[line("3", "0.30")],
            billed_from: &then,
            billed_to: &then,
            known_from_routed_to: &then,
            rate_card_changed: true,
        })
        .unwrap();
        assert!(unchanged.is_empty(), "nothing changed: no meter listed");
    }

    #[test]
    fn the_last_recorded_pricing_that_applies_wins() {
        let version = |from: Option<&str>, markup: &str| PricingVersion {
            from: from.map(|f| f.parse().unwrap()),
            rate_card: RateCardName::default_card(),
            markup_percent: markup.parse().unwrap(),
        };
        let versions = [
            version(None, "10"),
            version(Some("2025-06"), "20"),
            version(Some("2025-05"), "15"),
        ];
        let markup = |p: &str| pricing_in(&versions, p.parse().unwrap()).map(|v| v.markup_percent);
        assert_eq!(markup("2025-04"), Some("10".parse().unwrap()));
        assert_eq!(markup("2025-05"), Some("15".parse().unwrap()));
        assert_eq!(
            markup("2025-06"),
            Some("15".parse().unwrap()),
            "a later change from May"
        );
        assert_eq!(
            pricing_in(&versions[1..2], "2025-05".parse().unwrap()),
            None
        );
    }
}
