//! Signed checkpoints (tree heads) of audit logs, and their text forms.
//!
//! New checkpoints are C2SP `tlog-checkpoint` bodies in a C2SP `signed-note` with one Ed25519
//! signature line, so that transparency witnesses and verifiers that know nothing of Strongroom
//! can check them:
//! ```text
//! strongroom/<key fingerprint>/<log>      origin
//! <size>                                  tree size
//! <base64 root>                           RFC 6962 root
//! seq <n>                                 extension lines: the checkpoint's number,
//! time <unix ms>                          when it was signed,
//! prev <hex>                              SHA-256 of the previous checkpoint's signed text
//!
//! — strongroom/<key fingerprint> <base64(key id ‖ signature)>
//! ```
//! Checkpoints signed before that format keep their original line-based text (format 1,
//! `strongroom-checkpoint v1 …`) and keep verifying. Each checkpoint names the hash of the one
//! before, so checkpoints form a chain of their own (as CloudTrail's digest files do): deleting
//! or reordering one breaks the next.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use strongroom_crypto::{hex, sha256, sha256_parts, sign, unhex, Key32};
use strongroom_proto::Checkpoint;

/// The legacy line-based text.
pub const FORMAT_LEGACY: u8 = 1;
/// C2SP tlog-checkpoint in a signed note.
pub const FORMAT_C2SP: u8 = 2;

/// A checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRow {
    pub log: String,
    pub seq: u64,
    pub size: u64,
    pub root: [u8; 32],
    pub time: i64,
    pub prev: [u8; 32],
    pub signature: [u8; 64],
    /// [`FORMAT_LEGACY`] or [`FORMAT_C2SP`].
    pub format: u8,
    /// The C2SP origin line (empty for the legacy format).
    pub origin: String,
}

/// The signed-note key name of a signing key: `strongroom/` and the first 8 bytes of the
/// SHA-256 of its public key, in hex. It tells installations apart.
pub fn key_name(public_key: &[u8; 32]) -> String {
    format!("strongroom/{}", hex(&sha256(public_key)[..8]))
}

/// The origin of a log's checkpoints under a signing key.
pub fn origin(public_key: &[u8; 32], log: &str) -> String {
    format!("{}/{log}", key_name(public_key))
}

/// The C2SP signed-note key id of an Ed25519 key: the first 4 bytes of
/// `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let h = sha256_parts(&[name.as_bytes(), b"\n", &[0x01], public_key]);
    [h[0], h[1], h[2], h[3]]
}

/// The signed text of a legacy (format 1) checkpoint.
pub fn legacy_text(
    log: &str,
    seq: u64,
    size: u64,
    root: &[u8; 32],
    time: i64,
    prev: &[u8; 32],
) -> String {
    format!(
        "strongroom-checkpoint v1\nlog {log}\nseq {seq}\nsize {size}\nroot {}\ntime {time}\nprev {}\n",
        hex(root),
        hex(prev)
    )
}

impl CheckpointRow {
    /// Makes and signs a checkpoint in the current (C2SP) format.
    pub fn sign(
        log: &str,
        seq: u64,
        size: u64,
        root: [u8; 32],
        time: i64,
        prev: [u8; 32],
        key: &Key32,
    ) -> Self {
        let mut row = Self {
            log: log.to_owned(),
            seq,
            size,
            root,
            time,
            prev,
            signature: [0; 64],
            format: FORMAT_C2SP,
            origin: origin(&sign::public_key(key), log),
        };
        row.signature = sign::sign(key, row.text().as_bytes());
        row
    }

    /// The signed text: the note body for C2SP checkpoints.
    pub fn text(&self) -> String {
        if self.format == FORMAT_LEGACY {
            return legacy_text(
                &self.log, self.seq, self.size, &self.root, self.time, &self.prev,
            );
        }
        format!(
            "{}\n{}\n{}\nseq {}\ntime {}\nprev {}\n",
            self.origin,
            self.size,
            B64.encode(self.root),
            self.seq,
            self.time,
            hex(&self.prev)
        )
    }

