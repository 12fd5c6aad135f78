//! Invoices (SPEC §6): lines rated from routed usage, adjustments that carry late or
//! re-routed usage of final periods into the next open one, and totals.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::ids::MeterId;
use crate::period::Period;
use crate::rating::{Currency, RateCard, RatingError, rate};
use crate::sum::{exact_add, exact_sub};
use crate::total::Total;

/// How a subscription's usage is priced.
#[derive(Debug, Clone, Copy)]
pub struct Pricing<'a> {
    /// Its rate card, if the card exists.
    pub card: Option<&'a RateCard>,
    /// Its markup in percent.
    pub markup_percent: Decimal,
}

impl Pricing<'_> {
    /// The invoice currency: the card's, or US dollars when the card is missing.
    pub fn currency(&self) -> Currency {
        self.card.map_or(Currency::USD, |card| card.currency)
    }
}

/// One meter's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceLine {
    /// The meter.
    pub meter_id: MeterId,
    /// The period's routed quantity.
    pub quantity: Total,
    /// The rated amount.
    pub amount: Decimal,
    /// No price was found.
    pub unpriced: bool,
    /// The price it was rated at, when one was found (and, on a final invoice, when it was
    /// finalized by a version of stackbill that kept it).
    pub price: Option<LinePrice>,
    /// The subscription's markup it was rated with, in percent (unknown on final invoices
    /// finalized before stackbill kept it).
    pub markup_percent: Option<Decimal>,
}

/// The price a line was rated at, as an invoice shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinePrice {
    /// The unit price from quantity 0 (before markup).
    pub unit_price: Decimal,
    /// Further tiers price the quantity past their thresholds differently.
    pub tiered: bool,
    /// Quantity free of charge in the period.
    pub included_quantity: Decimal,
}

/// Rates each meter's period quantity: one line per meter that has usage (a zero quantity
/// still gets its line), by meter.
pub fn rate_lines(
    period: Period,
    quantities: &BTreeMap<MeterId, Total>,
    pricing: Pricing<'_>,
) -> Result<Vec<InvoiceLine>, RatingError> {
    let currency = pricing.currency();
    quantities
        .iter()
        .map(|(&meter_id, &quantity)| {
            let price = pricing
                .card
                .and_then(|card| card.rate_for(meter_id, period.start()));
            let rated = rate(meter_id, quantity, price, pricing.markup_percent, currency)?;
            Ok(InvoiceLine {
                meter_id,
                quantity,
                amount: rated.amount,
                unpriced: rated.unpriced,
                price: price.and_then(|rate| {
                    Some(LinePrice {
                        unit_price: rate.tiers().first()?.unit_price,
                        tiered: rate.tiers().len() > 1,
                        included_quantity: rate.included_quantity,
                    })
                }),
                markup_percent: Some(pricing.markup_percent),
            })
        })
        .collect()
}

/// Why an adjustment is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AdjustmentReason {
    /// Usage accepted after the period was finalized.
    LateUsage,
    /// Usage re-routed by a registration change recorded after the period was finalized.
    Reassignment,
    /// The period re-priced after it was finalized: a rate card or a subscription's pricing
    /// recorded later, for it.
    Repricing,
}

impl AdjustmentReason {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LateUsage => "LateUsage",
            Self::Reassignment => "Reassignment",
            Self::Repricing => "Repricing",
        }
    }
}

impl std::str::FromStr for AdjustmentReason {
    type Err = UnknownAdjustmentReason;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        [Self::LateUsage, Self::Reassignment, Self::Repricing]
            .into_iter()
            .find(|reason| reason.as_str() == text)
            .ok_or_else(|| UnknownAdjustmentReason(text.to_owned()))
    }
}

/// A spelling that names no [`AdjustmentReason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an adjustment reason (LateUsage, Reassignment or Repricing)")]
pub struct UnknownAdjustmentReason(pub String);

/// A correction of a final period, billed on a later invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// The final period corrected.
    pub period: Period,
    /// The meter.
    pub meter_id: MeterId,
    /// The quantity difference.
    pub quantity: Total,
    /// The amount difference.
    pub amount: Decimal,
    /// Why.
    pub reason: AdjustmentReason,
}

/// What a final period has billed so far for one meter: its final line plus adjustments
/// already frozen on later final invoices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Billed {
    /// Quantity billed.
    pub quantity: Total,
    /// Amount billed.
    pub amount: Decimal,
}

/// The ratings of a final period that its adjustments compare, per meter.
#[derive(Debug, Clone, Copy)]
pub struct PeriodRatings<'a> {
    /// What was billed: final lines plus the adjustments already frozen.
    pub billed: &'a BTreeMap<MeterId, Billed>,
    /// The usage known at finalization, routed by today's registrations, priced as the
    /// pricing stood at finalization.
    pub rerouted: &'a BTreeMap<MeterId, InvoiceLine>,
    /// The same usage priced as the pricing stands today.
    pub repriced: &'a BTreeMap<MeterId, InvoiceLine>,
    /// All of today's usage, priced today.
    pub today: &'a BTreeMap<MeterId, InvoiceLine>,
}

