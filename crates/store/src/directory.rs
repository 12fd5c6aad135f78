//! Directory and registry operations: partners, subscriptions, registrations, tenant
//! mappings and meters.

use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::meters::{builtin_catalog, builtin_meter};
use stackbill_core::routing::RoutingTable;
use stackbill_core::rules::{
    CustomerSubscriptionFacts, RegistrationFacts, RegistrationPut,
    check_customer_subscription_delete, check_customer_subscription_put, check_registration_put,
};
use stackbill_core::{
    CloudId, MappingEvent, Meter, MeterId, Partner, PartnerId, Registration, RegistrationName,
    RegistryError, Subscription, SubscriptionId, TenantId, Timeline,
};

use crate::db::{Conn, Num, Row, instant, micros, params, parse, parse_opt};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// Whether a PUT created its object or replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The object is new.
    Created,
    /// The object existed and now holds the new values.
    Updated,
}

/// What the Azure-compatible API keeps about a registration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AzureRegistration {
    /// The resource group in the registration's ARM id.
    pub resource_group: Option<String>,
    /// The object id of the stack's identity, from the registration token.
    pub object_id: Option<String>,
    /// ARM tags, as JSON text.
    pub tags: Option<String>,
}

/// A tenant mapping in force: one customer subscription of one registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSubscription {
    /// The registration.
    pub registration: RegistrationName,
    /// The billing subscription the tenant's usage goes to.
    pub subscription: SubscriptionId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// From when the mapping applies.
    pub effective_from: Timestamp,
    /// When it was recorded.
    pub recorded_at: Timestamp,
}

const SUBSCRIPTION_COLUMNS: &str = "subscription_id, offer_type, partner_id, customer_tenant_id, display_name, rate_card, markup_percent";

fn subscription_from_row(row: &Row<'_>) -> Result<Subscription> {
    Ok(Subscription {
        id: parse(&row.get::<String>(0)?)?,
        offer_type: parse(&row.get::<String>(1)?)?,
        partner_id: parse_opt(row.get::<Option<String>>(2)?.as_deref())?,
        customer_tenant_id: parse_opt(row.get::<Option<String>>(3)?.as_deref())?,
        display_name: row.get(4)?,
        rate_card: parse(&row.get::<String>(5)?)?,
        markup_percent: row.get::<Decimal>(6)?,
    })
}

pub(crate) fn load_subscription(
    conn: &Conn<'_>,
    id: SubscriptionId,
) -> Result<Option<Subscription>> {
    let sql =
        format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE subscription_id = ?1");
    conn.query_opt(&sql, params![id.to_string()], subscription_from_row)
}

const REGISTRATION_COLUMNS: &str =
    "registration_id, name, cloud_id, default_subscription_id, billing_model";

fn registration_from_row(row: &Row<'_>) -> Result<(i64, Registration)> {
    Ok((
        row.get(0)?,
        Registration {
            name: parse(&row.get::<String>(1)?)?,
            cloud_id: parse(&row.get::<String>(2)?)?,
            default_subscription: parse(&row.get::<String>(3)?)?,
            billing_model: parse(&row.get::<String>(4)?)?,
        },
    ))
}

/// The Azure-side fields of a registration row, from column `first` on.
fn azure_from_row(row: &Row<'_>, first: usize) -> Result<AzureRegistration> {
    Ok(AzureRegistration {
        resource_group: row.get(first)?,
        object_id: row.get(first + 1)?,
        tags: row.get(first + 2)?,
    })
}

/// The live registrations where `condition` holds for `value`, by name, with their
/// Azure-side fields.
fn load_azure_registrations(
    conn: &Conn<'_>,
    condition: &str,
    value: &str,
) -> Result<Vec<(Registration, AzureRegistration)>> {
    let sql = format!(
        "SELECT {REGISTRATION_COLUMNS}, azure_resource_group, azure_object_id, azure_tags
         FROM registrations WHERE deleted_at IS NULL AND {condition} ORDER BY lower(name)"
    );
    conn.query_map(&sql, params![value], |row| {
        Ok((registration_from_row(row)?.1, azure_from_row(row, 5)?))
    })
}

