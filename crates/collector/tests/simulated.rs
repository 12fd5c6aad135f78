//! The collector against the simulated stack, over real HTTP on loopback, into a real store
//! (SQLite, or PostgreSQL with `STACKBILL_TEST_POSTGRES`): what it collects is exactly what
//! the stack says, through faults, paging, late and split rows, token expiry and revocation;
//! collecting again stores nothing new.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use stackbill_collector::client::{RetryPolicy, StackAccess, StackClient};
use stackbill_collector::collect::{CollectOptions, CollectSummary, Progress, collect};
use stackbill_collector::simulator::{Identity, SimOptions, SimStack};
use stackbill_core::period::hour_number;
use stackbill_core::total::Total;
use stackbill_core::{MeterId, TenantId};
use stackbill_store::{ClientCredential, CollectorConfig, CollectorState, SecretKeyring, Store};
use stackbill_test_support::TestStore;
use stackbill_test_support::fixtures::{self, CLOUD};

const FROM: &str = "2025-05-01T00:00:00Z";
const HOURS: i64 = 30;

async fn serve(sim: Arc<SimStack>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sim.router()).await });
    format!("http://{address}")
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 12,
        base: Duration::from_millis(5),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(10),
    }
}

/// A registered stack with a collector pointed at `endpoint`.
async fn configured(db: &TestStore, sim: &SimStack, endpoint: &str) -> CollectorState {
    fixtures::csp(&db.store, &[]).await;
    fixtures::register(&db.store, "hub", CLOUD.parse().unwrap()).await;
    let secret = db.dir().join("secret.txt");
    std::fs::write(&secret, format!("{}\n", sim.options().client_secret)).unwrap();
    let directory = match &sim.options().identity {
        Identity::Entra { directory } => directory.clone(),
        Identity::Adfs => "adfs".to_owned(),
    };
    db.store
        .put_collector(CollectorConfig {
            registration: "hub".parse().unwrap(),
            admin_endpoint: endpoint.to_owned(),
            provider_subscription: sim.options().provider_subscription,
            client_id: sim.options().client_id.clone(),
            directory,
            credential: ClientCredential::SecretFile(secret.display().to_string()),
            ca: None,
            start: FROM.parse().unwrap(),
        })
        .await
        .unwrap()
}

/// A keyring for collectors whose secrets are files: it is never opened.
fn no_keyring() -> SecretKeyring {
    SecretKeyring::new("/nonexistent/secret.key")
}

async fn run(store: &Store, state: &CollectorState, options: &CollectOptions) -> CollectSummary {
    run_with(store, state, options, &no_keyring()).await
}

async fn run_with(
    store: &Store,
    state: &CollectorState,
    options: &CollectOptions,
    keyring: &SecretKeyring,
) -> CollectSummary {
    let access = StackAccess::from_config(&state.config, keyring).unwrap();
    let client = Arc::new(StackClient::new(access, fast_retries()).unwrap());
    let (summary, error) = collect(store, state, client, options, Arc::default()).await;
    assert!(error.is_none(), "{error:?}");
    summary
}

