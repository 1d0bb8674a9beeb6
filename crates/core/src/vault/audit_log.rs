//! The verifiable audit log: the checkpoint signing key, signed checkpoints, inclusion and
//! consistency proofs, and "who accessed this person's data".

use strongroom_crypto::merkle;
use strongroom_crypto::{hex, open, seal, sign, unhex, Aad, Key32};
use strongroom_proto as proto;

use super::{RequestCtx, Vault};
use crate::audit::{GENESIS, PLATFORM_LOG};
use crate::checkpoint::CheckpointRow;
use crate::error::{Code, Error, Result};
use crate::policy::{ROLE_ADMIN, ROLE_AUDITOR};
use crate::rng::RngExt;
use crate::store::{AuditQuery, Op, StoreError, UnitOfWork};

const META_SIGNING_KEY: &str = "audit_signing_key";
const META_PUBLIC_KEY: &str = "audit_public_key";

impl Vault {
    /// Loads the checkpoint signing key, creating it (wrapped by the root key) on first use.
    pub(super) async fn ensure_signing_key(&self) -> Result<()> {
        if self.signing_key.get().is_some() {
            return Ok(());
        }
        let aad = Aad::new("audit-signing-key");
        let seed = match self.store.get_meta(META_SIGNING_KEY).await? {
            Some(sealed) => {
                let bytes = unhex(&sealed).ok_or_else(Error::integrity)?;
                let seed = open(self.keys.root(), &aad, &bytes).map_err(|_| Error::integrity())?;
                Key32::from_slice(&seed).ok_or_else(Error::integrity)?
            }
            None => {
                let seed = self.rng.key();
                let sealed = seal(self.keys.root(), 0, self.rng.nonce(), &aad, seed.expose());
                let ops = vec![
                    Op::PutMeta {
                        key: META_SIGNING_KEY.into(),
                        value: hex(&sealed),
                    },
                    Op::PutMeta {
                        key: META_PUBLIC_KEY.into(),
                        value: hex(&sign::public_key(&seed)),
                    },
                ];
                self.store.commit(UnitOfWork { ops, audit: vec![] }).await?;
                seed
            }
        };
        let _ = self.signing_key.set(seed);
        Ok(())
    }

    /// The Ed25519 public key that verifies checkpoints.
    /// Records in the platform log that the operator started the server on a log whose head,
    /// table or checkpoints disagree (`code` says how).
    pub async fn record_audit_mismatch_accepted(&self, log: &str, code: &str) -> Result<()> {
        self.record_system_event(
            "system:startup",
            "audit.mismatch_accepted",
            vec![format!("log:{log}"), format!("reason:{code}")],
        )
        .await
    }

    /// Signs a document (a TOMs report, an erasure receipt) with the audit signing key and
    /// returns the public key with the signature. `bytes` must begin with a line naming the
    /// document kind, so that no such signature can pass for a checkpoint's.
    pub async fn sign_document(&self, bytes: &[u8]) -> Result<([u8; 32], [u8; 64])> {
        if !bytes.starts_with(b"strongroom ") || bytes.starts_with(b"strongroom/") {
            return Err(Error::internal());
        }
        self.ensure_signing_key().await?;
        let key = self.signing_key.get().ok_or_else(Error::internal)?;
        Ok((sign::public_key(key), sign::sign(key, bytes)))
    }

