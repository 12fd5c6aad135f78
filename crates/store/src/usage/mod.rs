//! The usage write path: a batch of validated records is accepted, recognised as a
//! duplicate, or refused as a conflict, in one transaction that is committed and synced
//! before anything is reported; the hourly and monthly pre-aggregates are kept in step.
//!
//! A record is stored under the key `(cloud_ref, record_id)` (a unique index, the primary key
//! on PostgreSQL) for the data's whole life. The same transaction adds it to `usage_hourly` and
//! `usage_monthly`, notes it in `usage_late` when its month is already final (so a draft's
//! adjustments never scan a final month's records), and records the batch's last record number
//! in `usage_batches`: record numbers grow with every commit, so "accepted by T" is "record
//! number up to the last one committed by T", with no per-record time index.

mod batch;
mod postgres;
mod reads;
mod sqlite;

use std::sync::{Mutex, PoisonError};

use stackbill_core::UsageRecord;

use crate::db::{Conn, micros, params};
use crate::error::{Result, StoreError};
use crate::store::{Store, run_blocking};
use crate::values::{ValueCache, ValueIds};
use batch::{Batch, SumMap, Sums};

pub(crate) use reads::{RecordFilter, last_rowid_by, load_records};
pub use reads::{ReportedUsage, UsageAggregate, UsageScope};
pub use stackbill_core::Disposition;

/// What a backend writes for a batch of usage; every decision is [`Batch`]'s, so both
/// backends decide alike. Implemented by the SQLite connection (`sqlite.rs`, record by
/// record) and the PostgreSQL one (`postgres.rs`, set-based).
trait UsageWriter {
    /// Interns each record through `batch` and decides it: the first record of a new key is
    /// stored (and noted in `usage_late` when its month is already final) and accepted into
    /// the batch's sums; any other is a duplicate or a conflict of the record stored under
    /// its key. Fills one disposition per record; answers the number of the last record
    /// stored, if any was.
    fn store_records(
        &self,
        conn: &Conn<'_>,
        batch: &mut Batch<'_>,
        records: &[UsageRecord],
        now_micros: i64,
        dispositions: &mut [Option<Disposition>],
    ) -> Result<Option<i64>>;

    /// Adds a batch's sums to a pre-aggregate.
    fn add_sums(&self, table: Sums, sums: &SumMap) -> Result<()>;
}

/// Stores a batch inside the caller's write transaction: the records, the batch's last
/// record number in `usage_batches` (so that "accepted by T" is a record number), and the
/// sums. The answer has one disposition per record, in order, and the value ids the
/// transaction made.
fn write_batch(
    conn: &Conn<'_>,
    writer: &dyn UsageWriter,
    cache: &Mutex<ValueCache>,
    records: &[UsageRecord],
    now_micros: i64,
) -> Result<(Vec<Disposition>, ValueIds)> {
    let mut batch = Batch::load(conn, cache)?;
    let mut dispositions = vec![None; records.len()];
    let last = writer.store_records(conn, &mut batch, records, now_micros, &mut dispositions)?;
    if let Some(last_rowid) = last {
        conn.execute(
            "INSERT INTO usage_batches (accepted_at, last_rowid) VALUES (?1, ?2)",
            params![now_micros, last_rowid],
        )?;
        writer.add_sums(Sums::Monthly, &batch.monthly_sums()?)?;
        writer.add_sums(Sums::Hourly, &batch.sums)?;
    }
    let dispositions = dispositions
        .into_iter()
        .map(|d| d.ok_or_else(|| StoreError::corrupt("a record of the batch was not decided")))
        .collect::<Result<Vec<_>>>()?;
    Ok((dispositions, batch.into_pending()))
}

impl Store {
    /// Stores a batch of validated records in one transaction, committed and synced before
    /// it returns. The answer has one disposition per record, in order.
    pub async fn ingest(&self, records: Vec<UsageRecord>) -> Result<Vec<Disposition>> {
        Ok(self.ingest_returning(records).await?.1)
    }

