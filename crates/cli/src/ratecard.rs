//! `stackbill ratecard`: rate cards from the command line, each change a new version of the
//! card (earlier versions stay for as-of reads and for the months they priced).

use std::io::Read as _;

use anyhow::{Context as _, Result};
use serde_json::json;
use stackbill_api::ratecards::RateCardDto;
use stackbill_core::rating::{CardOwner, MeterRate, Tier};
use stackbill_core::{ErrorCode, Meter, RateCard};
use stackbill_io::price_list::{read_price_list, write_price_list};
use stackbill_store::Store;

use crate::admin::{open, open_or_create};
use crate::cli::{CardArgs, RatecardCommand};
use crate::output;
use crate::refusal::refused;

fn owner_of(card: &CardArgs) -> CardOwner {
    CardOwner::of(card.partner.clone())
}

fn owner_text(owner: &CardOwner) -> String {
    match owner {
        CardOwner::Shared => "shared".to_owned(),
        CardOwner::Partner(partner) => partner.to_string(),
    }
}

fn not_found(card: &CardArgs) -> anyhow::Error {
    let (whose, flag) = match &card.partner {
        Some(partner) => (
            format!("partner {partner} has"),
            format!(" --partner {partner}"),
        ),
        None => ("there is".to_owned(), String::new()),
    };
    let name = &card.name;
    refused(
        ErrorCode::RateCardNotFound,
        format!(
            "{whose} no rate card '{name}'; create it with `stackbill ratecard add {name}{flag} \
             --currency USD` or `stackbill ratecard import {name} FILE.csv{flag} --currency USD`"
        ),
    )
}

fn currency(code: &str) -> Result<stackbill_core::Currency> {
    code.parse()
        .map_err(|err: stackbill_core::rating::UnknownCurrency| {
            anyhow::anyhow!("--currency: {err}")
        })
}

async fn check_partner(store: &Store, card: &CardArgs) -> Result<()> {
    if let Some(partner) = &card.partner
        && store.partner(partner.clone()).await?.is_none()
    {
        return Err(stackbill_store::StoreError::UnknownPartner(partner.clone()).into());
    }
    Ok(())
}

async fn stored(
    store: &Store,
    card: &CardArgs,
    as_of: Option<jiff::Timestamp>,
) -> Result<RateCard> {
    store
        .rate_card(owner_of(card), card.name.clone(), as_of)
        .await?
        .ok_or_else(|| not_found(card))
}

/// Writes `card` as a new version and prints it.
async fn save(store: &Store, card: &CardArgs, rate_card: RateCard, json: bool) -> Result<()> {
    let written = store
        .put_rate_card(rate_card.clone(), owner_of(card))
        .await?;
    if !json {
        eprintln!(
            "rate card {} ({}) {}",
            card.name,
            owner_text(&owner_of(card)),
            match written {
                stackbill_store::Written::Created => "created",
                stackbill_store::Written::Updated => "updated",
            }
        );
    }
    print_card(store, rate_card, json).await
}

async fn print_card(store: &Store, card: RateCard, json: bool) -> Result<()> {
    if json {
        return output::json(&RateCardDto::from(card));
    }
    let catalog = store.meters().await?;
    let meter = |rate: &MeterRate| catalog.iter().find(|m| m.id == rate.meter_id).cloned();
    let mut rates: Vec<&MeterRate> = card.rates.iter().collect();
    rates.sort_by_key(|r| (r.meter_id.to_string(), r.effective_date));
    let mut rows = Vec::new();
    for rate in rates {
        let meter: Option<Meter> = meter(rate);
        for (i, tier) in rate.tiers().iter().enumerate() {
            let first = i == 0;
            let shown = |text: String| if first { text } else { String::new() };
            rows.push(vec![
                shown(rate.meter_id.to_string()),
                shown(
                    meter
                        .as_ref()
                        .map_or_else(|| "(not in the catalog)".to_owned(), |m| m.name.clone()),
                ),
                shown(meter.as_ref().map_or_else(String::new, |m| m.unit.clone())),
                shown(rate.effective_date.to_string()),
                shown(rate.included_quantity.normalize().to_string()),
                tier.from_quantity.normalize().to_string(),
                format!("{} {}", tier.unit_price.normalize(), card.currency),
            ]);
        }
    }
    output::table(
        &[
            "METER",
            "NAME",
            "UNIT",
            "EFFECTIVE",
            "INCLUDED",
            "FROM",
            "UNIT PRICE",
        ],
        &rows,
    )?;
    Ok(())
}

