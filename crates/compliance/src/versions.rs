//! The version report (OR-09): the binary's version and build, the dependencies it was built
//! with (the workspace's `Cargo.lock`, embedded at build time), and — given a copy of the
//! RustSec advisory database (`git clone https://github.com/rustsec/advisory-db`) — the
//! advisories that affect those versions.
//!
//! An advisory affects a dependency when it names the package, is not withdrawn, and the
//! version matches none of its `patched` and `unaffected` requirements (what `cargo audit`
//! does). Informational advisories (unmaintained, unsound, notice) are listed apart.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The lock file this binary was built from.
const LOCKFILE: &str = include_str!("../../../Cargo.lock");

/// A dependency: a package from a registry or a git repository (workspace members are not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub name: String,
    pub version: String,
}

/// An advisory that concerns a dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affecting {
    pub id: String,
    pub package: String,
    /// The version in use.
    pub version: String,
    pub title: String,
    /// `vulnerability`, or the informational kind (`unmaintained`, `unsound`, `notice`).
    pub kind: String,
    pub date: String,
    /// The versions that fix it (empty: none yet).
    pub patched: Vec<String>,
    pub url: Option<String>,
}

/// What a scan of an advisory database found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// Advisories read (withdrawn ones included).
    pub read: usize,
    /// The date of the newest advisory: how recent the copy is.
    pub newest: Option<String>,
    /// Files that could not be read as advisories (their paths within the database).
    pub unreadable: Vec<String>,
    pub affecting: Vec<Affecting>,
}

