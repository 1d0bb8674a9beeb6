//! The evidence interface: for each measure, a collector reads live state and returns a
//! [`Finding`] — a status, the evidence items it rests on (value, source, time), how Strongroom
//! meets the measure, and what is missing. Collectors read heads, counters and small tables,
//! never a scan of the audit log.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use strongroom_core::ids::TenantId;
use strongroom_core::Vault;

/// How a measure stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The vault checked it and the evidence is fresh.
    Met,
    /// Partly: `missing` says what, with counts.
    Partial,
    /// Not met, or no such capability yet.
    Gap,
    /// Organisational: declared by a named owner, with a review date.
    Declared,
    /// Evidence or declaration older than its freshness limit or past its review date.
    Stale,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Met,
        Status::Partial,
        Status::Gap,
        Status::Declared,
        Status::Stale,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::Partial => "partial",
            Status::Gap => "gap",
            Status::Declared => "declared",
            Status::Stale => "stale",
        }
    }
}

/// One fact a status rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What was looked at ("admins with MFA").
    pub label: String,
    /// What was found ("3 of 3").
    pub value: String,
    /// Where it comes from ("users table", "settings of tenant acme", "this build").
    pub source: String,
    /// When it was true (ms since the epoch): now for live state, the time of the event otherwise.
    pub at: i64,
}

/// A collector's verdict on one measure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub status: Status,
    /// How Strongroom meets (or would meet) the measure, in a sentence or two.
    pub how: String,
    pub evidence: Vec<Evidence>,
    /// What is missing for `met`, plainly, with counts where there are any.
    pub missing: Vec<String>,
}

impl Finding {
    pub fn new(status: Status, how: impl Into<String>) -> Self {
        Self {
            status,
            how: how.into(),
            evidence: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// No such capability yet: a gap, with the reason.
    pub fn not_built(why: impl Into<String>) -> Self {
        let why = why.into();
        Self {
            status: Status::Gap,
            how: "Not provided by Strongroom yet.".into(),
            evidence: Vec::new(),
            missing: vec![why],
        }
    }

    pub fn with(mut self, label: &str, value: impl ToString, source: &str, at: i64) -> Self {
        self.evidence.push(Evidence {
            label: label.to_owned(),
            value: value.to_string(),
            source: source.to_owned(),
            at,
        });
        self
    }

    pub fn missing(mut self, what: impl Into<String>) -> Self {
        self.missing.push(what.into());
        self
    }

    /// `met` when nothing is missing, else `partial` (a gap stays a gap).
    pub fn settle(mut self) -> Self {
        if self.status == Status::Met && !self.missing.is_empty() {
            self.status = Status::Partial;
        }
        self
    }
}

/// Whose measures: the platform's (operators), or one tenant's (its DPA Annex II: the
/// platform's measures plus the evidence that concerns it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Platform,
    Tenant(TenantId),
}

impl Scope {
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Scope::Platform => None,
            Scope::Tenant(t) => Some(t),
        }
    }
}

/// Facts about the running installation that the store does not hold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Installation {
    /// `sqlite` or `postgresql`.
    pub store: String,
    /// TLS versions the listener accepts (`["1.2", "1.3"]`), or empty for plain HTTP behind a
    /// proxy; `None` when the report is made offline.
    pub tls: Option<Vec<String>>,
    /// TLS to the database (`verify-full`, `require`, `disable`), for PostgreSQL.
    pub database_tls: Option<String>,
    /// The binary's version.
    pub version: String,
    /// A copy of the RustSec advisory database to check the dependencies against (OR-09); not
    /// part of the report (which states what was found in it).
    #[serde(skip)]
    pub advisory_db: Option<std::path::PathBuf>,
}

/// What a collector reads from.
pub struct Context<'a> {
    pub vault: &'a Vault,
    pub scope: Scope,
    /// The vault's clock, once for the whole report.
    pub now: i64,
    pub installation: Installation,
}

/// Judges one or more measures.
#[async_trait]
pub trait Collector: Send + Sync {
    /// The name the catalogue's `collector` field uses.
    fn name(&self) -> &'static str;
    /// The finding for `measure` (the catalogue entry it judges).
    async fn collect(&self, ctx: &Context<'_>, measure: &crate::catalogue::Measure) -> Finding;
}
