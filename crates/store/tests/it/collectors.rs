//! Collector state in the store: one node at a time holds a stack's lease, another takes it
//! once it expires; cursors only move forward; user subscriptions are never forgotten.

use std::time::Duration;

use stackbill_store::{CaSource, ClientCredential, CollectedHour, CollectorConfig, Subscriber};
use stackbill_test_support::TestStore;
use stackbill_test_support::fixtures::{self, CLOUD, customer, tenant};

async fn with_collector() -> TestStore {
    let db = TestStore::new();
    fixtures::csp(&db.store, &[]).await;
    fixtures::register(&db.store, "hub", CLOUD.parse().unwrap()).await;
    db.store
        .put_collector(CollectorConfig {
            registration: "hub".parse().unwrap(),
            admin_endpoint: "http://127.0.0.1:1".to_owned(),
            provider_subscription: customer(9),
            client_id: "app".to_owned(),
            directory: "adfs".to_owned(),
            credential: ClientCredential::SecretFile("/dev/null".to_owned()),
            ca: None,
            start: "2025-05-01T00:00:00Z".parse().unwrap(),
        })
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn one_holder_at_a_time_and_another_once_it_expires() {
    let db = with_collector().await;
    let hub = || "HUB".parse().unwrap();
    let ttl = Duration::from_secs(600);
    assert!(
        db.store
            .lease_collector(hub(), "a".into(), ttl)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .lease_collector(hub(), "b".into(), ttl)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .lease_collector(hub(), "a".into(), ttl)
            .await
            .unwrap(),
        "renewed"
    );
    db.clock.set("2025-06-15T12:11:00Z");
    assert!(
        db.store
            .lease_collector(hub(), "b".into(), ttl)
            .await
            .unwrap(),
        "a died"
    );
    assert!(
        !db.store
            .lease_collector(hub(), "a".into(), ttl)
            .await
            .unwrap()
    );
    db.store.release_collector(hub(), "b".into()).await.unwrap();
    assert!(
        db.store
            .lease_collector(hub(), "a".into(), ttl)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn cursors_only_move_forward_and_subscribers_are_remembered() {
    let db = with_collector().await;
    let hub = || "hub".parse().unwrap();
    let known = |n: u8| Subscriber {
        subscription_id: customer(n),
        tenant_id: tenant(n),
        state: "Enabled".to_owned(),
        display_name: format!("t{n}"),
    };
    db.store
        .remember_subscribers(hub(), vec![known(1), known(2)])
        .await
        .unwrap();
    let all = db
        .store
        .remember_subscribers(hub(), vec![known(2)])
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        2,
        "a subscription no longer listed is remembered"
    );
    for hour in [10, 12, 11] {
        let collected = CollectedHour {
            cursor: Some((customer(1), hour)),
            ..CollectedHour::default()
        };
        db.store.commit_collected(hub(), collected).await.unwrap();
    }
    let cursors = db.store.collector_cursors(hub()).await.unwrap();
    assert_eq!(cursors.get(&customer(1)), Some(&12));
    let state = db.store.collector(hub()).await.unwrap().unwrap();
    assert_eq!((state.subscribers, state.collected_through), (2, Some(12)));
    assert!(db.store.remove_collector(hub()).await.unwrap());
    assert!(db.store.collector(hub()).await.unwrap().is_none());
    assert!(db.store.collector_cursors(hub()).await.unwrap().is_empty());
}

#[tokio::test]
async fn every_kind_of_credential_and_ca_reads_back_as_written() {
    let db = with_collector().await;
    let Some(state) = db.store.collector("hub".parse().unwrap()).await.unwrap() else {
        panic!("the collector is stored")
    };
    for (credential, ca) in [
        (ClientCredential::SecretFile("/etc/secret".to_owned()), None),
        (
            ClientCredential::CertificateFile("/etc/cert.pem".to_owned()),
            Some(CaSource::File("/etc/ca.pem".to_owned())),
        ),
        (
            ClientCredential::SealedSecret("sb1:0011aabb:c2VhbGVk".to_owned()),
            Some(CaSource::Pem("-----BEGIN CERTIFICATE-----\n…".to_owned())),
        ),
        (
            ClientCredential::SealedCertificate("sb1:0011aabb:Y2VydA==".to_owned()),
            None,
        ),
    ] {
        let mut config = state.config.clone();
        config.credential = credential;
        config.ca = ca;
        let written = db.store.put_collector(config.clone()).await.unwrap();
        assert_eq!(written.config, config);
        let read = db.store.collector("hub".parse().unwrap()).await.unwrap();
        assert_eq!(read.map(|s| s.config), Some(config));
    }
}
