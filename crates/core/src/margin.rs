//! Margins: what a CSP pays for a meter's usage (its cost rate card, the Azure Stack Hub prices
//! it pays Microsoft) against what it bills for it (the invoice line).
//!
//! A line's usage may come from several stacks, each with its own cost card: each stack's
//! part is rated on its own (rounded once), and the parts add up to the line's cost. Usage
//! billed to a stack's default subscription is the CSP's own: cost without revenue. A margin
//! is computed only when cost and revenue are in one currency; amounts of different
//! currencies are never added.

use rust_decimal::Decimal;

use crate::ids::MeterId;
use crate::period::Period;
use crate::rating::{Currency, RateCard, RatingError, rate};
use crate::sum::{exact_add, exact_sub};
use crate::total::Total;

/// One stack's part of a line, and the cost card that prices it (if any).
#[derive(Debug, Clone, Copy)]
pub struct CostPart<'a> {
    /// The part's quantity.
    pub quantity: Total,
    /// The cost card of the stack (its registration's, else its partner's).
    pub card: Option<&'a RateCard>,
}

/// What one line's margin is computed from.
#[derive(Debug, Clone)]
pub struct MarginInput<'a> {
    /// The meter.
    pub meter_id: MeterId,
    /// The line's quantity.
    pub quantity: Total,
    /// What the line bills; `None` for usage billed to a default subscription.
    pub revenue: Option<Decimal>,
    /// The currency of the invoice.
    pub currency: Currency,
    /// The line's usage per stack.
    pub parts: Vec<CostPart<'a>>,
}

/// Why a line has no margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMargin {
    /// Some of its usage has no cost price (no cost card, or no price for the meter).
    CostUnknown,
    /// Its cost and its revenue are in different currencies.
    Currencies,
}

/// One line's cost, revenue and margin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarginLine {
    /// The meter.
    pub meter_id: MeterId,
    /// The quantity.
    pub quantity: Total,
    /// What the usage cost, in `cost_currency` (the priced parts' sum).
    pub cost: Decimal,
    /// The cost cards' currency (`None` when no part was priced, or the cards disagree).
    pub cost_currency: Option<Currency>,
    /// What was billed for it (0 for usage billed to a default subscription).
    pub revenue: Decimal,
    /// The invoice's currency.
    pub currency: Currency,
    /// Usage billed to a default subscription: cost without revenue.
    pub own_use: bool,
    /// Revenue minus cost, when both are known in one currency.
    pub margin: Result<Decimal, NoMargin>,
    /// The margin in percent of the revenue, rounded once to 2 decimals half away from zero
    /// (`None` without revenue).
    pub margin_percent: Option<Decimal>,
}

/// The margin of one line of `period`.
pub fn margin_line(input: &MarginInput<'_>, period: Period) -> Result<MarginLine, RatingError> {
    let overflow = RatingError::SumOverflow {
        what: "a line's cost",
    };
    let mut cost = Decimal::ZERO;
    let mut cost_currency: Option<Currency> = None;
    let mut complete = true;
    let mut agree = true;
    for part in &input.parts {
        let price = part
            .card
            .and_then(|card| Some((card, card.rate_for(input.meter_id, period.start())?)));
        let Some((card, price)) = price else {
            complete &= part.quantity.is_zero();
            continue;
        };
        let rated = rate(
            input.meter_id,
            part.quantity,
            Some(price),
            Decimal::ZERO,
            card.currency,
        )?;
        match cost_currency {
            None => cost_currency = Some(card.currency),
            Some(currency) if currency != card.currency => agree = false,
            Some(_) => {}
        }
        cost = exact_add(cost, rated.amount).ok_or(overflow.clone())?;
    }
    let revenue = input
        .revenue
        .unwrap_or_else(|| Decimal::new(0, input.currency.minor_units()));
    let margin = match (
        complete,
        agree && cost_currency.is_none_or(|c| c == input.currency),
    ) {
        (false, _) => Err(NoMargin::CostUnknown),
        (true, false) => Err(NoMargin::Currencies),
        (true, true) => Ok(exact_sub(revenue, cost).ok_or(overflow)?),
    };
    let margin_percent = match &margin {
        Ok(margin) if !revenue.is_zero() => margin
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|m| m.checked_div(revenue))
            .map(|p| {
                p.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            }),
        _ => None,
    };
    Ok(MarginLine {
        meter_id: input.meter_id,
        quantity: input.quantity,
        cost,
        cost_currency: if agree { cost_currency } else { None },
        revenue,
        currency: input.currency,
        own_use: input.revenue.is_none(),
        margin,
        margin_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RateCardName;
    use crate::rating::{MeterRate, Tier};

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn card(currency: &str, price: &str) -> RateCard {
        RateCard {
            name: RateCardName::default_card(),
            currency: currency.parse().unwrap(),
            rates: vec![
                MeterRate::new(
                    meter(),
                    vec![Tier {
                        from_quantity: d("0"),
                        unit_price: d(price),
                    }],
                    d("0"),
                    "2025-01-01T00:00:00Z".parse().unwrap(),
                )
                .unwrap(),
            ],
        }
    }

    fn meter() -> MeterId {
        "b4438d5d-453b-4ee1-b42a-dc72e377f1e4".parse().unwrap()
    }

    #[test]
    fn each_stack_is_priced_at_its_own_cost_card() {
        let period: Period = "2025-05".parse().unwrap();
        let (cheap, dear) = (card("USD", "0.10"), card("USD", "0.20"));
        let input = MarginInput {
            meter_id: meter(),
            quantity: "15".parse().unwrap(),
            revenue: Some(d("6.60")),
            currency: Currency::USD,
            parts: vec![
                CostPart {
                    quantity: "10".parse().unwrap(),
                    card: Some(&cheap),
                },
                CostPart {
                    quantity: "5".parse().unwrap(),
                    card: Some(&dear),
                },
            ],
        };
        let line = margin_line(&input, period).unwrap();
        assert_eq!(line.cost, d("2.00"));
        assert_eq!(line.margin, Ok(d("4.60")));
        assert_eq!(
            line.margin_percent,
            Some(d("69.70")),
            "4.60 / 6.60 = 69.697 %"
        );

        let own = MarginInput {
            revenue: None,
            ..input.clone()
        };
        let line = margin_line(&own, period).unwrap();
        assert!(line.own_use);
        assert_eq!((line.revenue, line.margin), (d("0.00"), Ok(d("-2.00"))));
        assert_eq!(line.margin_percent, None);

        let euro = card("EUR", "0.10");
        let mixed = MarginInput {
            parts: vec![CostPart {
                quantity: "15".parse().unwrap(),
                card: Some(&euro),
            }],
            ..input.clone()
        };
        assert_eq!(
            margin_line(&mixed, period).unwrap().margin,
            Err(NoMargin::Currencies)
        );
        let unknown = MarginInput {
            parts: vec![CostPart {
                quantity: "15".parse().unwrap(),
                card: None,
            }],
            ..input
        };
        assert_eq!(
            margin_line(&unknown, period).unwrap().margin,
            Err(NoMargin::CostUnknown)
        );
    }
}
