//! One collection of one registration's stack (SPEC §10): learn the user subscriptions
//! (remembered forever), release held rows whose subscription is now known, then for each
//! subscriber (a few at a time) and each closed reported hour after its cursor, pull the
//! hour and commit its records with the cursor in one transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use stackbill_core::period::{hour_number, hour_start};
use stackbill_core::{CloudId, Disposition, SubscriptionId, TenantId, UsageRecord};
use stackbill_store::{CollectedHour, CollectorState, HeldRow, Store, StoreError, Subscriber};
use tokio::sync::Semaphore;

use crate::client::{StackClient, StackError};
use crate::wire::{Collected, UsageRow, collect_row};

/// Empty hours whose cursor move may wait for a later commit.
const EMPTY_HOURS_PER_COMMIT: u32 = 24;

/// What a collection covers.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// How long after a reported hour ends it is collected (rows still arrive meanwhile).
    pub settle: Duration,
    /// Collect from this reported hour (a back-fill), whatever the cursors say.
    pub from: Option<Timestamp>,
    /// Collect reported hours before this instant only.
    pub to: Option<Timestamp>,
    /// Subscribers pulled at once.
    pub parallel: usize,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            settle: Duration::from_secs(15 * 60),
            from: None,
            to: None,
            parallel: 4,
        }
    }
}

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CollectSummary {
    /// The registration.
    pub registration: String,
    /// Subscriber-hours collected.
    pub hours: u64,
    /// Rows read.
    pub records: u64,
    /// Records stored.
    pub accepted: u64,
    /// Records stored before with the same content.
    pub duplicates: u64,
    /// Records stored before with other content (the stored one stands).
    pub conflicts: u64,
    /// Records refused (invalid, unknown meter, no registration for the hour).
    pub rejected: u64,
    /// Rows held for user subscriptions the stack has not listed.
    pub held: u64,
}

/// Why a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Talking to the stack failed.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registration the collector belongs to is gone.
    #[error("registration '{0}' no longer exists; remove its collector")]
    NoRegistration(String),
    /// The server records are forwarded to refused them or could not be reached.
    #[error("{message}")]
    Forward {
        /// The server's error code, or `ServerUnreachable`.
        code: String,
        /// What happened.
        message: String,
    },
    /// The local state file of a forwarding collector cannot be read or written.
    #[error("collector state {0}")]
    State(String),
}

impl CollectError {
    /// A short code for logs, metrics and `collector show`.
    pub fn code(&self) -> String {
        match self {
            Self::Stack(error) => error.code(),
            Self::Store(_) => "StoreError".to_owned(),
            Self::NoRegistration(_) => "RegistrationNotFound".to_owned(),
            Self::Forward { code, .. } => code.clone(),
            Self::State(_) => "CollectorStateInvalid".to_owned(),
        }
    }
}

/// Progress: subscriber-hours done and rows read, shared with a progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    /// Subscriber-hours to collect (known once the subscribers are listed).
    pub total_hours: AtomicU64,
    /// Subscriber-hours done.
    pub hours: AtomicU64,
    /// Rows read.
    pub records: AtomicU64,
}

#[derive(Default)]
struct Tally(std::sync::Mutex<CollectSummary>);

impl Tally {
    fn add(&self, rows: u64, rejected: u64, held: u64, stored: Stored) {
        let mut summary = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        summary.records += rows;
        summary.rejected += rejected + stored.rejected;
        summary.held += held;
        summary.accepted += stored.accepted;
        summary.duplicates += stored.duplicates;
        summary.conflicts += stored.conflicts;
    }
}

/// What a sink did with a committed hour's records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// Stored now.
    pub accepted: u64,
    /// Stored before with the same content.
    pub duplicates: u64,
    /// Stored before with other content.
    pub conflicts: u64,
    /// Refused.
    pub rejected: u64,
}

impl Stored {
    /// Counts a batch's dispositions.
    pub fn of(dispositions: &[Disposition]) -> Self {
        let mut stored = Self::default();
        for disposition in dispositions {
            match disposition {
                Disposition::Accepted => stored.accepted += 1,
                Disposition::Duplicate => stored.duplicates += 1,
                Disposition::Conflict => stored.conflicts += 1,
                Disposition::Rejected(_) => stored.rejected += 1,
            }
        }
        stored
    }
}

