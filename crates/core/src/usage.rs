//! Usage records (SPEC §3): exact quantities, the hourly window, validation codes, and the
//! content comparison that tells a duplicate from a conflict.

use std::borrow::Cow;
use std::fmt;

use jiff::{SignedDuration, Timestamp};
use rust_decimal::Decimal;

use crate::ids::{CloudId, MeterId, SubscriptionId, TenantId};
use crate::period::is_whole_hour;

/// Why a usage record is rejected; each names the field it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageErrorCode {
    /// The record (or the whole body) is not well-formed JSON.
    InvalidJson,
    /// The CSV row cannot be read (bad UTF-8 or quoting).
    InvalidCsv,
    /// A required field is absent or empty.
    MissingField,
    /// A field has the wrong type or form (a bad GUID, instant or id).
    InvalidField,
    /// The quantity is negative, not a decimal, or too precise.
    InvalidQuantity,
    /// The usage window is not one whole UTC hour.
    InvalidTimeWindow,
    /// The usage hour has not ended yet.
    UsageInFuture,
    /// The stack is not registered.
    UnknownStack,
    /// The meter is not in the catalog.
    UnknownMeter,
    /// A stack token sent usage of another stack, or of hours a previous registration of
    /// its stack covered.
    ForbiddenStack,
    /// The record has a field stackbill does not know (a misspelling, say); the target names
    /// it.
    UnknownField,
    /// `reportedTime` is outside the accepted range.
    InvalidReportedTime,
    /// A record with the same id and other content is stored; the stored record stands.
    Conflict,
}

impl UsageErrorCode {
    /// The code as it appears in answers.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "InvalidJson",
            Self::InvalidCsv => "InvalidCsv",
            Self::MissingField => "MissingField",
            Self::InvalidField => "InvalidField",
            Self::InvalidQuantity => "InvalidQuantity",
            Self::InvalidTimeWindow => "InvalidTimeWindow",
            Self::UsageInFuture => "UsageInFuture",
            Self::UnknownStack => "UnknownStack",
            Self::UnknownMeter => "UnknownMeter",
            Self::ForbiddenStack => "ForbiddenStack",
            Self::UnknownField => "UnknownField",
            Self::InvalidReportedTime => "InvalidReportedTime",
            Self::Conflict => "Conflict",
        }
    }
}

impl fmt::Display for UsageErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected usage record's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {target}: {message}")]
pub struct UsageError {
    /// The code.
    pub code: UsageErrorCode,
    /// The field (a record's own name for an unknown one).
    pub target: Cow<'static, str>,
    /// A sentence for people.
    pub message: String,
}

impl UsageError {
    /// A rejection of `target` with `code`.
    pub fn new(
        code: UsageErrorCode,
        target: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            code,
            target: target.into(),
            message: message.into(),
        }
    }
}

/// The most significant digits a quantity may have.
pub const MAX_QUANTITY_SIGNIFICANT_DIGITS: usize = 28;
/// The most fraction digits a quantity may have.
pub const MAX_QUANTITY_FRACTION_DIGITS: u32 = 28;

/// A usage quantity: a non-negative exact decimal with at most 28 significant digits and at
/// most 28 fraction digits, as real stacks send them (`8.3819031715393066E-08`); trailing
/// zeros do not count: `1.50` and `1.5` are one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(Decimal);

impl Quantity {
    /// Zero.
    pub const ZERO: Self = Self(Decimal::ZERO);

