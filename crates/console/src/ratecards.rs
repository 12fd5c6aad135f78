//! The rate cards pages: the cards a session may see (an admin's: all; a partner's: the
//! shared ones and its own), one card's prices with the catalog's names and units, and forms
//! that set a price or replace the prices with a price list CSV (an admin any card, a partner
//! its own), each a new version of the card.

#![allow(clippy::result_large_err)] // a page's steps fail with the answer to give

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde::Deserialize;
use stackbill_api::{AppState, Caller};
use stackbill_core::rating::{CardOwner, MeterRate, Tier};
use stackbill_core::{MeterId, PartnerId, RateCard, RateCardName};
use stackbill_io::price_list::{read_price_list, write_price_list};

use crate::frame::{Layout, csrf_refused, error_page, render, signed_in, store_failure};
use crate::session::{Session, same};

fn owner_text(owner: &CardOwner) -> String {
    match owner {
        CardOwner::Shared => "shared".to_owned(),
        CardOwner::Partner(partner) => partner.to_string(),
    }
}

/// May `caller` see, and change, `owner`'s cards: (see, change).
fn rights(caller: &Caller, owner: &CardOwner) -> (bool, bool) {
    match (caller, owner) {
        (Caller::Admin, _) => (true, true),
        (Caller::Partner(_), CardOwner::Shared) => (true, false),
        (Caller::Partner(own), CardOwner::Partner(partner)) => (own == partner, own == partner),
        _ => (false, false),
    }
}

fn not_found(session: &Session, owner: &str, name: &str) -> Response {
    error_page(
        Some(session),
        StatusCode::NOT_FOUND,
        "Not found",
        format!("There is no rate card '{name}' of {owner}."),
    )
}

/// One card in the list.
pub(crate) struct CardRow {
    owner: String,
    name: String,
    currency: String,
    meters: usize,
}

#[derive(Template)]
#[template(path = "ratecards.html")]
struct CardsPage {
    layout: Layout,
    cards: Vec<CardRow>,
}

/// `GET /ratecards`.
pub(crate) async fn cards(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let session = match signed_in(&state, &headers).await {
        Ok(session) => session,
        Err(response) => return response,
    };
    let cards = match state.store.rate_cards(None).await {
        Ok(cards) => cards,
        Err(error) => return store_failure(&session, error),
    };
    let cards = cards
        .into_iter()
        .filter(|(owner, _)| rights(&session.caller, owner).0)
        .map(|(owner, card)| {
            let mut meters: Vec<MeterId> = card.rates.iter().map(|r| r.meter_id).collect();
            meters.sort_unstable_by_key(ToString::to_string);
            meters.dedup();
            CardRow {
                owner: owner_text(&owner),
                name: card.name.to_string(),
                currency: card.currency.to_string(),
                meters: meters.len(),
            }
        })
        .collect();
    render(
        &CardsPage {
            layout: Layout::new(Some(&session)),
            cards,
        },
        StatusCode::OK,
    )
}

/// One tier of one entry.
pub(crate) struct PriceRow {
    meter: String,
    unit: String,
    effective: String,
    included: String,
    from: String,
    price: String,
}

/// A catalog meter for the form's list.
pub(crate) struct CatalogRow {
    id: String,
    name: String,
    unit: String,
}

#[derive(Template)]
#[template(path = "ratecard.html")]
struct CardPage {
    layout: Layout,
    owner: String,
    name: String,
    currency: String,
    prices: Vec<PriceRow>,
    catalog: Vec<CatalogRow>,
    editable: bool,
    error: Option<String>,
    done: Option<String>,
}

/// The session, the card's owner and name, whether the session may change it, and the card.
async fn visible_card(
    state: &AppState,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
) -> Result<(Session, CardOwner, bool, RateCard), Response> {
    let session = signed_in(state, headers).await?;
    let owner_parsed = match owner {
        "shared" => Some(CardOwner::Shared),
        partner => partner.parse::<PartnerId>().ok().map(CardOwner::Partner),
    };
    let (Some(card_owner), Ok(card_name)) = (owner_parsed, name.parse::<RateCardName>()) else {
        return Err(not_found(&session, owner, name));
    };
    let (see, change) = rights(&session.caller, &card_owner);
    if !see {
        return Err(not_found(&session, owner, name));
    }
    match state
        .store
        .rate_card(card_owner.clone(), card_name, None)
        .await
    {
        Ok(Some(card)) => Ok((session, card_owner, change, card)),
        Ok(None) => Err(not_found(&session, owner, name)),
        Err(error) => Err(store_failure(&session, error)),
    }
}

