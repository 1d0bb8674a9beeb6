//! Compliance: what Strongroom promises (the measures catalogue, as data), how it knows whether
//! each promise holds (the evidence interface and one collector per measure), and the TOMs
//! report that prints both (Markdown, HTML and signed JSON; the GDPR Art. 32 headings or the
//! measure types of the SCC Annex II).
//!
//! Arrows: `compliance → core → crypto`. The server and the CLI call [`report::generate`]; a
//! capability added later brings its collector here and the report picks it up — no status is
//! ever written into the report by hand.

pub mod catalogue;
pub mod collectors;
pub mod config_history;
pub mod evidence;
pub mod incidents;
pub mod registers;
pub mod render;
pub mod report;
pub mod ropa;
pub mod subject_rights;
pub mod subprocessors;
pub mod summary;
pub mod trainings;
pub mod versions;
