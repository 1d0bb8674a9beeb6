//! The measures catalogue: the 43 measures of `MEASURES.md` with stable ids, kept as data in
//! `catalogue.json` (versioned with the code), and the measure types of the SCC Annex II.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The Art. 32(1) heading a measure falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Heading {
    Confidentiality,
    Integrity,
    Availability,
    Testing,
}

impl Heading {
    pub const ALL: [Heading; 4] = [
        Heading::Confidentiality,
        Heading::Integrity,
        Heading::Availability,
        Heading::Testing,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Heading::Confidentiality => "Confidentiality (Art. 32(1)(b))",
            Heading::Integrity => "Integrity (Art. 32(1)(b))",
            Heading::Availability => {
                "Availability and resilience, and timely restore (Art. 32(1)(b), (c))"
            }
            Heading::Testing => "Regular testing, assessment and evaluation (Art. 32(1)(d))",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Technical,
    Organisational,
}

/// One measure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measure {
    pub id: String,
    pub title: String,
    pub heading: Heading,
    pub kind: Kind,
    /// What must hold, in our words.
    pub statement: String,
    /// ISO/IEC 27001:2022 Annex A controls the measure serves.
    pub iso27001: Vec<String>,
    /// The SCC Annex II measure types it belongs to.
    pub scc: Vec<String>,
    /// The name of the collector that judges it.
    pub collector: String,
    /// Evidence older than this is `stale`.
    pub freshness_days: u32,
}

/// One measure type of the SCC Annex II (Commission Implementing Decision (EU) 2021/914).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SccType {
    pub id: String,
    pub title: String,
}

/// An SCC type no measure belongs to, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unmapped {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub version: u32,
    pub scc_types: Vec<SccType>,
    pub measures: Vec<Measure>,
    pub unmapped_scc_types: Vec<Unmapped>,
}

const SOURCE: &str = include_str!("../catalogue.json");

impl Catalogue {
    /// The catalogue built into this binary (checked by the tests below).
    pub fn get() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| {
            // The file is part of the build and its tests parse it: it cannot fail here.
            serde_json::from_str(SOURCE).unwrap_or_else(|_| Catalogue {
                version: 0,
                scc_types: vec![],
                measures: vec![],
                unmapped_scc_types: vec![],
            })
        })
    }

    pub fn measure(&self, id: &str) -> Option<&Measure> {
        self.measures.iter().find(|m| m.id == id)
    }

    pub fn scc_type(&self, id: &str) -> Option<&SccType> {
        self.scc_types.iter().find(|t| t.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of `MEASURES.md` (shared/), in its order.
    const IDS: [&str; 43] = [
        "AC-01", "AC-02", "AC-03", "AC-04", "AC-05", "AC-06", "AC-07", "AU-01", "AU-02", "AU-03",
        "AU-04", "AU-05", "AU-06", "AU-07", "SE-01", "SE-02", "SE-03", "EN-01", "EN-02", "EN-03",
        "PS-01", "PS-02", "IN-01", "IN-02", "IN-03", "IN-04", "TR-01", "TR-02", "AV-01", "AV-02",
        "AV-03", "AV-04", "AV-05", "AV-06", "OR-01", "OR-02", "OR-03", "OR-04", "OR-05", "OR-06",
        "OR-07", "OR-08", "OR-09",
    ];

    #[test]
    fn the_catalogue_holds_every_measure_once() {
        let c: Catalogue = serde_json::from_str(SOURCE).expect("catalogue.json parses");
        let ids: Vec<&str> = c.measures.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, IDS);
        for m in &c.measures {
            assert!(!m.title.is_empty() && !m.statement.is_empty(), "{}", m.id);
            assert!(
                !m.iso27001.is_empty(),
                "{} maps to no ISO 27001 control",
                m.id
            );
            assert!(!m.scc.is_empty(), "{} belongs to no SCC type", m.id);
            for t in &m.scc {
                assert!(c.scc_type(t).is_some(), "{}: unknown SCC type {t}", m.id);
            }
            assert!(m.freshness_days > 0, "{}", m.id);
        }
    }

    #[test]
    fn every_scc_type_has_a_measure_or_says_why_not() {
        let c = Catalogue::get();
        assert_eq!(c.scc_types.len(), 17);
        for t in &c.scc_types {
            let used = c.measures.iter().any(|m| m.scc.contains(&t.id));
            let explained = c.unmapped_scc_types.iter().any(|u| u.id == t.id);
            assert!(
                used != explained,
                "{}: used {used}, explained {explained}",
                t.id
            );
        }
    }
}
