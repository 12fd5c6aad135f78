//! Rating (SPEC §5): rate cards with graduated tiers and included quantities, markup, and
//! the one rounding to the currency's minor unit.
//!
//! Every step before the rounding is exact: quantities and prices are multiplied and summed
//! as 256-bit integers with a decimal scale, so no digit is lost however many fraction digits
//! the inputs carry. A result that does not fit is an [`RatingError::Overflow`], never a
//! wrong number.

use ethnum::I256;
use jiff::Timestamp;
use rust_decimal::Decimal;

pub use crate::currency::{Currency, UnknownCurrency};
use crate::error_code::ErrorCode;
use crate::ids::{MeterId, PartnerId, RateCardName};
use crate::total::{TOTAL_SCALE, Total};

/// Why a price cannot be computed or a rate card is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RatingError {
    /// An intermediate or the result does not fit.
    #[error("the amount of meter {meter_id} overflows: {what}")]
    Overflow {
        /// The meter being rated.
        meter_id: MeterId,
        /// Which step overflowed.
        what: &'static str,
    },
    /// A sum of amounts or quantities (an invoice's total, an adjustment) does not fit.
    #[error("{what} overflows")]
    SumOverflow {
        /// Which sum.
        what: &'static str,
    },
    /// The currency code is not an ISO 4217 code stackbill knows.
    #[error(transparent)]
    UnknownCurrency(#[from] UnknownCurrency),
    /// A rate card entry breaks a rule; `target` names the field.
    #[error("{message}")]
    InvalidRate {
        /// The field.
        target: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl RatingError {
    /// The error code.
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::Overflow { .. } | Self::SumOverflow { .. } => ErrorCode::AmountOverflow,
            Self::UnknownCurrency(_) | Self::InvalidRate { .. } => ErrorCode::InvalidRateCard,
        }
    }

    /// The field the error is about, when it is about one.
    pub const fn target(&self) -> Option<&'static str> {
        match self {
            Self::Overflow { .. } | Self::SumOverflow { .. } => None,
            Self::UnknownCurrency(_) => Some("currency"),
            Self::InvalidRate { target, .. } => Some(*target),
        }
    }
}

/// One tier of a graduated price: from `from_quantity` on, each unit costs `unit_price`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// Where the tier starts (the first tier starts at 0).
    pub from_quantity: Decimal,
    /// The price of one unit inside the tier.
    pub unit_price: Decimal,
}

/// A meter's price from an effective date on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterRate {
    /// The meter.
    pub meter_id: MeterId,
    /// Tiers by ascending `from_quantity`, the first at 0.
    tiers: Vec<Tier>,
    /// Quantity free of charge each period.
    pub included_quantity: Decimal,
    /// From when this price applies (the entry with the latest date on or before a period's
    /// start is the one used for that period).
    pub effective_date: Timestamp,
}

fn invalid(target: &'static str, message: impl Into<String>) -> RatingError {
    RatingError::InvalidRate {
        target,
        message: message.into(),
    }
}

impl MeterRate {
    /// Multiplies every tier's price by `factor` (a derived price list, such as costs at a
    /// share of prices); a price whose product would overflow is left as it is.
    pub fn scale_prices(&mut self, factor: Decimal) {
        for tier in &mut self.tiers {
            if let Some(scaled) = tier.unit_price.checked_mul(factor) {
                tier.unit_price = scaled.normalize();
            }
        }
    }

