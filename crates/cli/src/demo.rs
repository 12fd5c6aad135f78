//! `stackbill demo`: a CSP with three stacks and dozens of customer tenants, served.

use std::sync::Arc;

use anyhow::{Context, Result};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use stackbill_core::profile::{BillingProfile, ProfileOwner};
use stackbill_core::rating::{MeterRate, Tier};
use stackbill_core::sum::exact_add;
use stackbill_core::{
    BillingModel, OfferType, Partner, PartnerId, RateCardName, Registration, RegistrationName,
    Subscription, SubscriptionId, TenantId,
};
use stackbill_core::{Currency, Period, Quantity, RateCard, RecordId, UsageRecord};
use stackbill_io::generate::{GenerateOptions, generate, sample_guid};
use stackbill_store::{SecretKeyring, Store, SystemClock};

use crate::cli::DemoArgs;
use crate::output::outln;
use crate::{import, serve};

/// The demo's customer organisations. Every fifth one has no subscription of its own on
/// any stack yet, so its usage goes to the stack's default subscription.
const CUSTOMERS: &[&str] = &[
    "Northwind Traders",
    "Adventure Works",
    "Fabrikam Residences",
    "Tailspin Toys",
    "Wingtip Toys",
    "Woodgrove Bank",
    "Litware",
    "Proseware",
    "Lucerne Publishing",
    "Margie's Travel",
    "Alpine Ski House",
    "Coho Winery",
    "Consolidated Messenger",
    "Fourth Coffee",
    "Graphic Design Institute",
    "Humongous Insurance",
    "Lamna Healthcare",
    "Munson's Pickles",
    "Nod Publishers",
    "Relecloud",
    "School of Fine Art",
    "Southridge Video",
    "Trey Research",
    "VanArsdel",
    "Wide World Importers",
    "Blue Yonder Airlines",
    "City Power & Light",
    "Contoso Pharmaceuticals",
    "First Up Consultants",
    "Bellows College",
    "Datum Corporation",
    "Best For You Organics",
    "Tailwind Traders",
    "Fincher Architects",
    "Boulder Innovations",
    "Liberty's Delightful Sinful Bakery",
];

const PARTNER: &str = "contoso-csp";

fn guid<T>(kind: u32, n: u64) -> Result<T>
where
    T: std::str::FromStr<Err = stackbill_core::IdError>,
{
    Ok(sample_guid(kind, n).parse()?)
}

fn registered(index: usize) -> bool {
    index % 5 != 4
}

struct Seeded {
    registrations: Vec<Registration>,
    tenants_mapped: usize,
    unregistered: Vec<(TenantId, SubscriptionId)>,
    subscriptions: usize,
    /// The tenants with usage on each of the two hubs (those without a subscription of
    /// their own run on the first).
    hub_tenants: [Vec<TenantId>; 2],
}