pub(crate) async fn run(command: RatecardCommand) -> Result<()> {
    match command {
        RatecardCommand::List { as_of, db, output } => {
            let store = open(&db)?;
            let cards = store.rate_cards(as_of).await?;
            if output.json {
                let cards: Vec<_> = cards
                    .into_iter()
                    .map(|(owner, card)| {
                        json!({ "owner": owner_text(&owner), "card": RateCardDto::from(card) })
                    })
                    .collect();
                return output::json(&cards);
            }
            let rows: Vec<Vec<String>> = cards
                .iter()
                .map(|(owner, card)| {
                    let mut meters: Vec<_> = card.rates.iter().map(|r| r.meter_id).collect();
                    meters.sort_unstable_by_key(ToString::to_string);
                    meters.dedup();
                    vec![
                        owner_text(owner),
                        card.name.to_string(),
                        card.currency.to_string(),
                        meters.len().to_string(),
                    ]
                })
                .collect();
            output::table(&["OWNER", "NAME", "CURRENCY", "METERS"], &rows)?;
            Ok(())
        }
        RatecardCommand::Show {
            card,
            as_of,
            db,
            output,
        } => {
            let store = open(&db)?;
            let rate_card = stored(&store, &card, as_of).await?;
            print_card(&store, rate_card, output.json).await
        }
        RatecardCommand::Add {
            card,
            currency: code,
            db,
            output,
        } => {
            let store = open_or_create(&db)?;
            check_partner(&store, &card).await?;
            if store
                .rate_card(owner_of(&card), card.name.clone(), None)
                .await?
                .is_some()
            {
                anyhow::bail!(
                    "rate card {} ({}) exists; change its prices with `stackbill ratecard \
                     set-price` or `stackbill ratecard import`",
                    card.name,
                    owner_text(&owner_of(&card))
                );
            }
            let rate_card = RateCard {
                name: card.name.clone(),
                currency: currency(&code)?,
                rates: Vec::new(),
            };
            save(&store, &card, rate_card, output.json).await
        }
        RatecardCommand::SetPrice {
            card,
            meter,
            price,
            tiers,
            included,
            effective_from,
            db,
            output,
        } => {
            let store = open(&db)?;
            let mut rate_card = stored(&store, &card, None).await?;
            if store.meter(meter).await?.is_none() {
                return Err(refused(
                    ErrorCode::MeterNotFound,
                    format!(
                        "meter {meter} is not in the catalog; add it with `stackbill meter add \
                         {meter} --name … --unit …`"
                    ),
                ));
            }
            let effective = effective_from.unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            let mut all = vec![Tier {
                from_quantity: rust_decimal::Decimal::ZERO,
                unit_price: price,
            }];
            all.extend(tiers.into_iter().map(|(from_quantity, unit_price)| Tier {
                from_quantity,
                unit_price,
            }));
            let rate = MeterRate::new(meter, all, included, effective).map_err(|err| {
                let flag = match &err {
                    stackbill_core::rating::RatingError::InvalidRate {
                        target: "includedQuantity",
                        ..
                    } => "--included",
                    _ => "--price/--tier",
                };
                anyhow::anyhow!("{flag}: {err}")
            })?;
            rate_card.set_rate(rate);
            save(&store, &card, rate_card, output.json).await
        }
        RatecardCommand::Import {
            card,
            file,
            currency: code,
            db,
            output,
        } => {
            let mut text = Vec::new();
            if file.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut text)?;
            } else {
                text = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
            }
            let rates = read_price_list(text.as_slice())
                .map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))?;
            let store = open(&db)?;
            check_partner(&store, &card).await?;
            let existing = store
                .rate_card(owner_of(&card), card.name.clone(), None)
                .await?;
            let currency = match (code, &existing) {
                (Some(code), _) => currency(&code)?,
                (None, Some(existing)) => existing.currency,
                (None, None) => anyhow::bail!(
                    "rate card {} does not exist yet: give its --currency",
                    card.name
                ),
            };
            let catalog = store.meters().await?;
            if let Some(unknown) = rates
                .iter()
                .find(|r| !catalog.iter().any(|m| m.id == r.meter_id))
            {
                return Err(refused(
                    ErrorCode::MeterNotFound,
                    format!(
                        "{}: meter {} is not in the catalog; add it with `stackbill meter add`",
                        file.display(),
                        unknown.meter_id
                    ),
                ));
            }
            let rate_card = RateCard {
                name: card.name.clone(),
                currency,
                rates,
            };
            save(&store, &card, rate_card, output.json).await
        }
        RatecardCommand::Export {
            card,
            as_of,
            out,
            db,
        } => {
            let store = open(&db)?;
            let rate_card = stored(&store, &card, as_of).await?;
            let catalog = store.meters().await?;
            let mut bytes = Vec::new();
            write_price_list(&rate_card, &catalog, &mut bytes)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &bytes)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("rate card {} written to {}", card.name, path.display());
                    Ok(())
                }
                None => output::write_stdout(&bytes),
            }
        }
    }
}