    /// Checks the tiers (first at 0, strictly ascending, prices at least 0) and the included
    /// quantity (at least 0).
    pub fn new(
        meter_id: MeterId,
        mut tiers: Vec<Tier>,
        included_quantity: Decimal,
        effective_date: Timestamp,
    ) -> Result<Self, RatingError> {
        tiers.sort_by_key(|tier| tier.from_quantity);
        match tiers.first() {
            None => return Err(invalid("rates", "a meter needs at least one tier")),
            Some(first) if !first.from_quantity.is_zero() => {
                return Err(invalid("rates", "the first tier starts at \"0\""));
            }
            Some(_) => {}
        }
        if tiers
            .windows(2)
            .any(|w| w[0].from_quantity == w[1].from_quantity)
        {
            return Err(invalid("rates", "two tiers start at the same quantity"));
        }
        if let Some(tier) = tiers
            .iter()
            .find(|t| t.unit_price.is_sign_negative() && !t.unit_price.is_zero())
        {
            return Err(invalid(
                "rates",
                format!("the unit price {} is negative", tier.unit_price),
            ));
        }
        if tiers
            .iter()
            .any(|t| t.from_quantity.is_sign_negative() && !t.from_quantity.is_zero())
        {
            return Err(invalid("rates", "tier thresholds are at least 0"));
        }
        if included_quantity.is_sign_negative() && !included_quantity.is_zero() {
            return Err(invalid(
                "includedQuantity",
                "the included quantity is at least 0",
            ));
        }
        Ok(Self {
            meter_id,
            tiers,
            included_quantity,
            effective_date,
        })
    }

    /// The tiers, by ascending threshold.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }
}

/// Who a rate card belongs to (SPEC §7): one partner, or every partner (shared by an admin).
/// Names are unique per owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CardOwner {
    /// Made by an admin; every partner may read and use it.
    Shared,
    /// One partner's: only it (and admins) see or use it.
    Partner(PartnerId),
}

impl CardOwner {
    /// The owner of a card put by a partner (its own) or by an admin (`None`: shared).
    pub fn of(partner: Option<PartnerId>) -> Self {
        partner.map_or(Self::Shared, Self::Partner)
    }
}

/// The card a subscription of `partner` named `name` is priced with: the partner's own card
/// of that name, else the shared one; never another partner's.
pub fn card_for<'a, S: std::hash::BuildHasher>(
    cards: &'a std::collections::HashMap<(CardOwner, RateCardName), RateCard, S>,
    partner: Option<&PartnerId>,
    name: &RateCardName,
) -> Option<&'a RateCard> {
    partner
        .and_then(|p| cards.get(&(CardOwner::Partner(p.clone()), name.clone())))
        .or_else(|| cards.get(&(CardOwner::Shared, name.clone())))
}

/// A named price list in one currency, with each meter's price history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCard {
    /// The name subscriptions refer to.
    pub name: RateCardName,
    /// The currency of every price.
    pub currency: Currency,
    /// Every entry, any order.
    pub rates: Vec<MeterRate>,
}

impl RateCard {
    /// Sets `rate` as its meter's price from its effective date, replacing the entry of that
    /// meter and date if there is one; the other dates stay the meter's price history.
    pub fn set_rate(&mut self, rate: MeterRate) {
        self.rates
            .retain(|r| !(r.meter_id == rate.meter_id && r.effective_date == rate.effective_date));
        self.rates.push(rate);
    }

    /// The price of `meter` for a period starting at `period_start`: the entry with the
    /// latest effective date on or before it.
    pub fn rate_for(&self, meter: MeterId, period_start: Timestamp) -> Option<&MeterRate> {
        self.rates
            .iter()
            .filter(|r| r.meter_id == meter && r.effective_date <= period_start)
            .max_by_key(|r| r.effective_date)
    }
}

/// An exact decimal: `mantissa × 10^-scale`, wide enough for products of 28-digit operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exact {
    mantissa: I256,
    scale: u32,
}

/// The largest scale kept before rounding: 10^76 is about the range of an `I256`.
const MAX_EXACT_SCALE: u32 = 76;

impl Exact {
    const ZERO: Self = Self {
        mantissa: I256::ZERO,
        scale: 0,
    };

    fn from_decimal(value: Decimal) -> Self {
        Self {
            mantissa: I256::from(value.mantissa()),
            scale: value.scale(),
        }
    }

