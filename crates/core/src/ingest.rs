//! What became of each record of a batch, and the tally the CLI's import and the API's
//! `POST /v1/usage` both report: counts of accepted and duplicate records, and each conflict
//! and rejection by position and id.

use crate::usage::{RecordId, UsageError, UsageErrorCode};

/// What became of one record of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Stored now.
    Accepted,
    /// Stored before with the same content; nothing changed.
    Duplicate,
    /// Stored before with other content; the stored record stands.
    Conflict,
    /// Refused (unknown stack or meter); nothing changed.
    Rejected(UsageError),
}

/// A record that was not stored: where it was in the input, its id when readable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 0-based line, element or data row of the input.
    pub index: u64,
    /// The record's id, when it could be read.
    pub id: Option<String>,
    /// Why.
    pub error: UsageError,
}

/// The outcome of one or more batches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestTally {
    /// Records stored now.
    pub accepted: u64,
    /// Records stored before with the same content.
    pub duplicates: u64,
    /// Records stored before with other content (code [`UsageErrorCode::Conflict`]).
    pub conflicts: Vec<Rejection>,
    /// Records refused, by parsing, validation or the store.
    pub rejected: Vec<Rejection>,
}

impl IngestTally {
    /// How many records each code refused, conflicts included, by code name: what an
    /// operator watches.
    pub fn refused_by_code(&self) -> Vec<(&'static str, u64)> {
        let mut counts: std::collections::BTreeMap<&'static str, u64> =
            std::collections::BTreeMap::new();
        for rejection in self.conflicts.iter().chain(&self.rejected) {
            *counts.entry(rejection.error.code.as_str()).or_default() += 1;
        }
        counts.into_iter().collect()
    }

    /// Counts one record the store decided about; `index` is its position in the input.
    pub fn record(&mut self, index: u64, id: &RecordId, disposition: Disposition) {
        let rejection = |error| Rejection {
            index,
            id: Some(id.as_str().to_owned()),
            error,
        };
        match disposition {
            Disposition::Accepted => self.accepted += 1,
            Disposition::Duplicate => self.duplicates += 1,
            Disposition::Conflict => self.conflicts.push(rejection(UsageError::new(
                UsageErrorCode::Conflict,
                "id",
                "a record with this id and different content is stored; the stored record stands",
            ))),
            Disposition::Rejected(error) => self.rejected.push(rejection(error)),
        }
    }

    /// Counts a batch: `positions[i]` is the input position of `ids[i]`, decided
    /// `dispositions[i]`.
    pub fn record_batch<'a>(
        &mut self,
        positions: &[u64],
        ids: impl IntoIterator<Item = &'a RecordId>,
        dispositions: Vec<Disposition>,
    ) {
        for ((index, id), disposition) in positions.iter().zip(ids).zip(dispositions) {
            self.record(*index, id, disposition);
        }
    }

    /// Every record counted, stored or not.
    pub fn records(&self) -> u64 {
        self.accepted + self.duplicates + self.conflicts.len() as u64 + self.rejected.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_counted_by_disposition_with_positions() {
        let ids: Vec<RecordId> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| RecordId::new(id).unwrap())
            .collect();
        let unknown = UsageError::new(UsageErrorCode::UnknownMeter, "meterId", "no such meter");
        let mut tally = IngestTally::default();
        tally.record_batch(
            &[0, 2, 5, 7],
            &ids,
            vec![
                Disposition::Accepted,
                Disposition::Duplicate,
                Disposition::Conflict,
                Disposition::Rejected(unknown.clone()),
            ],
        );
        assert_eq!((tally.accepted, tally.duplicates), (1, 1));
        assert_eq!(tally.conflicts[0].index, 5);
        assert_eq!(tally.conflicts[0].id.as_deref(), Some("c"));
        assert_eq!(tally.conflicts[0].error.code, UsageErrorCode::Conflict);
        assert_eq!(
            tally.rejected,
            vec![Rejection {
                index: 7,
                id: Some("d".into()),
                error: unknown
            }]
        );
        assert_eq!(tally.records(), 4);
    }
}
