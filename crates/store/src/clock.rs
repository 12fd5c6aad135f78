//! The real clock, for production wiring; tests pass their own [`Clock`].

use jiff::Timestamp;
use stackbill_core::Clock;

/// Reads the system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
