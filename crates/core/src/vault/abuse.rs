//! Refused anonymous requests (unknown bearer tokens, throttled sign-ins), counted per client
//! and minute and recorded as one audit entry per client and minute instead of one each: a
//! scanner can neither grow the platform log without bound nor take the writer's group-commit
//! capacity from real work, and the log still shows who tried, when and how often.
//!
//! A client is named in the log by a pseudonym (a keyed hash of its address or IPv6 /64 under
//! a key derived from the root key): the same client gets the same name in every entry, and
//! the address itself — personal data — is never written.

use std::collections::HashMap;
use std::sync::Mutex;

use strongroom_crypto::{hmac_sha256, Key32};

use crate::audit::AuditEvent;
use crate::error::{Code, Error};
use crate::ids::RequestId;
use crate::store::UnitOfWork;

use super::Vault;

/// Length of one counting window.
pub const WINDOW_MS: i64 = 60_000;
/// Clients counted one by one per window; further ones are counted together as `client:other`.
const MAX_CLIENTS: usize = 10_000;

/// What was refused: the audit action and error code the entries carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Refusal {
    /// A bearer token that is missing, malformed or unknown.
    UnknownToken,
    /// A bearer client past its budget of failures.
    TokenThrottled,
    /// A sign-in past the client's budget.
    LoginThrottled,
}

impl Refusal {
    fn action(self) -> &'static str {
        match self {
            Refusal::UnknownToken | Refusal::TokenThrottled => "auth.api_key",
            Refusal::LoginThrottled => "auth.login",
        }
    }
    fn code(self) -> Code {
        match self {
            Refusal::UnknownToken => Code::Unauthenticated,
            Refusal::TokenThrottled | Refusal::LoginThrottled => Code::RateLimited,
        }
    }
}

/// A window's start and its counts per client pseudonym and kind.
type Closed = (i64, HashMap<(String, Refusal), u64>);

#[derive(Default)]
struct Window {
    start: i64,
    counts: HashMap<(String, Refusal), u64>,
}

pub(crate) struct Refusals {
    key: Key32,
    window: Mutex<Window>,
}

impl Refusals {
    pub(crate) fn new(key: Key32) -> Self {
        Self {
            key,
            window: Mutex::new(Window::default()),
        }
    }

    fn pseudonym(&self, client: &str) -> String {
        format!(
            "client:{}",
            strongroom_crypto::hex(&hmac_sha256(&self.key, client.as_bytes())[..8])
        )
    }

    /// Counts one refusal; returns the closed window's counts when `now` starts a new one.
    fn count(&self, client: &str, what: Refusal, now: i64) -> Option<Closed> {
        let name = self.pseudonym(client);
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let closed = Self::roll(&mut w, now);
        let name = if w.counts.len() >= MAX_CLIENTS && !w.counts.contains_key(&(name.clone(), what))
        {
            "client:other".to_owned()
        } else {
            name
        };
        *w.counts.entry((name, what)).or_insert(0) += 1;
        closed
    }

    fn roll(w: &mut Window, now: i64) -> Option<Closed> {
        let start = now - now.rem_euclid(WINDOW_MS);
        if start == w.start {
            return None;
        }
        let closed = (w.start, std::mem::take(&mut w.counts));
        w.start = start;
        (!closed.1.is_empty()).then_some(closed)
    }

    fn take_closed(&self, now: i64) -> Option<Closed> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        Self::roll(&mut w, now)
    }

    fn take_all(&self) -> Option<Closed> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let all = (w.start, std::mem::take(&mut w.counts));
        (!all.1.is_empty()).then_some(all)
    }
}

impl Vault {
    /// Counts a refused anonymous request from `client` (an address or IPv6 /64, as the rate
    /// limiter keys it). Written to the audit log once its minute has passed.
    pub async fn note_refusal(&self, client: &str, what: Refusal) {
        if let Some(closed) = self.refusals.count(client, what, self.now()) {
            self.write_refusals(closed).await;
        }
    }

    /// Writes the counts of a minute that has passed (called every second by the server), or
    /// with `all` every count so far (at shutdown).
    pub async fn flush_refusals(&self, all: bool) {
        let closed = if all {
            self.refusals.take_all()
        } else {
            self.refusals.take_closed(self.now())
        };
        if let Some(closed) = closed {
            self.write_refusals(closed).await;
        }
    }

    async fn write_refusals(&self, (start, counts): Closed) {
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort();
        let request_id = RequestId::generate(self.rng.as_ref());
        let now = self.now();
        let audit = counts
            .into_iter()
            .map(|((client, what), n)| {
                let mut ev = AuditEvent::new(
                    None,
                    now,
                    request_id.clone(),
                    "anonymous".into(),
                    what.action(),
                );
                ev.fail(&Error::new(what.code(), ""));
                ev.objects = vec![
                    client,
                    format!("count:{n}"),
                    format!("window:{start}-{}", start + WINDOW_MS),
                ];
                ev
            })
            .collect();
        if let Err(e) = self.store.commit(UnitOfWork { ops: vec![], audit }).await {
            tracing::error!(error = %e, "could not record the counts of refused requests");
        }
    }
}

impl Refusals {
    #[cfg(test)]
    fn counted(&self) -> u64 {
        let w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.counts.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_roll_per_minute_and_clients_stay_bounded() {
        let r = Refusals::new(Key32::from_bytes([7; 32]));
        assert!(r.count("10.0.0.1", Refusal::UnknownToken, 60_000).is_none());
        assert!(r
            .count("10.0.0.1", Refusal::UnknownToken, 119_999)
            .is_none());
        let (start, closed) = r
            .count("10.0.0.2", Refusal::UnknownToken, 120_000)
            .expect("a new minute closes the last");
        assert_eq!(start, 60_000);
        assert_eq!(closed.values().sum::<u64>(), 2);
        assert_eq!(closed.len(), 1, "one client");
        let name = closed.keys().next().unwrap().0.clone();
        assert!(name.starts_with("client:") && !name.contains("10.0.0.1"));
        for i in 0..(MAX_CLIENTS + 50) {
            r.count(&format!("c{i}"), Refusal::UnknownToken, 120_001);
        }
        let w = r.window.lock().unwrap();
        assert!(w.counts.len() <= MAX_CLIENTS + 1);
        assert!(w
            .counts
            .contains_key(&("client:other".to_owned(), Refusal::UnknownToken)));
        drop(w);
        assert_eq!(r.counted(), MAX_CLIENTS as u64 + 51);
    }
}
