//! Exact totals of usage quantities: 256-bit fixed point with 28 fraction digits.
//!
//! A 96-bit [`Decimal`] holds one record's quantity (at most 28 significant digits, at most
//! 28 of them after the point) but not a month of them: real stacks send doubles printed
//! with up to 24 fraction digits, and a sum of such values with a few integer digits needs
//! more than 28 digits. A [`Total`] keeps every one of the 28 fraction digits and, in 256
//! bits, any integer part a sum of records can reach (a 28-digit quantity is about 2^187
//! units of 10^-28; 2^60 of them still fit), so sums of quantities are exact. This is the
//! building block for SPEC §3's amended precision; the store's pre-aggregates and the
//! invoice quantities move onto it next.

use std::fmt;
use std::str::FromStr;

use ethnum::I256;
use rust_decimal::Decimal;

/// The fraction digits a [`Total`] keeps.
pub const TOTAL_SCALE: u32 = 28;

/// An exact total: an integer count of 10^-28 units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Total(I256);

/// Why text is not a [`Total`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a decimal with at most {TOTAL_SCALE} fraction digits: {why}")]
pub struct TotalError {
    text: String,
    why: &'static str,
}

fn ten_to(power: u32) -> I256 {
    I256::from(10u8).pow(power)
}

impl Total {
    /// Zero.
    pub const ZERO: Self = Self(I256::ZERO);

    /// A decimal, exactly (a `Decimal` has at most 28 fraction digits).
    pub fn from_decimal(value: Decimal) -> Self {
        let scale = value.scale().min(TOTAL_SCALE);
        Self(I256::from(value.mantissa()) * ten_to(TOTAL_SCALE - scale))
    }

    /// The same value as a `Decimal`, when one can hold it exactly.
    pub fn to_decimal(self) -> Option<Decimal> {
        self.to_string()
            .parse::<Decimal>()
            .ok()
            .filter(|d| Self::from_decimal(*d) == self)
    }

    /// The count of 10^-28 units.
    pub const fn units(self) -> I256 {
        self.0
    }

    /// The total of `units` 10^-28 units.
    pub const fn from_units(units: I256) -> Self {
        Self(units)
    }

    /// `self + other`, or `None` beyond 256 bits.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// `self - other`, or `None` beyond 256 bits.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// Whether it is zero.
    pub fn is_zero(self) -> bool {
        self.0 == I256::ZERO
    }
}

impl FromStr for Total {
    type Err = TotalError;

    /// Plain decimal text (`-12.5`, `0.000000083819031715393066`): no exponent, at most 28
    /// fraction digits once trailing zeros are dropped.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why| TotalError {
            text: text.chars().take(80).collect(),
            why,
        };
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (integer, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let fraction = fraction.trim_end_matches('0');
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty() || !all_digits(integer) || !all_digits(fraction) {
            return Err(fail("not a plain decimal"));
        }
        if fraction.len() > TOTAL_SCALE as usize {
            return Err(fail("too many fraction digits"));
        }
        let mut units = I256::ZERO;
        let shift = TOTAL_SCALE as usize - fraction.len();
        for byte in integer.bytes().chain(fraction.bytes()) {
            units = units
                .checked_mul(I256::from(10u8))
                .and_then(|u| u.checked_add(I256::from(byte - b'0')))
                .ok_or_else(|| fail("too large"))?;
        }
        units = units
            .checked_mul(ten_to(u32::try_from(shift).unwrap_or(0)))
            .ok_or_else(|| fail("too large"))?;
        Ok(Self(if negative { -units } else { units }))
    }
}

/// Canonical text: no exponent, no trailing fraction zeros (`1.5`, `-0.25`, `3`).
impl fmt::Display for Total {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let magnitude = self.0.unsigned_abs();
        let scale = ten_to(TOTAL_SCALE).unsigned_abs();
        let (integer, fraction) = (magnitude / scale, magnitude % scale);
        if self.0 < I256::ZERO {
            f.write_str("-")?;
        }
        write!(f, "{integer}")?;
        if fraction != 0 {
            let digits = format!("{fraction:0>28}");
            write!(f, ".{}", digits.trim_end_matches('0'))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn t(text: &str) -> Total {
        text.parse().unwrap()
    }

    #[test]
    fn text_round_trips_with_every_fraction_digit() {
        for text in [
            "0",
            "3",
            "-0.25",
            "1.5",
            "0.000000083819031715393066",
            "9999999999999999999999999999.0000000000000000000000000001",
        ] {
            assert_eq!(t(text).to_string(), text.trim_end_matches(".0"), "{text}");
        }
        assert_eq!(t("1.50").to_string(), "1.5");
        assert!("1e-5".parse::<Total>().is_err());
        assert!(
            "0.00000000000000000000000000001".parse::<Total>().is_err(),
            "29 digits"
        );
        assert_eq!(
            Total::from_decimal(
                "8.3819031715393066E-08"
                    .parse::<Decimal>()
                    .unwrap_or_default()
            ),
            t("0.000000083819031715393066")
        );
    }

    /// A month of real-looking quantities, hour by hour, sums exactly where a `Decimal`
    /// would have to round.
    #[test]
    fn a_month_of_fine_quantities_sums_exactly() {
        let quantity = t("1234.000000083819031715393066");
        let mut total = Total::ZERO;
        for _ in 0..744 * 100 {
            total = total.checked_add(quantity).unwrap();
        }
        // 91,809,600 + 74,400 × 0.000000083819031715393066.
        assert_eq!(total.to_string(), "91809600.0062361359596252441104");
        assert_eq!(total.to_decimal(), None, "a Decimal cannot hold it");
        let decimal_sum =
            (0..744 * 100).fold(Decimal::ZERO, |sum, _| sum + quantity.to_decimal().unwrap());
        assert_ne!(
            Total::from_decimal(decimal_sum),
            total,
            "a Decimal sum rounds"
        );
    }

    proptest! {
        #[test]
        fn sums_are_exact_and_subtraction_undoes_them(
            a in -10_i128.pow(30)..10_i128.pow(30),
            b in -10_i128.pow(30)..10_i128.pow(30),
        ) {
            let (x, y) = (Total(I256::from(a)), Total(I256::from(b)));
            let sum = x.checked_add(y).unwrap();
            prop_assert_eq!(sum.checked_sub(y), Some(x));
            prop_assert_eq!(sum.to_string().parse::<Total>().unwrap(), sum);
        }
    }
}