/// The adjustments that bring a final period's billing in line with today's data: per
/// meter, billed → rerouted is a reassignment, rerouted → repriced a repricing, repriced →
/// today late usage, so that billed + adjustments = today, to the cent.
pub fn adjustments(
    period: Period,
    currency: Currency,
    ratings: PeriodRatings<'_>,
) -> Result<Vec<Adjustment>, RatingError> {
    let PeriodRatings {
        billed,
        rerouted,
        repriced,
        today,
    } = ratings;
    let mut meters: Vec<MeterId> = billed
        .keys()
        .chain(rerouted.keys())
        .chain(repriced.keys())
        .chain(today.keys())
        .copied()
        .collect();
    meters.sort();
    meters.dedup();
    let mut out = Vec::new();
    for meter_id in meters {
        let before = billed.get(&meter_id).copied().unwrap_or_default();
        let at = |lines: &BTreeMap<MeterId, InvoiceLine>| {
            lines.get(&meter_id).map_or(Billed::default(), |l| Billed {
                quantity: l.quantity,
                amount: l.amount,
            })
        };
        let (rerouted, repriced, today) = (at(rerouted), at(repriced), at(today));
        for (from, to, reason) in [
            (before, rerouted, AdjustmentReason::Reassignment),
            (rerouted, repriced, AdjustmentReason::Repricing),
            (repriced, today, AdjustmentReason::LateUsage),
        ] {
            let overflow = || RatingError::Overflow {
                meter_id,
                what: "adjustment",
            };
            let quantity = (to.quantity.checked_sub(from.quantity)).ok_or_else(overflow)?;
            // Both sides are amounts in minor units, so the difference is exact; give it the
            // currency's scale even when one side is an absent (scale-less) zero.
            let mut amount = exact_sub(to.amount, from.amount).ok_or_else(overflow)?;
            amount.rescale(currency.minor_units());
            if !quantity.is_zero() || !amount.is_zero() {
                out.push(Adjustment {
                    period,
                    meter_id,
                    quantity,
                    amount,
                    reason,
                });
            }
        }
    }
    Ok(out)
}

/// The total of an invoice: its lines and adjustments.
pub fn total(lines: &[InvoiceLine], adjustments: &[Adjustment]) -> Result<Decimal, RatingError> {
    let amounts = lines.iter().map(|l| l.amount);
    amounts
        .chain(adjustments.iter().map(|a| a.amount))
        .try_fold(Decimal::ZERO, exact_add)
        .ok_or(RatingError::SumOverflow {
            what: "the invoice total",
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RateCardName;
    use crate::rating::{MeterRate, Tier};

    fn meter(n: u8) -> MeterId {
        format!("{n:032x}").parse().unwrap()
    }

    fn q(text: &str) -> Total {
        text.parse().unwrap()
    }

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn line(n: u8, quantity: &str, amount: &str) -> (MeterId, InvoiceLine) {
        (
            meter(n),
            InvoiceLine {
                meter_id: meter(n),
                quantity: q(quantity),
                amount: d(amount),
                unpriced: false,
                price: None,
                markup_percent: None,
            },
        )
    }

    #[test]
    fn lines_rate_each_meter_and_unpriced_meters_are_kept() {
        let period: Period = "2025-06".parse().unwrap();
        let card = RateCard {
            name: RateCardName::default_card(),
            currency: "EUR".parse().unwrap(),
            rates: vec![
                MeterRate::new(
                    meter(1),
                    vec![Tier {
                        from_quantity: d("0"),
                        unit_price: d("0.25"),
                    }],
                    d("0"),
                    "2025-01-01T00:00:00Z".parse().unwrap(),
                )
                .unwrap(),
            ],
        };
        let quantities = BTreeMap::from([
            (meter(1), q("10.50")),
            (meter(2), q("3")),
            (meter(3), q("0")),
        ]);
        let pricing = Pricing {
            card: Some(&card),
            markup_percent: d("10"),
        };
        let lines = rate_lines(period, &quantities, pricing).unwrap();
        assert_eq!(lines.len(), 3, "a zero quantity still gets a line");
        assert_eq!(
            (lines[0].quantity, lines[0].amount, lines[0].unpriced),
            (q("10.5"), d("2.89"), false)
        );
        assert_eq!((lines[1].amount, lines[1].unpriced), (d("0.00"), true));
        assert_eq!(pricing.currency().code(), "EUR");
        assert_eq!(total(&lines, &[]).unwrap(), d("2.89"));
    }

    #[test]
    fn adjustments_split_reassignment_from_late_usage_and_add_up() {
        let period: Period = "2025-05".parse().unwrap();
        let billed = BTreeMap::from([(
            meter(1),
            Billed {
                quantity: q("10"),
                amount: d("1.00"),
            },
        )]);
        let rerouted = BTreeMap::from([line(1, "8", "0.80")]);
        let today = BTreeMap::from([line(1, "9", "0.90"), line(2, "1", "0.33")]);
        let ratings = PeriodRatings {
            billed: &billed,
            rerouted: &rerouted,
            repriced: &rerouted,
            today: &today,
        };
        let adjustments = adjustments(period, Currency::USD, ratings).unwrap();
        let summary: Vec<(MeterId, &str, Total, Decimal)> = adjustments
            .iter()
            .map(|a| (a.meter_id, a.reason.as_str(), a.quantity, a.amount))
            .collect();
        assert_eq!(
            summary,
            [
                (meter(1), "Reassignment", q("-2"), d("-0.20")),
                (meter(1), "LateUsage", q("1"), d("0.10")),
                (meter(2), "LateUsage", q("1"), d("0.33")),
            ]
        );
        let adjusted: Decimal = adjustments.iter().map(|a| a.amount).sum();
        assert_eq!(
            d("1.00") + adjusted,
            d("1.23"),
            "billed + adjustments = today"
        );
        assert!(
            super::adjustments(
                period,
                Currency::USD,
                PeriodRatings {
                    billed: &billed,
                    rerouted: &BTreeMap::from([line(1, "10", "1.00")]),
                    repriced: &BTreeMap::from([line(1, "10", "1.00")]),
                    today: &BTreeMap::from([line(1, "10", "1.00")]),
                }
            )
            .unwrap()
            .is_empty()
        );
    }
}
