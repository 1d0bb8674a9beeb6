//! The store conformance suite against the embedded SQLite store.

use std::sync::Arc;

use strongroom_core::Store;
use strongroom_store_sqlite::{SqliteOptions, SqliteStore};

async fn sqlite() -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("test.db"), SqliteOptions::default()).unwrap();
    Some((Arc::new(store), dir))
}

strongroom_testkit::store_conformance!(sqlite);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writer_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let options = SqliteOptions {
        faults: strongroom_testkit::conformance::panic_once(armed.clone()),
        ..SqliteOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("test.db"), options).unwrap();
    strongroom_testkit::conformance::a_dead_writer_is_replaced(Arc::new(store), armed).await;
}
