//! Meters and the built-in Azure Stack Hub meter catalog, compiled into the binary.

use std::sync::OnceLock;

use crate::ids::MeterId;

/// A usage meter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meter {
    /// The key.
    pub id: MeterId,
    /// Display name.
    pub name: String,
    /// What one unit of quantity is (`GB*hours`, `VM hours`, ...).
    pub unit: String,
    /// The service it belongs to (`Compute`, `Storage`, ...).
    pub category: String,
}

const CATALOG_CSV: &str = include_str!("../data/azure-stack-meters.csv");

/// The Azure Stack Hub meter list (every meter Microsoft publishes for the product), sorted
/// by id.
pub fn builtin_catalog() -> &'static [Meter] {
    static CATALOG: OnceLock<Vec<Meter>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut reader = csv::Reader::from_reader(CATALOG_CSV.as_bytes());
        let mut meters: Vec<Meter> = reader
            .records()
            .map(|row| {
                // The catalog is a file of this crate, checked by a test: a bad row is a
                // build defect, not an input error.
                let row = row.expect("the built-in meter catalog is valid CSV");
                Meter {
                    id: row[0]
                        .parse()
                        .expect("the built-in meter catalog has valid ids"),
                    name: row[1].to_owned(),
                    unit: row[2].to_owned(),
                    category: row[3].to_owned(),
                }
            })
            .collect();
        meters.sort_by_key(|meter| meter.id);
        meters
    })
}

/// A built-in meter by id.
pub fn builtin_meter(id: MeterId) -> Option<&'static Meter> {
    let catalog = builtin_catalog();
    catalog
        .binary_search_by_key(&id, |meter| meter.id)
        .ok()
        .map(|index| &catalog[index])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_holds_every_published_meter_once() {
        let catalog = builtin_catalog();
        assert_eq!(catalog.len(), 84);
        assert!(
            catalog.windows(2).all(|w| w[0].id < w[1].id),
            "ids are unique"
        );
        let table = builtin_meter("B9FF3CD0-28AA-4762-84BB-FF8FBAEA6A90".parse().unwrap())
            .expect("TableTransactions is built in");
        assert_eq!(table.name, "TableTransactions");
        assert_eq!(table.unit, "Request count in 10,000s");
        assert_eq!(table.category, "Storage");
        let ip = builtin_meter("f271a8a388c44d93956a063e1d2fa80b".parse().unwrap()).unwrap();
        assert_eq!(ip.name, "Static IP Address Usage");
    }
}
