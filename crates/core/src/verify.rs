//! Offline verification of one audit log: the hash chain, the Merkle root at every checkpoint,
//! the checkpoints' signatures and their own chain. It needs nothing but the entries as stored,
//! the checkpoints and the public key, and names the first entry or checkpoint that fails.

use std::fmt;

use strongroom_crypto::merkle::{leaf_hash, CompactRange};

use crate::audit::GENESIS;
use crate::checkpoint::CheckpointRow;

/// The fields of an entry that tie it to its place in the log.
#[derive(serde::Deserialize)]
struct Link<'a> {
    #[serde(borrow)]
    log: std::borrow::Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    prev: std::borrow::Cow<'a, str>,
}

impl<'a> Link<'a> {
    /// Reads the link of a body as the sealer writes it: canonical JSON starts with
    /// `{"log":"…","seq":N,"prev":"<64 hex>"`, so the three fields are read from that prefix
    /// without parsing the rest. This is safe for verification because the leaf hash covers
    /// every byte of the body and the chain and the signed roots cover every leaf: a change
    /// anywhere in the tail still fails. A body that does not start this way (escaped
    /// characters in the log name, or a hand-edited body) goes through the full JSON parser.
    fn read(body: &'a str) -> Option<Self> {
        if let Some(link) = Self::from_prefix(body) {
            return Some(link);
        }
        serde_json::from_str(body).ok()
    }

    fn from_prefix(body: &'a str) -> Option<Self> {
        let rest = body.strip_prefix("{\"log\":\"")?;
        let end = rest.find('"')?;
        let log = &rest[..end];
        if log.contains('\\') {
            return None;
        }
        let rest = rest[end..].strip_prefix("\",\"seq\":")?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || (digits > 1 && rest.starts_with('0')) {
            return None;
        }
        let seq = rest[..digits].parse().ok()?;
        let rest = rest[digits..].strip_prefix(",\"prev\":\"")?;
        let prev = rest.get(..64)?;
        rest[64..].starts_with('"').then_some(Self {
            log: log.into(),
            seq,
            prev: prev.into(),
        })
    }
}

/// Whether `s` is the lower-case hex of `bytes` (without building the hex string).
fn hex_is(s: &str, bytes: &[u8]) -> bool {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    s.len() == bytes.len() * 2
        && s.as_bytes().chunks_exact(2).zip(bytes).all(|(pair, b)| {
            pair[0] == DIGITS[usize::from(b >> 4)] && pair[1] == DIGITS[usize::from(b & 15)]
        })
}

/// What failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Entry(u64),
    Checkpoint(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub log: String,
    pub target: Target,
    pub reason: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.target {
            Target::Entry(seq) => write!(f, "log {}: entry {seq}: {}", self.log, self.reason),
            Target::Checkpoint(seq) => {
                write!(f, "log {}: checkpoint {seq}: {}", self.log, self.reason)
            }
        }
    }
}

/// The result of a log that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub log: String,
    pub entries: u64,
    /// Entries covered by a verified checkpoint; the rest are checked by the chain only.
    pub checkpointed: u64,
    pub checkpoints: u64,
    /// Checkpoints held by a witness that the log was checked against.
    pub witnessed: u64,
    /// Tenants whose creation the log records (the platform log): each must have a log.
    pub tenants_created: Vec<String>,
    /// Logs the platform log records as deleted at the end of their retention (offboarded
    /// tenants' closed logs): their absence is expected.
    pub logs_deleted: Vec<String>,
    /// Entries of refused requests (`outcome` `denied`), and account lockouts, in the log.
    pub denied: u64,
    pub lockouts: u64,
    /// Refusals for want of consent (`consent_required`) or after an objection
    /// (`subject_objected`).
    pub consent_refusals: u64,
}

impl Summary {
    pub fn not_yet_checkpointed(&self) -> u64 {
        self.entries - self.checkpointed
    }
}

