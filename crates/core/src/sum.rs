//! Exact sums of decimals. A 96-bit decimal keeps 28 or 29 significant digits: an addition
//! whose exact result needs more would be rounded to fit. Here such an addition is `None`,
//! as an overflow is, so that a sum is exact or an error, never a rounded number.

use rust_decimal::Decimal;

/// `a + b`, exactly, or `None`.
pub fn exact_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let mut sum = a.checked_add(b)?;
    if sum.is_zero() {
        // Never a "-0" (0 - 0 keeps the sign of the negated zero).
        sum.set_sign_positive(true);
    }
    // A rounded sum differs from the exact one, so taking `a` back off does not give `b`, or
    // `b` back off does not give `a`: one test alone can round back to the operand (a tiny
    // `a` lost in a large `b`).
    (sum.checked_sub(a)? == b && sum.checked_sub(b)? == a).then_some(sum)
}

/// `a - b`, exactly, or `None`.
pub fn exact_sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    exact_add(a, -b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn a_sum_that_would_be_rounded_is_refused() {
        assert_eq!(exact_add(d("1.5"), d("2.25")), Some(d("3.75")));
        // 10^27 + 0.15 needs 30 significant digits: a plain addition rounds it.
        let big = d("1000000000000000000000000000");
        let rounded = big.checked_add(d("0.15")).unwrap();
        assert_ne!(rounded - big, d("0.15"), "rounded: {rounded}");
        assert_eq!(exact_add(big, d("0.15")), None);
        assert_eq!(
            exact_add(big, d("1.5")),
            Some(d("1000000000000000000000000001.5"))
        );
        assert_eq!(
            exact_add(d("0.0000000001"), d("100000000000000000000")),
            None
        );
        assert_eq!(exact_add(Decimal::MAX, Decimal::ONE), None);
        assert_eq!(exact_sub(d("7.80"), d("6.60")), Some(d("1.20")));
        assert_eq!(exact_sub(d("0.00"), d("0.00")).unwrap().to_string(), "0.00");
    }
}
