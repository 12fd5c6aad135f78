//! Time comes into the core as an argument; this is the seam the adapters fill.

use jiff::Timestamp;

/// A source of "now". The core never reads a clock itself.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// Truncates an instant to whole microseconds, the precision every store keeps.
pub fn to_micros(instant: Timestamp) -> Timestamp {
    let micros = instant.as_microsecond();
    Timestamp::from_microsecond(micros).unwrap_or(instant)
}