/// An order-independent digest of a set of rows, keyed with a secret chosen by the verifier
/// for this run: the sum of truncated `SHA-256(key ‖ row)`. A store's derived table (subject
/// index, stored nodes) can be read in whatever order is cheap and compared with what the
/// bodies say it must hold, in constant memory. Without the key, nobody can craft rows whose
/// sum matches (the key is drawn after the data was written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetDigest {
    key: [u8; 32],
    sum: u128,
    count: u64,
}

impl SetDigest {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            sum: 0,
            count: 0,
        }
    }

    /// Adds one row, given as its parts (framed with their lengths).
    pub fn add(&mut self, parts: &[&[u8]]) {
        let mut framed: Vec<&[u8]> = Vec::with_capacity(parts.len() * 2 + 1);
        let lens: Vec<[u8; 8]> = parts
            .iter()
            .map(|p| (p.len() as u64).to_be_bytes())
            .collect();
        framed.push(&self.key);
        for (p, l) in parts.iter().zip(&lens) {
            framed.push(l);
            framed.push(p);
        }
        let h = strongroom_crypto::sha256_parts(&framed);
        let mut lane = [0u8; 16];
        lane.copy_from_slice(&h[..16]);
        self.sum = self.sum.wrapping_add(u128::from_be_bytes(lane));
        self.count += 1;
    }

    pub fn subject_row(&mut self, subject: &str, seq: u64) {
        self.add(&[subject.as_bytes(), &seq.to_be_bytes()]);
    }

    pub fn node_row(&mut self, level: u32, index: u64, hash: &[u8; 32]) {
        self.add(&[&level.to_be_bytes(), &index.to_be_bytes(), hash]);
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// What a store holds besides the entries, for [`LogVerifier::finish`].
#[derive(Debug, Clone)]
pub struct Stored {
    /// The head the writer recorded, if any.
    pub head: Option<crate::store::AuditHead>,
    /// The digest of the subject index rows the store holds for this log.
    pub subjects: SetDigest,
    /// The digest of the tree nodes the store holds for this log.
    pub nodes: SetDigest,
}

/// The subject and objects of an entry body, borrowed (only read for bodies that name objects).
#[derive(serde::Deserialize)]
struct Named<'a> {
    #[serde(borrow)]
    subject: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    objects: Vec<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    action: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    outcome: std::borrow::Cow<'a, str>,
}

/// Verifies one log, entry by entry, in sequence order.
pub struct LogVerifier {
    log: String,
    checkpoints: Vec<CheckpointRow>,
    next_checkpoint: usize,
    /// Witnessed checkpoints, by size.
    witnessed: Vec<CheckpointRow>,
    next_witnessed: usize,
    compact: CompactRange,
    prev: [u8; 32],
    checkpointed: u64,
    subjects: SetDigest,
    nodes: SetDigest,
    tenants_created: Vec<String>,
    logs_deleted: Vec<String>,
    denied: u64,
    lockouts: u64,
    consent_refusals: u64,
}

/// Canonical bodies write keys unescaped and quotes inside values escaped, so these byte
/// strings occur in a body only as that key with that value.
const DENIED: &str = "\"outcome\":\"denied\"";
const LOCKOUT: &str = "\"action\":\"auth.lockout\"";
const NO_CONSENT: &str = "\"code\":\"consent_required\"";
const OBJECTED: &str = "\"code\":\"subject_objected\"";

