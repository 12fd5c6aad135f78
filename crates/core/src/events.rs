//! Events a partner's webhook endpoints receive, and when a failed delivery is tried again.
//!
//! The retry schedule is Standard Webhooks' suggestion: after 5 s, 5 min, 30 min, 2 h, 5 h,
//! 10 h, 14 h, 20 h and 24 h, about three days in all; then the delivery has failed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// A month's invoice was finalized (it has its number).
    InvoiceFinalized,
    /// An adjustment of a final month appeared on an open invoice.
    InvoiceAdjusted,
    /// A tenant's first usage of a month is billed to its stack's default subscription.
    UsageUnmappedTenant,
    /// A stack's collection failed after succeeding (or for the first time).
    CollectorFailing,
    /// A stack's collection succeeded after failing.
    CollectorRecovered,
    /// Records refused in the last hour, by code.
    UsageRejected,
}

impl EventType {
    /// Every type, in the catalogue's order.
    pub const ALL: [Self; 6] = [
        Self::InvoiceFinalized,
        Self::InvoiceAdjusted,
        Self::UsageUnmappedTenant,
        Self::CollectorFailing,
        Self::CollectorRecovered,
        Self::UsageRejected,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvoiceFinalized => "invoice.finalized",
            Self::InvoiceAdjusted => "invoice.adjusted",
            Self::UsageUnmappedTenant => "usage.unmapped_tenant",
            Self::CollectorFailing => "collector.failing",
            Self::CollectorRecovered => "collector.recovered",
            Self::UsageRejected => "usage.rejected",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not an event type; one of invoice.finalized, invoice.adjusted, usage.unmapped_tenant, collector.failing, collector.recovered, usage.rejected, or *"
)]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| UnknownEventType(text.chars().take(60).collect()))
    }
}

/// The event types an endpoint receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// Every type, including types added later.
    All,
    /// These.
    Only(Vec<EventType>),
}

impl Subscribed {
    /// Parses `*` or a list of names; an empty list is refused.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownEventType> {
        let mut types = Vec::new();
        for name in names {
            let name = name.trim();
            if name == "*" {
                return Ok(Self::All);
            }
            let kind: EventType = name.parse()?;
            if !types.contains(&kind) {
                types.push(kind);
            }
        }
        if types.is_empty() {
            return Err(UnknownEventType(String::new()));
        }
        types.sort();
        Ok(Self::Only(types))
    }

    /// Whether it receives `kind`.
    pub fn includes(&self, kind: EventType) -> bool {
        match self {
            Self::All => true,
            Self::Only(types) => types.contains(&kind),
        }
    }

    /// As stored and answered: `*`, or the names joined by commas.
    pub fn to_text(&self) -> String {
        match self {
            Self::All => "*".to_owned(),
            Self::Only(types) => types
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// The waits between attempts: the `n`-th retry waits `RETRY_SCHEDULE[n - 1]`.
pub const RETRY_SCHEDULE: [Duration; 9] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
    Duration::from_secs(20 * 3600),
    Duration::from_secs(24 * 3600),
];

/// How long to wait after the `attempts`-th failed attempt, or `None` when that was the last
/// (1 first attempt and 9 retries). `retry_after` (a receiver's `Retry-After`) lengthens the
/// wait, never shortens it.
pub fn next_attempt_after(attempts: u32, retry_after: Option<Duration>) -> Option<Duration> {
    let index = usize::try_from(attempts).ok()?.checked_sub(1)?;
    let wait = *RETRY_SCHEDULE.get(index)?;
    Some(retry_after.map_or(wait, |asked| asked.max(wait)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_and_subscriptions_parse() {
        for kind in EventType::ALL {
            assert_eq!(kind.as_str().parse::<EventType>(), Ok(kind));
        }
        assert!("invoice.paid".parse::<EventType>().is_err());
        let some = Subscribed::parse(["usage.rejected", "invoice.finalized", "invoice.finalized"])
            .unwrap();
        assert_eq!(some.to_text(), "invoice.finalized,usage.rejected");
        assert!(some.includes(EventType::UsageRejected));
        assert!(!some.includes(EventType::InvoiceAdjusted));
        assert_eq!(Subscribed::parse(["*"]).unwrap(), Subscribed::All);
        assert!(Subscribed::parse([]).is_err());
    }

    #[test]
    fn retries_span_about_three_days_then_stop() {
        assert_eq!(next_attempt_after(1, None), Some(Duration::from_secs(5)));
        assert_eq!(
            next_attempt_after(1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(60))
        );
        assert_eq!(next_attempt_after(10, None), None);
        let total: Duration = RETRY_SCHEDULE.iter().sum();
        assert!(total > Duration::from_secs(3 * 86_400) && total < Duration::from_secs(4 * 86_400));
    }
}
