//! The admin subcommands: the directory and registry, straight on the database file.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use stackbill_api::dto::{
    CustomerSubscriptionDto, HistoryItemDto, MeterDto, PartnerDto, RegistrationDto, SubscriptionDto,
};
use stackbill_core::{ErrorCode, Meter, Partner, Registration, Subscription};
use stackbill_store::{CustomerSubscription, SecretKeyring, Store, SystemClock, Written};

use stackbill_api::Caller;
use stackbill_api::tokens::{TokenBody, TokenDto, issue_token};
use stackbill_store::Role;

use crate::cli::{
    DbArgs, MeterCommand, OutputArgs, PartnerCommand, RegistrationCommand, SubscriptionCommand,
    TenantCommand, TokenCommand,
};
use crate::output;
use crate::output::outln;
use crate::refusal::refused;

/// The database `db` names, which must exist: a command that reads never creates an empty
/// one in its place.
pub(crate) fn open(db: &DbArgs) -> Result<Store> {
    if db.database_url.is_none() && !db.db.exists() {
        let shown = std::path::absolute(&db.db).unwrap_or_else(|_| db.db.clone());
        anyhow::bail!(
            "no database at {}: point at yours with --db FILE (or STACKBILL_DB) or \
             --database-url URL; or create one with `stackbill database init`, `stackbill \
             serve` or `stackbill partner add`; the demo's is stackbill-demo.db \
             (export STACKBILL_DB=stackbill-demo.db)",
            shown.display()
        );
    }
    open_or_create(db)
}

/// The database `db` names, created (empty, migrated) if it is a file that does not exist,
/// saying so on standard error.
pub(crate) fn open_or_create(db: &DbArgs) -> Result<Store> {
    let created = db.database_url.is_none() && !db.db.exists();
    let store = match &db.database_url {
        Some(url) => Store::open_postgres(url, Arc::new(SystemClock))
            .map_err(|err| anyhow::anyhow!("cannot open the PostgreSQL database: {err}")),
        None => Store::open(&db.db, Arc::new(SystemClock))
            .map_err(|err| anyhow::anyhow!("cannot open database {}: {err}", db.db.display())),
    }?;
    if created {
        eprintln!("created a new database at {}", store.location());
    }
    Ok(store)
}

/// The key that seals collectors' secrets: the one `--secret-key-file` names, else the file
/// beside the embedded database, else `stackbill-secret.key` here (PostgreSQL).
pub(crate) fn keyring(db: &DbArgs) -> SecretKeyring {
    let path = match (&db.secret_key_file, &db.database_url) {
        (Some(path), _) => path.clone(),
        (None, Some(_)) => PathBuf::from("stackbill-secret.key"),
        (None, None) => {
            let mut name = db.db.clone().into_os_string();
            name.push(".key");
            PathBuf::from(name)
        }
    };
    SecretKeyring::new(path)
}

fn verb(written: Written) -> &'static str {
    match written {
        Written::Created => "created",
        Written::Updated => "updated",
    }
}