impl LogVerifier {
    /// Checks the checkpoints themselves (signatures, numbering, links, sizes) and the
    /// witnessed ones (signatures, and that the log still holds the same checkpoint under the
    /// same number), and prepares to read entries. `digest_key` must be fresh randomness.
    pub fn new(
        log: &str,
        mut checkpoints: Vec<CheckpointRow>,
        mut witnessed: Vec<CheckpointRow>,
        public_key: &[u8; 32],
        digest_key: [u8; 32],
    ) -> Result<Self, Failure> {
        checkpoints.sort_by_key(|c| c.seq);
        let fail = |seq, reason: String| Failure {
            log: log.to_owned(),
            target: Target::Checkpoint(seq),
            reason,
        };
        let mut prev_hash = GENESIS;
        let mut prev_size = 0;
        for (i, c) in checkpoints.iter().enumerate() {
            let expected = i as u64 + 1;
            if c.seq != expected {
                return Err(fail(
                    expected,
                    "missing: the checkpoints skip from one number to a later one".into(),
                ));
            }
            if c.log != log {
                return Err(fail(
                    c.seq,
                    format!("belongs to log {}, not this one", c.log),
                ));
            }
            if !c.verify_signature(public_key) {
                return Err(fail(
                    c.seq,
                    "signature does not verify with the public key (or its origin is not this log's)".into(),
                ));
            }
            if c.prev != prev_hash {
                return Err(fail(c.seq, "does not link to the previous checkpoint (one was removed, replaced or reordered)".into()));
            }
            if c.size < prev_size {
                return Err(fail(
                    c.seq,
                    "covers fewer entries than the checkpoint before it".into(),
                ));
            }
            prev_hash = c.hash();
            prev_size = c.size;
        }
        for w in &witnessed {
            if w.log != log || !w.verify_signature(public_key) {
                return Err(fail(
                    w.seq,
                    "the witness holds a checkpoint for this log that does not verify with the public key".into(),
                ));
            }
            match checkpoints.get((w.seq as usize).wrapping_sub(1)) {
                Some(c) if c.text() == w.text() => {}
                Some(_) => {
                    return Err(fail(
                        w.seq,
                        "differs from the checkpoint the witness holds under this number (the log was rolled back and re-signed)".into(),
                    ))
                }
                None => {
                    return Err(fail(
                        w.seq,
                        format!(
                            "missing: the witness holds checkpoint {} but the log has only {} (checkpoints removed or rolled back)",
                            w.seq,
                            checkpoints.len()
                        ),
                    ))
                }
            }
        }
        witnessed.sort_by_key(|w| w.size);
        Ok(Self {
            log: log.to_owned(),
            checkpoints,
            next_checkpoint: 0,
            witnessed,
            next_witnessed: 0,
            compact: CompactRange::default(),
            prev: GENESIS,
            checkpointed: 0,
            subjects: SetDigest::new(digest_key),
            nodes: SetDigest::new(digest_key),
            tenants_created: Vec::new(),
            logs_deleted: Vec::new(),
            denied: 0,
            lockouts: 0,
            consent_refusals: 0,
        })
    }

    /// The log being verified.
    pub fn log(&self) -> &str {
        &self.log
    }

    fn fail(&self, target: Target, reason: impl Into<String>) -> Failure {
        Failure {
            log: self.log.clone(),
            target,
            reason: reason.into(),
        }
    }

