//! The directory: partners, billing subscriptions and meters (this file), registrations
//! with their tenant mappings (`registry.rs`), and the row loaders both use (`load.rs`).
//! Registry writes follow one pattern: load the facts in the write transaction, ask the
//! core's rule (`stackbill_core::rules`), then write what it decided.

mod load;
mod registry;

use jiff::Timestamp;
use stackbill_core::meters::{builtin_catalog, builtin_meter};
use stackbill_core::{
    Meter, MeterId, Partner, PartnerId, Period, RegistrationName, Subscription, SubscriptionId,
    TenantId,
};

use crate::db::{Num, micros, params, parse};
use crate::error::{Result, StoreError};
use crate::store::Store;
use load::{SUBSCRIPTION_COLUMNS, load_meter_override, subscription_from_row};
pub(crate) use load::{
    load_registration, load_registrations_ever, load_routing, load_subscription, load_subscriptions,
};

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

impl Written {
    /// `Updated` when the object existed before the write, else `Created`.
    pub(crate) fn from_existed(existed: bool) -> Self {
        if existed {
            Self::Updated
        } else {
            Self::Created
        }
    }
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
            Ok(Written::from_existed(existed))
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

    /// Creates or replaces a billing subscription; a change of its rate card or markup
    /// applies from the current period (see [`Store::put_subscription_from`]).
    pub async fn put_subscription(&self, subscription: Subscription) -> Result<Written> {
        self.put_subscription_from(subscription, None).await
    }

    /// Creates or replaces a billing subscription. Its pricing (rate card and markup) is
    /// effective-dated (SPEC §5): a new subscription's applies to every period, a change
    /// from `pricing_from` on (default: the current period); final invoices never change,
    /// and re-pricing a final period shows as a `Repricing` adjustment.
    pub async fn put_subscription_from(
        &self,
        subscription: Subscription,
        pricing_from: Option<Period>,
    ) -> Result<Written> {
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
            let before = load_subscription(tx, subscription.id)?;
            let existed = before.is_some();
            let from = match &before {
                None => pricing_from,
                Some(old)
                    if old.rate_card != subscription.rate_card
                        || old.markup_percent != subscription.markup_percent =>
                {
                    Some(pricing_from.unwrap_or_else(|| Period::containing(now)))
                }
                // The pricing is unchanged: no new version.
                Some(_) => None,
            };
            let new_version = before.is_none() || from.is_some();
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
            if new_version {
                tx.execute(
                    "INSERT INTO subscription_pricing (subscription_id, from_period, rate_card,
                        markup_percent, recorded_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        subscription.id.to_string(),
                        from.map(|p| p.to_string()).unwrap_or_default(),
                        subscription.rate_card.as_str(),
                        Num(subscription.markup_percent.normalize()),
                        micros(now),
                    ],
                )?;
            }
            Ok(Written::from_existed(existed))
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
            Ok(Written::from_existed(existed))
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