impl Scan {
    pub fn vulnerabilities(&self) -> impl Iterator<Item = &Affecting> {
        self.affecting.iter().filter(|a| a.kind == "vulnerability")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReport {
    pub version: String,
    /// `release` or `debug`, and the platform (`linux-x86_64`).
    pub build: String,
    /// SHA-256 of the embedded `Cargo.lock`: names the exact dependency set.
    pub lockfile_sha256: String,
    pub dependencies: Vec<Dependency>,
    /// `None` when no advisory database was given.
    pub advisories: Option<Scan>,
}

/// The dependencies of the embedded lock file, by name then version.
pub fn dependencies() -> Vec<Dependency> {
    parse_lockfile(LOCKFILE)
}

fn parse_lockfile(text: &str) -> Vec<Dependency> {
    #[derive(Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<Package>,
    }
    #[derive(Deserialize)]
    struct Package {
        name: String,
        version: String,
        source: Option<String>,
    }
    let Ok(lock) = toml::from_str::<Lock>(text) else {
        return Vec::new();
    };
    let mut out: Vec<Dependency> = lock
        .package
        .into_iter()
        .filter(|p| p.source.is_some())
        .map(|p| Dependency {
            name: p.name,
            version: p.version,
        })
        .collect();
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

/// The report, scanning `advisory_db` when given.
pub fn report(version: &str, advisory_db: Option<&Path>) -> Result<VersionReport, String> {
    let dependencies = dependencies();
    let advisories = match advisory_db {
        Some(dir) => Some(scan(dir, &dependencies)?),
        None => None,
    };
    Ok(VersionReport {
        version: version.to_owned(),
        build: format!(
            "{} {}-{}",
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
        lockfile_sha256: strongroom_crypto::hex(&strongroom_crypto::sha256(LOCKFILE.as_bytes())),
        dependencies,
        advisories,
    })
}

/// One advisory file's front matter.
#[derive(Debug, Deserialize)]
struct AdvisoryFile {
    advisory: Advisory,
    #[serde(default)]
    versions: Versions,
}

#[derive(Debug, Deserialize)]
struct Advisory {
    id: String,
    package: String,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    informational: Option<String>,
    #[serde(default)]
    withdrawn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Versions {
    #[serde(default)]
    patched: Vec<String>,
    #[serde(default)]
    unaffected: Vec<String>,
}

/// An advisory parsed from the text of its file: the TOML front matter between ```` ```toml ````
/// and ```` ``` ````, and the title from the first `# ` heading after it.
fn parse_advisory(text: &str) -> Option<(AdvisoryFile, String)> {
    let rest = text.strip_prefix("```toml")?;
    let end = rest.find("\n```")?;
    let front: AdvisoryFile = toml::from_str(&rest[..end]).ok()?;
    let title = rest[end + 4..]
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or("")
        .trim()
        .to_owned();
    Some((front, title))
}

/// Whether `version` is affected by an advisory with these requirements: it matches none of
/// `patched` and `unaffected`. A requirement that does not parse counts as not matching (so an
/// unreadable fix never hides an advisory).
fn affected(version: &semver::Version, v: &Versions) -> bool {
    !v.patched
        .iter()
        .chain(&v.unaffected)
        .any(|r| semver::VersionReq::parse(r).is_ok_and(|req| req.matches(version)))
}

/// Reads every advisory under `dir/crates/*/` and lists those that affect `deps`.
pub fn scan(dir: &Path, deps: &[Dependency]) -> Result<Scan, String> {
    let crates = dir.join("crates");
    let packages = std::fs::read_dir(&crates).map_err(|e| {
        format!(
            "{} is not a RustSec advisory database (no readable `crates` directory: {e})",
            dir.display()
        )
    })?;
    let mut scan = Scan {
        read: 0,
        newest: None,
        unreadable: Vec::new(),
        affecting: Vec::new(),
    };
    let mut dirs: Vec<_> = packages.filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    for package in dirs.iter().filter(|p| p.is_dir()) {
        let Ok(files) = std::fs::read_dir(package) else {
            continue;
        };
        let mut files: Vec<_> = files.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for file in files
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == "md"))
        {
            let name = file.strip_prefix(dir).unwrap_or(file).display().to_string();
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let Some((adv, title)) = parse_advisory(&text) else {
                scan.unreadable.push(name);
                continue;
            };
            scan.read += 1;
            if let Some(d) = &adv.advisory.date {
                if scan.newest.as_ref().is_none_or(|n| d > n) {
                    scan.newest = Some(d.clone());
                }
            }
            if adv.advisory.withdrawn.is_some() {
                continue;
            }
            for dep in deps.iter().filter(|d| d.name == adv.advisory.package) {
                let Ok(version) = semver::Version::parse(&dep.version) else {
                    continue;
                };
                if affected(&version, &adv.versions) {
                    scan.affecting.push(Affecting {
                        id: adv.advisory.id.clone(),
                        package: dep.name.clone(),
                        version: dep.version.clone(),
                        title: title.clone(),
                        kind: adv
                            .advisory
                            .informational
                            .clone()
                            .unwrap_or_else(|| "vulnerability".into()),
                        date: adv.advisory.date.clone().unwrap_or_default(),
                        patched: adv.versions.patched.clone(),
                        url: adv.advisory.url.clone(),
                    });
                }
            }
        }
    }
    Ok(scan)
}

/// The report as Markdown.
pub fn markdown(r: &VersionReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "# Version report\n");
    let _ = writeln!(out, "- Strongroom {} ({})", r.version, r.build);
    let _ = writeln!(
        out,
        "- Dependencies: {} (Cargo.lock SHA-256 {})",
        r.dependencies.len(),
        r.lockfile_sha256
    );
    match &r.advisories {
        None => {
            let _ = writeln!(
                out,
                "- Advisories: not checked (give a copy of the RustSec advisory database)"
            );
        }
        Some(s) => {
            let _ = writeln!(
                out,
                "- Advisories: {} read, newest {}; {} vulnerabilities and {} informational affect this build",
                s.read,
                s.newest.as_deref().unwrap_or("none"),
                s.vulnerabilities().count(),
                s.affecting.len() - s.vulnerabilities().count()
            );
            if !s.unreadable.is_empty() {
                let _ = writeln!(out, "- Unreadable advisory files: {}", s.unreadable.len());
            }
            if !s.affecting.is_empty() {
                let _ = writeln!(
                    out,
                    "\n| advisory | package | version | kind | patched | title |\n|---|---|---|---|---|---|"
                );
                for a in &s.affecting {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} |",
                        a.id,
                        a.package,
                        a.version,
                        a.kind,
                        if a.patched.is_empty() {
                            "none yet".to_owned()
                        } else {
                            a.patched.join(", ")
                        },
                        a.title.replace('|', "\\|")
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "\n## Dependencies\n\n| package | version |\n|---|---|");
    for d in &r.dependencies {
        let _ = writeln!(out, "| {} | {} |", d.name, d.version);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn advisory(id: &str, package: &str, extra: &str, versions: &str) -> String {
        format!(
            "```toml\n[advisory]\nid = \"{id}\"\npackage = \"{package}\"\ndate = \"2026-11-20\"\n\
             url = \"https://example.org/{id}\"\n{extra}\n[versions]\n{versions}\n```\n\n\
             # A flaw in {package}\n\nText.\n"
        )
    }

    fn db(files: &[(&str, &str, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (package, id, text) in files {
            let p = dir.path().join("crates").join(package);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join(format!("{id}.md")), text).unwrap();
        }
        dir
    }

    #[test]
    fn the_lock_file_is_embedded() {
        let deps = dependencies();
        assert!(deps.len() > 100, "{}", deps.len());
        assert!(deps.iter().any(|d| d.name == "tokio"));
        assert!(
            !deps.iter().any(|d| d.name.starts_with("strongroom")),
            "workspace members are not dependencies"
        );
    }

    #[test]
    fn advisories_match_the_versions_in_use() {
        let deps = vec![
            Dependency {
                name: "tokio".into(),
                version: "1.54.1".into(),
            },
            Dependency {
                name: "old".into(),
                version: "0.3.2".into(),
            },
        ];
        let d = db(&[
            // Fixed in a version later than ours: affects.
            (
                "tokio",
                "RUSTSEC-2026-0001",
                advisory(
                    "RUSTSEC-2026-0001",
                    "tokio",
                    "",
                    "patched = [\">= 1.60.0\"]",
                ),
            ),
            // Fixed before ours: does not.
            (
                "tokio",
                "RUSTSEC-2026-0002",
                advisory(
                    "RUSTSEC-2026-0002",
                    "tokio",
                    "",
                    "patched = [\">= 1.20.0\"]",
                ),
            ),
            // Our line is unaffected.
            (
                "tokio",
                "RUSTSEC-2026-0003",
                advisory(
                    "RUSTSEC-2026-0003",
                    "tokio",
                    "",
                    "patched = [\">= 2.0.0\"]\nunaffected = [\">= 1.50.0, < 2.0.0\"]",
                ),
            ),
            // Withdrawn: never listed.
            (
                "tokio",
                "RUSTSEC-2026-0004",
                advisory(
                    "RUSTSEC-2026-0004",
                    "tokio",
                    "withdrawn = \"2026-11-21\"",
                    "patched = []",
                ),
            ),
            // No fix and informational.
            (
                "old",
                "RUSTSEC-2026-0005",
                advisory(
                    "RUSTSEC-2026-0005",
                    "old",
                    "informational = \"unmaintained\"",
                    "patched = []",
                ),
            ),
            // A package we do not use.
            (
                "other",
                "RUSTSEC-2026-0006",
                advisory("RUSTSEC-2026-0006", "other", "", "patched = []"),
            ),
            // Not an advisory.
            ("tokio", "RUSTSEC-2026-0007", "# just markdown\n".into()),
        ]);
        let s = scan(d.path(), &deps).unwrap();
        let mut ids: Vec<&str> = s.affecting.iter().map(|a| a.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["RUSTSEC-2026-0001", "RUSTSEC-2026-0005"]);
        assert_eq!(s.affecting.len(), 2, "{:?}", s.affecting);
        assert_eq!(s.vulnerabilities().count(), 1);
        assert_eq!(s.read, 6);
        assert_eq!(s.unreadable.len(), 1);
        assert_eq!(s.newest.as_deref(), Some("2026-11-20"));
        let flaw = s.vulnerabilities().next().unwrap();
        assert_eq!(
            (flaw.id.as_str(), flaw.title.as_str()),
            ("RUSTSEC-2026-0001", "A flaw in tokio")
        );
        assert!(scan(Path::new("/nonexistent/advisory-db"), &deps).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn advisory_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), toml_prefix in any::<bool>()) {
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if toml_prefix {
                text = format!("```toml\n[advisory]\n{text}\n```\n");
            }
            let _ = parse_advisory(&text);
            let _ = parse_lockfile(&text);
        }
    }
}
