//! Billing: rate card versions, invoices (drafts computed from today's data or as of an
//! instant, finals read back frozen), finalization and adjustments. The money is computed by
//! the core (`stackbill_core::rating`, `stackbill_core::invoice`); this module gathers the
//! facts it needs from the database and freezes its answers.
//!
//! Rate cards are stored as versions, never updated. A draft is computed on every read; a
//! final invoice is written once at finalization and read back as written. Adjustments of a
//! final month F appear on the draft of the first later month that is not final: F's billed
//! money (final lines plus adjustments already frozen) is compared with F re-rated from the
//! records accepted by F's finalization but routed by today's registrations (the difference is
//! `Reassignment`), and with F re-rated from all of today's records (`LateUsage`); which months
//! owe adjustments is the core's decision (`stackbill_core::billing`). As-of reads use only
//! what was recorded by the instant: records accepted, mapping events, rate card versions and
//! finalizations.

mod drafts;
mod facts;
mod margin;
mod tally;

pub use margin::{CostOwner, MarginRow};

use std::collections::BTreeSet;

use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::billing::{
    AdjustmentChange, DiffFacts, MeterChange, PartnerScope, adjustment_changes, check_finalizable,
    explain_change,
};
use stackbill_core::invoice::{Adjustment, InvoiceLine};
use stackbill_core::profile::InvoiceTax;
use stackbill_core::rating::{CardOwner, card_for};
use stackbill_core::{
    BillingError, Currency, MeterId, PartnerId, Period, RateCard, RateCardName, SubscriptionId,
    UsageRecord,
};

use crate::db::{Conn, Num, micros, params};
use crate::directory::{Written, load_routing, load_subscription};
use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::usage::{RecordFilter, load_records};
use drafts::{draft_invoices, invoices_of};
use facts::{Facts, load_final_invoice, load_rate_cards, owner_text, scope_text, write_final};

/// Whether an invoice can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceStatus {
    /// Computed from the data as it is.
    Draft,
    /// Frozen at finalization.
    Final,
}

/// One subscription's invoice for one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    /// The billed subscription.
    pub subscription_id: SubscriptionId,
    /// Who it is billed to.
    pub partner_id: Option<PartnerId>,
    /// The month.
    pub period: Period,
    /// The currency of every amount.
    pub currency: Currency,
    /// Draft or final.
    pub status: InvoiceStatus,
    /// One line per meter with usage.
    pub lines: Vec<InvoiceLine>,
    /// Corrections of earlier final periods.
    pub adjustments: Vec<Adjustment>,
    /// Lines plus adjustments.
    pub total: Decimal,
    /// Tax on the total, when the subscription has a tax rate (on a final invoice: as it was
    /// frozen).
    pub tax: Option<InvoiceTax>,
    /// Its number, given at finalization (absent on drafts, and on invoices finalized
    /// before numbers were given).
    pub number: Option<String>,
    /// When it was finalized.
    pub finalized_at: Option<Timestamp>,
}

impl Invoice {
    /// The total with its tax: what the customer pays.
    pub fn total_due(&self) -> Decimal {
        self.tax.map_or(self.total, |tax| tax.total_due)
    }
}

/// How an invoice changed between two instants ([`Store::invoice_diff`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceDiff {
    /// The billed subscription.
    pub subscription_id: SubscriptionId,
    /// The month.
    pub period: Period,
    /// The first instant.
    pub from: Timestamp,
    /// The second instant.
    pub to: Timestamp,
    /// The invoice's total at the first instant (0 without an invoice).
    pub total_from: Decimal,
    /// Its total at the second.
    pub total_to: Decimal,
    /// Its status at the first instant, if it had an invoice then.
    pub status_from: Option<InvoiceStatus>,
    /// Its status at the second instant, if it had an invoice then.
    pub status_to: Option<InvoiceStatus>,
    /// The meters that changed, and why.
    pub meters: Vec<MeterChange>,
    /// The adjustments (of earlier final months) that changed.
    pub adjustments: Vec<AdjustmentChange>,
}

