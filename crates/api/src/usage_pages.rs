//! The Commerce usage listings kept between their pages. A listing sums every record of its
//! reported window once; its pages are then cut from that one result set, so that paging
//! neither re-reads the window for each page nor shifts rows between pages when usage
//! arrives meanwhile. The sets are kept a while, within a bound on the rows held in all;
//! a continuation token whose set is gone (expired, evicted, another node, a restart) sums
//! the window again.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use stackbill_core::SubscriptionId;
use stackbill_store::ReportedUsage;

/// How long a listing is kept after its last page was read.
const KEEP_FOR: Duration = Duration::from_secs(15 * 60);
/// The most rows kept over all listings; a larger listing is summed again for each page.
const MAX_ROWS: usize = 250_000;

/// One listing's lines, in their order.
pub(crate) type Lines = Arc<
    Vec<(
        (i64, stackbill_core::MeterId, Option<String>),
        stackbill_core::total::Total,
    )>,
>;

/// What a listing was asked for: a token is honoured only for the same question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listing {
    pub subscription: SubscriptionId,
    pub start: Timestamp,
    pub end: Timestamp,
    pub bucket_hours: i64,
    pub details: bool,
}

struct Kept {
    listing: Listing,
    lines: Lines,
    used: Instant,
}

/// The listings kept by this server.
#[derive(Clone, Default)]
pub struct UsagePages {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    kept: BTreeMap<u64, Kept>,
    rows: usize,
}

impl std::fmt::Debug for UsagePages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("UsagePages")
            .field("listings", &inner.kept.len())
            .field("rows", &inner.rows)
            .finish()
    }
}

impl UsagePages {
    /// The lines of listing `id` if it is still kept and answers the same question.
    pub(crate) fn get(&self, id: u64, listing: &Listing) -> Option<Lines> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        inner.expire(now);
        let kept = inner.kept.get_mut(&id)?;
        if kept.listing != *listing {
            return None;
        }
        kept.used = now;
        Some(Arc::clone(&kept.lines))
    }

    /// Keeps a listing's lines for its next pages; its id, or `None` when it is too large
    /// to keep.
    pub(crate) fn keep(&self, listing: Listing, sums: ReportedUsage) -> (Option<u64>, Lines) {
        let lines: Lines = Arc::new(sums.into_iter().collect());
        if lines.len() > MAX_ROWS {
            return (None, lines);
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        inner.expire(now);
        while inner.rows + lines.len() > MAX_ROWS {
            let Some((_, oldest)) = inner.kept.pop_first() else {
                break;
            };
            inner.rows -= oldest.lines.len();
        }
        if inner.next_id == 0 {
            // Ids differ from one run of the server to the next, so that a token of an
            // earlier run finds nothing rather than another listing.
            let mut seed = [0u8; 8];
            inner.next_id = getrandom::fill(&mut seed)
                .map(|()| u64::from_le_bytes(seed) >> 16)
                .unwrap_or(1)
                .max(1);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        inner.rows += lines.len();
        inner.kept.insert(
            id,
            Kept {
                listing,
                lines: Arc::clone(&lines),
                used: now,
            },
        );
        (Some(id), lines)
    }

    /// Forgets a listing whose last page was read.
    pub(crate) fn done(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(kept) = inner.kept.remove(&id) {
            inner.rows -= kept.lines.len();
        }
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        let stale: Vec<u64> = (self.kept.iter())
            .filter(|(_, kept)| now.duration_since(kept.used) > KEEP_FOR)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some(kept) = self.kept.remove(&id) {
                self.rows -= kept.lines.len();
            }
        }
    }
}

/// A continuation token: the kept listing, if any, and the first line of the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub listing: Option<u64>,
    pub skip: usize,
}

impl Token {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text.split_once('.') {
            Some((id, skip)) => Some(Self {
                listing: Some(u64::from_str_radix(id, 16).ok()?),
                skip: skip.parse().ok()?,
            }),
            None => Some(Self {
                listing: None,
                skip: text.parse().ok()?,
            }),
        }
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.listing {
            Some(id) => write!(f, "{id:x}.{}", self.skip),
            None => write!(f, "{}", self.skip),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_read_back() {
        for token in [
            Token {
                listing: Some(0xabc),
                skip: 1000,
            },
            Token {
                listing: None,
                skip: 2000,
            },
        ] {
            assert_eq!(Token::parse(&token.to_string()), Some(token));
        }
        assert_eq!(Token::parse("zz.1"), None);
        assert_eq!(Token::parse("zz-1"), None);
        assert_eq!(Token::parse("1.x"), None);
    }
}
