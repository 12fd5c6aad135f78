//! Records read from an input, split as the CLI's import and the API's `POST /v1/usage`
//! both need them: the valid records with their input positions, and the rejections.

use jiff::Timestamp;
use stackbill_core::{Rejection, UsageError, UsageRecord};

use crate::parse::Item;

/// Valid records with their positions, and the items refused by parsing or validation.
#[derive(Debug, Default)]
pub struct ReadRecords {
    /// `positions[i]` is the 0-based input position of `records[i]`.
    pub positions: Vec<u64>,
    /// The valid records, in input order.
    pub records: Vec<UsageRecord>,
    /// The refused items, in input order.
    pub rejected: Vec<Rejection>,
}

impl ReadRecords {
    /// Validates one item as of `now` and keeps it on its side.
    pub fn push(&mut self, item: Item, now: Timestamp) {
        match item.fields.and_then(|raw| raw.validate(now)) {
            Ok(record) => {
                self.positions.push(item.index);
                self.records.push(record);
            }
            Err(error) => self.rejected.push(Rejection {
                index: item.index,
                id: item.id,
                error,
            }),
        }
    }

    /// Items read so far, valid or not.
    pub fn len(&self) -> usize {
        self.records.len() + self.rejected.len()
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves each valid record that `refuse` finds fault with to the rejections; the
    /// rejections stay in input order.
    pub fn refuse(&mut self, mut refuse: impl FnMut(&UsageRecord) -> Option<UsageError>) {
        let mut kept = (Vec::new(), Vec::new());
        let positions = std::mem::take(&mut self.positions);
        for (index, record) in positions.into_iter().zip(std::mem::take(&mut self.records)) {
            match refuse(&record) {
                None => {
                    kept.0.push(index);
                    kept.1.push(record);
                }
                Some(error) => self.rejected.push(Rejection {
                    index,
                    id: Some(record.id.as_str().to_owned()),
                    error,
                }),
            }
        }
        (self.positions, self.records) = kept;
        self.rejected.sort_by_key(|rejection| rejection.index);
    }
}