async fn seed(store: &Store, tenants: usize) -> Result<Seeded> {
    let partner_id: PartnerId = PARTNER.parse()?;
    store
        .put_partner(Partner {
            id: partner_id.clone(),
            name: "Contoso Cloud Partners".to_owned(),
        })
        .await?;
    let issuer = BillingProfile {
        legal_name: Some("Contoso Cloud Partners Ltd".to_owned()),
        address: vec![
            "1 Harbour Exchange Square".to_owned(),
            "London E14 9GE".to_owned(),
        ],
        country: Some("GB".to_owned()),
        tax_id: Some("GB 123 4567 89".to_owned()),
        invoice_prefix: Some("CCP".to_owned()),
        tax_rate_percent: None,
    };
    store
        .put_profile(ProfileOwner::Partner, partner_id.to_string(), issuer)
        .await?;
    let default = Subscription {
        id: guid(0xd0, 1)?,
        offer_type: OfferType::Cspss,
        partner_id: Some(partner_id.clone()),
        customer_tenant_id: None,
        display_name: "Contoso shared services".to_owned(),
        rate_card: RateCardName::default_card(),
        markup_percent: Decimal::ZERO,
    };
    store.put_subscription(default.clone()).await?;

    let stacks = [
        ("redmond-hub1", BillingModel::PayAsYouUse),
        ("dublin-hub1", BillingModel::PayAsYouUse),
        ("edge-capacity", BillingModel::Capacity),
    ];
    let mut registrations = Vec::new();
    for (n, (name, model)) in (1u64..).zip(stacks) {
        let registration = Registration {
            name: name.parse::<RegistrationName>()?,
            cloud_id: guid(0xca, n)?,
            default_subscription: default.id,
            billing_model: model,
        };
        store.put_registration(registration.clone()).await?;
        registrations.push(registration);
    }

    // The customers joined long ago, so every month's usage is theirs.
    let joined: jiff::Timestamp = "2020-01-01T00:00:00Z".parse()?;
    let mut tenants_mapped = 0;
    let mut unregistered = Vec::new();
    let mut subscriptions = 1;
    let mut hub_tenants: [Vec<TenantId>; 2] = [Vec::new(), Vec::new()];
    for index in 0..tenants {
        let n = index as u64 + 1;
        let name = match CUSTOMERS.get(index) {
            Some(name) => (*name).to_owned(),
            None => format!("Customer {n}"),
        };
        let tenant = guid::<TenantId>(0x70, n)?;
        let subscription = Subscription {
            id: guid(0xc0, n)?,
            offer_type: OfferType::Csp,
            partner_id: Some(partner_id.clone()),
            customer_tenant_id: Some(tenant),
            display_name: name,
            rate_card: RateCardName::default_card(),
            markup_percent: Decimal::new(if index % 3 == 0 { 15 } else { 10 }, 0),
        };
        store.put_subscription(subscription.clone()).await?;
        // Customers in the UK are charged VAT; the address is what the invoice prints.
        let customer = BillingProfile {
            address: vec![format!("{n} Market Street"), "Manchester M1 1AA".to_owned()],
            country: Some("GB".to_owned()),
            tax_rate_percent: Some(Decimal::new(20, 0)),
            ..BillingProfile::default()
        };
        (store.put_profile(
            ProfileOwner::Subscription,
            subscription.id.to_string(),
            customer,
        ))
        .await?;
        subscriptions += 1;
        if !registered(index) {
            unregistered.push((tenant, subscription.id));
            hub_tenants[0].push(tenant);
            continue;
        }
        // Most customers run on one hub; every fourth runs on both.
        let hubs: &[usize] = if index % 4 == 0 {
            &[0, 1]
        } else if index % 2 == 0 {
            &[1]
        } else {
            &[0]
        };
        for &hub in hubs {
            hub_tenants[hub].push(tenant);
            store
                .put_customer_subscription(
                    registrations[hub].name.clone(),
                    subscription.id,
                    tenant,
                    Some(joined),
                )
                .await?;
            tenants_mapped += 1;
        }
    }
    Ok(Seeded {
        registrations,
        tenants_mapped,
        unregistered,
        subscriptions,
        hub_tenants,
    })
}

/// Opens the demo's database: a fresh file (replacing any at the path), or an empty
/// PostgreSQL database.
async fn open_demo_store(args: &DemoArgs) -> Result<Store> {
    if let Some(url) = &args.database_url {
        let store = Store::open_postgres(url, Arc::new(SystemClock))
            .context("cannot open the PostgreSQL database")?;
        if !store.partners().await?.is_empty() {
            anyhow::bail!(
                "the demo seeds an empty database; {} already holds partners",
                store.location()
            );
        }
        return Ok(store);
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = args.db.clone().into_os_string();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot replace {}", args.db.display()));
            }
        }
    }
    Ok(Store::open(&args.db, Arc::new(SystemClock))?)
}