/// Where a collection keeps what it learns and stores what it collects: the database (in a
/// server), or another server over HTTP with a local state file (`forward.rs`).
pub trait Sink: Send + Sync + 'static {
    /// The instant records are validated against.
    fn now(&self) -> Timestamp;
    /// Remembers the user subscriptions listed; answers every one ever listed.
    fn remember(
        &self,
        listed: Vec<Subscriber>,
    ) -> impl Future<Output = Result<Vec<Subscriber>, CollectError>> + Send;
    /// The rows held so far.
    fn held(&self) -> impl Future<Output = Result<Vec<HeldRow>, CollectError>> + Send;
    /// Per subscriber, the last reported hour fully collected.
    fn cursors(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<SubscriptionId, i64>, CollectError>> + Send;
    /// Stores an hour's records with its cursor, held rows and released rows, at once.
    fn commit(
        &self,
        hour: CollectedHour,
    ) -> impl Future<Output = Result<Stored, CollectError>> + Send;
}

/// The database as a [`Sink`], for one registration.
pub struct StoreSink {
    store: Store,
    registration: stackbill_core::RegistrationName,
}

impl Sink for StoreSink {
    fn now(&self) -> Timestamp {
        self.store.now()
    }

    async fn remember(&self, listed: Vec<Subscriber>) -> Result<Vec<Subscriber>, CollectError> {
        Ok(self
            .store
            .remember_subscribers(self.registration.clone(), listed)
            .await?)
    }

    async fn held(&self) -> Result<Vec<HeldRow>, CollectError> {
        Ok(self.store.held_rows(self.registration.clone()).await?)
    }

    async fn cursors(&self) -> Result<BTreeMap<SubscriptionId, i64>, CollectError> {
        Ok(self
            .store
            .collector_cursors(self.registration.clone())
            .await?)
    }

    async fn commit(&self, hour: CollectedHour) -> Result<Stored, CollectError> {
        let dispositions = self
            .store
            .commit_collected(self.registration.clone(), hour)
            .await?;
        Ok(Stored::of(&dispositions))
    }
}

/// Validates collected rows: the records to store, rows to hold, and how many were refused.
fn sort_rows(
    cloud: CloudId,
    hour: Timestamp,
    tenants: &BTreeMap<SubscriptionId, TenantId>,
    rows: Vec<UsageRow>,
    now: Timestamp,
) -> (Vec<UsageRecord>, Vec<UsageRow>, u64) {
    let mut records = Vec::with_capacity(rows.len());
    let mut held = Vec::new();
    let mut rejected = 0;
    for row in rows {
        match collect_row(cloud, hour, tenants, row) {
            Collected::Record(raw) => match raw.validate(now) {
                Ok(record) => records.push(record),
                Err(error) => {
                    rejected += 1;
                    tracing::warn!(id = raw.id.as_deref().unwrap_or(""), %error, "collected row refused");
                }
            },
            Collected::Held(row) => held.push(row),
        }
    }
    (records, held, rejected)
}

