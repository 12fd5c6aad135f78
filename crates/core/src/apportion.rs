//! Splitting an amount into parts by weight so that the parts add up to it exactly: how a
//! monthly invoice line (rated once, rounded once) is spread over the days and resources of
//! a reconciliation file.
//!
//! The rule is the largest-remainder method in the currency's minor units: each part gets
//! the whole minor units of `amount × weight / total weight`, and the units left over go one
//! each to the parts with the largest remainders (the earliest part first on a tie). A part
//! of zero weight gets zero. The parts' sum is the amount, to the last minor unit.

use ethnum::I256;
use rust_decimal::Decimal;

use crate::total::Total;

/// `amount` (already rounded to `minor_units` digits) split in proportion to `weights`, or
/// `None` when the weights add up to zero with a non-zero amount, or the arithmetic does not
/// fit in 256 bits.
pub fn apportion(amount: Decimal, minor_units: u32, weights: &[Total]) -> Option<Vec<Decimal>> {
    let mut minor = amount;
    minor.rescale(minor_units);
    let units = I256::from(minor.mantissa());
    let total = weights
        .iter()
        .try_fold(I256::ZERO, |sum, w| sum.checked_add(w.units()))?;
    if total == I256::ZERO {
        return (units == I256::ZERO).then(|| vec![Decimal::new(0, minor_units); weights.len()]);
    }
    // Parts in whole minor units, rounded towards zero, and what each left over.
    let mut parts = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for weight in weights {
        let product = units.checked_mul(weight.units())?;
        parts.push(product / total);
        remainders.push((product % total).unsigned_abs());
    }
    let given = parts
        .iter()
        .try_fold(I256::ZERO, |sum, p| sum.checked_add(*p))?;
    let left = units.checked_sub(given)?;
    let step = if left < I256::ZERO {
        I256::MINUS_ONE
    } else {
        I256::ONE
    };
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| remainders[*b].cmp(&remainders[*a]).then(a.cmp(b)));
    let count = usize::try_from(left.unsigned_abs()).ok()?;
    for &index in order.iter().take(count) {
        parts[index] += step;
    }
    parts
        .into_iter()
        .map(|p| {
            let mantissa = i128::try_from(p).ok()?;
            Decimal::try_from_i128_with_scale(mantissa, minor_units).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn q(text: &str) -> Total {
        text.parse().unwrap()
    }

    #[test]
    fn thirds_of_a_cent_go_to_the_largest_remainders() {
        let parts = apportion(d("1.00"), 2, &[q("1"), q("1"), q("1")]).unwrap();
        assert_eq!(parts, [d("0.34"), d("0.33"), d("0.33")]);
        let parts = apportion(d("-1.00"), 2, &[q("1"), q("1"), q("1")]).unwrap();
        assert_eq!(parts, [d("-0.34"), d("-0.33"), d("-0.33")]);
        let yen = apportion(d("370"), 0, &[q("0.5"), q("2.5"), q("0")]).unwrap();
        assert_eq!(yen, [d("62"), d("308"), d("0")]);
        assert_eq!(apportion(d("0.00"), 2, &[q("0"), q("0")]).unwrap().len(), 2);
        assert_eq!(apportion(d("1.00"), 2, &[q("0")]), None);
    }

    proptest! {
        #[test]
        fn the_parts_add_up_to_the_amount(
            cents in -10_000_000i64..10_000_000,
            weights in prop::collection::vec(0u64..1_000_000_000, 1..40),
            scale in 0u32..7,
        ) {
            let amount = Decimal::new(cents, 2);
            let weights: Vec<Total> = weights
                .iter()
                .map(|w| Total::from_decimal(Decimal::new(i64::try_from(*w).unwrap(), scale)))
                .collect();
            let all_zero = weights.iter().all(|w| w.is_zero());
            match apportion(amount, 2, &weights) {
                Some(parts) => {
                    let sum: Decimal = parts.iter().sum();
                    prop_assert_eq!(sum, amount);
                    for (part, weight) in parts.iter().zip(&weights) {
                        prop_assert!(!weight.is_zero() || part.is_zero());
                        prop_assert!(part.is_zero() || part.is_sign_negative() == amount.is_sign_negative());
                    }
                }
                None => prop_assert!(all_zero && cents != 0),
            }
        }
    }
}