pub(crate) async fn run(args: DemoArgs) -> Result<()> {
    let listener = if args.no_serve {
        None
    } else {
        Some(serve::bind(args.listen)?)
    };
    let store = open_demo_store(&args).await?;
    let secrets = Arc::new(crate::admin::keyring(&crate::cli::DbArgs {
        db: args.db.clone(),
        database_url: args.database_url.clone(),
        secret_key_file: None,
    }));
    let seeded = seed(&store, usize::try_from(args.tenants)?).await?;
    let quiet = args.output.json;
    let (usage, billing) = match args.usage_records {
        Some(records) => demo_billing(&store, &secrets, Usage::Generated(records)).await?,
        None => {
            // The simulated stacks serve as long as the demo runs (a dropped handle detaches).
            start_stacks(&store, &args, &seeded).await?;
            demo_billing(&store, &secrets, Usage::Collected { quiet }).await?
        }
    };
    let token = match std::env::var(serve::ADMIN_TOKEN_ENV) {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        _ => serve::create_admin_token(&store, "demo admin").await?,
    };
    let auth = serve::auth_config(&store).await?;
    let point_cli = match &args.database_url {
        Some(url) => format!("export STACKBILL_DATABASE_URL='{url}'"),
        None => format!("export STACKBILL_DB={}", args.db.display()),
    };
    if args.output.json {
        crate::output::json(&serde_json::json!({
            "db": store.location(),
            "partners": 1,
            "subscriptions": seeded.subscriptions,
            "registrations": seeded.registrations.len(),
            "tenantsMapped": seeded.tenants_mapped,
            "tenantsUnregistered": seeded.unregistered.len(),
            "usageSource": if args.usage_records.is_some() { "generated" } else { "collected" },
            "usageRecords": usage.records,
            "usageAccepted": usage.accepted,
            "usageRejected": usage.rejected,
            "finalizedPeriod": billing.last_month.to_string(),
            "finalizedInvoices": billing.finalized,
            "finalizedTotal": billing.finalized_total.to_string(),
            "draftPeriod": billing.this_month.to_string(),
            "draftInvoices": billing.drafts,
            "adminToken": token,
        }))?;
    } else {
        eprintln!(
            "demo database {}: partner {PARTNER}, {} registrations, {} tenant mappings, {} tenants without their own subscription",
            store.location(),
            seeded.registrations.len(),
            seeded.tenants_mapped,
            seeded.unregistered.len()
        );
        let how = if args.usage_records.is_some() {
            "imported generated"
        } else {
            "collected from two simulated stacks"
        };
        eprintln!(
            "{how} usage: {} records, {} accepted, {} duplicates, {} rejected",
            usage.records, usage.accepted, usage.duplicates, usage.rejected
        );
        eprintln!(
            "{} is final ({} invoices, {} USD); {} has {} draft invoices so far, one with a late record of {} as an adjustment",
            billing.last_month,
            billing.finalized,
            billing.finalized_total,
            billing.this_month,
            billing.drafts,
            billing.last_month
        );
        eprintln!("point the command line at it: {point_cli}");
    }
    let Some(listener) = listener else {
        return Ok(());
    };
    let (tenant, subscription) = seeded.unregistered[0];
    let billed = sample_guid(0xc0, 2);
    let (last_month, this_month) = (billing.last_month, billing.this_month);
    let listen = serve::Listen {
        listener,
        tls: None,
        public_url: None,
        header_timeout: serve::HEADER_TIMEOUT,
    };
    if args.usage_records.is_none() {
        tokio::spawn(crate::collector::collect_on_schedule(
            store.clone(),
            Arc::clone(&secrets),
            std::time::Duration::from_secs(3600),
            crate::collector::LEASE,
        ));
    }
    serve::serve(store, secrets, auth, listen, Some(Default::default()), |base| {
        // The banner is for a person; with nobody reading it, the demo serves all the same.
        let _ = outln!(
            "\nstackbill demo is serving on {base}\n\nadmin token: {token}\n\n\
             The console: open {base}/ and sign in with the admin token.\n\n\
             Try:\n\n  \
             # point the command line at the demo's database (stackbill invoice list, …)\n  \
             {point_cli}\n\n  \
             export TOKEN={token}\n\n  \
             # last month's final invoice of one customer, line by line\n  \
             curl -s -H \"Authorization: Bearer $TOKEN\" {base}/v1/invoices/{billed}/{last_month}\n\n  \
             # this month's draft for the same customer: usage so far, and last month's late record\n  \
             curl -s -H \"Authorization: Bearer $TOKEN\" {base}/v1/invoices/{billed}/{this_month}\n\n  \
             # onboard a customer whose usage still goes to the default subscription\n  \
             curl -s -X PUT -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' \\\n    \
             -d '{{\"tenantId\":\"{tenant}\"}}' \\\n    \
             {base}/v1/registrations/redmond-hub1/customerSubscriptions/{subscription}\n\n\
             Press Ctrl-C to stop.\n"
        );
    })
    .await
}