fn load_registration_where(
    conn: &Conn<'_>,
    condition: &str,
    value: &str,
) -> Result<Option<(i64, Registration)>> {
    let sql = format!(
        "SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE deleted_at IS NULL AND {condition}"
    );
    conn.query_opt(&sql, params![value], registration_from_row)
}

fn load_registration(
    conn: &Conn<'_>,
    name: &RegistrationName,
) -> Result<Option<(i64, Registration)>> {
    load_registration_where(conn, "lower(name) = lower(?1)", &name.to_string())
}

/// A mapping event from the columns `tenant_id, subscription_id, effective_from, recorded_at`
/// starting at `first`.
fn event_from_row(row: &Row<'_>, first: usize) -> Result<MappingEvent> {
    Ok(MappingEvent {
        tenant_id: parse(&row.get::<String>(first)?)?,
        subscription: parse_opt(row.get::<Option<String>>(first + 1)?.as_deref())?,
        effective_from: instant(row.get(first + 2)?)?,
        recorded_at: instant(row.get(first + 3)?)?,
    })
}

fn load_timeline(conn: &Conn<'_>, registration_id: i64) -> Result<Timeline> {
    let mut timeline = Timeline::default();
    conn.query_each(
        "SELECT tenant_id, subscription_id, effective_from, recorded_at FROM mapping_events
         WHERE registration_id = ?1 ORDER BY event_id",
        params![registration_id],
        |row| {
            timeline.record(event_from_row(row, 0)?);
            Ok(())
        },
    )?;
    Ok(timeline)
}

/// Every registration's timeline, by registration id, in one query.
fn load_timelines(conn: &Conn<'_>) -> Result<std::collections::HashMap<i64, Timeline>> {
    let mut timelines: std::collections::HashMap<i64, Timeline> = Default::default();
    conn.query_each(
        "SELECT registration_id, tenant_id, subscription_id, effective_from, recorded_at
         FROM mapping_events ORDER BY event_id",
        params![],
        |row| {
            timelines
                .entry(row.get(0)?)
                .or_default()
                .record(event_from_row(row, 1)?);
            Ok(())
        },
    )?;
    Ok(timelines)
}

/// The registrations live at `as_of` (default: now) with their timelines as recorded by then.
pub(crate) fn load_routing(conn: &Conn<'_>, as_of: Option<Timestamp>) -> Result<RoutingTable> {
    let sql = format!(
        "SELECT {REGISTRATION_COLUMNS} FROM registrations
         WHERE (CAST(?1 AS BIGINT) IS NULL AND deleted_at IS NULL)
            OR (CAST(?1 AS BIGINT) IS NOT NULL AND created_at <= ?1
                AND (deleted_at IS NULL OR deleted_at > ?1))"
    );
    let registrations: Vec<(i64, Registration)> =
        conn.query_map(&sql, params![as_of.map(micros)], registration_from_row)?;
    let mut timelines = load_timelines(conn)?;
    let entries: Vec<_> = registrations
        .into_iter()
        .map(|(id, registration)| {
            let timeline = timelines.remove(&id).unwrap_or_default();
            let timeline = match as_of {
                Some(at) => timeline.as_recorded_by(at),
                None => timeline,
            };
            (registration, timeline)
        })
        .collect();
    Ok(RoutingTable::new(entries))
}

/// Every billing subscription.
pub(crate) fn load_subscriptions(conn: &Conn<'_>) -> Result<Vec<Subscription>> {
    let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions ORDER BY subscription_id");
    conn.query_map(&sql, params![], subscription_from_row)
}

fn require_registration(conn: &Conn<'_>, name: &RegistrationName) -> Result<(i64, Registration)> {
    load_registration(conn, name)?.ok_or_else(|| {
        StoreError::Rule(RegistryError::RegistrationNotFound {
            registration: name.clone(),
        })
    })
}

/// A live registration with its mapping timeline, or `RegistrationNotFound`.
fn require_timeline(conn: &Conn<'_>, name: &RegistrationName) -> Result<(Registration, Timeline)> {
    let (id, registration) = require_registration(conn, name)?;
    Ok((registration, load_timeline(conn, id)?))
}