/// Collects one registration's stack once, and records how it went on the collector. Every
/// subscriber's hours committed before a failure stay committed: the summary counts them
/// beside the first error met.
pub async fn collect(
    store: &Store,
    collector: &CollectorState,
    client: Arc<StackClient>,
    options: &CollectOptions,
    progress: Arc<Progress>,
) -> (CollectSummary, Option<CollectError>) {
    let name = collector.config.registration.clone();
    let (mut summary, error) = match store.registration(name.clone()).await {
        Ok(Some(registration)) => {
            let sink = Arc::new(StoreSink {
                store: store.clone(),
                registration: name.clone(),
            });
            let start = collector.config.start;
            collect_with(
                sink,
                registration.cloud_id,
                start,
                client,
                options,
                progress,
            )
            .await
        }
        Ok(None) => (
            CollectSummary::default(),
            Some(CollectError::NoRegistration(name.to_string())),
        ),
        Err(error) => (CollectSummary::default(), Some(error.into())),
    };
    summary.registration = name.to_string();
    let recorded = match &error {
        None => store.record_collection(name, Ok(())).await,
        Some(error) => {
            store
                .record_collection(name, Err((error.code(), error.to_string())))
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::warn!(%error, "cannot record how the collection went");
    }
    (summary, error)
}

/// Collects a stack once into `sink`, its records of stack `cloud`, reported hours from
/// `start` (or `options.from`). Every subscriber's hours committed before a failure stay
/// committed: the summary counts them beside the first error met.
pub async fn collect_with<S: Sink>(
    sink: Arc<S>,
    cloud: CloudId,
    start: Timestamp,
    client: Arc<StackClient>,
    options: &CollectOptions,
    progress: Arc<Progress>,
) -> (CollectSummary, Option<CollectError>) {
    let tally = Arc::new(Tally::default());
    let outcome = collect_into(sink, cloud, start, client, options, progress, &tally).await;
    let summary = tally
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    (summary, outcome.err())
}

async fn collect_into<S: Sink>(
    sink: Arc<S>,
    cloud: CloudId,
    collector_start: Timestamp,
    client: Arc<StackClient>,
    options: &CollectOptions,
    progress: Arc<Progress>,
    tally: &Arc<Tally>,
) -> Result<(), CollectError> {
    let (listed, skipped) = client.subscriptions().await?;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "user subscriptions whose ids are not GUIDs were left out"
        );
    }
    let listed = listed
        .into_iter()
        .map(|s| Subscriber {
            subscription_id: s.subscription_id,
            tenant_id: s.tenant_id,
            state: s.state,
            display_name: s.display_name,
        })
        .collect();
    let known = sink.remember(listed).await?;
    let tenants: Arc<BTreeMap<SubscriptionId, TenantId>> = Arc::new(
        known
            .iter()
            .map(|s| (s.subscription_id, s.tenant_id))
            .collect(),
    );
    // Rows held earlier whose subscription is known now.
    let held = sink.held().await?;
    let now = sink.now();
    for row in held {
        let Ok(parsed) = serde_json::from_str::<UsageRow>(&row.row_json) else {
            continue;
        };
        let Ok(hour) = hour_start(row.reported_hour) else {
            continue;
        };
        let (records, still_held, rejected) = sort_rows(cloud, hour, &tenants, vec![parsed], now);
        if !still_held.is_empty() {
            continue;
        }
        let count = records.len() as u64 + rejected;
        let stored = sink
            .commit(CollectedHour {
                records,
                release: vec![row.held_id],
                ..CollectedHour::default()
            })
            .await?;
        tally.add(count, rejected, 0, stored);
    }

    // The closed reported hours: each ended `settle` ago, and before `to`.
    let mut end =
        hour_number(now - jiff::SignedDuration::try_from(options.settle).unwrap_or_default());
    if let Some(to) = options.to {
        end = end.min(hour_number(to) + i64::from(to.as_second().rem_euclid(3600) != 0));
    }
    let start = hour_number(options.from.unwrap_or(collector_start));
    let cursors = sink.cursors().await?;
    let plans: Vec<(SubscriptionId, i64)> = known
        .iter()
        .map(|s| {
            let next = match (options.from, cursors.get(&s.subscription_id)) {
                (None, Some(last)) => (last + 1).max(start),
                _ => start,
            };
            (s.subscription_id, next)
        })
        .filter(|(_, next)| *next < end)
        .collect();
    let total: i64 = plans.iter().map(|(_, next)| end - next).sum();
    progress
        .total_hours
        .store(u64::try_from(total).unwrap_or(0), Ordering::Relaxed);

    let permits = Arc::new(Semaphore::new(options.parallel.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (subscriber, next) in plans {
        let (sink, client, tenants, tally, progress, permits) = (
            Arc::clone(&sink),
            Arc::clone(&client),
            Arc::clone(&tenants),
            Arc::clone(tally),
            Arc::clone(&progress),
            Arc::clone(&permits),
        );
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            // An hour with rows commits them with the cursor at once; empty hours only move
            // the cursor, folded into the next commit (at most a day of them), since
            // collecting an empty hour again changes nothing.
            let mut unsaved_empty = 0;
            for hour_no in next..end {
                let Ok(hour) = hour_start(hour_no) else {
                    break;
                };
                let rows = client.usage_hour(subscriber, hour).await?;
                let count = rows.len() as u64;
                let (records, held, rejected) = sort_rows(cloud, hour, &tenants, rows, sink.now());
                let hold: Vec<(i64, String, String)> = held
                    .iter()
                    .map(|row| {
                        let json = serde_json::to_string(row).unwrap_or_default();
                        (hour_no, row.subscription_id.clone(), json)
                    })
                    .collect();
                let held_count = hold.len() as u64;
                let empty = count == 0;
                if empty && unsaved_empty < EMPTY_HOURS_PER_COMMIT && hour_no + 1 < end {
                    unsaved_empty += 1;
                } else {
                    unsaved_empty = 0;
                    let stored = sink
                        .commit(CollectedHour {
                            cursor: Some((subscriber, hour_no)),
                            records,
                            hold,
                            release: Vec::new(),
                        })
                        .await?;
                    tally.add(count, rejected, held_count, stored);
                }
                progress.hours.fetch_add(1, Ordering::Relaxed);
                progress.records.fetch_add(count, Ordering::Relaxed);
                let mut summary = tally
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                summary.hours += 1;
            }
            Ok::<(), CollectError>(())
        });
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let outcome = done.unwrap_or_else(|err| {
            Err(CollectError::Store(StoreError::Worker(format!(
                "a collecting task failed: {err}"
            ))))
        });
        if let Err(error) = outcome {
            tracing::warn!(%cloud, %error, "collection of a subscriber failed");
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
