//! Registrations and their tenant mappings: each write loads the facts, asks the core's
//! rule, and writes what it decided, in one transaction.

use jiff::Timestamp;
use stackbill_core::routing::{RoutingTable, Span, spans};
use stackbill_core::rules::{
    CustomerSubscriptionFacts, RegistrationFacts, RegistrationPut,
    check_customer_subscription_delete, check_customer_subscription_put, check_registration_put,
};
use stackbill_core::{
    CloudId, MappingEvent, PartnerId, Registration, RegistrationName, RegistryError,
    SubscriptionId, TenantId,
};

use super::load::{
    REGISTRATION_COLUMNS, customer_subscription, insert_event, load_azure_registrations,
    load_registration, load_registration_where, load_registrations_ever, load_routing,
    load_subscription, load_timeline, read_instant, registration_from_row, require_registration,
    require_timeline,
};
use super::{AzureRegistration, CustomerSubscription};
use crate::db::{micros, params};
use crate::error::{Result, StoreError};
use crate::store::Store;

impl Store {
    /// Creates a registration, or re-puts one (only its billing model may change).
    pub async fn put_registration(&self, requested: Registration) -> Result<RegistrationPut> {
        self.put_registration_with(requested, None).await
    }

    /// As [`Store::put_registration`], also keeping the Azure-side fields, in one transaction.
    pub async fn put_registration_with(
        &self,
        requested: Registration,
        azure: Option<AzureRegistration>,
    ) -> Result<RegistrationPut> {
        self.write(move |tx, now| {
            let same_name = load_registration(tx, &requested.name)?;
            let same_cloud =
                load_registration_where(tx, "cloud_id = ?1", &requested.cloud_id.to_string())?;
            let default = load_subscription(tx, requested.default_subscription)?;
            let timeline = same_name
                .as_ref()
                .map(|(id, _)| load_timeline(tx, *id))
                .transpose()?;
            let outcome = check_registration_put(
                &requested,
                RegistrationFacts {
                    same_name: same_name.as_ref().map(|(_, r)| r),
                    same_cloud: same_cloud.as_ref().map(|(_, r)| r),
                    default_subscription: default.as_ref(),
                    timeline: timeline.as_ref(),
                    now,
                },
            )?;
            match (outcome, &same_name) {
                (RegistrationPut::Created, _) => {
                    tx.execute(
                        "INSERT INTO registrations (name, cloud_id, default_subscription_id,
                         billing_model, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                        params![
                            requested.name.as_str(),
                            requested.cloud_id.to_string(),
                            requested.default_subscription.to_string(),
                            requested.billing_model.as_str(),
                            micros(now),
                        ],
                    )?;
                }
                (RegistrationPut::Updated, Some((id, _))) => {
                    tx.execute(
                        "UPDATE registrations SET billing_model = ?1, updated_at = ?2
                         WHERE registration_id = ?3",
                        params![requested.billing_model.as_str(), micros(now), id],
                    )?;
                }
                _ => {}
            }
            if let Some(azure) = azure {
                tx.execute(
                    "UPDATE registrations SET azure_resource_group = ?1, azure_object_id = ?2,
                     azure_tags = ?3
                     WHERE deleted_at IS NULL AND lower(name) = lower(?4)",
                    params![
                        azure.resource_group,
                        azure.object_id,
                        azure.tags,
                        requested.name.as_str()
                    ],
                )?;
            }
            Ok(outcome)
        })
        .await
    }

    /// A live registration with its Azure-side fields.
    pub async fn azure_registration(
        &self,
        name: RegistrationName,
    ) -> Result<Option<(Registration, AzureRegistration)>> {
        self.read(move |conn| {
            Ok(load_azure_registrations(conn, "lower(name) = lower(?1)", &name.to_string())?.pop())
        })
        .await
    }

    /// One live registration.
    pub async fn registration(&self, name: RegistrationName) -> Result<Option<Registration>> {
        self.read(move |conn| Ok(load_registration(conn, &name)?.map(|(_, r)| r)))
            .await
    }