    /// The whole signed note (C2SP format only): body, blank line, signature line.
    pub fn note(&self, public_key: &[u8; 32]) -> Option<String> {
        if self.format != FORMAT_C2SP {
            return None;
        }
        let name = key_name(public_key);
        let mut sig = key_id(&name, public_key).to_vec();
        sig.extend_from_slice(&self.signature);
        Some(format!(
            "{}\n\u{2014} {name} {}\n",
            self.text(),
            B64.encode(sig)
        ))
    }

    /// What the next checkpoint names as `prev`.
    pub fn hash(&self) -> [u8; 32] {
        sha256(self.text().as_bytes())
    }

    /// The signature verifies with `public_key`, and a C2SP checkpoint names the origin that
    /// key gives this log.
    pub fn verify_signature(&self, public_key: &[u8; 32]) -> bool {
        let origin_ok = match self.format {
            FORMAT_LEGACY => self.origin.is_empty(),
            FORMAT_C2SP => self.origin == origin(public_key, &self.log),
            _ => false,
        };
        origin_ok && sign::verify(public_key, self.text().as_bytes(), &self.signature)
    }

    pub fn to_proto(&self, public_key: &[u8; 32]) -> Checkpoint {
        Checkpoint {
            log: self.log.clone(),
            seq: self.seq,
            size: self.size,
            root: hex(&self.root),
            time: self.time,
            prev: hex(&self.prev),
            signature: hex(&self.signature),
            format: self.format,
            origin: self.origin.clone(),
            note: self.note(public_key),
        }
    }

    /// Parses the wire form; `None` if a hash or the signature is malformed.
    pub fn from_proto(c: &Checkpoint) -> Option<Self> {
        Some(Self {
            log: c.log.clone(),
            seq: c.seq,
            size: c.size,
            root: unhex(&c.root)?.try_into().ok()?,
            time: c.time,
            prev: unhex(&c.prev)?.try_into().ok()?,
            signature: unhex(&c.signature)?.try_into().ok()?,
            format: c.format,
            origin: c.origin.clone(),
        })
    }

    /// Reads a C2SP signed note of one of this installation's logs and checks its signature
    /// line for `public_key`. Says what is wrong otherwise.
    pub fn from_note(note: &str, public_key: &[u8; 32]) -> Result<Self, String> {
        let (body, sigs) = note
            .split_once("\n\n")
            .ok_or("not a signed note: no blank line before the signatures")?;
        let body = format!("{body}\n");
        let name = key_name(public_key);
        let id = key_id(&name, public_key);
        let signature = sigs
            .lines()
            .filter_map(|l| l.strip_prefix("\u{2014} "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(n, _)| *n == name)
            .filter_map(|(_, b)| B64.decode(b).ok())
            .find(|b| b.len() == 68 && b[..4] == id)
            .and_then(|b| <[u8; 64]>::try_from(&b[4..]).ok())
            .ok_or_else(|| format!("no signature line by key {name}"))?;
        let mut lines = body.lines();
        let mut next = |what: &str| {
            lines
                .next()
                .ok_or_else(|| format!("checkpoint body has no {what} line"))
        };
        let origin = next("origin")?.to_owned();
        let log = origin
            .strip_prefix(&format!("{name}/"))
            .ok_or("the origin is not one of this installation's logs")?
            .to_owned();
        let size = next("size")?
            .parse()
            .map_err(|_| "the size line is not a number")?;
        let root = B64
            .decode(next("root")?)
            .ok()
            .and_then(|r| <[u8; 32]>::try_from(r).ok())
            .ok_or("the root line is not a base64 SHA-256 hash")?;
        let mut ext = |key: &str| {
            next(key)?
                .strip_prefix(&format!("{key} "))
                .map(str::to_owned)
                .ok_or_else(|| format!("missing extension line `{key}`"))
        };
        let seq = ext("seq")?.parse().map_err(|_| "bad seq line")?;
        let time = ext("time")?.parse().map_err(|_| "bad time line")?;
        let prev = unhex(&ext("prev")?)
            .and_then(|p| p.try_into().ok())
            .ok_or("bad prev line")?;
        let row = Self {
            log,
            seq,
            size,
            root,
            time,
            prev,
            signature,
            format: FORMAT_C2SP,
            origin,
        };
        if row.text() != body {
            return Err("the note body is not in canonical form".into());
        }
        if !row.verify_signature(public_key) {
            return Err("the signature does not verify with the public key".into());
        }
        Ok(row)
    }
}

/// An external witness that cosigns checkpoints (C2SP `tlog-cosignature`, Ed25519, v1): its
/// name and public key, as given in a signed-note verifier key `<name>+<key id>+<base64(0x04 ‖
/// key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosigner {
    pub name: String,
    pub public_key: [u8; 32],
}