/// The instant a read is at: `at` when given, else "now": the clock, or the last write's
/// instant if the store is ahead of it, so that a change is in force for the reads that
/// follow it.
fn read_instant(conn: &Conn<'_>, at: Option<Timestamp>, clock: Timestamp) -> Result<Timestamp> {
    if let Some(at) = at {
        return Ok(at);
    }
    let last: i64 = conn.query_one(
        "SELECT last_micros FROM store_clock WHERE id = 1",
        params![],
        |row| row.get(0),
    )?;
    Ok(if last > micros(clock) {
        instant(last)?
    } else {
        clock
    })
}

fn insert_event(conn: &Conn<'_>, registration_id: i64, event: &MappingEvent) -> Result<()> {
    conn.execute(
        "INSERT INTO mapping_events (registration_id, tenant_id, subscription_id,
         effective_from, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            registration_id,
            event.tenant_id.to_string(),
            event.subscription.map(|s| s.to_string()),
            micros(event.effective_from),
            micros(event.recorded_at),
        ],
    )?;
    Ok(())
}

fn customer_subscription(
    registration: &Registration,
    event: &MappingEvent,
) -> Option<CustomerSubscription> {
    Some(CustomerSubscription {
        registration: registration.name.clone(),
        subscription: event.subscription?,
        tenant_id: event.tenant_id,
        effective_from: event.effective_from,
        recorded_at: event.recorded_at,
    })
}

fn load_meter_override(conn: &Conn<'_>, id: MeterId) -> Result<Option<Meter>> {
    conn.query_opt(
        "SELECT name, unit, category FROM meters WHERE meter_id = ?1",
        params![id.to_string()],
        |row| {
            Ok(Meter {
                id,
                name: row.get(0)?,
                unit: row.get(1)?,
                category: row.get(2)?,
            })
        },
    )
}

impl Store {
    /// Creates or renames a partner.
    pub async fn put_partner(&self, partner: Partner) -> Result<Written> {
        self.write(move |tx, now| {
            let existed = tx.exists(
                "SELECT 1 FROM partners WHERE partner_id = ?1",
                params![partner.id.as_str()],
            )?;
            tx.execute(
                "INSERT INTO partners (partner_id, name, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (partner_id) DO UPDATE
                 SET name = excluded.name, updated_at = excluded.updated_at",
                params![partner.id.as_str(), partner.name, micros(now)],
            )?;
            Ok(if existed {
                Written::Updated
            } else {
                Written::Created
            })
        })
        .await
    }

    /// One partner.
    pub async fn partner(&self, id: PartnerId) -> Result<Option<Partner>> {
        self.read(move |conn| {
            let name: Option<String> = conn.query_opt(
                "SELECT name FROM partners WHERE partner_id = ?1",
                params![id.as_str()],
                |row| row.get(0),
            )?;
            Ok(name.map(|name| Partner { id, name }))
        })
        .await
    }

    /// Every partner, by id.
    pub async fn partners(&self) -> Result<Vec<Partner>> {
        self.read(|conn| {
            conn.query_map(
                "SELECT partner_id, name FROM partners ORDER BY partner_id",
                params![],
                |row| {
                    Ok(Partner {
                        id: parse(&row.get::<String>(0)?)?,
                        name: row.get(1)?,
                    })
                },
            )
        })
        .await
    }

