//! Quantities: every textual form of one value parses to that value, exactly.

use proptest::prelude::*;
use rust_decimal::Decimal;
use stackbill_core::Quantity;

proptest! {
    #[test]
    fn every_form_of_a_value_parses_to_it(mantissa in 0u64..=u64::MAX, scale in 0u32..=10, zeros in 0usize..5, shift in -3i64..=3) {
        let value = Decimal::from_i128_with_scale(i128::from(mantissa), scale).normalize();
        let plain = value.to_string();
        let parsed = Quantity::parse(&plain).unwrap();
        prop_assert_eq!(parsed.value(), value);
        prop_assert_eq!(parsed.to_string(), plain.clone());
        // Trailing zeros after a point change nothing.
        let padded = if plain.contains('.') { format!("{plain}{}", "0".repeat(zeros)) } else { format!("{plain}.{}", "0".repeat(zeros.max(1))) };
        prop_assert_eq!(Quantity::parse(&padded).unwrap(), parsed);
        // Nor does writing it with an exponent: (value × 10^-shift) e shift.
        let factor = Decimal::from(10u64.pow(shift.unsigned_abs() as u32));
        let moved = if shift >= 0 { value / factor } else { value * factor };
        let scientific = format!("{}e{shift}", moved.normalize());
        prop_assert_eq!(Quantity::parse(&scientific).unwrap(), parsed, "{}", scientific);
    }
}