    /// As [`Store::ingest`], handing the records back beside their dispositions, so that a
    /// caller reporting conflicts and rejections by id need not copy every id beforehand.
    pub async fn ingest_returning(
        &self,
        records: Vec<UsageRecord>,
    ) -> Result<(Vec<UsageRecord>, Vec<Disposition>)> {
        let store = self.clone();
        let (records, dispositions, pending) = self
            .write(move |tx, now| {
                let (dispositions, pending) = write_records(&store, tx, &records, now)?;
                Ok((records, dispositions, pending))
            })
            .await?;
        self.merge_values(pending).await?;
        Ok((records, dispositions))
    }

    /// Makes the value ids a committed write transaction made known to later batches.
    pub(crate) async fn merge_values(&self, pending: ValueIds) -> Result<()> {
        // The cache is taken on a blocking thread, never on a runtime worker: a writer holds
        // it for a whole batch, and on PostgreSQL that writer waits on the driver's connection
        // task, which only the workers run. A worker blocked here would stall both for good.
        // Once the values are known (most batches), there is nothing to merge.
        if pending.len() > 0 {
            let store = self.clone();
            run_blocking(move || {
                store
                    .value_cache()
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .merge(pending);
                Ok(())
            })
            .await?;
        }
        Ok(())
    }
}