/// What the store holds, summed per (tenant, meter, usage hour).
async fn stored(store: &Store) -> BTreeMap<(TenantId, MeterId, Timestamp), Total> {
    let from = hour_number(FROM.parse().unwrap());
    let mut sums = BTreeMap::new();
    for record in store
        .usage_records(from - 24, from + HOURS + 24)
        .await
        .unwrap()
    {
        let sum = sums
            .entry((record.tenant_id, record.meter_id, record.usage_start))
            .or_insert(Total::ZERO);
        *sum = sum
            .checked_add(Total::from_decimal(record.quantity.value()))
            .unwrap();
    }
    sums
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_collected_through_faults_is_exactly_what_the_stack_says() {
    let mut options = SimOptions::new(11, 6, FROM.parse().unwrap(), HOURS);
    options.faults = 0.15;
    options.page_size = 7;
    options.token_lifetime = Duration::from_secs(2);
    let sim = Arc::new(SimStack::new(options));
    let endpoint = serve(Arc::clone(&sim)).await;
    let db = TestStore::new();
    db.clock.set("2025-05-04T00:00:00Z");
    let state = configured(&db, &sim, &endpoint).await;

    let first = run(&db.store, &state, &CollectOptions::default()).await;
    let truth = sim.truth();
    assert!(truth.len() > 1000, "{} totals", truth.len());
    assert_eq!(
        stored(&db.store).await,
        truth,
        "collected totals equal the truth"
    );
    assert!(first.records > truth.len() as u64, "split rows: {first:?}");
    assert_eq!(first.accepted, first.records, "{first:?}");
    assert_eq!((first.rejected, first.held, first.conflicts), (0, 0, 0));
    assert!(sim.faults_served() > 0, "faults were served and survived");
    let state = db
        .store
        .collector("hub".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(state.last_success.is_some() && state.last_error.is_none());
    assert_eq!(state.subscribers, 6);

    // Nothing new: the cursors are past every closed hour.
    let again = run(&db.store, &state, &CollectOptions::default()).await;
    assert_eq!((again.hours, again.accepted), (0, 0), "{again:?}");
    // A back-fill of the same range re-reads everything and stores nothing new, even with
    // every token revoked in between.
    sim.revoke_tokens();
    let refill = CollectOptions {
        from: Some(FROM.parse().unwrap()),
        ..CollectOptions::default()
    };
    let backfill = run(&db.store, &state, &refill).await;
    assert_eq!(backfill.accepted, 0, "{backfill:?}");
    assert_eq!(backfill.duplicates, first.accepted, "{backfill:?}");
    assert_eq!(stored(&db.store).await, truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_fs_stacks_and_subscriptions_that_appear_late_are_collected() {
    let mut options = SimOptions::new(12, 4, FROM.parse().unwrap(), HOURS);
    options.identity = Identity::Adfs;
    options.hidden = 1;
    let sim = Arc::new(SimStack::new(options));
    let endpoint = serve(Arc::clone(&sim)).await;
    let db = TestStore::new();
    db.clock.set("2025-05-04T00:00:00Z");
    let state = configured(&db, &sim, &endpoint).await;
    run(&db.store, &state, &CollectOptions::default()).await;
    let truth = sim.truth();
    let hidden_tenant = sim.subscriptions()[3].1;
    let partial: BTreeMap<_, _> = (truth.iter())
        .filter(|((tenant, _, _), _)| *tenant != hidden_tenant)
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(stored(&db.store).await, partial, "the listed tenants");
    // The stack lists the fourth subscription now: its whole past is collected.
    sim.reveal();
    run(&db.store, &state, &CollectOptions::default()).await;
    assert_eq!(stored(&db.store).await, truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_a_named_failure_recorded_on_the_collector() {
    let sim = Arc::new(SimStack::new(SimOptions::new(
        13,
        1,
        FROM.parse().unwrap(),
        2,
    )));
    let endpoint = serve(Arc::clone(&sim)).await;
    let db = TestStore::new();
    db.clock.set("2025-05-04T00:00:00Z");
    let state = configured(&db, &sim, &endpoint).await;
    let ClientCredential::SecretFile(path) = &state.config.credential else {
        unreachable!("configured with a secret file")
    };
    std::fs::write(path, "wrong").unwrap();
    let access = StackAccess::from_config(&state.config, &no_keyring()).unwrap();
    let client = Arc::new(StackClient::new(access, fast_retries()).unwrap());
    let (summary, error) = collect(
        &db.store,
        &state,
        client,
        &CollectOptions::default(),
        Arc::new(Progress::default()),
    )
    .await;
    let error = error.unwrap();
    assert_eq!(error.code(), "StackAuthenticationFailed", "{error}");
    assert!(error.to_string().contains("invalid_client"), "{error}");
    assert!(
        !error.to_string().contains("wrong"),
        "the secret is never shown: {error}"
    );
    assert_eq!(summary.accepted, 0);
    let state = db
        .store
        .collector("hub".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    let (_, code, _) = state.last_error.unwrap();
    assert_eq!(code, "StackAuthenticationFailed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_unlisted_subscriptions_are_held_then_collected() {
    let mut options = SimOptions::new(14, 3, FROM.parse().unwrap(), HOURS);
    options.hidden = 1;
    options.stray_hidden = true;
    let sim = Arc::new(SimStack::new(options));
    let endpoint = serve(Arc::clone(&sim)).await;
    let db = TestStore::new();
    db.clock.set("2025-05-04T00:00:00Z");
    let state = configured(&db, &sim, &endpoint).await;
    let first = run(&db.store, &state, &CollectOptions::default()).await;
    assert!(first.held > 0, "{first:?}");
    let state = db
        .store
        .collector("hub".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.held as u64, first.held);
    let truth = sim.truth();
    let hidden_tenant = sim.subscriptions()[2].1;
    let listed: BTreeMap<_, _> = (truth.iter())
        .filter(|((tenant, _, _), _)| *tenant != hidden_tenant)
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(stored(&db.store).await, listed, "held rows are not guessed");
    // Listed now: the held rows are collected, and its own hours add nothing twice.
    sim.reveal();
    let second = run(&db.store, &state, &CollectOptions::default()).await;
    assert_eq!(second.held, 0, "{second:?}");
    assert_eq!(stored(&db.store).await, truth);
    let state = db
        .store
        .collector("hub".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.held, 0);
}

/// A month collected through faults and paging is invoiced exactly as a rating of the
/// simulator's truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_of_collected_usage_equal_a_rating_of_the_truth() {
    use stackbill_core::invoice::{Pricing, rate_lines};
    use stackbill_core::rating::{CardOwner, MeterRate, Tier};
    use stackbill_core::{Currency, Period, RateCard, RateCardName};

    let mut options = SimOptions::new(15, 3, FROM.parse().unwrap(), 744);
    options.faults = 0.05;
    options.page_size = 50;
    let sim = Arc::new(SimStack::new(options));
    let endpoint = serve(Arc::clone(&sim)).await;
    let db = TestStore::new();
    db.clock.set("2025-06-02T00:00:00Z");
    let state = configured(&db, &sim, &endpoint).await;
    let prices = [
        ("b5c15376-6c94-4fdd-b655-1a69d138aca3", "0.0000666"),
        ("09f8879e-87e9-4305-a572-4b7be209f857", "0.0000333"),
        ("b4438d5d-453b-4ee1-b42a-dc72e377f1e4", "0.0000333"),
        ("6dab500f-a4fd-49c4-956d-229bb9c8c793", "0.01"),
        ("fab6eb84-500b-4a09-a8ca-7358f8bbaea5", "0.008"),
        ("d5f7731b-f639-404a-89d0-e46186e22c8d", "5.89"),
    ];
    let card = RateCard {
        name: RateCardName::default_card(),
        currency: Currency::USD,
        rates: prices
            .iter()
            .map(|(meter, price)| {
                let tiers = vec![Tier {
                    from_quantity: "0".parse().unwrap(),
                    unit_price: price.parse().unwrap(),
                }];
                let effective = "2025-01-01T00:00:00Z".parse().unwrap();
                MeterRate::new(
                    meter.parse().unwrap(),
                    tiers,
                    "0".parse().unwrap(),
                    effective,
                )
                .unwrap()
            })
            .collect(),
    };
    db.store
        .put_rate_card(card.clone(), CardOwner::Shared)
        .await
        .unwrap();
    run(&db.store, &state, &CollectOptions::default()).await;

    let period: Period = "2025-05".parse().unwrap();
    let mut per_meter: BTreeMap<MeterId, Total> = BTreeMap::new();
    for ((_, meter, _), quantity) in sim.truth() {
        let sum = per_meter.entry(meter).or_insert(Total::ZERO);
        *sum = sum.checked_add(quantity).unwrap();
    }
    let pricing = Pricing {
        card: Some(&card),
        markup_percent: rust_decimal::Decimal::ZERO,
    };
    let expected = rate_lines(period, &per_meter, pricing).unwrap();
    let invoices = db.store.invoices(period, None, None).await.unwrap();
    let default: stackbill_core::SubscriptionId = fixtures::DEFAULT.parse().unwrap();
    let invoice = invoices
        .iter()
        .find(|i| i.subscription_id == default)
        .unwrap();
    assert_eq!(invoice.lines, expected);
    assert_eq!(invoice.lines.len(), prices.len());
    assert!(invoice.lines.iter().all(|line| !line.unpriced));
}

/// A service principal that proves itself with a certificate (a client assertion signed by
/// its key) instead of a secret; another certificate is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_credentials_sign_in_and_a_wrong_certificate_is_refused() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let pem = std::fs::read(fixture("client-certificate.pem")).unwrap();
    let mut options = SimOptions::new(16, 2, FROM.parse().unwrap(), 12);
    options.identity = Identity::Adfs;
    options.client_certificate = Some(
        CertificateDer::from_pem_slice(&pem)
            .unwrap()
            .as_ref()
            .to_vec(),
    );
    let sim = Arc::new(SimStack::new(options));
    let endpoint = serve(Arc::clone(&sim)).await;
    let db = TestStore::new();
    db.clock.set("2025-05-04T00:00:00Z");
    let state = configured(&db, &sim, &endpoint).await;
    let with_certificate = |file: &str| {
        let mut config = state.config.clone();
        config.credential = ClientCredential::CertificateFile(fixture(file));
        config
    };
    let state = db
        .store
        .put_collector(with_certificate("client-certificate.pem"))
        .await
        .unwrap();
    run(&db.store, &state, &CollectOptions::default()).await;
    assert_eq!(stored(&db.store).await, sim.truth());

    let wrong = db
        .store
        .put_collector(with_certificate("other-certificate.pem"))
        .await
        .unwrap();
    let access = StackAccess::from_config(&wrong.config, &no_keyring()).unwrap();
    let client = Arc::new(StackClient::new(access, fast_retries()).unwrap());
    let refill = CollectOptions {
        from: Some(FROM.parse().unwrap()),
        ..CollectOptions::default()
    };
    let (_, error) = collect(&db.store, &wrong, client, &refill, Arc::default()).await;
    assert_eq!(error.unwrap().code(), "StackAuthenticationFailed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_secrets_and_certificates_sign_in_and_open_only_with_their_key() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;

    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let pem = std::fs::read_to_string(fixture("client-certificate.pem")).unwrap();
    let mut options = SimOptions::new(17, 2, FROM.parse().unwrap(), 6);
    options.client_certificate = Some(
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
    );
    let secret = options.client_secret.clone();
    let sim = Arc::new(SimStack::new(options));
    let endpoint = serve(Arc::clone(&sim)).await;
    let db = TestStore::new();
    db.clock.set("2025-05-02T00:00:00Z");
    let keyring = SecretKeyring::new(db.dir().join("secret.key"));
    let mut config = configured(&db, &sim, &endpoint).await.config;
    let context = |kind: &str| ClientCredential::context(&config.registration, kind);

    // A sealed secret: the database holds no trace of it, and it signs in.
    config.credential = ClientCredential::SealedSecret(
        keyring
            .seal(secret.as_bytes(), &context("clientSecret"))
            .unwrap(),
    );
    let state = db.store.put_collector(config.clone()).await.unwrap();
    let ClientCredential::SealedSecret(stored_text) = &state.config.credential else {
        panic!("stored as {:?}", state.config.credential)
    };
    assert!(!stored_text.contains(&secret));
    run_with(&db.store, &state, &CollectOptions::default(), &keyring).await;
    assert_eq!(stored(&db.store).await, sim.truth());

    // Another server's key cannot open it, and says which key it needs.
    let other = SecretKeyring::new(db.dir().join("other.key"));
    let err = StackAccess::from_config(&state.config, &other).unwrap_err();
    assert_eq!(err.code(), "CollectorConfigInvalid", "{err}");
    assert!(err.to_string().contains("--secret-key-file"), "{err}");

    // A sealed certificate signs in too; sealed for another kind, it does not open.
    config.credential = ClientCredential::SealedCertificate(
        keyring
            .seal(pem.as_bytes(), &context("clientCertificate"))
            .unwrap(),
    );
    let state = db.store.put_collector(config.clone()).await.unwrap();
    let refill = CollectOptions {
        from: Some(FROM.parse().unwrap()),
        ..CollectOptions::default()
    };
    let summary = run_with(&db.store, &state, &refill, &keyring).await;
    assert_eq!(summary.accepted, 0);
    assert!(summary.duplicates > 0);
    config.credential = ClientCredential::SealedCertificate(
        keyring
            .seal(pem.as_bytes(), &context("clientSecret"))
            .unwrap(),
    );
    let state = db.store.put_collector(config).await.unwrap();
    let err = StackAccess::from_config(&state.config, &keyring).unwrap_err();
    assert!(err.to_string().contains("does not open"), "{err}");
}
