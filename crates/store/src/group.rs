//! Group commit for usage batches: batches that arrive while another is being written wait
//! together, and the next writer commits all of them in one transaction (one sync to disk),
//! each decided in arrival order as if alone, each answered only after that commit.

use std::sync::Mutex;

use stackbill_core::{Disposition, UsageRecord};
use tokio::sync::oneshot;

use crate::error::Result;

/// What one batch gets back: its records and their dispositions, or why it failed.
pub(crate) type Outcome = Result<(Vec<UsageRecord>, Vec<Disposition>)>;

/// A batch waiting for its commit.
pub(crate) struct Job {
    pub(crate) records: Vec<UsageRecord>,
    pub(crate) reply: oneshot::Sender<Outcome>,
}

/// The batches waiting, and the turn to write them.
#[derive(Default)]
pub(crate) struct IngestQueue {
    pub(crate) jobs: Mutex<Vec<Job>>,
    pub(crate) turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestQueue").finish_non_exhaustive()
    }
}
