//! What invoices name besides ids, loaded once per answer: meters, customers and partners.

use std::collections::HashMap;

use stackbill_core::{Meter, MeterId, PartnerId, SubscriptionId};

/// What an invoice names besides ids: the catalog's meters, the subscriptions' display names
/// and the partners' names.
#[derive(Debug, Default)]
pub struct InvoiceNames {
    /// The meter catalog.
    pub meters: HashMap<MeterId, Meter>,
    /// Subscriptions' display names.
    pub subscriptions: HashMap<SubscriptionId, String>,
    /// Partners' names.
    pub partners: HashMap<PartnerId, String>,
}

impl InvoiceNames {
    /// The names as the store has them now.
    pub async fn load(store: &stackbill_store::Store) -> Result<Self, stackbill_store::StoreError> {
        Ok(Self {
            meters: store.meters_by_id().await?,
            subscriptions: (store.subscriptions(None).await?.into_iter())
                .map(|s| (s.id, s.display_name))
                .collect(),
            partners: (store.partners().await?.into_iter())
                .map(|p| (p.id, p.name))
                .collect(),
        })
    }
}
