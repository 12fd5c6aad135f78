//! Billing profiles: what an invoice document prints about the partner who issues it and the
//! customer it is addressed to (legal name, postal address, country, tax id), a partner's
//! invoice number prefix and a subscription's tax rate; and the invoice number format.
//!
//! Profiles are versioned by the store: every change is a new version, and a final invoice
//! prints the versions recorded by its finalization.

use rust_decimal::Decimal;

use crate::error_code::ErrorCode;
use crate::rating::{Currency, RatingError, percent_of};

/// Whose profile: a partner's (who issues invoices) or a billing subscription's (who is
/// invoiced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileOwner {
    /// A partner.
    Partner,
    /// A billing subscription.
    Subscription,
}

impl ProfileOwner {
    /// As stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Partner => "partner",
            Self::Subscription => "subscription",
        }
    }
}

/// A profile's fields; every one is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillingProfile {
    /// The legal name printed on invoices (the display name when absent).
    pub legal_name: Option<String>,
    /// Postal address, one entry per printed line.
    pub address: Vec<String>,
    /// ISO 3166-1 alpha-2 country code, upper case.
    pub country: Option<String>,
    /// Tax or VAT registration number.
    pub tax_id: Option<String>,
    /// A partner's invoice number prefix (`{prefix}-{YYYY}-{NNNNNN}`).
    pub invoice_prefix: Option<String>,
    /// A subscription's tax rate in percent, applied once to an invoice's total.
    pub tax_rate_percent: Option<Decimal>,
}

/// The prefix of invoice numbers when a partner has not set one.
pub const DEFAULT_INVOICE_PREFIX: &str = "INV";
/// The most address lines a profile holds.
pub const MAX_ADDRESS_LINES: usize = 6;
const MAX_TEXT: usize = 120;
const MAX_TAX_ID: usize = 40;
const MAX_PREFIX: usize = 12;

