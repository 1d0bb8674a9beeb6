//! Argon2id off the async runtime: hashing runs on Tokio's blocking pool behind a semaphore
//! sized to the machine, so a login flood queues instead of starving request handling.

use std::sync::Arc;

use strongroom_core::vault::PasswordHasher;
use strongroom_crypto::password::{hash_password, verify_password, Cost};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

pub struct OffloadHasher {
    cost: Cost,
    permits: Arc<Semaphore>,
}

impl OffloadHasher {
    pub fn new(cost: Cost) -> Self {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            cost,
            permits: Arc::new(Semaphore::new(n)),
        }
    }
}

#[async_trait::async_trait]
impl PasswordHasher for OffloadHasher {
    async fn hash(&self, password: Zeroizing<Vec<u8>>, salt: [u8; 16]) -> Option<String> {
        let _permit = self.permits.acquire().await.ok()?;
        let cost = self.cost;
        tokio::task::spawn_blocking(move || hash_password(&password, &salt, cost))
            .await
            .ok()
            .flatten()
    }

    async fn verify(&self, password: Zeroizing<Vec<u8>>, phc: String) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        tokio::task::spawn_blocking(move || verify_password(&password, &phc))
            .await
            .unwrap_or(false)
    }
}