impl Cosigner {
    /// Parses a verifier key with signature type 0x04 (Ed25519 cosignature v1).
    pub fn from_vkey(vkey: &str) -> Result<Self, String> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("a cosigner key is `<name>+<key id>+<base64 key>`".into());
        };
        let key = B64
            .decode(key)
            .map_err(|_| "the cosigner key is not base64".to_owned())?;
        let public_key: [u8; 32] = match key.split_first() {
            Some((0x04, rest)) => rest
                .try_into()
                .map_err(|_| "the cosigner key is not 32 bytes".to_owned())?,
            _ => {
                return Err("the cosigner key is not an Ed25519 cosignature key (type 0x04)".into())
            }
        };
        let c = Self {
            name: name.to_owned(),
            public_key,
        };
        if hex(&c.key_id()) != id.to_ascii_lowercase() {
            return Err("the cosigner key's id does not match its name and key".into());
        }
        Ok(c)
    }

    /// The verifier key string.
    pub fn vkey(&self) -> String {
        let mut key = vec![0x04];
        key.extend_from_slice(&self.public_key);
        format!("{}+{}+{}", self.name, hex(&self.key_id()), B64.encode(key))
    }

    /// `SHA-256(name ‖ "\n" ‖ 0x04 ‖ key)[:4]`.
    pub fn key_id(&self) -> [u8; 4] {
        let h = sha256_parts(&[self.name.as_bytes(), b"\n", &[0x04], &self.public_key]);
        [h[0], h[1], h[2], h[3]]
    }

    fn message(body: &str, time: u64) -> String {
        format!("cosignature/v1\ntime {time}\n{body}")
    }

    /// The cosignature line this cosigner would add to a note with `body`, at `time` (POSIX
    /// seconds). For tests and for operators running their own witness.
    pub fn sign_line(&self, key: &Key32, body: &str, time: u64) -> String {
        let sig = sign::sign(key, Self::message(body, time).as_bytes());
        let mut bytes = self.key_id().to_vec();
        bytes.extend_from_slice(&time.to_be_bytes());
        bytes.extend_from_slice(&sig);
        format!("\u{2014} {} {}\n", self.name, B64.encode(bytes))
    }

    /// Checks this cosigner's line in a signed note: `Ok(Some(time))` when it cosigned,
    /// `Ok(None)` when the note carries no line of this cosigner, `Err` when its line does not
    /// verify.
    pub fn verify_note(&self, note: &str) -> Result<Option<u64>, String> {
        let (body, sigs) = note
            .split_once("\n\n")
            .ok_or("not a signed note: no blank line before the signatures")?;
        let body = format!("{body}\n");
        let id = self.key_id();
        let mut found = None;
        for line in sigs.lines() {
            let Some((name, b64)) = line
                .strip_prefix("\u{2014} ")
                .and_then(|l| l.split_once(' '))
            else {
                continue;
            };
            if name != self.name {
                continue;
            }
            let Ok(bytes) = B64.decode(b64) else {
                return Err(format!("the cosignature of {name} is not base64"));
            };
            if bytes.len() != 4 + 8 + 64 || bytes[..4] != id {
                continue; // another key of the same name
            }
            let mut t = [0u8; 8];
            t.copy_from_slice(&bytes[4..12]);
            let time = u64::from_be_bytes(t);
            let sig: [u8; 64] = bytes[12..]
                .try_into()
                .map_err(|_| "cosignature length".to_owned())?;
            if time > i64::MAX as u64
                || !sign::verify(
                    &self.public_key,
                    Self::message(&body, time).as_bytes(),
                    &sig,
                )
            {
                return Err(format!("the cosignature of {name} does not verify"));
            }
            found = Some(time);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{RngExt, SeededRng};

    #[test]
    fn notes_round_trip_and_edits_fail() {
        let key = SeededRng::new(9).key();
        let pk = sign::public_key(&key);
        let row = CheckpointRow::sign("ten_1", 3, 42, [7; 32], 1000, [9; 32], &key);
        assert!(row.verify_signature(&pk));
        let note = row.note(&pk).unwrap();
        assert_eq!(CheckpointRow::from_note(&note, &pk).unwrap(), row);
        assert!(note.starts_with(&format!("{}/ten_1\n42\n", key_name(&pk))));
        for i in 0..note.len() {
            let mut bytes = note.clone().into_bytes();
            bytes[i] ^= 0x01;
            if let Ok(edited) = String::from_utf8(bytes) {
                assert!(
                    CheckpointRow::from_note(&edited, &pk).is_err(),
                    "edit at byte {i} accepted"
                );
            }
        }
        let other = sign::public_key(&SeededRng::new(10).key());
        assert!(CheckpointRow::from_note(&note, &other).is_err());
    }

    #[test]
    fn legacy_checkpoints_still_verify() {
        let key = SeededRng::new(9).key();
        let pk = sign::public_key(&key);
        let text = legacy_text("platform", 1, 5, &[1; 32], 7, &[0; 32]);
        let row = CheckpointRow {
            log: "platform".into(),
            seq: 1,
            size: 5,
            root: [1; 32],
            time: 7,
            prev: [0; 32],
            signature: sign::sign(&key, text.as_bytes()),
            format: FORMAT_LEGACY,
            origin: String::new(),
        };
        assert!(row.verify_signature(&pk));
        assert_eq!(row.hash(), sha256(text.as_bytes()));
        assert!(row.note(&pk).is_none());
        let mut moved = row.clone();
        moved.format = FORMAT_C2SP;
        assert!(!moved.verify_signature(&pk));
    }

    #[test]
    fn cosignatures_verify_and_edits_fail() {
        let log_key = SeededRng::new(9).key();
        let pk = sign::public_key(&log_key);
        let row = CheckpointRow::sign("platform", 1, 10, [4; 32], 1000, [0; 32], &log_key);
        let note = row.note(&pk).unwrap();
        let witness_key = SeededRng::new(11).key();
        let w = Cosigner {
            name: "witness.example/w1".into(),
            public_key: sign::public_key(&witness_key),
        };
        assert_eq!(Cosigner::from_vkey(&w.vkey()), Ok(w.clone()));
        assert_eq!(w.verify_note(&note), Ok(None));
        let cosigned = format!(
            "{note}{}",
            w.sign_line(&witness_key, &row.text(), 1_700_000_000)
        );
        assert_eq!(w.verify_note(&cosigned), Ok(Some(1_700_000_000)));
        // The log's own signature still checks on the cosigned note.
        assert_eq!(CheckpointRow::from_note(&cosigned, &pk), Ok(row.clone()));
        // Another body, or a forged line, fails.
        let other = CheckpointRow::sign("platform", 1, 11, [4; 32], 1000, [0; 32], &log_key);
        let moved = format!(
            "{}{}",
            other.note(&pk).unwrap(),
            w.sign_line(&witness_key, &row.text(), 1_700_000_000)
        );
        assert!(w.verify_note(&moved).is_err());
        let stranger = SeededRng::new(12).key();
        let forged = format!("{note}{}", w.sign_line(&stranger, &row.text(), 1));
        assert!(w.verify_note(&forged).is_err());
        let bad = w.vkey().replacen(&hex(&w.key_id()), "00000000", 1);
        assert!(Cosigner::from_vkey(&bad).is_err());
        let mut plain = vec![0x01];
        plain.extend_from_slice(&w.public_key);
        let wrong_type = format!("{}+{}+{}", w.name, hex(&w.key_id()), B64.encode(plain));
        assert!(Cosigner::from_vkey(&wrong_type).is_err());
    }
}