    /// A total, with its insignificant fraction zeros dropped (smaller products follow).
    fn from_total(value: Total) -> Self {
        let ten = I256::from(10u8);
        let mut exact = Self {
            mantissa: value.units(),
            scale: TOTAL_SCALE,
        };
        while exact.scale > 0 && exact.mantissa % ten == I256::ZERO {
            exact.mantissa /= ten;
            exact.scale -= 1;
        }
        exact
    }

    fn rescaled(self, scale: u32) -> Option<Self> {
        if scale < self.scale || scale > MAX_EXACT_SCALE {
            return None;
        }
        let factor = I256::from(10u8).checked_pow(scale - self.scale)?;
        Some(Self {
            mantissa: self.mantissa.checked_mul(factor)?,
            scale,
        })
    }

    fn checked_add(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescaled(scale)?, other.rescaled(scale)?);
        Some(Self {
            mantissa: a.mantissa.checked_add(b.mantissa)?,
            scale,
        })
    }

    fn checked_mul(self, other: Self) -> Option<Self> {
        let scale = self.scale + other.scale;
        (scale <= MAX_EXACT_SCALE).then_some(())?;
        Some(Self {
            mantissa: self.mantissa.checked_mul(other.mantissa)?,
            scale,
        })
    }

    /// Rounds to `scale` digits, half away from zero.
    fn round_half_away(self, scale: u32) -> Option<Decimal> {
        let mantissa = if self.scale <= scale {
            self.rescaled(scale)?.mantissa
        } else {
            let divisor = I256::from(10u8).checked_pow(self.scale - scale)?;
            let quotient = self.mantissa / divisor;
            let remainder = self.mantissa % divisor;
            if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() {
                quotient + self.mantissa.signum()
            } else {
                quotient
            }
        };
        let mantissa = i128::try_from(mantissa).ok()?;
        Decimal::try_from_i128_with_scale(mantissa, scale).ok()
    }
}

/// The priced result of one meter in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rated {
    /// The amount, rounded to the currency's minor unit.
    pub amount: Decimal,
    /// No price was found: the amount is 0 and the line says so.
    pub unpriced: bool,
}

/// Rates a period's `quantity` of one meter (SPEC §5): `billable = max(0, quantity −
/// included)`, the graduated cost of `billable`, times `1 + markup/100`, rounded once to the
/// currency's minor unit, half away from zero.
pub fn rate(
    meter_id: MeterId,
    quantity: Total,
    rate: Option<&MeterRate>,
    markup_percent: Decimal,
    currency: Currency,
) -> Result<Rated, RatingError> {
    let overflow = |what| RatingError::Overflow { meter_id, what };
    let Some(rate) = rate else {
        return Ok(Rated {
            amount: Decimal::new(0, currency.minor_units()),
            unpriced: true,
        });
    };
    let billable = quantity
        .checked_sub(Total::from_decimal(rate.included_quantity))
        .ok_or_else(|| overflow("billable quantity"))?
        .max(Total::ZERO);
    let mut cost = Exact::ZERO;
    for (index, tier) in rate.tiers.iter().enumerate() {
        let from = Total::from_decimal(tier.from_quantity);
        if billable <= from {
            break;
        }
        let upper = rate.tiers.get(index + 1).map_or(billable, |next| {
            Total::from_decimal(next.from_quantity).min(billable)
        });
        let part = upper
            .checked_sub(from)
            .map(Exact::from_total)
            .ok_or_else(|| overflow("tier quantity"))?;
        let tier_cost = part
            .checked_mul(Exact::from_decimal(tier.unit_price))
            .ok_or_else(|| overflow("tier cost"))?;
        cost = cost
            .checked_add(tier_cost)
            .ok_or_else(|| overflow("cost"))?;
    }
    // cost × (100 + markup) / 100: the division by 100 is two more digits of scale.
    let factor = Exact::from_decimal(
        Decimal::ONE_HUNDRED
            .checked_add(markup_percent)
            .ok_or_else(|| overflow("markup"))?,
    );
    let marked = cost.checked_mul(factor).ok_or_else(|| overflow("markup"))?;
    let marked = Exact {
        mantissa: marked.mantissa,
        scale: marked.scale + 2,
    };
    let amount = marked
        .round_half_away(currency.minor_units())
        .ok_or_else(|| overflow("amount"))?;
    Ok(Rated {
        amount,
        unpriced: false,
    })
}

