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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_writer_is_replaced() {
    let Some(url) = strongroom_testkit::postgres::fresh_database().await else {
        return;
    };
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let options = PgOptions {
        faults: strongroom_testkit::conformance::panic_once(armed.clone()),
        ..PgOptions::default()
    };
    let store = PgStore::open(&url, options).await.unwrap();
    strongroom_testkit::conformance::a_dead_writer_is_replaced(Arc::new(store), armed).await;
}