    /// Parses decimal text as JSON or CSV carry it: `12`, `0.1`, `1.50`, `1.5e-3`. The text
    /// is read digit by digit, never through a binary float.
    pub fn parse(text: &str) -> Result<Self, UsageError> {
        let invalid = |why: &str| {
            UsageError::new(
                UsageErrorCode::InvalidQuantity,
                "quantity",
                format!("'{}' {why}", text.chars().take(60).collect::<String>()),
            )
        };
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => {
                let exponent: i64 = unsigned[at + 1..]
                    .parse()
                    .map_err(|_| invalid("is not a decimal number"))?;
                (&unsigned[..at], exponent)
            }
            None => (unsigned, 0),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if integer.is_empty() && fraction.is_empty()
            || !all_digits(integer)
            || !all_digits(fraction)
        {
            return Err(invalid("is not a decimal number"));
        }
        // digits × 10^(exponent - fraction.len()), with insignificant zeros removed.
        let digits: String = format!("{integer}{fraction}");
        let digits = digits.trim_start_matches('0');
        let trimmed = digits.trim_end_matches('0');
        let mut scale_exp = exponent
            .saturating_sub(fraction.len() as i64)
            .saturating_add((digits.len() - trimmed.len()) as i64);
        if trimmed.is_empty() {
            return Ok(Self::ZERO);
        }
        if negative {
            return Err(invalid("is negative; quantities are at least 0"));
        }
        let fraction_digits = 0i64.saturating_sub(scale_exp).max(0);
        if fraction_digits > i64::from(MAX_QUANTITY_FRACTION_DIGITS) {
            return Err(invalid(&format!(
                "has {fraction_digits} fraction digits; at most {MAX_QUANTITY_FRACTION_DIGITS} are kept"
            )));
        }
        // Whole-number zeros count as digits: they must be represented.
        let significant = (trimmed.len() as i64).saturating_add(scale_exp.max(0));
        if significant > MAX_QUANTITY_SIGNIFICANT_DIGITS as i64 {
            return Err(invalid(&format!(
                "has {significant} significant digits; at most {MAX_QUANTITY_SIGNIFICANT_DIGITS} are allowed"
            )));
        }
        let mut mantissa_text = trimmed.to_owned();
        while scale_exp > 0 {
            mantissa_text.push('0');
            scale_exp -= 1;
        }
        let mantissa: i128 = mantissa_text
            .parse()
            .map_err(|_| invalid("is out of range"))?;
        let scale = u32::try_from(-scale_exp).map_err(|_| invalid("is out of range"))?;
        Decimal::try_from_i128_with_scale(mantissa, scale)
            .map(|d| Self(d.normalize()))
            .map_err(|_| invalid("is out of range"))
    }

    /// The value.
    pub const fn value(self) -> Decimal {
        self.0
    }
}

/// Canonical text: no trailing zeros, no exponent.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A record's idempotency key within its stack: 1 to 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(String);

impl RecordId {
    /// The most characters an id may have.
    pub const MAX_CHARS: usize = 128;