/// Stores a batch of validated records inside the caller's write transaction (see
/// [`write_batch`]); the value ids it made go to [`Store::merge_values`] once committed.
pub(crate) fn write_records(
    store: &Store,
    tx: &Conn<'_>,
    records: &[UsageRecord],
    now: jiff::Timestamp,
) -> Result<(Vec<Disposition>, ValueIds)> {
    let writer: &dyn UsageWriter = match tx {
        Conn::Sqlite(sqlite) => *sqlite,
        Conn::Postgres(pg) => pg,
    };
    let (dispositions, pending) =
        write_batch(tx, writer, store.value_cache(), records, micros(now))?;
    let accepted = |index: usize| matches!(dispositions.get(index), Some(Disposition::Accepted));
    crate::usage_events::emit_for_batch(tx, records, accepted, now)?;
    Ok((dispositions, pending))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

    use std::sync::Arc;
    use std::sync::mpsc::{Sender, channel};
    use std::task::{Context, Wake, Waker};
    use std::time::Duration;

    use rust_decimal::Decimal;
    use stackbill_core::{
        BillingModel, OfferType, Partner, Quantity, RateCardName, RecordId, Registration,
        Subscription, SubscriptionId,
    };

    use super::*;
    use crate::SystemClock;

    /// Says when the future it wakes can go on.
    struct Signal(Mutex<Sender<()>>);

    impl Wake for Signal {
        fn wake(self: Arc<Self>) {
            let _ = self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .send(());
        }
    }

    fn record() -> UsageRecord {
        UsageRecord {
            id: RecordId::new("r1").unwrap(),
            cloud_id: "ca000000-0000-0000-0000-000000000001".parse().unwrap(),
            tenant_id: "70000000-0000-0000-0000-000000000001".parse().unwrap(),
            subscription_id: "50000000-0000-0000-0000-000000000001".parse().unwrap(),
            meter_id: "b4438d5d-453b-4ee1-b42a-dc72e377f1e4".parse().unwrap(),
            quantity: Quantity::parse("1").unwrap(),
            usage_start: "2025-06-01T00:00:00Z".parse().unwrap(),
            reported_time: None,
            instance_data: None,
        }
    }

    /// A store whose one stack is registered, so that a record of it is stored.
    async fn registered(store: &Store) {
        store
            .put_partner(Partner {
                id: "p1".parse().unwrap(),
                name: "p".into(),
            })
            .await
            .unwrap();
        let default: SubscriptionId = "d0000000-0000-0000-0000-000000000001".parse().unwrap();
        store
            .put_subscription(Subscription {
                id: default,
                offer_type: OfferType::Cspss,
                partner_id: Some("p1".parse().unwrap()),
                customer_tenant_id: None,
                display_name: String::new(),
                rate_card: RateCardName::default_card(),
                markup_percent: Decimal::ZERO,
            })
            .await
            .unwrap();
        store
            .put_registration(Registration {
                name: "stack1".parse().unwrap(),
                cloud_id: record().cloud_id,
                default_subscription: default,
                billing_model: BillingModel::PayAsYouUse,
            })
            .await
            .unwrap();
    }

    /// An ingestion whose transaction has committed (and made values the cache has not seen)
    /// goes on without waiting, on the thread that polls it, for the value cache that another
    /// writer holds. That writer may be
    /// waiting on the PostgreSQL driver, whose connection tasks only the runtime's workers
    /// run: a worker waiting for the cache would stall both.
    #[test]
    fn a_committed_batch_does_not_wait_for_the_value_cache_on_the_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db"), Arc::new(SystemClock)).unwrap();
        let holder = store.clone();
        let (woken, wakes) = channel();
        let (committed, is_committed) = channel();
        let (go, may_go) = channel::<()>();
        let (polled, was_polled) = channel();
        let poller = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(registered(&store));
            let _inside = runtime.enter();
            let waker = Waker::from(Arc::new(Signal(Mutex::new(woken))));
            let mut context = Context::from_waker(&waker);
            let mut ingest = Box::pin(store.ingest(vec![record()]));
            // The first poll hands the transaction to a blocking thread; the wake says it
            // has committed.
            assert!(ingest.as_mut().poll(&mut context).is_pending());
            wakes.recv().unwrap();
            committed.send(()).unwrap();
            may_go.recv().unwrap();
            let second = ingest.as_mut().poll(&mut context).is_pending();
            polled.send(second).unwrap();
            runtime.block_on(ingest).unwrap()
        });
        is_committed.recv().unwrap();
        let cache = holder
            .value_cache()
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        go.send(()).unwrap();
        let second = was_polled.recv_timeout(Duration::from_secs(10));
        drop(cache);
        assert_eq!(
            second,
            Ok(true),
            "the poll after the commit came back, still pending, while the cache was held"
        );
        let dispositions = poller.join().unwrap();
        assert_eq!(dispositions, [Disposition::Accepted]);
    }

    /// Batches sent at once are each decided as if alone, in some order: every key is accepted
    /// exactly once over all of them, a re-send is a duplicate and a different record under a
    /// taken key a conflict.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_batches_are_each_decided_as_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s.db"), Arc::new(SystemClock)).unwrap();
        registered(&store).await;
        let with = |id: usize, quantity: &str| UsageRecord {
            id: RecordId::new(&format!("r{id}")).unwrap(),
            quantity: Quantity::parse(quantity).unwrap(),
            ..record()
        };
        let tasks: Vec<_> = (0..16)
            .map(|b| {
                let store = store.clone();
                // Batch b holds ids b*10 .. b*10+30: each id is in up to three batches, and
                // odd batches send id 1000 with a quantity of their own.
                let mut records: Vec<UsageRecord> =
                    (b * 10..b * 10 + 30).map(|i| with(i, "1")).collect();
                records.push(with(1000, if b % 2 == 1 { "2" } else { "1" }));
                tokio::spawn(async move { store.ingest_returning(records).await.unwrap() })
            })
            .collect();
        let mut accepted: std::collections::HashMap<String, usize> = Default::default();
        let mut others = 0;
        for task in tasks {
            let (records, dispositions) = task.await.unwrap();
            for (record, disposition) in records.iter().zip(dispositions) {
                match disposition {
                    Disposition::Accepted => {
                        *accepted.entry(record.id.as_str().to_owned()).or_default() += 1;
                    }
                    _ => others += 1,
                }
            }
        }
        assert_eq!(accepted.len(), 16 * 10 + 20 + 1, "every id once");
        assert!(accepted.values().all(|n| *n == 1));
        assert_eq!(others, 16 * 31 - accepted.len());
        let stored = store.usage_records(0, i64::MAX / 7200).await.unwrap();
        assert_eq!(stored.len(), accepted.len());
    }
}
