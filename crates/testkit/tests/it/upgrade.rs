//! A data directory written by the build before the audit-log rework opens with this one: the
//! schema migrates (generated filter columns, subject index, stored nodes), the tenant without a
//! log gets its genesis entry, legacy checkpoints keep verifying, and new C2SP checkpoints chain
//! onto them.

use std::path::Path;

use strongroom_core::audit::{AuditEvent, LOG_GENESIS, PLATFORM_LOG};
use strongroom_core::checkpoint::{FORMAT_C2SP, FORMAT_LEGACY};
use strongroom_core::store::{AuditQuery, UnitOfWork};
use strongroom_core::{OsRng, RequestId};
use strongroom_server::audit_tools;
use strongroom_testkit::TestVault;

#[tokio::test]
async fn a_schema_4_data_directory_upgrades_and_keeps_verifying() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v4-data");
    let mut v = TestVault::start_on_copy(&fixture, Default::default()).await;
    let vault = v.running_vault();
    let store = vault.store().clone();
    let key = vault.public_key().unwrap();
    let before = audit_tools::verify_store(store.as_ref(), &key, None)
        .await
        .expect("the upgraded log verifies");
    let tenants = store.find_tenant_ids().await.unwrap();
    assert_eq!(tenants.len(), 2);
    for t in &tenants {
        let first = store
            .find_audit_entries(
                t.as_str(),
                &AuditQuery {
                    limit: 1,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(first.len(), 1, "tenant {t} has a log");
    }
    let legacy = store.find_checkpoints(PLATFORM_LOG).await.unwrap();
    assert!(!legacy.is_empty() && legacy.iter().all(|c| c.format == FORMAT_LEGACY));
    // The quiet tenant's log was opened by the migration.
    let opened = before
        .logs
        .iter()
        .filter(|l| l.log != PLATFORM_LOG && l.entries == 1)
        .count();
    assert_eq!(opened, 1, "{:?}", before.logs);
    let genesis = store
        .find_audit_entries(
            tenants
                .iter()
                .find(|t| {
                    before
                        .logs
                        .iter()
                        .any(|l| l.log == t.as_str() && l.entries == 1)
                })
                .unwrap()
                .as_str(),
            &AuditQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(genesis[0].action, LOG_GENESIS);

    // New entries get a C2SP checkpoint that links to the legacy one before it.
    store
        .commit(UnitOfWork {
            ops: vec![],
            audit: vec![AuditEvent::new(
                None,
                1,
                RequestId::generate(&OsRng),
                "key:test".into(),
                "test.after_upgrade",
            )],
        })
        .await
        .unwrap();
    let new = vault.checkpoint(PLATFORM_LOG).await.unwrap().unwrap();
    assert_eq!(new.format, FORMAT_C2SP);
    assert_eq!(new.prev, legacy.last().unwrap().hash());
    v.stop().await;
    let store = strongroom_store_sqlite::SqliteStore::open(
        &v.data_path().join("strongroom.db"),
        Default::default(),
    )
    .unwrap();
    let after = audit_tools::verify_store(&store, &key, None).await.unwrap();
    let platform = after.logs.iter().find(|l| l.log == PLATFORM_LOG).unwrap();
    assert_eq!(platform.checkpoints as usize, legacy.len() + 1);
    assert_eq!(platform.not_yet_checkpointed(), 0);
}
