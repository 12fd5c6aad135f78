//! The margin report: each invoice line of a month against what its usage cost the CSP, stack
//! by stack, at the cost rate card of the stack's registration (else of the partner). The
//! quantities are the invoices' own: a final invoice's as of its finalization.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use stackbill_core::margin::{CostPart, MarginInput, MarginLine, margin_line};
use stackbill_core::rating::card_for;
use stackbill_core::total::Total;
use stackbill_core::{
    BillingError, CloudId, MeterId, PartnerId, Period, RateCardName, RegistrationName,
    SubscriptionId,
};

use super::Invoice;
use super::drafts::invoices_of;
use super::facts::load_rate_cards;
use super::tally::routed_period_usage;
use crate::db::{Conn, instant, micros, params, parse};
use crate::directory::{load_registrations_ever, load_routing};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// Whose cost rate card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CostOwner {
    /// A partner's: every stack of its registrations that has none of its own.
    Partner(PartnerId),
    /// One registration's stack.
    Registration(RegistrationName),
}

impl CostOwner {
    fn key(&self) -> (&'static str, String) {
        match self {
            Self::Partner(partner) => ("partner", partner.to_string()),
            Self::Registration(name) => ("registration", name.as_str().to_ascii_lowercase()),
        }
    }
}

/// One row of the report: a line of one subscription's invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarginRow {
    /// Who is billed.
    pub partner_id: Option<PartnerId>,
    /// The billed subscription.
    pub subscription_id: SubscriptionId,
    /// The line's cost, revenue and margin.
    pub line: MarginLine,
}

