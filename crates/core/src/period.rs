//! Billing periods: calendar months in UTC, written `YYYY-MM`; and usage hours, numbered
//! as whole hours since the Unix epoch.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Whether `instant` is on a whole UTC hour.
pub fn is_whole_hour(instant: Timestamp) -> bool {
    instant.subsec_nanosecond() == 0 && instant.as_second().rem_euclid(3600) == 0
}

/// The number of the hour that holds `instant`: whole hours since the Unix epoch.
pub fn hour_number(instant: Timestamp) -> i64 {
    instant.as_second().div_euclid(3600)
}

/// The start of hour number `hour`, if it is within the range of instants.
pub fn hour_start(hour: i64) -> Result<Timestamp, jiff::Error> {
    Timestamp::from_second(hour.saturating_mul(3600))
}

/// One calendar month (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    year: i16,
    month: i8,
}

/// Why a text is not a period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a billing period (expected YYYY-MM, e.g. 2025-06)")]
pub struct PeriodError(String);

impl Period {
    /// The period of a month.
    pub fn new(year: i16, month: i8) -> Option<Self> {
        ((1970..=9998).contains(&year) && (1..=12).contains(&month)).then_some(Self { year, month })
    }

    /// Its year.
    pub const fn year(self) -> i16 {
        self.year
    }

    /// The period an instant falls in.
    pub fn containing(instant: Timestamp) -> Self {
        let date = instant.to_zoned(TimeZone::UTC).date();
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    fn first_day(self) -> Date {
        Date::constant(2000, 1, 1)
            .with()
            .year(self.year)
            .month(self.month)
            .build()
            .unwrap_or(Date::constant(2000, 1, 1))
    }

    /// The first instant of the period.
    pub fn start(self) -> Timestamp {
        self.first_day()
            .to_zoned(TimeZone::UTC)
            .map(|z| z.timestamp())
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// The first instant after the period.
    pub fn end(self) -> Timestamp {
        self.next().start()
    }

    /// The next month.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The previous month.
    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                year: self.year,
                month: self.month - 1,
            }
        }
    }

    /// The period's first and end hour, in whole hours since the Unix epoch.
    pub fn hours(self) -> (i64, i64) {
        (hour_number(self.start()), hour_number(self.end()))
    }
}

impl FromStr for Period {
    type Err = PeriodError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || PeriodError(text.chars().take(40).collect());
        let (year, month) = text.split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        Self::new(
            year.parse().map_err(|_| bad())?,
            month.parse().map_err(|_| bad())?,
        )
        .ok_or_else(bad)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_are_numbered_from_the_epoch_and_round_trip() {
        let at: Timestamp = "2025-06-01T08:00:00Z".parse().unwrap();
        assert!(is_whole_hour(at));
        assert_eq!(hour_start(hour_number(at)).unwrap(), at);
        let inside: Timestamp = "2025-06-01T08:59:59.5Z".parse().unwrap();
        assert!(!is_whole_hour(inside));
        assert_eq!(hour_number(inside), hour_number(at));
        let before_epoch: Timestamp = "1969-12-31T23:30:00Z".parse().unwrap();
        assert_eq!(hour_number(before_epoch), -1);
        assert!(hour_start(i64::MAX).is_err());
    }

    #[test]
    fn periods_parse_print_and_span_their_month() {
        let p: Period = "2024-02".parse().unwrap();
        assert_eq!(p.to_string(), "2024-02");
        assert_eq!(p.start().to_string(), "2024-02-01T00:00:00Z");
        assert_eq!(p.end().to_string(), "2024-03-01T00:00:00Z");
        assert_eq!(p.hours().1 - p.hours().0, 29 * 24);
        assert_eq!(
            "2024-12".parse::<Period>().unwrap().next().to_string(),
            "2025-01"
        );
        assert_eq!(
            "2025-01".parse::<Period>().unwrap().previous().to_string(),
            "2024-12"
        );
        assert_eq!(
            Period::containing("2025-06-30T23:59:59Z".parse().unwrap()).to_string(),
            "2025-06"
        );
        for bad in [
            "2024-13", "2024-2", "24-02", "2024/02", "", "2024-00", "abcd-ef",
        ] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }
}
