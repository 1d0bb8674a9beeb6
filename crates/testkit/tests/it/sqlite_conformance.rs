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
