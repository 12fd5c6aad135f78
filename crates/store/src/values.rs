//! Interning of the values usage rows repeat (stack, tenant, stack subscription, meter,
//! instance data): each is stored once in `usage_values` and referred to by a small integer.
//! [`Values`] resolves values to ids inside a write transaction (through the committed
//! [`ValueCache`]); [`Refs`] turns the references of stored rows back into typed values.

use rustc_hash::FxHashMap as HashMap;

use stackbill_core::period::hour_start;
use stackbill_core::routing::RoutingTable;
use stackbill_core::{CloudId, MeterId, SubscriptionId, TenantId};

use crate::db::{Conn, params, parse};
use crate::error::{Result, StoreError};

/// The kinds of repeated values stored once in `usage_values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ValueKind {
    Cloud = 1,
    Tenant = 2,
    Subscription = 3,
    Meter = 4,
    InstanceData = 5,
}

/// Value ids by kind, keyed by the typed value so that a hit costs no formatting.
#[derive(Debug, Default)]
pub(crate) struct ValueIds {
    clouds: HashMap<CloudId, i64>,
    tenants: HashMap<TenantId, i64>,
    subscriptions: HashMap<SubscriptionId, i64>,
    meters: HashMap<MeterId, i64>,
    instance_data: HashMap<String, i64>,
}

impl ValueIds {
    /// How many ids, of every kind.
    pub(crate) fn len(&self) -> usize {
        self.clouds.len()
            + self.tenants.len()
            + self.subscriptions.len()
            + self.meters.len()
            + self.instance_data.len()
    }

    fn extend(&mut self, other: Self) {
        self.clouds.extend(other.clouds);
        self.tenants.extend(other.tenants);
        self.subscriptions.extend(other.subscriptions);
        self.meters.extend(other.meters);
        self.instance_data.extend(other.instance_data);
    }
}

/// Committed `usage_values` ids, so repeated values cost no query. Ids are never reused
/// or removed, so a committed entry stays true; entries made by a transaction join only
/// after it commits.
#[derive(Debug, Default)]
pub(crate) struct ValueCache {
    ids: ValueIds,
}

/// Entries beyond which the cache starts afresh (bounded memory on huge catalogs).
const MAX_CACHED_VALUES: usize = 1 << 20;

impl ValueCache {
    /// Adds the ids a committed transaction made.
    pub(crate) fn merge(&mut self, pending: ValueIds) {
        if self.ids.len() + pending.len() > MAX_CACHED_VALUES {
            self.ids = ValueIds::default();
        }
        self.ids.extend(pending);
    }
}

fn value_id(conn: &Conn<'_>, kind: ValueKind, value: &str) -> Result<i64> {
    let found: Option<i64> = conn.query_opt(
        "SELECT value_id FROM usage_values WHERE kind = ?1 AND value = ?2",
        params![kind as i64, value],
        |row| row.get(0),
    )?;
    match found {
        Some(id) => Ok(id),
        None => conn.query_one(
            "INSERT INTO usage_values (kind, value) VALUES (?1, ?2) RETURNING value_id",
            params![kind as i64, value],
            |row| row.get(0),
        ),
    }
}

/// Resolves values to ids inside one transaction: the committed cache, then this
/// transaction's own new ids, then the table.
pub(crate) struct Values<'c> {
    pub(crate) cache: std::sync::MutexGuard<'c, ValueCache>,
    pub(crate) pending: ValueIds,
}

macro_rules! typed_lookup {
    ($name:ident, $field:ident, $ty:ty, $kind:expr) => {
        pub(crate) fn $name(&mut self, conn: &Conn<'_>, value: $ty) -> Result<i64> {
            if let Some(&id) = self
                .cache
                .ids
                .$field
                .get(&value)
                .or_else(|| self.pending.$field.get(&value))
            {
                return Ok(id);
            }
            let id = value_id(conn, $kind, &value.to_string())?;
            self.pending.$field.insert(value, id);
            Ok(id)
        }
    };
}

impl Values<'_> {
    typed_lookup!(cloud, clouds, CloudId, ValueKind::Cloud);
    typed_lookup!(tenant, tenants, TenantId, ValueKind::Tenant);
    typed_lookup!(
        subscription,
        subscriptions,
        SubscriptionId,
        ValueKind::Subscription
    );
    typed_lookup!(meter, meters, MeterId, ValueKind::Meter);

    pub(crate) fn instance_data(&mut self, conn: &Conn<'_>, value: &str) -> Result<i64> {
        if let Some(&id) = self
            .cache
            .ids
            .instance_data
            .get(value)
            .or_else(|| self.pending.instance_data.get(value))
        {
            return Ok(id);
        }
        let id = value_id(conn, ValueKind::InstanceData, value)?;
        self.pending.instance_data.insert(value.to_owned(), id);
        Ok(id)
    }
}

/// The typed values behind the references of usage rows.
pub(crate) struct Refs {
    clouds: HashMap<i64, CloudId>,
    tenants: HashMap<i64, TenantId>,
    meters: HashMap<i64, MeterId>,
}

impl Refs {
    pub(crate) fn load(conn: &Conn<'_>) -> Result<Self> {
        Ok(Self {
            clouds: values_of_kind(conn, ValueKind::Cloud)?,
            tenants: values_of_kind(conn, ValueKind::Tenant)?,
            meters: values_of_kind(conn, ValueKind::Meter)?,
        })
    }

    /// The stack behind a reference.
    pub(crate) fn cloud(&self, reference: i64) -> Result<CloudId> {
        resolve(&self.clouds, reference)
    }

    /// The tenant behind a reference.
    pub(crate) fn tenant(&self, reference: i64) -> Result<TenantId> {
        resolve(&self.tenants, reference)
    }

    /// The meter behind a reference.
    pub(crate) fn meter(&self, reference: i64) -> Result<MeterId> {
        resolve(&self.meters, reference)
    }

    /// The reference of a meter, if any row refers to it.
    pub(crate) fn meter_ref(&self, meter: MeterId) -> Option<i64> {
        self.meters
            .iter()
            .find(|(_, m)| **m == meter)
            .map(|(reference, _)| *reference)
    }

    /// Routes the usage of a (stack, tenant) reference pair in one hour.
    pub(crate) fn route(
        &self,
        routing: &RoutingTable,
        cloud_ref: i64,
        tenant_ref: i64,
        hour: i64,
    ) -> Result<Option<SubscriptionId>> {
        let start = hour_start(hour).map_err(StoreError::corrupt)?;
        Ok(routing.route(
            resolve(&self.clouds, cloud_ref)?,
            resolve(&self.tenants, tenant_ref)?,
            start,
        ))
    }
}

/// Every value of one kind, by reference.
pub(crate) fn values_of_kind<T>(conn: &Conn<'_>, kind: ValueKind) -> Result<HashMap<i64, T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let mut values = HashMap::default();
    conn.query_each(
        "SELECT value_id, value FROM usage_values WHERE kind = ?1",
        params![kind as i64],
        |row| {
            values.insert(row.get::<i64>(0)?, parse(&row.get::<String>(1)?)?);
            Ok(())
        },
    )?;
    Ok(values)
}

/// The value behind a reference.
pub(crate) fn resolve<T: Copy>(values: &HashMap<i64, T>, reference: i64) -> Result<T> {
    values
        .get(&reference)
        .copied()
        .ok_or_else(|| StoreError::corrupt(format!("unknown value reference {reference}")))
}
