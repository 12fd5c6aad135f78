//! `stackbill webhook`: partners' endpoints, straight on the database (the secret sealed
//! under the same key file `serve` opens it with), their delivery log and replay.

use anyhow::Result;
use stackbill_api::webhooks::{DeliveryDto, WebhookDto, register};
use stackbill_core::ErrorCode;
use stackbill_store::WebhookEndpoint;

use crate::admin::{keyring, open};
use crate::cli::WebhookCommand;
use crate::output;
use crate::output::outln;
use crate::refusal::refused;

fn not_found(id: &str) -> anyhow::Error {
    refused(
        ErrorCode::WebhookNotFound,
        format!("webhook endpoint '{id}' does not exist (`stackbill webhook list` shows them)"),
    )
}

fn show(endpoints: Vec<WebhookEndpoint>, json: bool, single: bool) -> Result<()> {
    let headers = ["ID", "PARTNER", "URL", "EVENTS", "ENABLED", "DESCRIPTION"];
    output::show::<_, WebhookDto>(endpoints, json, single, &headers, |w| {
        vec![
            w.id.clone(),
            w.partner_id.to_string(),
            w.url.clone(),
            w.types.to_text(),
            match &w.disabled_reason {
                Some(reason) if !w.enabled => format!("no: {reason}"),
                _ => if w.enabled { "yes" } else { "no" }.to_owned(),
            },
            w.description.clone(),
        ]
    })
}

pub(crate) async fn run(command: WebhookCommand) -> Result<()> {
    match command {
        WebhookCommand::Add {
            partner,
            url,
            events,
            description,
            db,
            output,
        } => {
            let store = open(&db)?;
            let dto = register(&store, &keyring(&db), partner, url, &events, description)
                .await
                .map_err(|err| refused(err.code, err.message))?;
            if output.json {
                return output::json(&dto);
            }
            outln!("endpoint {} for partner {}", dto.id, dto.partner_id)?;
            outln!(
                "signing secret (shown only now; give it to the receiver): {}",
                dto.secret.as_deref().unwrap_or_default()
            )?;
            Ok(())
        }
        WebhookCommand::List {
            partner,
            db,
            output,
        } => show(open(&db)?.webhooks(partner).await?, output.json, false),
        WebhookCommand::Enable {
            id,
            off,
            db,
            output,
        } => {
            let store = open(&db)?;
            let endpoint = store
                .webhook(id.clone())
                .await?
                .ok_or_else(|| not_found(&id))?;
            let updated = store
                .update_webhook(
                    id.clone(),
                    endpoint.url,
                    endpoint.types,
                    endpoint.description,
                    !off,
                )
                .await?
                .ok_or_else(|| not_found(&id))?;
            show(vec![updated], output.json, true)
        }
        WebhookCommand::Remove { id, db } => {
            if !open(&db)?.delete_webhook(id.clone()).await? {
                return Err(not_found(&id));
            }
            eprintln!("endpoint {id} removed");
            Ok(())
        }
        WebhookCommand::Deliveries {
            id,
            limit,
            db,
            output,
        } => {
            let store = open(&db)?;
            store
                .webhook(id.clone())
                .await?
                .ok_or_else(|| not_found(&id))?;
            let deliveries: Vec<DeliveryDto> = (store.webhook_deliveries(id, limit).await?)
                .into_iter()
                .map(DeliveryDto::from)
                .collect();
            if output.json {
                return output::json(&deliveries);
            }
            let rows: Vec<Vec<String>> = deliveries
                .iter()
                .map(|d| {
                    vec![
                        d.event_id.clone(),
                        d.event_type.clone(),
                        d.created_at.clone(),
                        d.status.clone(),
                        d.attempts.to_string(),
                        d.last_status.map_or_else(
                            || d.last_error.clone().unwrap_or_else(|| "-".to_owned()),
                            |s| s.to_string(),
                        ),
                        d.next_attempt_at.clone().unwrap_or_else(|| "-".to_owned()),
                    ]
                })
                .collect();
            output::table(
                &[
                    "EVENT",
                    "TYPE",
                    "AT",
                    "STATUS",
                    "ATTEMPTS",
                    "LAST ANSWER",
                    "NEXT",
                ],
                &rows,
            )?;
            Ok(())
        }
        WebhookCommand::Replay { id, event_id, db } => {
            let store = open(&db)?;
            store
                .webhook(id.clone())
                .await?
                .ok_or_else(|| not_found(&id))?;
            if !store.replay_webhook(id.clone(), event_id.clone()).await? {
                return Err(refused(
                    ErrorCode::WebhookNotFound,
                    format!("endpoint {id} has no event '{event_id}'"),
                ));
            }
            eprintln!("event {event_id} is due again at {id}; a serving node sends it");
            Ok(())
        }
    }
}
