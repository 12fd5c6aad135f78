//! `stackbill report`: the margin report, and the cost rate cards it reads.

use anyhow::Result;
use stackbill_api::billing::InvoiceNames;
use stackbill_api::margin::{CostCardDto, margin_csv, margin_dto};
use stackbill_core::ErrorCode;
use stackbill_store::CostOwner;

use crate::admin::open;
use crate::cli::ReportCommand;
use crate::output;
use crate::output::{out, outln};
use crate::refusal::refused;

pub(crate) async fn run(command: ReportCommand) -> Result<()> {
    match command {
        ReportCommand::Margin {
            period,
            partner,
            csv,
            db,
            output,
        } => {
            let store = open(&db)?;
            let rows = store.margin_report(period, partner).await?;
            let names = InvoiceNames::load(&store).await?;
            let report =
                margin_dto(period, rows, &names).map_err(|err| refused(err.code, err.message))?;
            if csv {
                out!("{}", margin_csv(&report))?;
                return Ok(());
            }
            if output.json {
                return output::json(&report);
            }
            let rows: Vec<Vec<String>> = report
                .rows
                .iter()
                .map(|r| {
                    vec![
                        r.partner_id.clone().unwrap_or_else(|| "-".to_owned()),
                        if r.customer_name.is_empty() {
                            r.subscription_id.clone()
                        } else {
                            r.customer_name.clone()
                        },
                        r.meter_name.clone(),
                        format!("{} {}", r.quantity, r.unit),
                        format!("{} {}", r.cost, r.cost_currency.as_deref().unwrap_or("")),
                        if r.own_use {
                            "own use".to_owned()
                        } else {
                            format!("{} {}", r.revenue, r.currency)
                        },
                        r.margin.clone().unwrap_or_else(|| "-".to_owned()),
                        (r.margin_percent.as_ref())
                            .map_or_else(|| r.note.unwrap_or("-").to_owned(), |p| format!("{p} %")),
                    ]
                })
                .collect();
            output::table(
                &[
                    "PARTNER", "CUSTOMER", "METER", "QUANTITY", "COST", "REVENUE", "MARGIN",
                    "MARGIN %",
                ],
                &rows,
            )?;
            for total in &report.totals {
                outln!(
                    "\n{} in {}: cost {}, revenue {}, margin {}{}",
                    total.partner_id.as_deref().unwrap_or("no partner"),
                    total.currency,
                    total.cost,
                    total.revenue,
                    total.margin,
                    if total.lines_without_margin > 0 {
                        format!(
                            " ({} lines without a margin left out)",
                            total.lines_without_margin
                        )
                    } else {
                        String::new()
                    }
                )?;
            }
            Ok(())
        }
        ReportCommand::Cost {
            partner,
            registration,
            card,
            clear,
            db,
            output,
        } => {
            let store = open(&db)?;
            let (owner, card_partner) = match (partner, registration) {
                (Some(partner), _) => {
                    if store.partner(partner.clone()).await?.is_none() {
                        return Err(refused(
                            ErrorCode::PartnerNotFound,
                            format!("partner '{partner}' does not exist"),
                        ));
                    }
                    (CostOwner::Partner(partner.clone()), Some(partner))
                }
                (None, Some(name)) => {
                    let Some(registration) = store.registration(name.clone()).await? else {
                        return Err(refused(
                            ErrorCode::RegistrationNotFound,
                            format!("registration '{name}' does not exist"),
                        ));
                    };
                    let partner = (store
                        .subscription(registration.default_subscription)
                        .await?)
                        .and_then(|s| s.partner_id);
                    (CostOwner::Registration(name), partner)
                }
                (None, None) => anyhow::bail!("name --partner or --registration"),
            };
            if card.is_some() || clear {
                store
                    .put_cost_card(owner.clone(), card_partner, card)
                    .await?;
            }
            let current = store.cost_card(owner).await?;
            let dto = CostCardDto {
                rate_card: current.map(|c| c.to_string()),
            };
            if output.json {
                return output::json(&dto);
            }
            outln!(
                "{}",
                dto.rate_card.as_deref().unwrap_or("no cost rate card")
            )?;
            Ok(())
        }
    }
}