fn opt(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

fn show_partners(partners: Vec<Partner>, output: &OutputArgs, single: bool) -> Result<()> {
    output::show::<_, PartnerDto>(partners, output.json, single, &["PARTNER", "NAME"], |p| {
        vec![p.id.to_string(), p.name.clone()]
    })
}

pub(crate) async fn partner(command: PartnerCommand) -> Result<()> {
    match command {
        PartnerCommand::Add {
            partner_id,
            name,
            db,
            output,
        } => {
            let partner = Partner {
                id: partner_id,
                name,
            };
            let written = open_or_create(&db)?.put_partner(partner.clone()).await?;
            if !output.json {
                eprintln!("partner {} {}", partner.id, verb(written));
            }
            show_partners(vec![partner], &output, true)
        }
        PartnerCommand::Show {
            partner_id,
            db,
            output,
        } => {
            let partner = open(&db)?
                .partner(partner_id.clone())
                .await?
                .ok_or_else(|| {
                    refused(
                        ErrorCode::PartnerNotFound,
                        format!("partner '{partner_id}' does not exist"),
                    )
                })?;
            show_partners(vec![partner], &output, true)
        }
        PartnerCommand::List { db, output } => {
            show_partners(open(&db)?.partners().await?, &output, false)
        }
        PartnerCommand::Profile {
            partner_id,
            fields,
            invoice_prefix,
            db,
            output,
        } => {
            crate::profile::run(
                open(&db)?,
                crate::profile::ProfileCommand {
                    owner: stackbill_core::profile::ProfileOwner::Partner,
                    id: partner_id.to_string(),
                    fields,
                    invoice_prefix,
                    tax_rate: None,
                    output,
                },
            )
            .await
        }
    }
}

fn show_subscriptions(
    subscriptions: Vec<Subscription>,
    output: &OutputArgs,
    single: bool,
) -> Result<()> {
    let headers = [
        "SUBSCRIPTION",
        "OFFER",
        "PARTNER",
        "CUSTOMER TENANT",
        "RATE CARD",
        "MARKUP %",
        "NAME",
    ];
    output::show::<_, SubscriptionDto>(subscriptions, output.json, single, &headers, |s| {
        vec![
            s.id.to_string(),
            s.offer_type.to_string(),
            opt(s.partner_id.as_ref()),
            opt(s.customer_tenant_id),
            s.rate_card.to_string(),
            s.markup_percent.normalize().to_string(),
            s.display_name.clone(),
        ]
    })
}

pub(crate) async fn subscription(command: SubscriptionCommand) -> Result<()> {
    match command {
        SubscriptionCommand::Add {
            subscription_id,
            offer_type,
            partner,
            customer_tenant,
            display_name,
            rate_card,
            markup_percent,
            pricing_from,
            db,
            output,
        } => {
            let subscription = Subscription {
                id: subscription_id,
                offer_type,
                partner_id: partner,
                customer_tenant_id: customer_tenant,
                display_name,
                rate_card,
                markup_percent,
            };
            let written = open(&db)?
                .put_subscription_from(subscription.clone(), pricing_from)
                .await?;
            if !output.json {
                eprintln!("subscription {} {}", subscription.id, verb(written));
            }
            show_subscriptions(vec![subscription], &output, true)
        }
        SubscriptionCommand::Show {
            subscription_id,
            db,
            output,
        } => {
            let subscription =
                open(&db)?
                    .subscription(subscription_id)
                    .await?
                    .ok_or_else(|| {
                        refused(
                            ErrorCode::SubscriptionNotFound,
                            format!("subscription {subscription_id} does not exist"),
                        )
                    })?;
            show_subscriptions(vec![subscription], &output, true)
        }
        SubscriptionCommand::Profile {
            subscription_id,
            fields,
            tax_rate,
            db,
            output,
        } => {
            crate::profile::run(
                open(&db)?,
                crate::profile::ProfileCommand {
                    owner: stackbill_core::profile::ProfileOwner::Subscription,
                    id: subscription_id.to_string(),
                    fields,
                    invoice_prefix: None,
                    tax_rate,
                    output,
                },
            )
            .await
        }
        SubscriptionCommand::List {
            partner,
            db,
            output,
        } => show_subscriptions(open(&db)?.subscriptions(partner).await?, &output, false),
    }
}

fn show_registrations(
    registrations: Vec<Registration>,
    output: &OutputArgs,
    single: bool,
) -> Result<()> {
    let headers = [
        "REGISTRATION",
        "CLOUD",
        "DEFAULT SUBSCRIPTION",
        "BILLING MODEL",
    ];
    output::show::<_, RegistrationDto>(registrations, output.json, single, &headers, |r| {
        vec![
            r.name.to_string(),
            r.cloud_id.to_string(),
            r.default_subscription.to_string(),
            r.billing_model.to_string(),
        ]
    })
}

fn registration_not_found(name: &stackbill_core::RegistrationName) -> anyhow::Error {
    stackbill_store::StoreError::Rule(stackbill_core::RegistryError::RegistrationNotFound {
        registration: name.clone(),
    })
    .into()
}

pub(crate) async fn registration(command: RegistrationCommand) -> Result<()> {
    match command {
        RegistrationCommand::Add {
            name,
            cloud_id,
            subscription,
            billing_model,
            db,
            output,
        } => {
            let store = open(&db)?;
            let registration = Registration {
                name: name.clone(),
                cloud_id,
                default_subscription: subscription,
                billing_model,
            };
            let outcome = store
                .put_registration(registration)
                .await
                .map_err(|err| crate::refusal::registration_add(err, billing_model))?;
            let stored = store
                .registration(name.clone())
                .await?
                .ok_or_else(|| registration_not_found(&name))?;
            if !output.json {
                eprintln!("registration {name}: {outcome:?}");
            }
            show_registrations(vec![stored], &output, true)
        }
        RegistrationCommand::Show { name, db, output } => {
            let found = open(&db)?
                .registration(name.clone())
                .await?
                .ok_or_else(|| registration_not_found(&name))?;
            show_registrations(vec![found], &output, true)
        }
        RegistrationCommand::List { db, output } => {
            show_registrations(open(&db)?.registrations(None).await?, &output, false)
        }
        RegistrationCommand::Remove { name, db } => {
            open(&db)?.delete_registration(name.clone()).await?;
            eprintln!("registration {name} deleted; its history is kept");
            Ok(())
        }
    }
}

fn show_mappings(
    mappings: Vec<CustomerSubscription>,
    output: &OutputArgs,
    single: bool,
) -> Result<()> {
    output::show::<_, CustomerSubscriptionDto>(
        mappings,
        output.json,
        single,
        &MAPPING_HEADERS,
        |m| {
            vec![
                m.tenant_id.to_string(),
                m.subscription.to_string(),
                m.effective_from.to_string(),
                m.recorded_at.to_string(),
            ]
        },
    )
}

const MAPPING_HEADERS: [&str; 4] = ["TENANT", "SUBSCRIPTION", "EFFECTIVE FROM", "RECORDED AT"];

pub(crate) async fn tenant(command: TenantCommand) -> Result<()> {
    match command {
        TenantCommand::Add {
            registration,
            tenant,
            subscription,
            effective_from,
            db,
            output,
        } => {
            let mapping = open(&db)?
                .put_customer_subscription(registration, subscription, tenant, effective_from)
                .await
                .map_err(|err| crate::refusal::tenant_add(err, tenant))?;
            show_mappings(vec![mapping], &output, true)
        }
        TenantCommand::Remove {
            registration,
            subscription,
            effective_from,
            db,
        } => {
            let events = open(&db)?
                .delete_customer_subscription(registration, subscription, effective_from)
                .await?;
            for event in events {
                eprintln!(
                    "tenant {} unmapped from {} from {} on; its usage goes to the default subscription",
                    event.tenant_id, subscription, event.effective_from
                );
            }
            Ok(())
        }
        TenantCommand::List {
            registration,
            as_of,
            db,
            output,
        } => show_mappings(
            open(&db)?
                .customer_subscriptions(registration, as_of)
                .await?,
            &output,
            false,
        ),
        TenantCommand::History {
            registration,
            db,
            output,
        } => {
            let events = open(&db)?.registration_history(registration).await?;
            output::show::<_, HistoryItemDto>(events, output.json, false, &MAPPING_HEADERS, |e| {
                vec![
                    e.tenant_id.to_string(),
                    e.subscription
                        .map_or_else(|| "(removed)".to_owned(), |s| s.to_string()),
                    e.effective_from.to_string(),
                    e.recorded_at.to_string(),
                ]
            })
        }
    }
}

fn show_meters(meters: Vec<Meter>, output: &OutputArgs, single: bool) -> Result<()> {
    output::show::<_, MeterDto>(
        meters,
        output.json,
        single,
        &["METER", "CATEGORY", "NAME", "UNIT"],
        |m| {
            vec![
                m.id.to_string(),
                m.category.clone(),
                m.name.clone(),
                m.unit.clone(),
            ]
        },
    )
}

pub(crate) async fn meter(command: MeterCommand) -> Result<()> {
    match command {
        MeterCommand::List { db, output } => {
            show_meters(open(&db)?.meters().await?, &output, false)
        }
        MeterCommand::Show {
            meter_id,
            db,
            output,
        } => {
            let meter = open(&db)?.meter(meter_id).await?.ok_or_else(|| {
                refused(
                    ErrorCode::MeterNotFound,
                    format!("meter {meter_id} is not in the catalog"),
                )
            })?;
            show_meters(vec![meter], &output, true)
        }
        MeterCommand::Add {
            meter_id,
            name,
            unit,
            category,
            db,
            output,
        } => {
            let meter = Meter {
                id: meter_id,
                name,
                unit,
                category,
            };
            let written = open(&db)?.put_meter(meter.clone()).await?;
            if !output.json {
                eprintln!("meter {} {}", meter.id, verb(written));
            }
            show_meters(vec![meter], &output, true)
        }
    }
}

pub(crate) async fn token(command: TokenCommand) -> Result<()> {
    match command {
        TokenCommand::Create {
            role,
            partner,
            cloud_id,
            tenant_id,
            name,
            db,
            output,
        } => {
            let body = TokenBody {
                role,
                partner_id: partner,
                cloud_id,
                tenant_id,
                name,
            };
            let created = issue_token(&open(&db)?, &Caller::Admin, body)
                .await
                .map_err(|err| anyhow::anyhow!("{}: {}", err.code.as_str(), err.message))?;
            if output.json {
                return output::json(&created);
            }
            let value = serde_json::to_value(&created)?;
            let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
            outln!(
                "token {} ({}) created; its secret, shown only now:\n\n    {}\n",
                text("id"),
                text("role"),
                text("token")
            )?;
            Ok(())
        }
        TokenCommand::List {
            partner,
            db,
            output,
        } => {
            let tokens = open(&db)?.tokens(partner).await?;
            output::show::<_, TokenDto>(
                tokens,
                output.json,
                false,
                &["TOKEN", "ROLE", "SCOPE", "NAME", "CREATED"],
                |t| {
                    let scope = match t.grant.role {
                        Role::Admin => "-".to_owned(),
                        Role::Partner => opt(t.grant.partner_id.as_ref()),
                        Role::Stack => opt(t.grant.cloud_id),
                        Role::Customer => opt(t.grant.tenant_id),
                    };
                    vec![
                        t.id.clone(),
                        t.grant.role.as_str().to_owned(),
                        scope,
                        t.grant.name.clone(),
                        t.created_at.to_string(),
                    ]
                },
            )
        }
        TokenCommand::Revoke { id, db } => {
            if open(&db)?.revoke_token(id.clone()).await? {
                eprintln!("token {id} revoked");
                Ok(())
            } else {
                Err(refused(
                    ErrorCode::TokenNotFound,
                    format!("token '{id}' does not exist or is already revoked"),
                ))
            }
        }
    }
}
