//! Currencies: the ISO 4217 codes stackbill knows, each with its minor unit (the digits an
//! amount is rounded to).

use std::fmt;
use std::str::FromStr;

/// A currency code stackbill does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an ISO 4217 currency code stackbill knows")]
pub struct UnknownCurrency(pub String);

/// An ISO 4217 currency with its minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    minor_units: u32,
}

/// ISO 4217 codes and their minor units (the standard's table; currencies with no minor
/// unit and those with three are listed with theirs).
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("VND", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("ZAR", 2),
];

impl Currency {
    /// The three-letter code.
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Digits after the decimal point of the minor unit (USD 2, JPY 0, KWD 3).
    pub const fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// US dollars.
    pub const USD: Self = Self {
        code: *b"USD",
        minor_units: 2,
    };
}

impl FromStr for Currency {
    type Err = UnknownCurrency;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let upper = text.to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == upper)
            .and_then(|(code, minor_units)| {
                let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
                Some(Self {
                    code: bytes,
                    minor_units: *minor_units,
                })
            })
            .ok_or_else(|| UnknownCurrency(text.chars().take(10).collect()))
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_in_any_case_and_unknown_ones_refused() {
        assert_eq!("usd".parse::<Currency>().unwrap().to_string(), "USD");
        assert_eq!("JPY".parse::<Currency>().unwrap().minor_units(), 0);
        assert!("XYZ".parse::<Currency>().is_err());
    }
}