/// `percent` % of `amount`, rounded once to the currency's minor unit, half away from zero
/// (an invoice's tax). `None` when the product does not fit an amount.
pub fn percent_of(amount: Decimal, percent: Decimal, currency: Currency) -> Option<Decimal> {
    let product = Exact::from_decimal(amount).checked_mul(Exact::from_decimal(percent))?;
    Exact {
        mantissa: product.mantissa,
        scale: product.scale + 2,
    }
    .round_half_away(currency.minor_units())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn meter() -> MeterId {
        "b4438d5d-453b-4ee1-b42a-dc72e377f1e4".parse().unwrap()
    }

    fn card(tiers: &[(&str, &str)], included: &str) -> MeterRate {
        MeterRate::new(
            meter(),
            tiers
                .iter()
                .map(|(from, price)| Tier {
                    from_quantity: d(from),
                    unit_price: d(price),
                })
                .collect(),
            d(included),
            "2025-01-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap()
    }

    fn amount(quantity: &str, rate: &MeterRate, markup: &str, currency: &str) -> String {
        super::rate(
            meter(),
            Total::from_decimal(d(quantity)),
            Some(rate),
            d(markup),
            currency.parse().unwrap(),
        )
        .unwrap()
        .amount
        .to_string()
    }

    #[test]
    fn tier_boundaries_below_at_and_above() {
        let tiered = card(&[("0", "0.01"), ("1000", "0.005"), ("5000", "0.001")], "0");
        let cases = [
            ("999.9999999999", "10.00"),
            ("1000", "10.00"),
            ("1000.0000000001", "10.00"),
            ("1001", "10.01"),
            ("4998", "29.99"),
            ("4999", "30.00"),
            ("5000", "30.00"),
            ("5010", "30.01"),
            ("0", "0.00"),
        ];
        for (quantity, expected) in cases {
            assert_eq!(
                amount(quantity, &tiered, "0", "USD"),
                expected,
                "{quantity}"
            );
        }
    }

    #[test]
    fn included_quantity_and_markup() {
        let rate = card(&[("0", "2")], "10");
        assert_eq!(
            amount("5", &rate, "0", "USD"),
            "0.00",
            "included larger than usage"
        );
        assert_eq!(amount("10", &rate, "0", "USD"), "0.00");
        assert_eq!(amount("12.5", &rate, "0", "USD"), "5.00");
        assert_eq!(amount("12.5", &rate, "10", "USD"), "5.50");
        assert_eq!(
            amount("12.5", &rate, "-10", "USD"),
            "4.50",
            "negative markup"
        );
        assert_eq!(amount("12.5", &rate, "-100", "USD"), "0.00");
        assert_eq!(
            amount("12.5", &rate, "12.345", "JPY"),
            "6",
            "JPY has no minor unit"
        );
        assert_eq!(amount("12.5", &rate, "0", "KWD"), "5.000");
    }

    #[test]
    fn one_rounding_half_away_from_zero_at_the_end() {
        let cent = card(&[("0", "1")], "0");
        assert_eq!(amount("3.005", &cent, "0", "USD"), "3.01");
        assert_eq!(amount("3.004999", &cent, "0", "USD"), "3.00");
        assert_eq!(
            amount("0.0149999999995", &card(&[("0", "1")], "0"), "0", "USD"),
            "0.01"
        );
        // 0.0149999999995 would become 0.02 if it were rounded twice (to 0.015, then up).
        let tiny = card(&[("0", "0.0000000001")], "0");
        assert_eq!(amount("149999999.995", &tiny, "0", "USD"), "0.01");
        let third = card(&[("0", "0.3333333333")], "0");
        assert_eq!(amount("3", &third, "0", "USD"), "1.00");
    }

    #[test]
    fn large_quantities_stay_exact_and_overflow_is_an_error() {
        let big = "9".repeat(28);
        let rate = card(&[("0", "0.0000000001")], "0");
        // 28 nines × 10^-10 = 999999999999999999.9999999999, which rounds up to 10^18.
        assert_eq!(
            amount(&big, &rate, "0", "USD"),
            format!("1{}.00", "0".repeat(18))
        );
        // Half of 28 nines rounds to 5 × 10^27: a whole number of yen, but 30 digits as cents.
        let half = card(&[("0", "0.5")], "0");
        assert_eq!(
            amount(&big, &half, "0", "JPY"),
            format!("5{}", "0".repeat(27))
        );
        let err = super::rate(
            meter(),
            Total::from_decimal(d(&big)),
            Some(&half),
            Decimal::ZERO,
            Currency::USD,
        )
        .unwrap_err();
        assert!(
            matches!(err, RatingError::Overflow { what: "amount", .. }),
            "{err}"
        );
        let costly = card(&[("0", &"9".repeat(28))], "0");
        let err = super::rate(
            meter(),
            Total::from_decimal(d(&big)),
            Some(&costly),
            Decimal::ZERO,
            Currency::USD,
        )
        .unwrap_err();
        assert!(matches!(err, RatingError::Overflow { .. }), "{err}");
    }

    #[test]
    fn no_price_is_an_unpriced_zero() {
        let rated = super::rate(
            meter(),
            Total::from_decimal(d("5")),
            None,
            Decimal::ZERO,
            Currency::USD,
        )
        .unwrap();
        assert_eq!(
            rated,
            Rated {
                amount: d("0.00"),
                unpriced: true
            }
        );
    }

    #[test]
    fn rate_cards_pick_the_latest_entry_effective_by_the_period_start() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let entry = |price: &str, date: &str| {
            MeterRate::new(
                meter(),
                vec![Tier {
                    from_quantity: d("0"),
                    unit_price: d(price),
                }],
                d("0"),
                at(date),
            )
            .unwrap()
        };
        let card = RateCard {
            name: RateCardName::default_card(),
            currency: Currency::USD,
            rates: vec![
                entry("2", "2025-03-01T00:00:00Z"),
                entry("1", "2025-01-01T00:00:00Z"),
            ],
        };
        assert!(card.rate_for(meter(), at("2024-12-01T00:00:00Z")).is_none());
        assert_eq!(
            card.rate_for(meter(), at("2025-02-01T00:00:00Z"))
                .unwrap()
                .tiers()[0]
                .unit_price,
            d("1")
        );
        assert_eq!(
            card.rate_for(meter(), at("2025-03-01T00:00:00Z"))
                .unwrap()
                .tiers()[0]
                .unit_price,
            d("2")
        );
    }

    #[test]
    fn invalid_rates_are_refused() {
        let at: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        let tier = |from: &str, price: &str| Tier {
            from_quantity: d(from),
            unit_price: d(price),
        };
        assert!(MeterRate::new(meter(), vec![], d("0"), at).is_err());
        assert!(MeterRate::new(meter(), vec![tier("1", "1")], d("0"), at).is_err());
        assert!(MeterRate::new(meter(), vec![tier("0", "1"), tier("0", "2")], d("0"), at).is_err());
        assert!(MeterRate::new(meter(), vec![tier("0", "-1")], d("0"), at).is_err());
        assert!(MeterRate::new(meter(), vec![tier("0", "1")], d("-1"), at).is_err());
    }
}