    /// Checks the next entry: `seq` and `body` as stored, and the stored hash if the store keeps one.
    pub fn push(
        &mut self,
        seq: u64,
        body: &str,
        stored_hash: Option<&[u8; 32]>,
    ) -> Result<(), Failure> {
        let expected = self.compact.size() + 1;
        if seq != expected {
            return Err(self.fail(
                Target::Entry(expected),
                if seq > expected {
                    "missing: the sequence jumps past it (deleted)"
                } else {
                    "out of order or duplicated"
                },
            ));
        }
        let leaf = leaf_hash(body.as_bytes());
        if stored_hash.is_some_and(|h| *h != leaf) {
            return Err(self.fail(
                Target::Entry(seq),
                "modified: its content does not match its recorded hash",
            ));
        }
        // The leaf hash covers every byte of the body; only the fields that place the entry
        // are read here (borrowed, no allocation).
        let entry = Link::read(body).ok_or_else(|| {
            self.fail(
                Target::Entry(seq),
                "modified: not a well-formed audit entry",
            )
        })?;
        if entry.seq != seq || entry.log != self.log {
            return Err(self.fail(
                Target::Entry(seq),
                "modified or moved: its log or sequence number differs from its place",
            ));
        }
        if !hex_is(&entry.prev, &self.prev) {
            let reason = if seq == 1 {
                "modified: the first entry must link to the genesis hash".to_owned()
            } else {
                format!(
                    "does not link to entry {}: entry {} was modified, removed or reordered, or this entry's link was",
                    seq - 1,
                    seq - 1
                )
            };
            return Err(self.fail(Target::Entry(seq), reason));
        }
        // Bodies that name objects (the last field) are read once more for the subjects they
        // name (the store's subject index must hold exactly those) and tenant creations.
        if !body.ends_with(",\"objects\":[]}") {
            let named: Named<'_> = serde_json::from_str(body).map_err(|_| {
                self.fail(
                    Target::Entry(seq),
                    "modified: not a well-formed audit entry",
                )
            })?;
            for s in crate::audit::named_subjects(
                named.subject.as_deref(),
                named.objects.iter().map(|o| o.as_ref()),
            ) {
                self.subjects.subject_row(s, seq);
            }
            if self.log == crate::audit::PLATFORM_LOG
                && named.action == "tenant.create"
                && named.outcome == "ok"
            {
                self.tenants_created
                    .extend(named.objects.iter().map(|o| o.to_string()));
            }
            if self.log == crate::audit::PLATFORM_LOG
                && named.action == "audit.log_deleted"
                && named.outcome == "ok"
            {
                self.logs_deleted.extend(
                    named
                        .objects
                        .iter()
                        .filter_map(|o| o.strip_prefix("log:").map(str::to_owned)),
                );
            }
        }
        // Figures for the TOMs report, counted as the log is read anyway.
        if body.contains(DENIED) {
            self.denied += 1;
            self.consent_refusals +=
                u64::from(body.contains(NO_CONSENT) || body.contains(OBJECTED));
        }
        self.lockouts += u64::from(body.contains(LOCKOUT));
        self.prev = leaf;
        for (level, index, h) in crate::store::append_stored(&mut self.compact, leaf) {
            self.nodes.node_row(level, index, &h);
        }
        let size = self.compact.size();
        while let Some(c) = self.checkpoints.get(self.next_checkpoint) {
            if c.size != size {
                break;
            }
            if c.root != self.compact.root() {
                return Err(self.fail(
                    Target::Checkpoint(c.seq),
                    format!("entries 1 to {} are not the ones this checkpoint signed (history rewritten)", c.size),
                ));
            }
            self.checkpointed = c.size;
            self.next_checkpoint += 1;
        }
        while let Some(w) = self.witnessed.get(self.next_witnessed) {
            if w.size != size {
                break;
            }
            if w.root != self.compact.root() {
                return Err(self.fail(
                    Target::Checkpoint(w.seq),
                    format!("entries 1 to {} are not the ones the witness saw signed (the log forks from its witnessed checkpoint)", w.size),
                ));
            }
            self.next_witnessed += 1;
        }
        Ok(())
    }

    /// Ends verification against what else the store holds for the log.
    pub fn finish(self, stored: Option<Stored>) -> Result<Summary, Failure> {
        let size = self.compact.size();
        if let Some(c) = self.checkpoints.get(self.next_checkpoint) {
            return Err(self.fail(
                Target::Entry(size + 1),
                format!("missing: checkpoint {} covers {} entries but the log ends at {size} (truncated)", c.seq, c.size),
            ));
        }
        if let Some(w) = self.witnessed.get(self.next_witnessed) {
            return Err(self.fail(
                Target::Entry(size + 1),
                format!("missing: the witness holds checkpoint {} over {} entries but the log ends at {size} (truncated or rolled back)", w.seq, w.size),
            ));
        }
        if let Some(stored) = stored {
            self.check_stored(size, stored)?;
        }
        Ok(Summary {
            log: self.log,
            entries: size,
            checkpointed: self.checkpointed,
            checkpoints: self.checkpoints.len() as u64,
            witnessed: self.witnessed.len() as u64,
            tenants_created: self.tenants_created,
            logs_deleted: self.logs_deleted,
            denied: self.denied,
            lockouts: self.lockouts,
            consent_refusals: self.consent_refusals,
        })
    }

    fn check_stored(&self, size: u64, stored: Stored) -> Result<(), Failure> {
        match stored.head {
            None if size > 0 => {
                return Err(self.fail(
                    Target::Entry(size),
                    "the log has entries but no head (the head was removed)",
                ))
            }
            None => {}
            Some(head) => {
                if head.size > size {
                    return Err(self.fail(
                        Target::Entry(size + 1),
                        format!(
                            "missing: the log head records {} entries (truncated)",
                            head.size
                        ),
                    ));
                }
                if head.size < size {
                    return Err(self.fail(
                        Target::Entry(head.size + 1),
                        format!(
                            "inserted: the vault wrote only {} entries to this log",
                            head.size
                        ),
                    ));
                }
                if size > 0 && (head.last_hash != self.prev || head.compact != self.compact) {
                    return Err(self.fail(
                        Target::Entry(size),
                        "modified: the log head (last hash or tree) does not match the entries",
                    ));
                }
            }
        }
        if stored.subjects != self.subjects {
            return Err(self.fail(
                Target::Entry(size),
                format!(
                    "the subject index does not match the entries ({} rows stored, {} named by the entries): rows were edited, removed or inserted",
                    stored.subjects.count(),
                    self.subjects.count()
                ),
            ));
        }
        if stored.nodes != self.nodes {
            return Err(self.fail(
                Target::Entry(size),
                format!(
                    "the stored tree nodes do not match the entries ({} stored, {} expected): proofs served from them would be wrong",
                    stored.nodes.count(),
                    self.nodes.count()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{seal_entry, AuditEvent};

    #[test]
    fn links_are_read_from_the_canonical_prefix_or_parsed() {
        let ev = AuditEvent::new(
            None,
            1,
            RequestId::generate(&SeededRng::new(1)),
            "a".into(),
            "x",
        );
        let (_, body, _) = seal_entry(&ev, 42, &[7; 32]);
        let fast = Link::from_prefix(&body).expect("a sealed body has the canonical prefix");
        let full: Link<'_> = serde_json::from_str(&body).expect("well-formed");
        assert_eq!(
            (fast.log, fast.seq, fast.prev),
            (full.log, full.seq, full.prev)
        );
        // Not canonical: other key order, escapes, leading zeros, short prev → the parser
        // decides, exactly as before.
        let prev = "07".repeat(32);
        for odd in [
            format!(r#"{{"seq":1,"log":"l","prev":"{prev}"}}"#),
            format!(r#"{{"log":"l\u0041","seq":1,"prev":"{prev}"}}"#),
            format!(r#"{{"log":"l","seq":01,"prev":"{prev}"}}"#),
            r#"{"log":"l","seq":1,"prev":"0707"}"#.to_owned(),
        ] {
            assert!(Link::from_prefix(&odd).is_none(), "{odd}");
        }
        let reordered = format!(r#"{{"seq":1,"log":"l","prev":"{prev}"}}"#);
        assert_eq!(Link::read(&reordered).map(|l| l.seq), Some(1));
        let escaped = format!(r#"{{"log":"l\u0041","seq":1,"prev":"{prev}"}}"#);
        assert_eq!(
            Link::read(&escaped).map(|l| l.log.into_owned()),
            Some("lA".to_owned())
        );
        assert!(Link::read(&format!(r#"{{"log":"l","seq":01,"prev":"{prev}"}}"#)).is_none());
        assert!(Link::read("{\"log\":").is_none());
    }

    #[test]
    fn hex_is_compares_without_building_strings() {
        let bytes = [0x00, 0x9f, 0xa0, 0xff];
        assert!(hex_is("009fa0ff", &bytes));
        assert!(
            !hex_is("009FA0FF", &bytes),
            "upper case is not the canonical form"
        );
        assert!(!hex_is("009fa0fe", &bytes));
        assert!(!hex_is("009fa0f", &bytes));
        assert!(!hex_is("009fa0ff00", &bytes));
        assert!(hex_is("", &[]));
    }
    use crate::ids::RequestId;
    use crate::rng::{RngExt, SeededRng};
    use strongroom_crypto::sign::public_key;

    fn log_of(n: u64) -> Vec<(u64, String, [u8; 32])> {
        let rng = SeededRng::new(5);
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let ev = AuditEvent::new(
                    None,
                    seq as i64,
                    RequestId::generate(&rng),
                    "key:k".into(),
                    "record.read",
                );
                let (_, body, hash) = seal_entry(&ev, seq, &prev);
                prev = hash;
                (seq, body, hash)
            })
            .collect()
    }

    fn checkpoints(
        entries: &[(u64, String, [u8; 32])],
        sizes: &[u64],
        key: &strongroom_crypto::Key32,
    ) -> Vec<CheckpointRow> {
        let mut prev = GENESIS;
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| {
                let mut c = CompactRange::default();
                for e in &entries[..size as usize] {
                    c.append(e.2);
                }
                let row =
                    CheckpointRow::sign("platform", i as u64 + 1, size, c.root(), 0, prev, key);
                prev = row.hash();
                row
            })
            .collect()
    }

    fn run(
        entries: &[(u64, String, [u8; 32])],
        cps: Vec<CheckpointRow>,
        pk: &[u8; 32],
    ) -> Result<Summary, Failure> {
        let mut v = LogVerifier::new("platform", cps, vec![], pk, [3; 32])?;
        for (seq, body, hash) in entries {
            v.push(*seq, body, Some(hash))?;
        }
        v.finish(None)
    }

    #[test]
    fn intact_logs_verify_and_report_the_unchecked_tail() {
        let key = SeededRng::new(1).key();
        let pk = public_key(&key);
        let e = log_of(10);
        let s = run(&e, checkpoints(&e, &[3, 8], &key), &pk).unwrap();
        assert_eq!(
            (
                s.entries,
                s.checkpointed,
                s.checkpoints,
                s.not_yet_checkpointed()
            ),
            (10, 8, 2, 2)
        );
    }

    #[test]
    fn tampering_is_named() {
        let key = SeededRng::new(1).key();
        let pk = public_key(&key);
        let e = log_of(10);
        let cps = checkpoints(&e, &[4, 10], &key);
        let mut edited = e.clone();
        edited[5].1 = edited[5].1.replace("record.read", "record.reed");
        assert_eq!(
            run(&edited, cps.clone(), &pk).unwrap_err().target,
            Target::Entry(6)
        );
        let mut deleted = e.clone();
        deleted.remove(2);
        assert_eq!(
            run(&deleted, cps.clone(), &pk).unwrap_err().target,
            Target::Entry(3)
        );
        let truncated = e[..7].to_vec();
        assert_eq!(
            run(&truncated, cps.clone(), &pk).unwrap_err().target,
            Target::Entry(8)
        );
        let mut forged = cps.clone();
        forged[1].size = 9;
        assert_eq!(
            run(&e, forged, &pk).unwrap_err().target,
            Target::Checkpoint(2)
        );
        let other_key = public_key(&SeededRng::new(2).key());
        assert_eq!(
            run(&e, cps.clone(), &other_key).unwrap_err().target,
            Target::Checkpoint(1)
        );
        let mut dropped = cps.clone();
        dropped.remove(0);
        assert!(run(&e, dropped, &pk).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// The fast path never reads a link the full parser would read differently, and no
        /// body — random bytes or a sealed body with one byte changed — makes either panic.
        #[test]
        fn the_fast_link_reader_agrees_with_the_parser(
            seq in proptest::prelude::any::<u64>(),
            pos in proptest::prelude::any::<usize>(),
            byte in proptest::prelude::any::<u8>(),
            junk in ".{0,200}",
        ) {
            let ev = AuditEvent::new(None, 1, RequestId::generate(&SeededRng::new(seq)), "a".into(), "x");
            let (_, body, _) = seal_entry(&ev, seq.max(1), &[7; 32]);
            let mut bytes = body.into_bytes();
            let at = pos % bytes.len();
            bytes[at] = byte;
            for text in [String::from_utf8_lossy(&bytes).into_owned(), junk] {
                let fast = Link::from_prefix(&text);
                let full: Option<Link<'_>> = serde_json::from_str(&text).ok();
                if let (Some(f), Some(p)) = (&fast, &full) {
                    proptest::prop_assert_eq!((&f.log, f.seq, &f.prev), (&p.log, p.seq, &p.prev));
                }
                let _ = Link::read(&text);
            }
        }
    }
}