    /// Checks the length rule.
    pub fn new(id: &str) -> Result<Self, UsageError> {
        let chars = id.chars().count();
        if chars == 0 {
            return Err(UsageError::new(
                UsageErrorCode::MissingField,
                "id",
                "id is empty",
            ));
        }
        if chars > Self::MAX_CHARS || id.chars().any(char::is_control) {
            return Err(UsageError::new(
                UsageErrorCode::InvalidField,
                "id",
                format!("id must be 1 to {} printable characters", Self::MAX_CHARS),
            ));
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One hour of one meter of one resource, as a stack reports it, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The idempotency key, unique per stack.
    pub id: RecordId,
    /// The stack.
    pub cloud_id: CloudId,
    /// The directory of the stack user subscription's owner.
    pub tenant_id: TenantId,
    /// The stack's own user subscription that emitted the usage.
    pub subscription_id: SubscriptionId,
    /// The meter.
    pub meter_id: MeterId,
    /// How much.
    pub quantity: Quantity,
    /// The start of the usage hour (its end is one hour later).
    pub usage_start: Timestamp,
    /// When the stack reported it, if it said.
    pub reported_time: Option<Timestamp>,
    /// `instanceData` as canonical JSON text (keys sorted, no whitespace), if any.
    pub instance_data: Option<String>,
}

/// One hour.
pub const USAGE_WINDOW: SignedDuration = SignedDuration::from_hours(1);

/// Checks the usage window: whole UTC hours, end = start + 1 h, and an hour that has ended
/// by `now`.
pub fn check_window(start: Timestamp, end: Timestamp, now: Timestamp) -> Result<(), UsageError> {
    if !is_whole_hour(start) {
        return Err(UsageError::new(
            UsageErrorCode::InvalidTimeWindow,
            "usageStartTime",
            format!("usageStartTime {start} is not a whole UTC hour"),
        ));
    }
    if end.duration_since(start) != USAGE_WINDOW {
        return Err(UsageError::new(
            UsageErrorCode::InvalidTimeWindow,
            "usageEndTime",
            format!("usageEndTime {end} is not one hour after usageStartTime {start}"),
        ));
    }
    if end > now {
        return Err(UsageError::new(
            UsageErrorCode::UsageInFuture,
            "usageEndTime",
            format!("the usage hour ending {end} has not ended yet (now {now})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Result<String, UsageErrorCode> {
        Quantity::parse(text)
            .map(|q| q.to_string())
            .map_err(|e| e.code)
    }

    #[test]
    fn equal_values_parse_to_one_quantity() {
        for text in [
            "1.50",
            "1.5",
            "1.5000000000",
            "15e-1",
            "0.15E1",
            "+1.5",
            "1.50000000000",
        ] {
            assert_eq!(q(text), Ok("1.5".to_owned()), "{text}");
        }
        assert_eq!(q("0.1"), Ok("0.1".to_owned()));
        assert_eq!(q("0"), Ok("0".to_owned()));
        assert_eq!(q("-0"), Ok("0".to_owned()));
        assert_eq!(q("0.000"), Ok("0".to_owned()));
        assert_eq!(q("12e3"), Ok("12000".to_owned()));
        assert_eq!(q(".5"), Ok("0.5".to_owned()));
        assert_eq!(q("0.0000000001"), Ok("0.0000000001".to_owned()));
    }

    #[test]
    fn limits_are_enforced() {
        // SPEC §3: up to 28 fraction digits, as stacks print doubles.
        assert_eq!(q("0.12345678901"), Ok("0.12345678901".to_owned()));
        assert_eq!(
            q("8.3819031715393066E-08"),
            Ok("0.000000083819031715393066".to_owned())
        );
        assert_eq!(q("1.52587890625E-05"), Ok("0.0000152587890625".to_owned()));
        assert_eq!(q("1e-28"), Ok(format!("0.{}1", "0".repeat(27))));
        assert_eq!(q("1e-29"), Err(UsageErrorCode::InvalidQuantity));
        let max = "9".repeat(28);
        assert_eq!(q(&max), Ok(max.clone()));
        assert_eq!(
            q(&format!("{}.5", "9".repeat(27))),
            Ok(format!("{}.5", "9".repeat(27)))
        );
        assert_eq!(q(&"9".repeat(29)), Err(UsageErrorCode::InvalidQuantity));
        assert_eq!(q("1e28"), Err(UsageErrorCode::InvalidQuantity));
        assert_eq!(q("1e27"), Ok(format!("1{}", "0".repeat(27))));
        assert_eq!(
            q("1e999999999999999999999"),
            Err(UsageErrorCode::InvalidQuantity)
        );
        assert_eq!(
            q("1.5e-9223372036854775808"),
            Err(UsageErrorCode::InvalidQuantity)
        );
        assert_eq!(
            q("1.5e9223372036854775807"),
            Err(UsageErrorCode::InvalidQuantity)
        );
    }

    #[test]
    fn malformed_and_negative_quantities_are_rejected() {
        for text in [
            "", "-", "abc", "1.2.3", "1e", "e5", "1,5", " 1", "0x10", "NaN", "inf", "-1", "-0.5",
            ".",
        ] {
            assert_eq!(q(text), Err(UsageErrorCode::InvalidQuantity), "{text:?}");
        }
    }

    #[test]
    fn record_ids_are_1_to_128_characters() {
        assert!(RecordId::new("a").is_ok());
        assert!(RecordId::new(&"é".repeat(128)).is_ok());
        assert_eq!(
            RecordId::new("").unwrap_err().code,
            UsageErrorCode::MissingField
        );
        assert_eq!(
            RecordId::new(&"x".repeat(129)).unwrap_err().code,
            UsageErrorCode::InvalidField
        );
        assert_eq!(
            RecordId::new("a\nb").unwrap_err().code,
            UsageErrorCode::InvalidField
        );
    }

    #[test]
    fn windows_are_whole_past_hours() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let now = t("2025-06-15T12:30:00Z");
        assert_eq!(
            check_window(t("2025-06-15T11:00:00Z"), t("2025-06-15T12:00:00Z"), now),
            Ok(())
        );
        let code = |s, e| check_window(t(s), t(e), now).unwrap_err().code;
        assert_eq!(
            code("2025-06-15T11:30:00Z", "2025-06-15T12:30:00Z"),
            UsageErrorCode::InvalidTimeWindow
        );
        assert_eq!(
            code("2025-06-15T10:00:00Z", "2025-06-15T12:00:00Z"),
            UsageErrorCode::InvalidTimeWindow
        );
        assert_eq!(
            code("2025-06-15T11:00:00Z", "2025-06-15T11:00:00Z"),
            UsageErrorCode::InvalidTimeWindow
        );
        assert_eq!(
            code("2025-06-15T12:00:00Z", "2025-06-15T13:00:00Z"),
            UsageErrorCode::UsageInFuture
        );
        assert_eq!(
            code("2025-06-15T11:00:00.5Z", "2025-06-15T12:00:00.5Z"),
            UsageErrorCode::InvalidTimeWindow
        );
    }
}

/// A usage record's fields as text, exactly as a parser found them (`None`: absent or
/// `null`). `instance_data` is already canonical JSON text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawUsage {
    /// `id`.
    pub id: Option<String>,
    /// `cloudId`.
    pub cloud_id: Option<String>,
    /// `tenantId`.
    pub tenant_id: Option<String>,
    /// `subscriptionId`.
    pub subscription_id: Option<String>,
    /// `meterId`.
    pub meter_id: Option<String>,
    /// `quantity`, the decimal text of a JSON string or number.
    pub quantity: Option<String>,
    /// `usageStartTime`.
    pub usage_start_time: Option<String>,
    /// `usageEndTime`.
    pub usage_end_time: Option<String>,
    /// `reportedTime`.
    pub reported_time: Option<String>,
    /// `instanceData`, canonical JSON text.
    pub instance_data: Option<String>,
}

/// What validation needs to know beyond the record: the registered stacks and the meters.
pub trait UsageContext {
    /// Whether a registration of the stack, live or deleted, covers usage starting at `at`
    /// (SPEC §4).
    fn knows_stack(&self, cloud: CloudId, at: Timestamp) -> bool;
    /// Whether the meter is in the catalog.
    fn knows_meter(&self, meter: MeterId) -> bool;
}

fn required<'a>(value: Option<&'a str>, target: &'static str) -> Result<&'a str, UsageError> {
    match value {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(UsageError::new(
            UsageErrorCode::MissingField,
            target,
            format!("{target} is required"),
        )),
    }
}

fn guid<T>(value: Option<&str>, target: &'static str) -> Result<T, UsageError>
where
    T: std::str::FromStr<Err = crate::ids::IdError>,
{
    required(value, target)?
        .parse()
        .map_err(|err: crate::ids::IdError| {
            UsageError::new(
                UsageErrorCode::InvalidField,
                target,
                format!("{target}: {err}"),
            )
        })
}

/// The earliest instant a usage hour or a report may have: 2000-01-01T00:00:00Z.
pub const EARLIEST_INSTANT_SECOND: i64 = 946_684_800;

/// How far past now a stack's clock may put a `reportedTime`.
pub const REPORTED_TIME_SLACK: SignedDuration = SignedDuration::from_hours(24);

/// Reads an instant; one written well but outside `[2000-01-01, latest]` is `range_code`.
fn instant(
    value: &str,
    target: &'static str,
    latest: Timestamp,
    range_code: UsageErrorCode,
) -> Result<Timestamp, UsageError> {
    let out_of_range = || {
        UsageError::new(
            range_code,
            target,
            format!(
                "{target}: {value} lies outside the accepted range, from \
                 2000-01-01T00:00:00Z to {latest}"
            ),
        )
    };
    match value.parse::<Timestamp>() {
        Ok(at) if at.as_second() < EARLIEST_INSTANT_SECOND || at > latest => Err(out_of_range()),
        Ok(at) => Ok(at),
        // Well formed, but beyond what an instant can be (year 9999, say).
        Err(_) if jiff::fmt::temporal::Pieces::parse(value).is_ok_and(|p| p.offset().is_some()) => {
            Err(out_of_range())
        }
        Err(err) => Err(UsageError::new(
            UsageErrorCode::InvalidField,
            target,
            format!("{target}: '{value}' is not an RFC 3339 instant with an offset: {err}"),
        )),
    }
}

impl RawUsage {
    /// Validates every field's form and the usage window (SPEC §3), in field order, and
    /// returns the first failure. Whether the stack and meter are known is
    /// [`check_references`]'s question, asked where the registry is at hand.
    pub fn validate(&self, now: Timestamp) -> Result<UsageRecord, UsageError> {
        let id = RecordId::new(required(self.id.as_deref(), "id")?)?;
        let cloud_id: CloudId = guid(self.cloud_id.as_deref(), "cloudId")?;
        let tenant_id = guid(self.tenant_id.as_deref(), "tenantId")?;
        let subscription_id = guid(self.subscription_id.as_deref(), "subscriptionId")?;
        let meter_id: MeterId = guid(self.meter_id.as_deref(), "meterId")?;
        let quantity = Quantity::parse(required(self.quantity.as_deref(), "quantity")?)?;
        // Usage hours lie between 2000 and the end of the hour now; a hour that has not
        // ended yet is `UsageInFuture`, decided by the window check below.
        let latest = now + SignedDuration::from_hours(2);
        let start = instant(
            required(self.usage_start_time.as_deref(), "usageStartTime")?,
            "usageStartTime",
            latest,
            UsageErrorCode::InvalidTimeWindow,
        )?;
        let end = instant(
            required(self.usage_end_time.as_deref(), "usageEndTime")?,
            "usageEndTime",
            latest,
            UsageErrorCode::InvalidTimeWindow,
        )?;
        let reported_time = match self.reported_time.as_deref() {
            Some(text) if !text.is_empty() => Some(crate::clock::to_micros(instant(
                text,
                "reportedTime",
                now + REPORTED_TIME_SLACK,
                UsageErrorCode::InvalidReportedTime,
            )?)),
            _ => None,
        };
        check_window(start, end, now)?;
        Ok(UsageRecord {
            id,
            cloud_id,
            tenant_id,
            subscription_id,
            meter_id,
            quantity,
            usage_start: start,
            reported_time,
            instance_data: self.instance_data.clone().filter(|text| !text.is_empty()),
        })
    }
}

/// Checks that a record's stack is registered and its meter is in the catalog.
pub fn check_references(
    record: &UsageRecord,
    context: &dyn UsageContext,
) -> Result<(), UsageError> {
    if !context.knows_stack(record.cloud_id, record.usage_start) {
        return Err(UsageError::new(
            UsageErrorCode::UnknownStack,
            "cloudId",
            format!("cloud {} is not registered", record.cloud_id),
        ));
    }
    if !context.knows_meter(record.meter_id) {
        return Err(UsageError::new(
            UsageErrorCode::UnknownMeter,
            "meterId",
            format!("meter {} is not in the catalog", record.meter_id),
        ));
    }
    Ok(())
}
