//! The store conformance suite against PostgreSQL (a throwaway server, a database per test).

use std::sync::Arc;

use strongroom_core::Store;
use strongroom_store_postgres::{PgOptions, PgStore};

async fn postgres() -> Option<(Arc<dyn Store>, ())> {
    let url = strongroom_testkit::postgres::fresh_database().await?;
    let store = PgStore::open(&url, PgOptions::default()).await.unwrap();
    Some((Arc::new(store), ()))
}

strongroom_testkit::store_conformance!(postgres);