impl Store {
    /// Stores a new version of `owner`'s rate card; the latest version recorded is current.
    pub async fn put_rate_card(&self, card: RateCard, owner: CardOwner) -> Result<Written> {
        self.write(move |tx, now| {
            let owner = owner_text(&owner);
            let existed = tx.exists(
                "SELECT 1 FROM rate_card_versions WHERE owner = ?1 AND name = ?2 LIMIT 1",
                params![owner, card.name.as_str()],
            )?;
            let version: i64 = tx.query_one(
                "INSERT INTO rate_card_versions (owner, name, currency, recorded_at)
                 VALUES (?1, ?2, ?3, ?4) RETURNING version_id",
                params![owner, card.name.as_str(), card.currency.code(), micros(now)],
                |row| row.get(0),
            )?;
            for rate in &card.rates {
                for tier in rate.tiers() {
                    tx.execute(
                        "INSERT INTO rate_card_tiers (version_id, meter_id, effective_date,
                         included_quantity, from_quantity, unit_price)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            version,
                            rate.meter_id.to_string(),
                            micros(rate.effective_date),
                            Num(rate.included_quantity.normalize()),
                            Num(tier.from_quantity.normalize()),
                            Num(tier.unit_price.normalize()),
                        ],
                    )?;
                }
            }
            Ok(Written::from_existed(existed))
        })
        .await
    }

    /// `owner`'s rate card named `name` as it is now, or as it was recorded by `as_of`.
    pub async fn rate_card(
        &self,
        owner: CardOwner,
        name: RateCardName,
        as_of: Option<Timestamp>,
    ) -> Result<Option<RateCard>> {
        self.read(move |conn| {
            Ok(load_rate_cards(conn, as_of.map(micros), Some(&name))?.remove(&(owner, name)))
        })
        .await
    }

    /// Every rate card with its owner, now or as recorded by `as_of`, shared ones first,
    /// then by partner and name.
    pub async fn rate_cards(&self, as_of: Option<Timestamp>) -> Result<Vec<(CardOwner, RateCard)>> {
        self.read(move |conn| {
            let mut cards: Vec<(CardOwner, RateCard)> =
                load_rate_cards(conn, as_of.map(micros), None)?
                    .into_iter()
                    .map(|((owner, _), card)| (owner, card))
                    .collect();
            cards.sort_by(|(a, x), (b, y)| {
                let key = |owner: &CardOwner| match owner {
                    CardOwner::Shared => String::new(),
                    CardOwner::Partner(p) => p.to_string(),
                };
                (key(a), x.name.as_str()).cmp(&(key(b), y.name.as_str()))
            });
            Ok(cards)
        })
        .await
    }

    /// The rate card a partner's subscriptions named `name` are priced with (SPEC §7): the
    /// partner's own card of that name, else the shared one, never another partner's.
    pub async fn rate_card_for(
        &self,
        partner: Option<PartnerId>,
        name: RateCardName,
        as_of: Option<Timestamp>,
    ) -> Result<Option<RateCard>> {
        self.read(move |conn| {
            let cards = load_rate_cards(conn, as_of.map(micros), Some(&name))?;
            Ok(card_for(&cards, partner.as_ref(), &name).cloned())
        })
        .await
    }

    /// Every invoice of a period, optionally one partner's, now or as of an instant.
    pub async fn invoices(
        &self,
        period: Period,
        partner: Option<PartnerId>,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Invoice>> {
        self.read(move |conn| invoices_of(conn, period, partner.as_ref(), as_of.map(micros))?.all())
            .await
    }

    /// Every invoice of a period that can be computed, optionally one partner's, now or as
    /// of an instant, and the subscriptions whose invoice cannot (each with why): one
    /// subscription's failure never hides the others' invoices.
    pub async fn invoice_list(
        &self,
        period: Period,
        partner: Option<PartnerId>,
        as_of: Option<Timestamp>,
    ) -> Result<(Vec<Invoice>, Vec<(SubscriptionId, StoreError)>)> {
        self.read(move |conn| {
            let drafts = invoices_of(conn, period, partner.as_ref(), as_of.map(micros))?;
            let failed = (drafts.failed.into_iter())
                .map(|(sub, error)| (sub, drafts::failure(sub, error)))
                .collect();
            Ok((drafts.invoices, failed))
        })
        .await
    }

    /// One subscription's invoice of a period, if it has one.
    pub async fn invoice(
        &self,
        subscription: SubscriptionId,
        period: Period,
        as_of: Option<Timestamp>,
    ) -> Result<Option<Invoice>> {
        self.read(move |conn| invoice_in(conn, subscription, period, as_of.map(micros)))
            .await
    }

    /// The raw records behind an invoice (optionally one meter's line): the records of the
    /// period accepted by `accepted_by` and routed to the subscription by the registrations as
    /// recorded by `routed_as_of` (`None`: now). With both instants equal, their quantities add
    /// up to the line's as of that instant.
    pub async fn invoice_records(
        &self,
        subscription: SubscriptionId,
        period: Period,
        meter: Option<MeterId>,
        routed_as_of: Option<Timestamp>,
        accepted_by: Option<Timestamp>,
    ) -> Result<Vec<stackbill_core::UsageRecord>> {
        self.read(move |conn| {
            records_in(conn, subscription, period, meter, routed_as_of, accepted_by)
        })
        .await
    }

    /// Freezes the invoices of `period` (optionally one partner's). Repeating it changes
    /// nothing; the answer is the final invoices. When a subscription's invoice cannot be
    /// computed, the answer is that error (see [`Store::finalize_period_reporting`] for what
    /// was frozen meanwhile).
    pub async fn finalize_period(
        &self,
        period: Period,
        partner: Option<PartnerId>,
    ) -> Result<Vec<Invoice>> {
        let (finals, failed) = self.finalize_period_reporting(period, partner).await?;
        match failed.into_iter().next() {
            Some((_, error)) => Err(error),
            None => Ok(finals),
        }
    }

    /// Freezes the invoices of `period` (optionally one partner's), as
    /// [`Store::finalize_period`], and answers the final invoices with the subscriptions
    /// whose invoice cannot be computed. A partner's month is frozen whole or not at all: when
    /// some subscription fails, the month of every other partner is frozen (as its own
    /// finalization), the failing subscription's partner (and, for an all-partners
    /// finalization, the subscriptions of no partner) stay drafts until it is fixed and the
    /// month finalized again.
    pub async fn finalize_period_reporting(
        &self,
        period: Period,
        partner: Option<PartnerId>,
    ) -> Result<(Vec<Invoice>, Vec<(SubscriptionId, StoreError)>)> {
        self.write(move |tx, now| {
            check_finalizable(period, now)?;
            let record = |scope: &PartnerScope| -> Result<()> {
                tx.execute(
                    "INSERT INTO finalized_periods (period, partner_id, finalized_at)
                     VALUES (?1, ?2, ?3)",
                    params![period.to_string(), scope_text(scope), micros(now)],
                )?;
                Ok(())
            };
            let scope = PartnerScope::of(partner.as_ref());
            let already = tx.exists(
                "SELECT 1 FROM finalized_periods WHERE period = ?1 AND partner_id = ?2",
                params![period.to_string(), scope_text(&scope)],
            )?;
            let mut failed = Vec::new();
            if !already {
                let facts = Facts::load(tx, None)?;
                let drafts = draft_invoices(tx, &facts, period, partner.as_ref())?;
                if drafts.failed.is_empty() {
                    for invoice in &drafts.invoices {
                        write_final(tx, invoice, now)?;
                    }
                    record(&scope)?;
                } else {
                    // Freeze every partner none of whose subscriptions failed, and the
                    // subscriptions of no partner unless one of them failed, each on its own.
                    let failing: BTreeSet<Option<&PartnerId>> =
                        drafts.failed.keys().map(|s| facts.partner_of(*s)).collect();
                    let mut frozen: BTreeSet<Option<&PartnerId>> = BTreeSet::new();
                    for invoice in &drafts.invoices {
                        let owner = facts.partner_of(invoice.subscription_id);
                        if partner.is_none() && !failing.contains(&owner) {
                            write_final(tx, invoice, now)?;
                            frozen.insert(owner);
                        }
                    }
                    for owner in frozen {
                        record(&owner.map_or(PartnerScope::Unpartnered, |owner| {
                            PartnerScope::Partner(owner.clone())
                        }))?;
                    }
                    failed = (drafts.failed.into_iter())
                        .map(|(sub, error)| (sub, drafts::failure(sub, error)))
                        .collect();
                }
            }
            let finals = invoices_of(tx, period, partner.as_ref(), None).map(|all| {
                (all.invoices.into_iter())
                    .filter(|i| i.status == InvoiceStatus::Final)
                    .collect()
            })?;
            Ok((finals, failed))
        })
        .await
    }

    /// How one subscription's invoice of a period changed between two instants, meter by
    /// meter, and why (records accepted between them, records re-routed in or out, a rate
    /// card change), and its adjustments that changed; read in one snapshot.
    pub async fn invoice_diff(
        &self,
        subscription: SubscriptionId,
        period: Period,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<InvoiceDiff> {
        self.read(move |conn| {
            let before = invoice_in(conn, subscription, period, Some(micros(from)))?;
            let after = invoice_in(conn, subscription, period, Some(micros(to)))?;
            let records = |routed: Timestamp, accepted: Timestamp| {
                records_in(
                    conn,
                    subscription,
                    period,
                    None,
                    Some(routed),
                    Some(accepted),
                )
            };
            let (billed_from, billed_to) = (records(from, from)?, records(to, to)?);
            let known_from_routed_to = records(to, from)?;
            let rate_card_changed = match load_subscription(conn, subscription)? {
                Some(s) => {
                    let card_at = |at: Timestamp| {
                        load_rate_cards(conn, Some(micros(at)), Some(&s.rate_card)).map(|cards| {
                            card_for(&cards, s.partner_id.as_ref(), &s.rate_card).cloned()
                        })
                    };
                    card_at(from)? != card_at(to)?
                }
                None => false,
            };
            let meters = explain_change(DiffFacts {
                lines_from: invoice_lines(before.as_ref()),
                lines_to: invoice_lines(after.as_ref()),
                billed_from: &billed_from,
                billed_to: &billed_to,
                known_from_routed_to: &known_from_routed_to,
                rate_card_changed,
            })
            .map_err(BillingError::from)?;
            let adjustments = adjustment_changes(
                before.as_ref().map_or(&[][..], |i| &i.adjustments),
                after.as_ref().map_or(&[][..], |i| &i.adjustments),
            )
            .map_err(BillingError::from)?;
            Ok(InvoiceDiff {
                subscription_id: subscription,
                period,
                from,
                to,
                total_from: before.as_ref().map_or(Decimal::ZERO, |i| i.total),
                total_to: after.as_ref().map_or(Decimal::ZERO, |i| i.total),
                status_from: before.map(|i| i.status),
                status_to: after.map(|i| i.status),
                meters,
                adjustments,
            })
        })
        .await
    }
}

fn invoice_lines(invoice: Option<&Invoice>) -> &[InvoiceLine] {
    invoice.map_or(&[], |i| &i.lines)
}

/// One subscription's invoice of a period as of an instant (`None`: now): the final one
/// when it was final by then, else the draft.
fn invoice_in(
    conn: &Conn<'_>,
    subscription: SubscriptionId,
    period: Period,
    as_of: Option<i64>,
) -> Result<Option<Invoice>> {
    if let Some(invoice) = load_final_invoice(conn, subscription, period)?
        && as_of.is_none_or(|t| invoice.finalized_at.is_some_and(|f| micros(f) <= t))
    {
        return Ok(Some(invoice));
    }
    let facts = Facts::load(conn, as_of)?;
    let partner = facts.partner_of(subscription).cloned();
    let mut drafts = draft_invoices(conn, &facts, period, partner.as_ref())?;
    if let Some(error) = drafts.failed.remove(&subscription) {
        return Err(drafts::failure(subscription, error));
    }
    Ok(drafts
        .invoices
        .into_iter()
        .find(|i| i.subscription_id == subscription))
}

/// The records of `period` accepted by `accepted_by` and routed to `subscription` by the
/// registrations as recorded by `routed_as_of` (`None`: now), optionally one meter's.
fn records_in(
    conn: &Conn<'_>,
    subscription: SubscriptionId,
    period: Period,
    meter: Option<MeterId>,
    routed_as_of: Option<Timestamp>,
    accepted_by: Option<Timestamp>,
) -> Result<Vec<UsageRecord>> {
    let routing = load_routing(conn, routed_as_of)?;
    let (from_hour, to_hour) = period.hours();
    let filter = RecordFilter {
        meter,
        routed_to: Some((subscription, &routing)),
        accepted_by: accepted_by.map(micros),
        reported: None,
    };
    load_records(conn, from_hour, to_hour, &filter)
}