    /// Creates or replaces a billing subscription.
    pub async fn put_subscription(&self, subscription: Subscription) -> Result<Written> {
        subscription.validate()?;
        self.write(move |tx, now| {
            if let Some(partner) = &subscription.partner_id {
                let exists = tx.exists(
                    "SELECT 1 FROM partners WHERE partner_id = ?1",
                    params![partner.as_str()],
                )?;
                if !exists {
                    return Err(StoreError::UnknownPartner(partner.clone()));
                }
            }
            let existed = load_subscription(tx, subscription.id)?.is_some();
            tx.execute(
                "INSERT INTO subscriptions (subscription_id, offer_type, partner_id,
                    customer_tenant_id, display_name, rate_card, markup_percent, created_at,
                    updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
                 ON CONFLICT (subscription_id) DO UPDATE SET offer_type = excluded.offer_type,
                    partner_id = excluded.partner_id,
                    customer_tenant_id = excluded.customer_tenant_id,
                    display_name = excluded.display_name, rate_card = excluded.rate_card,
                    markup_percent = excluded.markup_percent, updated_at = excluded.updated_at",
                params![
                    subscription.id.to_string(),
                    subscription.offer_type.as_str(),
                    subscription.partner_id.as_ref().map(PartnerId::as_str),
                    subscription.customer_tenant_id.map(|t| t.to_string()),
                    subscription.display_name,
                    subscription.rate_card.as_str(),
                    Num(subscription.markup_percent.normalize()),
                    micros(now),
                ],
            )?;
            Ok(if existed {
                Written::Updated
            } else {
                Written::Created
            })
        })
        .await
    }

    /// One billing subscription.
    pub async fn subscription(&self, id: SubscriptionId) -> Result<Option<Subscription>> {
        self.read(move |conn| load_subscription(conn, id)).await
    }

    /// Billing subscriptions by id, optionally only one partner's.
    pub async fn subscriptions(&self, partner: Option<PartnerId>) -> Result<Vec<Subscription>> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
                 WHERE CAST(?1 AS TEXT) IS NULL OR partner_id = ?1 ORDER BY subscription_id"
            );
            conn.query_map(
                &sql,
                params![partner.as_ref().map(PartnerId::as_str)],
                subscription_from_row,
            )
        })
        .await
    }

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
            let (id, _) = require_registration(tx, &name)?;
            tx.execute(
                "UPDATE registrations SET deleted_at = ?1, updated_at = ?1
                 WHERE registration_id = ?2",
                params![micros(now), id],
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

    /// Every live registration with its timeline: the input of routing.
    pub async fn routing_table(&self) -> Result<RoutingTable> {
        self.read(|conn| load_routing(conn, None)).await
    }

    /// Adds a meter, or overrides a built-in one's name, unit or category.
    pub async fn put_meter(&self, meter: Meter) -> Result<Written> {
        self.write(move |tx, now| {
            let existed =
                builtin_meter(meter.id).is_some() || load_meter_override(tx, meter.id)?.is_some();
            tx.execute(
                "INSERT INTO meters (meter_id, name, unit, category, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (meter_id) DO UPDATE SET name = excluded.name, unit = excluded.unit,
                    category = excluded.category, updated_at = excluded.updated_at",
                params![
                    meter.id.to_string(),
                    meter.name,
                    meter.unit,
                    meter.category,
                    micros(now)
                ],
            )?;
            Ok(if existed {
                Written::Updated
            } else {
                Written::Created
            })
        })
        .await
    }

    /// One meter: the operator's version if there is one, else the built-in one.
    pub async fn meter(&self, id: MeterId) -> Result<Option<Meter>> {
        self.read(move |conn| {
            Ok(load_meter_override(conn, id)?.or_else(|| builtin_meter(id).cloned()))
        })
        .await
    }

    /// The whole meter catalog, keyed by id.
    pub async fn meters_by_id(&self) -> Result<std::collections::HashMap<MeterId, Meter>> {
        Ok(self
            .meters()
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect())
    }

    /// The whole meter catalog (built-in merged with the operator's), by id.
    pub async fn meters(&self) -> Result<Vec<Meter>> {
        self.read(|conn| {
            let overrides: Vec<Meter> = conn.query_map(
                "SELECT meter_id, name, unit, category FROM meters",
                params![],
                |row| {
                    Ok(Meter {
                        id: parse(&row.get::<String>(0)?)?,
                        name: row.get(1)?,
                        unit: row.get(2)?,
                        category: row.get(3)?,
                    })
                },
            )?;
            let mut all: std::collections::BTreeMap<MeterId, Meter> = builtin_catalog()
                .iter()
                .map(|m| (m.id, m.clone()))
                .collect();
            all.extend(overrides.into_iter().map(|m| (m.id, m)));
            Ok(all.into_values().collect())
        })
        .await
    }
}