async fn card_page(
    state: &AppState,
    session: &Session,
    owner: &CardOwner,
    editable: bool,
    card: RateCard,
    outcome: Option<Result<String, String>>,
    status: StatusCode,
) -> Response {
    let catalog = match state.store.meters().await {
        Ok(catalog) => catalog,
        Err(error) => return store_failure(session, error),
    };
    let mut rates: Vec<&MeterRate> = card.rates.iter().collect();
    rates.sort_by_key(|r| (r.meter_id.to_string(), r.effective_date));
    let mut prices = Vec::new();
    for rate in rates {
        let meter = catalog.iter().find(|m| m.id == rate.meter_id);
        for (i, tier) in rate.tiers().iter().enumerate() {
            let first = i == 0;
            let shown = |text: String| if first { text } else { String::new() };
            prices.push(PriceRow {
                meter: shown(meter.map_or_else(|| rate.meter_id.to_string(), |m| m.name.clone())),
                unit: shown(meter.map(|m| m.unit.clone()).unwrap_or_default()),
                effective: shown(rate.effective_date.to_string()),
                included: shown(rate.included_quantity.normalize().to_string()),
                from: tier.from_quantity.normalize().to_string(),
                price: tier.unit_price.normalize().to_string(),
            });
        }
    }
    let (done, error) = match outcome {
        Some(Ok(done)) => (Some(done), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    render(
        &CardPage {
            layout: Layout::new(Some(session)),
            owner: owner_text(owner),
            name: card.name.to_string(),
            currency: card.currency.to_string(),
            prices,
            catalog: catalog
                .iter()
                .map(|m| CatalogRow {
                    id: m.id.to_string(),
                    name: m.name.clone(),
                    unit: m.unit.clone(),
                })
                .collect(),
            editable,
            error,
            done,
        },
        status,
    )
}

/// `GET /ratecards/{owner}/{name}`.
pub(crate) async fn card(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    match visible_card(&state, &headers, &owner, &name).await {
        Ok((session, owner, editable, card)) => {
            card_page(
                &state,
                &session,
                &owner,
                editable,
                card,
                None,
                StatusCode::OK,
            )
            .await
        }
        Err(response) => response,
    }
}

/// `GET /ratecards/{owner}/{name}/csv`: the price list, to edit in a spreadsheet.
pub(crate) async fn csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
) -> Response {
    let (session, _, _, card) = match visible_card(&state, &headers, &owner, &name).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let catalog = match state.store.meters().await {
        Ok(catalog) => catalog,
        Err(error) => return store_failure(&session, error),
    };
    let mut bytes = Vec::new();
    if let Err(error) = write_price_list(&card, &catalog, &mut bytes) {
        tracing::error!(%error, "a price list cannot be written");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the price list cannot be written",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{owner}-{name}.csv\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// The card as changed, stored as a new version: the page with what was done or why not.
async fn save(
    state: &AppState,
    session: &Session,
    owner: CardOwner,
    card: RateCard,
    change: Result<(RateCard, String), String>,
) -> Response {
    match change {
        Err(why) => {
            card_page(
                state,
                session,
                &owner,
                true,
                card,
                Some(Err(why)),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
        Ok((changed, done)) => {
            match state
                .store
                .put_rate_card(changed.clone(), owner.clone())
                .await
            {
                Ok(_) => {
                    card_page(
                        state,
                        session,
                        &owner,
                        true,
                        changed,
                        Some(Ok(done)),
                        StatusCode::OK,
                    )
                    .await
                }
                Err(error) => store_failure(session, error),
            }
        }
    }
}

fn refused_change(session: &Session) -> Response {
    error_page(
        Some(session),
        StatusCode::FORBIDDEN,
        "Not allowed",
        "A shared rate card is changed by an admin; a partner changes its own cards.".to_owned(),
    )
}

#[derive(Deserialize)]
pub(crate) struct PriceForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    meter: String,
    #[serde(default)]
    price: String,
    #[serde(default)]
    tiers: String,
    #[serde(default)]
    included: String,
    #[serde(default)]
    effective_from: String,
}

fn decimal(text: &str, label: &str) -> Result<Decimal, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{label}: '{}' is not a decimal number", text.trim()))
}

/// The entry a price form describes, checked as the core checks every rate.
fn rate_of(form: &PriceForm) -> Result<MeterRate, String> {
    let meter: MeterId = form
        .meter
        .trim()
        .parse()
        .map_err(|_| format!("Meter: '{}' is not a meter id (a GUID)", form.meter.trim()))?;
    let mut tiers = vec![Tier {
        from_quantity: Decimal::ZERO,
        unit_price: decimal(&form.price, "Unit price")?,
    }];
    for tier in form
        .tiers
        .split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let (from, price) = tier.split_once('=').ok_or_else(|| {
            format!("Further tiers: '{tier}' is not FROM=PRICE, e.g. 10000=0.0065")
        })?;
        tiers.push(Tier {
            from_quantity: decimal(from, "Further tiers")?,
            unit_price: decimal(price, "Further tiers")?,
        });
    }
    let included = match form.included.trim() {
        "" => Decimal::ZERO,
        text => decimal(text, "Included")?,
    };
    let effective = match form.effective_from.trim() {
        "" => jiff::Timestamp::UNIX_EPOCH,
        text => text.parse().map_err(|_| {
            format!("From: '{text}' is not an instant such as 2025-06-01T00:00:00Z")
        })?,
    };
    MeterRate::new(meter, tiers, included, effective).map_err(|error| error.to_string())
}

/// `POST /ratecards/{owner}/{name}/price`: sets one meter's price from a date.
pub(crate) async fn set_price(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<PriceForm>,
) -> Response {
    let (session, owner, editable, card) = match visible_card(&state, &headers, &owner, &name).await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    if !same(&form.csrf, &session.csrf) {
        return csrf_refused(&session);
    }
    if !editable {
        return refused_change(&session);
    }
    let change = match rate_of(&form) {
        Err(why) => Err(why),
        Ok(rate) => match state.store.meter(rate.meter_id).await {
            Ok(None) => Err(format!(
                "MeterNotFound: meter {} is not in the catalog",
                rate.meter_id
            )),
            Err(error) => return store_failure(&session, error),
            Ok(Some(meter)) => {
                let mut changed = card.clone();
                let done = format!(
                    "{} is priced {} {} from {}.",
                    meter.name,
                    rate.tiers()[0].unit_price.normalize(),
                    card.currency,
                    rate.effective_date
                );
                changed.set_rate(rate);
                Ok((changed, done))
            }
        },
    };
    save(&state, &session, owner, card, change).await
}

/// `POST /ratecards/{owner}/{name}/upload` (multipart: `csrf`, `file`): replaces every price
/// with the price list's; a bad cell is named by line and column, and nothing is stored.
pub(crate) async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((owner, name)): Path<(String, String)>,
    mut multipart: Multipart,
) -> Response {
    let (session, owner, editable, card) = match visible_card(&state, &headers, &owner, &name).await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let (mut csrf, mut file) = (String::new(), None);
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => match field.name() {
                Some("csrf") => csrf = field.text().await.unwrap_or_default(),
                Some("file") => file = field.bytes().await.ok(),
                _ => {}
            },
            Ok(None) => break,
            Err(error) => {
                return error_page(
                    Some(&session),
                    StatusCode::BAD_REQUEST,
                    "Cannot read the upload",
                    error.body_text(),
                );
            }
        }
    }
    if !same(&csrf, &session.csrf) {
        return csrf_refused(&session);
    }
    if !editable {
        return refused_change(&session);
    }
    let change = match file.as_deref().map(read_price_list) {
        None => Err("Choose the CSV file to upload.".to_owned()),
        Some(Err(error)) => Err(format!("The price list, {error}")),
        Some(Ok(rates)) => {
            let catalog = match state.store.meters().await {
                Ok(catalog) => catalog,
                Err(error) => return store_failure(&session, error),
            };
            if let Some(unknown) = rates
                .iter()
                .find(|r| !catalog.iter().any(|m| m.id == r.meter_id))
            {
                let why = format!(
                    "MeterNotFound: meter {} is not in the catalog",
                    unknown.meter_id
                );
                return save(&state, &session, owner, card, Err(why)).await;
            }
            let done = format!("{} entries loaded from the price list.", rates.len());
            Ok((
                RateCard {
                    name: card.name.clone(),
                    currency: card.currency,
                    rates,
                },
                done,
            ))
        }
    };
    save(&state, &session, owner, card, change).await
}