impl Store {
    /// Sets (or, with `None`, removes) the cost rate card of a partner or a registration;
    /// the card must be one `partner` (the owner's partner) can use.
    pub async fn put_cost_card(
        &self,
        owner: CostOwner,
        partner: Option<PartnerId>,
        card: Option<RateCardName>,
    ) -> Result<()> {
        self.write(move |tx, now| {
            if let Some(name) = &card {
                let cards = load_rate_cards(tx, None, Some(name))?;
                if card_for(&cards, partner.as_ref(), name).is_none() {
                    return Err(StoreError::UnknownRateCard(name.clone()));
                }
            }
            let (kind, key) = owner.key();
            tx.execute(
                "INSERT INTO cost_rate_cards (owner_kind, owner_key, rate_card, recorded_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    kind,
                    key,
                    card.as_ref().map(RateCardName::as_str),
                    micros(now)
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// The cost rate card of a partner or a registration, if one is set.
    pub async fn cost_card(&self, owner: CostOwner) -> Result<Option<RateCardName>> {
        self.read(move |conn| {
            let (kind, key) = owner.key();
            Ok(cost_cards(conn)?.remove(&(kind.to_owned(), key)))
        })
        .await
    }

    /// The margin of every invoice line of `period` (optionally one partner's), by partner,
    /// subscription and meter; read in one snapshot.
    pub async fn margin_report(
        &self,
        period: Period,
        partner: Option<PartnerId>,
    ) -> Result<Vec<MarginRow>> {
        self.read(move |conn| margin_rows(conn, period, partner.as_ref()))
            .await
    }
}

/// The card in force per (owner kind, owner key).
fn cost_cards(conn: &Conn<'_>) -> Result<HashMap<(String, String), RateCardName>> {
    let rows = conn.query_map(
        "SELECT c.owner_kind, c.owner_key, c.rate_card FROM cost_rate_cards c
         WHERE c.version_id = (SELECT MAX(d.version_id) FROM cost_rate_cards d
                               WHERE d.owner_kind = c.owner_kind AND d.owner_key = c.owner_key)",
        params![],
        |row| {
            Ok((
                row.get::<String>(0)?,
                row.get::<String>(1)?,
                row.get::<Option<String>>(2)?,
            ))
        },
    )?;
    let mut cards = HashMap::new();
    for (kind, key, card) in rows {
        if let Some(card) = card {
            cards.insert((kind, key), parse(&card)?);
        }
    }
    Ok(cards)
}

fn margin_rows(
    conn: &Conn<'_>,
    period: Period,
    partner: Option<&PartnerId>,
) -> Result<Vec<MarginRow>> {
    let invoices = invoices_of(conn, period, partner, None)?.all()?;
    let cards = load_rate_cards(conn, None, None)?;
    let cost_cards = cost_cards(conn)?;
    let defaults: BTreeSet<SubscriptionId> = load_registrations_ever(conn, None, None)?
        .into_iter()
        .map(|(_, registration, _)| registration.default_subscription)
        .collect();
    // Each line's usage per stack, counted as its invoice was: by finalization, or now.
    let mut groups: BTreeMap<Option<i64>, BTreeSet<SubscriptionId>> = BTreeMap::new();
    for invoice in &invoices {
        groups
            .entry(invoice.finalized_at.map(micros))
            .or_default()
            .insert(invoice.subscription_id);
    }
    let mut parts: HashMap<(SubscriptionId, MeterId), Vec<(CloudId, Total)>> = HashMap::new();
    let mut names: HashMap<CloudId, RegistrationName> = HashMap::new();
    for (as_of, subscriptions) in &groups {
        let routing = load_routing(conn, as_of.map(instant).transpose()?)?;
        for cloud in routing.clouds() {
            if let Some(registration) = routing.registration_at(cloud, period.start()) {
                names.insert(cloud, registration.name.clone());
            }
            let usage = routed_period_usage(conn, period, &routing.only(cloud), *as_of)?;
            for (subscription, meters) in usage {
                if !subscriptions.contains(&subscription) {
                    continue;
                }
                for (meter, quantity) in meters {
                    parts
                        .entry((subscription, meter))
                        .or_default()
                        .push((cloud, quantity));
                }
            }
        }
    }
    let mut rows = Vec::new();
    for invoice in &invoices {
        rows.extend(invoice_margins(
            invoice,
            period,
            &parts,
            &names,
            &cost_cards,
            &cards,
            &defaults,
        )?);
    }
    rows.sort_by(|a, b| {
        (a.partner_id.as_ref(), a.subscription_id, a.line.meter_id).cmp(&(
            b.partner_id.as_ref(),
            b.subscription_id,
            b.line.meter_id,
        ))
    });
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
fn invoice_margins(
    invoice: &Invoice,
    period: Period,
    parts: &HashMap<(SubscriptionId, MeterId), Vec<(CloudId, Total)>>,
    names: &HashMap<CloudId, RegistrationName>,
    cost_cards: &HashMap<(String, String), RateCardName>,
    cards: &HashMap<(stackbill_core::rating::CardOwner, RateCardName), stackbill_core::RateCard>,
    defaults: &BTreeSet<SubscriptionId>,
) -> Result<Vec<MarginRow>> {
    let partner = invoice.partner_id.as_ref();
    let card_of = |cloud: CloudId| {
        let by_registration = names.get(&cloud).and_then(|name| {
            cost_cards.get(&(
                "registration".to_owned(),
                name.as_str().to_ascii_lowercase(),
            ))
        });
        let by_partner =
            partner.and_then(|p| cost_cards.get(&("partner".to_owned(), p.to_string())));
        by_registration
            .or(by_partner)
            .and_then(|name| card_for(cards, partner, name))
    };
    let own_use = defaults.contains(&invoice.subscription_id);
    invoice
        .lines
        .iter()
        .map(|line| {
            let empty = Vec::new();
            let stacks = parts
                .get(&(invoice.subscription_id, line.meter_id))
                .unwrap_or(&empty);
            let input = MarginInput {
                meter_id: line.meter_id,
                quantity: line.quantity,
                revenue: (!own_use).then_some(line.amount),
                currency: invoice.currency,
                parts: stacks
                    .iter()
                    .map(|(cloud, quantity)| CostPart {
                        quantity: *quantity,
                        card: card_of(*cloud),
                    })
                    .collect(),
            };
            let line = margin_line(&input, period).map_err(|error| {
                crate::error::StoreError::Billing(BillingError::Subscription {
                    subscription: invoice.subscription_id,
                    error: Box::new(error.into()),
                })
            })?;
            Ok(MarginRow {
                partner_id: invoice.partner_id.clone(),
                subscription_id: invoice.subscription_id,
                line,
            })
        })
        .collect()
}