/// A profile field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidProfile {
    /// The field, as the API names it.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl InvalidProfile {
    /// Its error code.
    pub const fn code(&self) -> ErrorCode {
        ErrorCode::InvalidBillingProfile
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidProfile {
    InvalidProfile {
        field,
        reason: reason.into(),
    }
}

fn printable(field: &'static str, text: &str, max: usize) -> Result<(), InvalidProfile> {
    if text.trim().is_empty() {
        return Err(invalid(field, "is empty; leave it out instead"));
    }
    if text.chars().count() > max {
        return Err(invalid(field, format!("is longer than {max} characters")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid(field, "holds a control character (a line break?)"));
    }
    Ok(())
}

impl BillingProfile {
    /// Checks every field for `owner`, naming the first that breaks a rule.
    pub fn validate(&self, owner: ProfileOwner) -> Result<(), InvalidProfile> {
        if let Some(name) = &self.legal_name {
            printable("legalName", name, MAX_TEXT)?;
        }
        if self.address.len() > MAX_ADDRESS_LINES {
            return Err(invalid(
                "address",
                format!(
                    "has {} lines; at most {MAX_ADDRESS_LINES}",
                    self.address.len()
                ),
            ));
        }
        for line in &self.address {
            printable("address", line, MAX_TEXT)?;
        }
        if let Some(country) = &self.country
            && (country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(invalid(
                "country",
                format!("'{country}' is not an ISO 3166-1 alpha-2 code such as DE or US"),
            ));
        }
        if let Some(tax_id) = &self.tax_id {
            printable("taxId", tax_id, MAX_TAX_ID)?;
        }
        match (owner, &self.invoice_prefix, self.tax_rate_percent) {
            (ProfileOwner::Subscription, Some(_), _) => {
                return Err(invalid(
                    "invoicePrefix",
                    "belongs to the partner's profile: numbers run per partner",
                ));
            }
            (ProfileOwner::Partner, _, Some(_)) => {
                return Err(invalid(
                    "taxRatePercent",
                    "belongs to a subscription's profile: tax applies per invoice",
                ));
            }
            _ => {}
        }
        if let Some(prefix) = &self.invoice_prefix
            && (prefix.is_empty()
                || prefix.len() > MAX_PREFIX
                || !prefix
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
        {
            return Err(invalid(
                "invoicePrefix",
                format!("'{prefix}' must be 1 to {MAX_PREFIX} capital letters or digits"),
            ));
        }
        if let Some(rate) = self.tax_rate_percent
            && (rate.is_sign_negative() || rate > Decimal::ONE_HUNDRED || rate.scale() > 4)
        {
            return Err(invalid(
                "taxRatePercent",
                format!("{rate} must be from 0 to 100 with at most 4 decimals"),
            ));
        }
        Ok(())
    }

    /// The invoice number prefix this (partner's) profile gives.
    pub fn prefix(&self) -> &str {
        self.invoice_prefix
            .as_deref()
            .unwrap_or(DEFAULT_INVOICE_PREFIX)
    }
}

/// The number of a partner's `sequence`-th invoice of `year`: `{prefix}-{YYYY}-{NNNNNN}`
/// (more digits past 999,999).
pub fn invoice_number(prefix: &str, year: i16, sequence: u64) -> String {
    format!("{prefix}-{year:04}-{sequence:06}")
}

/// The tax on an invoice: `rate` % of its total (lines and adjustments), rounded once to the
/// currency's minor unit, half away from zero. `None` when it does not fit an amount.
pub fn tax(total: Decimal, rate_percent: Decimal, currency: Currency) -> Option<Decimal> {
    percent_of(total, rate_percent, currency)
}

/// An invoice's tax line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvoiceTax {
    /// The rate, in percent.
    pub rate_percent: Decimal,
    /// [`tax`] of the invoice's total at that rate.
    pub amount: Decimal,
    /// The invoice's total with its tax: what the customer pays.
    pub total_due: Decimal,
}

impl InvoiceTax {
    /// The tax on `total` at `rate_percent`, or the overflow that prevents it.
    pub fn on(
        total: Decimal,
        rate_percent: Decimal,
        currency: Currency,
    ) -> Result<Self, RatingError> {
        let overflow = RatingError::SumOverflow {
            what: "the invoice tax",
        };
        let amount = tax(total, rate_percent, currency).ok_or(overflow.clone())?;
        Self::frozen(total, rate_percent, amount).ok_or(overflow)
    }

    /// A tax as it was computed, on `total`; `None` when the sum does not fit an amount.
    pub fn frozen(total: Decimal, rate_percent: Decimal, amount: Decimal) -> Option<Self> {
        Some(Self {
            rate_percent,
            amount,
            total_due: crate::sum::exact_add(total, amount)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    #[test]
    fn fields_are_checked_and_named() {
        let ok = BillingProfile {
            legal_name: Some("Contoso GmbH".into()),
            address: vec!["Hauptstraße 1".into(), "10115 Berlin".into()],
            country: Some("DE".into()),
            tax_id: Some("DE123456789".into()),
            invoice_prefix: None,
            tax_rate_percent: Some(d("19")),
        };
        assert_eq!(ok.validate(ProfileOwner::Subscription), Ok(()));
        let field = |profile: BillingProfile, owner| profile.validate(owner).unwrap_err().field;
        let partner = ProfileOwner::Partner;
        assert_eq!(field(ok.clone(), partner), "taxRatePercent");
        let bad_country = BillingProfile {
            country: Some("Germany".into()),
            ..ok.clone()
        };
        assert_eq!(field(bad_country, partner), "country");
        let bad_prefix = BillingProfile {
            invoice_prefix: Some("in-v".into()),
            tax_rate_percent: None,
            ..ok.clone()
        };
        assert_eq!(field(bad_prefix, partner), "invoicePrefix");
        let two_lines = BillingProfile {
            legal_name: Some("A\nB".into()),
            ..ok.clone()
        };
        assert_eq!(field(two_lines, partner), "legalName");
        let rate = BillingProfile {
            tax_rate_percent: Some(d("100.5")),
            ..ok
        };
        assert_eq!(field(rate, ProfileOwner::Subscription), "taxRatePercent");
    }

    #[test]
    fn numbers_and_tax() {
        assert_eq!(invoice_number("INV", 2026, 7), "INV-2026-000007");
        assert_eq!(invoice_number("CT", 2026, 1_234_567), "CT-2026-1234567");
        let usd = Currency::USD;
        assert_eq!(tax(d("10.05"), d("19"), usd), Some(d("1.91")), "1.9095");
        assert_eq!(
            tax(d("0.50"), d("5"), usd),
            Some(d("0.03")),
            "0.025 half away"
        );
        assert_eq!(tax(d("-0.50"), d("5"), usd), Some(d("-0.03")));
        let jpy = "JPY".parse().unwrap();
        assert_eq!(tax(d("1234"), d("10"), jpy), Some(d("123")), "123.4");
        let bhd = "BHD".parse().unwrap();
        assert_eq!(tax(d("1.234"), d("10"), bhd), Some(d("0.123")), "0.1234");
    }
}