    /// The compliance alerts raised so far (a JSON list of keys, kept in `meta`), so that a
    /// restart does not raise them again.
    pub async fn raised_alerts(&self) -> Result<Vec<String>> {
        Ok(self
            .store
            .get_meta(crate::audit::META_ALERTS_RAISED)
            .await?
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    /// Raises compliance alerts: one `compliance.alert` entry per alert in the log of its
    /// scope (`objects` name the entry and the kind), committed in one unit with the new list of
    /// raised keys — so an alert is recorded exactly when it is remembered as raised.
    pub async fn record_alerts(
        &self,
        raised: &[String],
        alerts: Vec<(Option<crate::ids::TenantId>, Vec<String>)>,
    ) -> Result<()> {
        let now = self.now();
        let request_id = crate::ids::RequestId::generate(self.rng.as_ref());
        let audit = alerts
            .into_iter()
            .map(|(tenant, objects)| {
                let mut ev = crate::audit::AuditEvent::new(
                    tenant,
                    now,
                    request_id.clone(),
                    "system:scheduler".to_owned(),
                    "compliance.alert",
                );
                ev.objects = objects;
                ev
            })
            .collect();
        let value = serde_json::to_string(raised).map_err(|_| Error::internal())?;
        self.store
            .commit(UnitOfWork {
                ops: vec![Op::PutMeta {
                    key: crate::audit::META_ALERTS_RAISED.to_owned(),
                    value,
                }],
                audit,
            })
            .await?;
        Ok(())
    }

    /// Records an event of the server itself (an alert, say) in the platform log.
    pub async fn record_system_event(
        &self,
        actor: &str,
        action: &'static str,
        objects: Vec<String>,
    ) -> Result<()> {
        let mut ev = crate::audit::AuditEvent::new(
            None,
            self.now(),
            crate::ids::RequestId::generate(self.rng.as_ref()),
            actor.to_owned(),
            action,
        );
        ev.objects = objects;
        self.store
            .commit(UnitOfWork {
                ops: vec![],
                audit: vec![ev],
            })
            .await?;
        Ok(())
    }

    /// Records the result of a verification of every audit log (evidence for IN-02), with an
    /// audit entry of its own.
    /// `counts` holds, per log, the refused requests, lockouts and consent refusals it records.
    pub async fn record_audit_verification(
        &self,
        ok: bool,
        entries: u64,
        logs: u64,
        counts: &std::collections::BTreeMap<String, (u64, u64, u64)>,
    ) -> Result<()> {
        let now = self.now();
        let mut ev = crate::audit::AuditEvent::new(
            None,
            now,
            crate::ids::RequestId::generate(self.rng.as_ref()),
            "system:verifier".into(),
            "audit.verify",
        );
        if !ok {
            ev.fail(&Error::integrity());
        }
        ev.objects = vec![format!("entries:{entries}"), format!("logs:{logs}")];
        let counts: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|(log, (denied, lockouts, consent))| {
                (
                    log.clone(),
                    serde_json::json!({"denied": denied, "lockouts": lockouts, "consent_refusals": consent}),
                )
            })
            .collect();
        let value = serde_json::json!({
            "at": now, "ok": ok, "entries": entries, "logs": logs, "counts": counts,
        })
        .to_string();
        self.store
            .commit(UnitOfWork {
                ops: vec![Op::PutMeta {
                    key: crate::audit::META_LAST_VERIFY.into(),
                    value,
                }],
                audit: vec![ev],
            })
            .await?;
        Ok(())
    }

    pub fn public_key(&self) -> Result<[u8; 32]> {
        self.signing_key
            .get()
            .map(sign::public_key)
            .ok_or_else(Error::internal)
    }

    /// Signs a checkpoint of `log` if it has entries beyond its latest one. Returns it, or
    /// `None` when there was nothing new (or another node did it first).
    pub async fn checkpoint(&self, log: &str) -> Result<Option<CheckpointRow>> {
        let key = self.signing_key.get().ok_or_else(Error::internal)?;
        let Some(head) = self.store.find_audit_head(log).await? else {
            return Ok(None);
        };
        let latest = self.store.find_latest_checkpoint(log).await?;
        if latest.as_ref().is_some_and(|c| c.size >= head.size) {
            return Ok(None);
        }
        let (seq, prev) = latest.map_or((1, GENESIS), |c| (c.seq + 1, c.hash()));
        let row = CheckpointRow::sign(
            log,
            seq,
            head.size,
            head.compact.root(),
            self.now(),
            prev,
            key,
        );
        match self
            .store
            .commit(UnitOfWork {
                ops: vec![Op::InsertCheckpoint(row.clone())],
                audit: vec![],
            })
            .await
        {
            Ok(_) => Ok(Some(row)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Signs a checkpoint of every log that has `every_entries` new entries, or any new entry
    /// and none signed for `every_ms`. Returns the checkpoints made (for the witness).
    pub async fn checkpoint_due(
        &self,
        every_entries: u64,
        every_ms: i64,
    ) -> Result<Vec<CheckpointRow>> {
        let mut made = Vec::new();
        let now = self.now();
        for (log, head) in self.store.find_audit_heads().await? {
            let latest = self.store.find_latest_checkpoint(&log).await?;
            let (size, time) = latest.map_or((0, i64::MIN), |c| (c.size, c.time));
            let new = head.size.saturating_sub(size);
            if new > 0 && (new >= every_entries || now.saturating_sub(time) >= every_ms) {
                if let Some(row) = self.checkpoint(&log).await? {
                    made.push(row);
                }
            }
        }
        Ok(made)
    }

    /// The log a caller may read: its tenant's (admin, auditor) or the platform's (operators).
    fn readable_log(&self, ctx: &RequestCtx) -> Result<String> {
        let p = &ctx.principal;
        match &p.tenant {
            Some(t) if p.has_role(ROLE_ADMIN) || p.has_role(ROLE_AUDITOR) => Ok(t.to_string()),
            None if p.is_operator() => Ok(PLATFORM_LOG.to_owned()),
            _ => Err(Error::forbidden(
                "reading the audit trail needs the `auditor` or `admin` role",
            )),
        }
    }

    /// The newest signed checkpoint of the caller's log, made now if entries are waiting.
    pub async fn latest_checkpoint(&self, ctx: &RequestCtx) -> Result<proto::Checkpoint> {
        let ev = self.event(ctx, "audit.checkpoint");
        let res = async {
            let log = self.readable_log(ctx)?;
            self.checkpoint(&log).await?;
            let c = self
                .store
                .find_latest_checkpoint(&log)
                .await?
                .ok_or_else(|| Error::new(Code::NotFound, "this log has no checkpoint yet"))?;
            Ok((c.to_proto(&self.public_key()?), vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    async fn tree_size(&self, log: &str, size: Option<u64>) -> Result<u64> {
        let head = self.store.find_audit_head(log).await?.map_or(0, |h| h.size);
        match size {
            Some(s) if s <= head => Ok(s),
            Some(_) => Err(Error::new(
                Code::NotFound,
                format!("the log has {head} entries"),
            )),
            None => Ok(self
                .store
                .find_latest_checkpoint(log)
                .await?
                .map_or(head, |c| c.size)),
        }
    }

    /// Proves that entry `seq` is in the tree of `size` entries (default: the latest checkpoint).
    pub async fn inclusion_proof(
        &self,
        ctx: &RequestCtx,
        seq: u64,
        size: Option<u64>,
    ) -> Result<proto::InclusionProof> {
        let ev = self.event(ctx, "audit.proof");
        let res = async {
            let log = self.readable_log(ctx)?;
            let size = self.tree_size(&log, size).await?;
            if seq == 0 {
                return Err(Error::out_of_range("seq starts at 1"));
            }
            if seq > size {
                return Err(Error::new(
                    Code::NotFound,
                    format!("no entry {seq} in a tree of {size}"),
                ));
            }
            let index = seq - 1;
            let mut ranges = merkle::inclusion_ranges(index, size);
            ranges.push((index, index + 1));
            ranges.push((0, size));
            let mut hashes =
                crate::proofs::range_hashes(self.store.as_ref(), &log, &ranges).await?;
            let root = hashes.pop().ok_or_else(Error::internal)?;
            let leaf = hashes.pop().ok_or_else(Error::internal)?;
            let out = proto::InclusionProof {
                seq,
                tree_size: size,
                leaf_hash: hex(&leaf),
                proof: hashes.iter().map(|h| hex(h)).collect(),
                root: hex(&root),
            };
            Ok((out, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Proves that the tree of `from` entries is a prefix of the tree of `to` entries.
    pub async fn consistency_proof(
        &self,
        ctx: &RequestCtx,
        from: u64,
        to: Option<u64>,
    ) -> Result<proto::ConsistencyProof> {
        let ev = self.event(ctx, "audit.proof");
        let res = async {
            let log = self.readable_log(ctx)?;
            let to = self.tree_size(&log, to).await?;
            if from == 0 {
                return Err(Error::out_of_range("from starts at 1"));
            }
            if from > to {
                return Err(Error::new(
                    Code::NotFound,
                    format!("no tree of {from} entries yet (the log has {to})"),
                ));
            }
            let mut ranges = merkle::consistency_ranges(from, to);
            ranges.push((0, from));
            ranges.push((0, to));
            let mut hashes =
                crate::proofs::range_hashes(self.store.as_ref(), &log, &ranges).await?;
            let to_root = hashes.pop().ok_or_else(Error::internal)?;
            let from_root = hashes.pop().ok_or_else(Error::internal)?;
            let out = proto::ConsistencyProof {
                from_size: from,
                to_size: to,
                from_root: hex(&from_root),
                to_root: hex(&to_root),
                proof: hashes.iter().map(|h| hex(h)).collect(),
            };
            Ok((out, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Every recorded access to a data subject's records: who, when, what, for which purpose.
    /// A hash tile of the log's tree in the C2SP tlog-tiles layout (height 8): the `width`
    /// hashes at tree level `8 × level` starting at hash `256 × index`, concatenated. Full tiles
    /// (`width` 256) never change; a partial tile names how many hashes it holds. Served from
    /// the leaf hashes and the stored nodes, so a verifier that speaks tlog-tiles can compute
    /// and check proofs itself.
    pub async fn audit_tile(
        &self,
        ctx: &RequestCtx,
        level: u32,
        index: u64,
        width: u32,
    ) -> Result<Vec<u8>> {
        let ev = self.event(ctx, "audit.tile");
        let res = async {
            let log = self.readable_log(ctx)?;
            if !(1..=256).contains(&width) {
                return Err(Error::out_of_range("a tile holds 1 to 256 hashes"));
            }
            let tree_level = level
                .checked_mul(crate::store::NODE_LEVEL_STEP)
                .filter(|l| *l < 64)
                .ok_or_else(|| Error::new(Code::NotFound, "no such tile"))?;
            let size = self
                .store
                .find_audit_head(&log)
                .await?
                .map_or(0, |h| h.size);
            let available = size >> tree_level;
            let start = index
                .checked_mul(256)
                .ok_or_else(|| Error::new(Code::NotFound, "no such tile"))?;
            if start.saturating_add(u64::from(width)) > available {
                return Err(Error::new(
                    Code::NotFound,
                    format!("the tree holds {available} hashes at that level"),
                ));
            }
            let hashes = self
                .store
                .find_audit_hashes(&log, tree_level, start, u64::from(width))
                .await?;
            if hashes.len() != width as usize {
                return Err(Error::internal());
            }
            Ok((hashes.concat(), vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// One page of the accesses to a subject's data, oldest first, from the subject index:
    /// bounded memory however long the log, `next` names where the following page starts.
    pub async fn subject_accesses(
        &self,
        ctx: &RequestCtx,
        subject: &str,
        after: u64,
        limit: u32,
    ) -> Result<proto::SubjectAccessList> {
        let mut ev = self.event(ctx, "audit.subject_accesses");
        let res = async {
            let log = self.readable_log(ctx)?;
            let id = crate::ids::SubjectId::parse(subject).ok_or_else(|| {
                Error::new(Code::InvalidId, "not a subject id (sub_ and 32 hex digits)")
            })?;
            if !(1..=1000).contains(&limit) {
                return Err(Error::out_of_range("`limit` must be 1 to 1000"));
            }
            ev.subject = Some(id.clone());
            let q = AuditQuery {
                subject: Some(id.to_string()),
                after_seq: after,
                limit,
                ..Default::default()
            };
            let page = self.store.find_audit_entries(&log, &q).await?;
            let next = (page.len() == limit as usize)
                .then(|| page.last().map(|e| e.seq))
                .flatten();
            let accesses = page
                .into_iter()
                .filter(|e| e.action.starts_with("record."))
                .map(|e| proto::SubjectAccess {
                    seq: e.seq,
                    time: e.time,
                    actor: e.actor,
                    action: e.action,
                    outcome: e.outcome,
                    purpose: e.purpose,
                    collection: e.collection,
                    records: e.records,
                    fields: e.fields,
                })
                .collect();
            Ok((
                proto::SubjectAccessList {
                    subject: id.to_string(),
                    accesses,
                    next,
                },
                vec![],
            ))
        }
        .await;
        self.conclude(ev, res).await
    }
}