    /// Every live registration, by name; with `partner`, only those whose default
    /// subscription is that partner's.
    pub async fn registrations(&self, partner: Option<PartnerId>) -> Result<Vec<Registration>> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {REGISTRATION_COLUMNS} FROM registrations
                 WHERE deleted_at IS NULL AND (CAST(?1 AS TEXT) IS NULL OR
                 default_subscription_id IN
                     (SELECT subscription_id FROM subscriptions WHERE partner_id = ?1))
                 ORDER BY lower(name)"
            );
            conn.query_map(
                &sql,
                params![partner.as_ref().map(PartnerId::as_str)],
                |row| Ok(registration_from_row(row)?.1),
            )
        })
        .await
    }

    /// The live registration of a stack.
    pub async fn registration_of_cloud(&self, cloud: CloudId) -> Result<Option<Registration>> {
        self.read(move |conn| {
            Ok(load_registration_where(conn, "cloud_id = ?1", &cloud.to_string())?.map(|(_, r)| r))
        })
        .await
    }

    /// The live registrations whose default subscription is `subscription`, by name, with
    /// their Azure-side fields.
    pub async fn azure_registrations(
        &self,
        subscription: SubscriptionId,
    ) -> Result<Vec<(Registration, AzureRegistration)>> {
        self.read(move |conn| {
            load_azure_registrations(
                conn,
                "default_subscription_id = ?1",
                &subscription.to_string(),
            )
        })
        .await
    }

    /// Deletes a registration. Its history is kept; its stack may be registered again.
    pub async fn delete_registration(&self, name: RegistrationName) -> Result<()> {
        self.write(move |tx, now| {
            let (id, registration) = require_registration(tx, &name)?;
            tx.execute(
                "UPDATE registrations SET deleted_at = ?1, updated_at = ?1
                 WHERE registration_id = ?2",
                params![micros(now), id],
            )?;
            // A stack token dies with its registration (SPEC §7).
            tx.execute(
                "UPDATE tokens SET revoked_at = ?1
                 WHERE role = 'stack' AND cloud_id = ?2 AND revoked_at IS NULL",
                params![micros(now), registration.cloud_id.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    /// Maps a tenant to a customer subscription from `effective_from` (default: now),
    /// replacing any mapping the tenant has from then on.
    pub async fn put_customer_subscription(
        &self,
        registration: RegistrationName,
        subscription: SubscriptionId,
        tenant: TenantId,
        effective_from: Option<Timestamp>,
    ) -> Result<CustomerSubscription> {
        // The transaction's instant is later than every earlier write's (store_clock), so
        // recording order and recorded_at agree.
        self.write(move |tx, recorded_at| {
            let found = load_registration(tx, &registration)?;
            let default = match &found {
                Some((_, r)) => load_subscription(tx, r.default_subscription)?,
                None => None,
            };
            let customer = load_subscription(tx, subscription)?;
            let event = check_customer_subscription_put(
                &registration,
                subscription,
                tenant,
                effective_from.unwrap_or(recorded_at),
                recorded_at,
                CustomerSubscriptionFacts {
                    registration: found.as_ref().map(|(_, r)| r),
                    default_subscription: default.as_ref(),
                    customer_subscription: customer.as_ref(),
                },
            )?;
            let Some((id, registration)) = found else {
                return Err(StoreError::corrupt(
                    "registration vanished inside a transaction",
                ));
            };
            insert_event(tx, id, &event)?;
            customer_subscription(&registration, &event).ok_or_else(|| {
                StoreError::corrupt("a customer subscription event without a subscription")
            })
        })
        .await
    }

    /// The mapping of `subscription` in force at `at` (default: now).
    pub async fn customer_subscription(
        &self,
        registration: RegistrationName,
        subscription: SubscriptionId,
        at: Option<Timestamp>,
    ) -> Result<CustomerSubscription> {
        let clock = self.now();
        self.read(move |conn| {
            let at = read_instant(conn, at, clock)?;
            let (found, timeline) = require_timeline(conn, &registration)?;
            timeline
                .mappings_at(at)
                .into_iter()
                .find(|event| event.subscription == Some(subscription))
                .and_then(|event| customer_subscription(&found, event))
                .ok_or_else(|| {
                    StoreError::Rule(RegistryError::CustomerSubscriptionNotFound {
                        subscription,
                        registration: found.name.clone(),
                        at,
                    })
                })
        })
        .await
    }

    /// Every mapping of a registration in force at `at` (default: now), by tenant.
    pub async fn customer_subscriptions(
        &self,
        registration: RegistrationName,
        at: Option<Timestamp>,
    ) -> Result<Vec<CustomerSubscription>> {
        let clock = self.now();
        self.read(move |conn| {
            let at = read_instant(conn, at, clock)?;
            let (found, timeline) = require_timeline(conn, &registration)?;
            Ok(timeline
                .mappings_at(at)
                .into_iter()
                .filter_map(|event| customer_subscription(&found, event))
                .collect())
        })
        .await
    }

    /// Ends, from `effective_from` (default: now), the mapping of the tenant whose mapping
    /// then is `subscription`. Returns the removal events recorded.
    pub async fn delete_customer_subscription(
        &self,
        registration: RegistrationName,
        subscription: SubscriptionId,
        effective_from: Option<Timestamp>,
    ) -> Result<Vec<MappingEvent>> {
        // The transaction's instant is later than every earlier write's (store_clock), so
        // recording order and recorded_at agree.
        self.write(move |tx, recorded_at| {
            let found = load_registration(tx, &registration)?;
            let timeline = found
                .as_ref()
                .map(|(id, _)| load_timeline(tx, *id))
                .transpose()?;
            let events = check_customer_subscription_delete(
                &registration,
                found.as_ref().map(|(_, r)| r).zip(timeline.as_ref()),
                subscription,
                effective_from.unwrap_or(recorded_at),
                recorded_at,
            )?;
            if let Some((id, _)) = found {
                for event in &events {
                    insert_event(tx, id, event)?;
                }
            }
            Ok(events)
        })
        .await
    }

    /// Every mapping change of a live registration, in recording order.
    pub async fn registration_history(
        &self,
        registration: RegistrationName,
    ) -> Result<Vec<MappingEvent>> {
        self.read(move |conn| {
            let (_, timeline) = require_timeline(conn, &registration)?;
            Ok(timeline.events().to_vec())
        })
        .await
    }

    /// Every registration of a stack, live or deleted, with the span of usage it covers, in
    /// the order they were created (SPEC §4); the live one, if any, is last.
    pub async fn cloud_history(&self, cloud: CloudId) -> Result<Vec<(Registration, Span)>> {
        self.read(move |conn| {
            let rows = load_registrations_ever(conn, Some(cloud), None)?;
            let ends: Vec<_> = rows
                .iter()
                .map(|(_, r, deleted)| (r.cloud_id, *deleted))
                .collect();
            Ok(rows
                .into_iter()
                .map(|(_, registration, _)| registration)
                .zip(spans(&ends))
                .collect())
        })
        .await
    }

    /// Every registration, live or deleted, with its timeline: the input of routing.
    pub async fn routing_table(&self) -> Result<RoutingTable> {
        self.read(|conn| load_routing(conn, None)).await
    }
}