/// The demo's price list: the meters the generator emits, one with graduated tiers.
fn demo_rate_card() -> Result<RateCard> {
    let at: Timestamp = "2020-01-01T00:00:00Z".parse()?;
    let entry = |meter: &str, tiers: &[(&str, &str)], included: &str| -> Result<MeterRate> {
        let tiers = tiers
            .iter()
            .map(|(from, price)| {
                Ok(Tier {
                    from_quantity: from.parse()?,
                    unit_price: price.parse()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(MeterRate::new(
            meter.parse()?,
            tiers,
            included.parse()?,
            at,
        )?)
    };
    Ok(RateCard {
        name: RateCardName::default_card(),
        currency: Currency::USD,
        rates: vec![
            // Base VM size hours, per virtual core hour, cheaper past 10,000.
            entry(
                "fab6eb84-500b-4a09-a8ca-7358f8bbaea5",
                &[("0", "0.008"), ("10000", "0.0065")],
                "0",
            )?,
            // Block and page blob capacity, per GB hour.
            entry(
                "09f8879e-87e9-4305-a572-4b7be209f857",
                &[("0", "0.0000333")],
                "100",
            )?,
            entry(
                "b5c15376-6c94-4fdd-b655-1a69d138aca3",
                &[("0", "0.0000666")],
                "0",
            )?,
            // Blob egress, per GB, the first 5 GB free.
            entry(
                "3023fef4-eca5-4d7b-87b3-cfbc061931e8",
                &[("0", "0.087")],
                "5",
            )?,
            // Static IP addresses, per address hour.
            entry(
                "f271a8a3-88c4-4d93-956a-063e1d2fa80b",
                &[("0", "0.004")],
                "0",
            )?,
            // Table capacity, per GB hour.
            entry(
                "b4438d5d-453b-4ee1-b42a-dc72e377f1e4",
                &[("0", "0.0000333")],
                "0",
            )?,
            // VM hours: counted by the core meters above, so free on its own.
            entry("6dab500f-a4fd-49c4-956d-229bb9c8c793", &[("0", "0")], "0")?,
            // Standard managed disks (S10), per disk month.
            entry(
                "d5f7731b-f639-404a-89d0-e46186e22c8d",
                &[("0", "5.89")],
                "0",
            )?,
        ],
    })
}

/// What the demo did to its month of billing.
struct Billing {
    last_month: Period,
    this_month: Period,
    finalized: usize,
    finalized_total: rust_decimal::Decimal,
    drafts: usize,
}

/// Where the demo's usage comes from.
enum Usage {
    /// Generated records imported as `stackbill usage import` would.
    Generated(u64),
    /// Collected from the simulated stacks, as `stackbill collect` would.
    Collected {
        /// No progress bar.
        quiet: bool,
    },
}

/// The demo's two hubs as simulated stacks, served in-process, each with a collector from
/// the start of last month.
async fn start_stacks(store: &Store, args: &DemoArgs, seeded: &Seeded) -> Result<()> {
    use stackbill_collector::simulator::{Identity, SimOptions, SimStack};

    let last = crate::generate::month(None)?;
    let from = last.to_zoned(TimeZone::UTC)?.timestamp();
    let now = store.now();
    let hours = (now.as_second() - from.as_second()) / 3600;
    let secret_file = match &args.database_url {
        Some(_) => {
            std::env::temp_dir().join(format!("stackbill-demo-{}.secret", std::process::id()))
        }
        None => {
            let mut path = args.db.clone().into_os_string();
            path.push(".collector-secret");
            path.into()
        }
    };
    for (hub, tenants) in seeded.hub_tenants.iter().enumerate() {
        let mut options = SimOptions::new(hub as u64 + 1, tenants.len(), from, hours.max(1));
        options.tenant_ids = tenants.clone();
        std::fs::write(&secret_file, &options.client_secret)
            .with_context(|| format!("cannot write {}", secret_file.display()))?;
        let directory = match &options.identity {
            Identity::Entra { directory } => directory.clone(),
            Identity::Adfs => "adfs".to_owned(),
        };
        let provider = options.provider_subscription;
        let client_id = options.client_id.clone();
        let sim = Arc::new(SimStack::new(options));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, sim.router()).await {
                tracing::warn!(error = %err, "a simulated stack stopped");
            }
        });
        store
            .put_collector(stackbill_store::CollectorConfig {
                registration: seeded.registrations[hub].name.clone(),
                admin_endpoint: format!("http://{address}"),
                provider_subscription: provider,
                client_id,
                directory,
                credential: stackbill_store::ClientCredential::SecretFile(
                    secret_file.display().to_string(),
                ),
                ca: None,
                start: from,
            })
            .await?;
    }
    Ok(())
}

/// Collects every configured stack once, as `stackbill collect` does.
async fn collect_demo_usage(
    store: &Store,
    secrets: &SecretKeyring,
    quiet: bool,
) -> Result<import::Summary> {
    let mut summary = import::Summary::default();
    for state in store.collectors().await? {
        let (collected, error) = crate::collector::collect_one(
            store,
            secrets,
            &state,
            &stackbill_collector::collect::CollectOptions::default(),
            stackbill_collector::client::RetryPolicy::default(),
            quiet,
        )
        .await;
        if let Some((code, message)) = error {
            anyhow::bail!("collecting {}: {code}: {message}", collected.registration);
        }
        summary.records += collected.records;
        summary.accepted += collected.accepted;
        summary.duplicates += collected.duplicates;
        summary.conflicts += collected.conflicts;
        summary.rejected += collected.rejected;
    }
    Ok(summary)
}

/// Prices the usage, finalizes last month (its usage generated, or collected with this
/// month's so far), adds this month's usage, and one late record for last month, which
/// shows on this month's draft as an adjustment.
async fn demo_billing(
    store: &Store,
    secrets: &SecretKeyring,
    usage: Usage,
) -> Result<(import::Summary, Billing)> {
    store
        .put_rate_card(demo_rate_card()?, stackbill_core::rating::CardOwner::Shared)
        .await?;
    // What the CSP pays Microsoft: the same meters at 60 % of its prices, for the margin
    // report.
    let mut cost = demo_rate_card()?;
    cost.name = "azs-cost".parse()?;
    for rate in &mut cost.rates {
        rate.scale_prices(Decimal::new(6, 1));
    }
    let partner: stackbill_core::PartnerId = PARTNER.parse()?;
    store
        .put_rate_card(cost.clone(), stackbill_core::rating::CardOwner::Shared)
        .await?;
    store
        .put_cost_card(
            stackbill_store::CostOwner::Partner(partner.clone()),
            Some(partner),
            Some(cost.name),
        )
        .await?;
    let last = crate::generate::month(None)?;
    let last_month = Period::containing(last.to_zoned(TimeZone::UTC)?.timestamp());
    let this_month = last_month.next();
    let summary = match usage {
        Usage::Generated(records) => import_demo_usage(store, records, last, 1).await?,
        Usage::Collected { quiet } => collect_demo_usage(store, secrets, quiet).await?,
    };
    let finals = store.finalize_period(last_month, None).await?;
    let finalized_total = (finals.iter())
        .try_fold(Decimal::ZERO, |sum, invoice| exact_add(sum, invoice.total))
        .context("the demo's total overflows")?;
    if let Usage::Generated(records) = usage {
        let this = this_month.start().to_zoned(TimeZone::UTC).date();
        import_demo_usage(store, records / 2, this, 2).await?;
    }
    let usage = summary;
    // A stack re-sends an hour of last month it had missed: late usage for a final period.
    let late_hour = last_month.end() - jiff::SignedDuration::from_hours(1);
    let late = UsageRecord {
        id: RecordId::new("late-resend-1")?,
        cloud_id: sample_guid(0xca, 1).parse()?,
        tenant_id: sample_guid(0x70, 2).parse()?,
        subscription_id: sample_guid(0x50, 2).parse()?,
        meter_id: "fab6eb84-500b-4a09-a8ca-7358f8bbaea5".parse()?,
        quantity: Quantity::parse("64").map_err(|err| anyhow::anyhow!("{err}"))?,
        usage_start: late_hour,
        reported_time: None,
        instance_data: None,
    };
    store.ingest(vec![late]).await?;
    let drafts = store.invoices(this_month, None, None).await?.len();
    Ok((
        usage,
        Billing {
            last_month,
            this_month,
            finalized: finals.len(),
            finalized_total,
            drafts,
        },
    ))
}

/// Generates a month's usage (hours ended so far) for the demo's stacks and tenants, with a
/// little noise (re-sent, late and malformed records), and imports it as `stackbill usage
/// import` would.
async fn import_demo_usage(
    store: &Store,
    records: u64,
    month: jiff::civil::Date,
    seed: u64,
) -> Result<import::Summary> {
    if records == 0 {
        return Ok(import::Summary::default());
    }
    let options = GenerateOptions {
        seed,
        records,
        month,
        stacks: 2,
        tenants: 40,
        duplicates_per_mille: 5,
        late_per_mille: 5,
        bad_per_mille: 1,
        until: Some(store.now()),
    };
    let mut bytes = Vec::new();
    generate(&options, &mut bytes)?;
    let source = import::Source {
        name: "demo usage".to_owned(),
        size: Some(bytes.len() as u64),
        reader: Box::new(std::io::Cursor::new(bytes)),
        format: stackbill_io::Format::Ndjson,
    };
    let settings = import::Settings {
        batch_records: crate::cli::BATCH_RECORDS,
        quiet: true,
    };
    let mut summary = import::Summary::default();
    let mut errors = import::Errors { out: None };
    import::import_source(
        store,
        source,
        &settings,
        &mut summary,
        &mut errors,
        std::time::Instant::now(),
    )
    .await?;
    Ok(summary)
}
