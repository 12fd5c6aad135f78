//! Currencies: every ISO 4217 currency with a minor unit (the digits an amount is rounded
//! to), as the standard's table gives it (the `iso_currency` crate's copy of it). Codes
//! without one (gold, SDR, test codes) price nothing and are refused.

use std::fmt;
use std::str::FromStr;

/// A currency code stackbill does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an ISO 4217 currency code with a minor unit (such as USD, EUR, JPY, BHD)")]
pub struct UnknownCurrency(pub String);

/// An ISO 4217 currency with its minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: [u8; 3],
    minor_units: u32,
}

impl Currency {
    /// The three-letter code.
    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Digits after the decimal point of the minor unit (USD 2, JPY 0, KWD 3).
    pub const fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// The standard's English name ("Bahraini dinar").
    pub fn name(&self) -> String {
        iso_currency::Currency::from_code(self.code())
            .map_or_else(String::new, |iso| iso.name().to_owned())
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
        let unknown = || UnknownCurrency(text.chars().take(10).collect());
        let iso =
            iso_currency::Currency::from_code(&text.to_ascii_uppercase()).ok_or_else(unknown)?;
        let minor_units = iso.exponent().ok_or_else(unknown)?;
        let code: [u8; 3] = iso.code().as_bytes().try_into().map_err(|_| unknown())?;
        Ok(Self {
            code,
            minor_units: u32::from(minor_units),
        })
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
        assert!("XAU".parse::<Currency>().is_err(), "gold has no minor unit");
    }

    #[test]
    fn minor_units_come_from_the_standard() {
        for (code, digits) in [("BHD", 3), ("JPY", 0), ("CLF", 4), ("EUR", 2), ("AFN", 2)] {
            assert_eq!(
                code.parse::<Currency>().unwrap().minor_units(),
                digits,
                "{code}"
            );
        }
        assert_eq!("BHD".parse::<Currency>().unwrap().name(), "Bahraini dinar");
    }
}
