//! Records: create, read, update, soft delete, blind-index search, and their batch forms.
//! Every value is sealed under its data subject's key, bound to tenant, collection, record and field.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value};
use strongroom_crypto::{hmac_sha256, open, seal, Aad, Key32};
use strongroom_proto::{self as proto, CollectionGrant, Operation, Visibility};

use super::{RequestCtx, Vault};
use crate::audit::AuditEvent;
use crate::codec;
use crate::error::{quote_name, Code, Error, Result};
use crate::ids::{RecordId, SubjectId, TenantId};
use crate::keys::KeyRing;
use crate::policy::{authorize, Access};
use crate::rng::RngExt;
use crate::schema::{mask, normalise, parse_term, validate_value};
use crate::store::{CollectionRow, IndexEntry, Op, RecordRow, RecordState, RoleRow};

/// Version of subject DEKs (they are rewrapped on KEK rotation, never replaced).
pub(super) const DEK_VERSION: u32 = 1;
/// Default and largest page of search results.
const SEARCH_DEFAULT: u32 = 100;
pub(super) const SEARCH_MAX: u32 = 1000;
/// Longest application subject reference.
pub(super) const MAX_SUBJECT_REF: usize = 256;

/// A search term: text from a query string, or a JSON value from a request body.
#[derive(Debug, Clone)]
pub enum Term {
    Text(String),
    Value(Value),
}

/// A checked request against one collection.
pub(super) struct Prepared {
    pub(super) tenant: TenantId,
    col: CollectionRow,
    access: Access,
    /// The request's purpose and its lawful basis in this collection, if it declares one.
    pub(super) purpose: Option<String>,
    pub(super) basis: Option<proto::LawfulBasis>,
    /// Who asks (as audit entries name them).
    pub(super) actor: String,
}

pub(super) fn field_aad(
    tenant: &TenantId,
    collection: &str,
    record: &RecordId,
    field: &str,
) -> Aad {
    Aad::new("field")
        .str(tenant.as_str())
        .str(collection)
        .str(record.as_str())
        .str(field)
}

fn unknown_field(name: &str) -> Error {
    Error::new(
        Code::UnknownField,
        format!(
            "field {} is not in the collection's schema",
            quote_name(name)
        ),
    )
}

fn parse_record_id(id: &str) -> Result<RecordId> {
    RecordId::parse(id)
        .ok_or_else(|| Error::new(Code::InvalidId, "not a record id (rec_ and 32 hex digits)"))
}

impl Vault {
    pub(super) async fn prepare(
        &self,
        ctx: &RequestCtx,
        ev: &mut AuditEvent,
        collection: &str,
        op: Operation,
    ) -> Result<Prepared> {
        let tenant = self.tenant_of(ctx)?;
        let col = self.load_collection(&tenant, collection, ev).await?;
        if let Some(p) = ctx.purpose.as_deref() {
            if col.def.purposes.iter().any(|d| d == p) {
                ev.purpose = Some(p.to_owned());
            }
        }
        let roles = self.load_roles(&tenant, &ctx.principal.roles).await?;
        let grants: Vec<&CollectionGrant> = roles
            .iter()
            .filter_map(|r| r.def.collections.get(&col.name))
            .collect();
        let access = authorize(&col.def, &grants, op, ctx.purpose.as_deref())?;
        let basis = ctx
            .purpose
            .as_ref()
            .and_then(|p| col.def.bases.get(p))
            .copied();
        Ok(Prepared {
            tenant,
            col,
            access,
            purpose: ctx.purpose.clone(),
            basis,
            actor: ctx.principal.actor(),
        })
    }

    async fn load_roles(&self, tenant: &TenantId, names: &[String]) -> Result<Vec<RoleRow>> {
        let mut out = Vec::with_capacity(names.len());
        for n in names.iter().filter(|n| !crate::policy::is_builtin(n)) {
            let key = (tenant.clone(), n.clone());
            let found = self
                .role_cache
                .get_or_load(key, self.store.find_role(tenant, n))
                .await?;
            out.extend(found);
        }
        Ok(out)
    }

    /// Validates the fields of a new record: `(schema index, canonical value)` in schema order.
    fn check_new_fields(
        col: &CollectionRow,
        fields: Map<String, Value>,
    ) -> Result<Vec<(usize, Value)>> {
        let mut out = Vec::with_capacity(fields.len());
        for (name, value) in &fields {
            let idx = col
                .def
                .fields
                .iter()
                .position(|f| &f.name == name)
                .ok_or_else(|| unknown_field(name))?;
            if !value.is_null() {
                out.push((idx, validate_value(&col.def.fields[idx], value)?));
            }
        }
        for (idx, f) in col.def.fields.iter().enumerate() {
            if f.required && !out.iter().any(|(i, _)| *i == idx) {
                return Err(Error::invalid(format!("field `{}` is required", f.name)));
            }
        }
        out.sort_by_key(|(i, _)| *i);
        Ok(out)
    }

    fn seal_value(
        &self,
        dek: &Key32,
        tenant: &TenantId,
        collection: &str,
        record: &RecordId,
        field: &str,
        value: &Value,
    ) -> Vec<u8> {
        let plain = serde_json::to_vec(value).unwrap_or_default();
        seal(
            dek,
            DEK_VERSION,
            self.rng.nonce(),
            &field_aad(tenant, collection, record, field),
            &plain,
        )
    }

    fn index_hash(kek: &Key32, col: &CollectionRow, idx: usize, value: &Value) -> [u8; 32] {
        let f = &col.def.fields[idx];
        hmac_sha256(
            &KeyRing::index_key(kek, &col.name, &f.name),
            &normalise(f, value),
        )
    }

    /// Finds or creates the data subject of a new record. New subjects come with their insert op.
    async fn resolve_subject(
        &self,
        tenant: &TenantId,
        subject: Option<&str>,
        subject_ref: Option<&str>,
        fresh: &mut HashMap<[u8; 32], (SubjectId, Arc<Key32>)>,
        ops: &mut Vec<Op>,
    ) -> Result<(SubjectId, Arc<Key32>)> {
        match (subject, subject_ref) {
            (Some(_), Some(_)) => Err(Error::new(
                Code::InvalidRequest,
                "give `subject` or `subject_ref`, not both",
            )),
            (Some(s), None) => {
                let id = SubjectId::parse(s)
                    .ok_or_else(|| Error::new(Code::InvalidId, "`subject` is not a subject id"))?;
                let Some(found) = self.store.find_subject(tenant, &id).await? else {
                    return Err(Error::new(
                        Code::UnknownSubject,
                        "no such data subject in this tenant",
                    ));
                };
                unrestricted(found.flags)?;
                let dek = self.subject_dek(tenant, &id).await?;
                Ok((id, dek))
            }
            (None, r) => {
                let (kek_version, kek) = self.current_kek(tenant).await?;
                let ref_index = match r {
                    Some(r) if r.is_empty() || r.len() > MAX_SUBJECT_REF => {
                        return Err(Error::out_of_range(format!(
                            "`subject_ref` is 1 to {MAX_SUBJECT_REF} bytes"
                        )));
                    }
                    Some(r) => Some(hmac_sha256(&KeyRing::subject_ref_key(&kek), r.as_bytes())),
                    None => None,
                };
                if let Some(ix) = &ref_index {
                    if let Some((id, dek)) = fresh.get(ix) {
                        return Ok((id.clone(), dek.clone()));
                    }
                    if let Some(row) = self.store.find_subject_by_ref(tenant, ix).await? {
                        unrestricted(row.flags)?;
                        let dek = self.subject_dek(tenant, &row.id).await?;
                        return Ok((row.id, dek));
                    }
                }
                let (row, dek) = self.keys.new_subject(
                    self.rng.as_ref(),
                    tenant,
                    kek_version,
                    &kek,
                    ref_index,
                    self.now(),
                );
                let id = row.id.clone();
                if let Some(ix) = ref_index {
                    fresh.insert(ix, (id.clone(), dek.clone()));
                }
                ops.push(Op::InsertSubject(row));
                Ok((id, dek))
            }
        }
    }

    /// Builds the insert of one new record.
    async fn new_record(
        &self,
        prep: &Prepared,
        req: proto::CreateRecord,
        fresh: &mut HashMap<[u8; 32], (SubjectId, Arc<Key32>)>,
        ops: &mut Vec<Op>,
    ) -> Result<(RecordId, SubjectId)> {
        let values = Self::check_new_fields(&prep.col, req.fields)?;
        let (subject, dek) = self
            .resolve_subject(
                &prep.tenant,
                req.subject.as_deref(),
                req.subject_ref.as_deref(),
                fresh,
                ops,
            )
            .await?;
        self.lawful_new(prep, &subject, req.consent, ops).await?;
        let (_, kek) = self.current_kek(&prep.tenant).await?;
        let id = RecordId::generate_at(self.rng.as_ref(), self.now());
        let mut sealed = Vec::with_capacity(values.len());
        let mut index = Vec::new();
        for (idx, value) in &values {
            let f = &prep.col.def.fields[*idx];
            sealed.push((
                f.name.clone(),
                self.seal_value(&dek, &prep.tenant, &prep.col.name, &id, &f.name, value),
            ));
            if f.searchable {
                index.push(IndexEntry {
                    field: f.name.clone(),
                    hash: Self::index_hash(&kek, &prep.col, *idx, value),
                });
            }
        }
        let now = self.now();
        let row = RecordRow {
            tenant: prep.tenant.clone(),
            collection: prep.col.name.clone(),
            id: id.clone(),
            subject: subject.clone(),
            version: 1,
            state: RecordState::Active,
            created_at: now,
            updated_at: now,
            data: codec::encode(&sealed),
            subject_flags: 0,
        };
        ops.push(Op::InsertRecord { row, index });
        Ok((id, subject))
    }

    /// Stores a record for a data subject.
    pub async fn create_record(
        &self,
        ctx: &RequestCtx,
        collection: &str,
        req: proto::CreateRecord,
    ) -> Result<proto::CreatedRecord> {
        let mut ev = self.event(ctx, "record.create");
        let res = async {
            let prep = self
                .prepare(ctx, &mut ev, collection, Operation::Create)
                .await?;
            ev.fields = req
                .fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k.clone())
                .collect();
            let mut ops = Vec::new();
            let (id, subject) = self
                .new_record(&prep, req, &mut HashMap::new(), &mut ops)
                .await?;
            ev.records.push(id.clone());
            ev.subject = Some(subject.clone());
            Ok((
                proto::CreatedRecord {
                    id: id.to_string(),
                    subject: subject.to_string(),
                    version: 1,
                },
                ops,
            ))
        }
        .await;
        if res.is_err() {
            ev.fields.clear();
        }
        self.conclude(ev, res).await
    }

    /// Stores up to `max_batch` records in one unit: all or none.
    pub async fn batch_create(
        &self,
        ctx: &RequestCtx,
        collection: &str,
        req: proto::BatchCreate,
    ) -> Result<proto::BatchCreated> {
        let mut ev = self.event(ctx, "record.batch_create");
        let res = async {
            let prep = self
                .prepare(ctx, &mut ev, collection, Operation::Create)
                .await?;
            if req.records.is_empty() || req.records.len() > self.config.max_batch {
                return Err(Error::out_of_range(format!(
                    "a batch holds 1 to {} records",
                    self.config.max_batch
                )));
            }
            let mut ops = Vec::with_capacity(req.records.len() * 2);
            let mut fresh = HashMap::new();
            let mut out = Vec::with_capacity(req.records.len());
            let mut fields = BTreeSet::new();
            for (i, r) in req.records.into_iter().enumerate() {
                fields.extend(
                    r.fields
                        .iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, _)| k.clone()),
                );
                let (id, subject) = self
                    .new_record(&prep, r, &mut fresh, &mut ops)
                    .await
                    .map_err(|e| Error::new(e.code, format!("record {i}: {}", e.message)))?;
                ev.records.push(id.clone());
                ev.objects.push(subject.to_string());
                out.push(proto::CreatedRecord {
                    id: id.to_string(),
                    subject: subject.to_string(),
                    version: 1,
                });
            }
            ev.objects.sort();
            ev.objects.dedup();
            ev.fields = fields.into_iter().collect();
            Ok((proto::BatchCreated { records: out }, ops))
        }
        .await;
        if res.is_err() {
            ev.records.clear();
            ev.objects.clear();
            ev.fields.clear();
        }
        self.conclude(ev, res).await
    }

    /// Decrypts what the caller may see of a record. Returns the view and the fields shown.
    async fn view(&self, prep: &Prepared, row: &RecordRow) -> Result<(proto::Record, Vec<String>)> {
        let mut fields = Map::new();
        let mut shown = Vec::new();
        let visible = prep.access.fields.iter().any(|v| *v != Visibility::None);
        if visible {
            let dek = self.subject_dek(&prep.tenant, &row.subject).await?;
            for (name, env) in codec::decode(&row.data)? {
                let Some(idx) = prep.col.def.fields.iter().position(|f| f.name == name) else {
                    continue;
                };
                let vis = prep.access.fields[idx];
                if vis == Visibility::None {
                    continue;
                }
                let plain = open(
                    &dek,
                    &field_aad(&prep.tenant, &prep.col.name, &row.id, &name),
                    &env,
                )
                .map_err(|_| Error::integrity())?;
                let value: Value =
                    serde_json::from_slice(&plain).map_err(|_| Error::integrity())?;
                let value = match vis {
                    Visibility::Plain => value,
                    _ => mask(prep.col.def.fields[idx].mask, &value),
                };
                shown.push(name.clone());
                fields.insert(name, value);
            }
        }
        let rec = proto::Record {
            id: row.id.to_string(),
            collection: row.collection.clone(),
            subject: row.subject.to_string(),
            version: row.version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            fields,
        };
        Ok((rec, shown))
    }

    /// Whether the record's stored value of field `idx` (decrypted) normalises to `expected`:
    /// the check that a blind-index hit really is a match, whatever the index table holds.
    async fn field_matches(
        &self,
        prep: &Prepared,
        row: &RecordRow,
        idx: usize,
        expected: &[u8],
    ) -> Result<bool> {
        let f = &prep.col.def.fields[idx];
        let Some((_, env)) = codec::decode(&row.data)?
            .into_iter()
            .find(|(name, _)| *name == f.name)
        else {
            return Ok(false);
        };
        let dek = self.subject_dek(&prep.tenant, &row.subject).await?;
        let plain = open(
            &dek,
            &field_aad(&prep.tenant, &prep.col.name, &row.id, &f.name),
            &env,
        )
        .map_err(|_| Error::integrity())?;
        let value: Value = serde_json::from_slice(&plain).map_err(|_| Error::integrity())?;
        Ok(strongroom_crypto::ct_eq(&normalise(f, &value), expected))
    }

    /// A live record the request may process (see [`Vault::processable`]), its subject named
    /// in the entry whatever the verdict. For a purpose based on consent the subject's consent
    /// is read in the same statement as the record.
    async fn load_checked(
        &self,
        prep: &Prepared,
        id: &RecordId,
        ev: &mut crate::audit::AuditEvent,
    ) -> Result<RecordRow> {
        if let (Some(proto::LawfulBasis::Consent), Some(purpose)) =
            (prep.basis, prep.purpose.as_deref())
        {
            let (row, consent) = self
                .store
                .find_record_consent(&prep.tenant, &prep.col.name, id, purpose)
                .await?
                .filter(|(r, _)| r.state == RecordState::Active)
                .ok_or_else(|| Error::not_found("record"))?;
            ev.subject = Some(row.subject.clone());
            unrestricted(row.subject_flags)?;
            super::consents::consent_live(purpose, consent)?;
            return Ok(row);
        }
        let row = self.load_active(prep, id).await?;
        ev.subject = Some(row.subject.clone());
        self.processable(prep, &row).await?;
        Ok(row)
    }

    async fn load_active(&self, prep: &Prepared, id: &RecordId) -> Result<RecordRow> {
        self.store
            .find_record(&prep.tenant, &prep.col.name, id)
            .await?
            .filter(|r| r.state == RecordState::Active)
            .ok_or_else(|| Error::not_found("record"))
    }

    /// Reads one record, fields shown as the caller's roles allow for the stated purpose.
    pub async fn get_record(
        &self,
        ctx: &RequestCtx,
        collection: &str,
        id: &str,
    ) -> Result<proto::Record> {
        let mut ev = self.event(ctx, "record.read");
        let res = async {
            let id = parse_record_id(id)?;
            ev.records.push(id.clone());
            let prep = self
                .prepare(ctx, &mut ev, collection, Operation::Read)
                .await?;
            let row = self.load_checked(&prep, &id, &mut ev).await?;
            let (rec, shown) = self.view(&prep, &row).await?;
            ev.fields = shown;
            Ok((rec, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// A record's earlier versions (kept at every update), oldest first, each shown as the
    /// caller's role allows for the stated purpose; the role needs the `history` operation.
    /// Audited as `record.history`.
    pub async fn record_history(
        &self,
        ctx: &RequestCtx,
        collection: &str,
        id: &str,
    ) -> Result<proto::RecordHistory> {
        let mut ev = self.event(ctx, "record.history");
        let res = async {
            let id = parse_record_id(id)?;
            ev.records.push(id.clone());
            let prep = self
                .prepare(ctx, &mut ev, collection, Operation::History)
                .await?;
            let row = self.load_checked(&prep, &id, &mut ev).await?;
            let mut versions = Vec::new();
            let mut shown_all = std::collections::BTreeSet::new();
            for (version, updated_at, data) in
                self.store.find_record_history(&prep.tenant, &id).await?
            {
                let old = RecordRow {
                    version,
                    updated_at,
                    data,
                    ..row.clone()
                };
                let (rec, shown) = self.view(&prep, &old).await?;
                shown_all.extend(shown);
                versions.push(rec);
            }
            versions.sort_by_key(|r| r.version);
            ev.fields = shown_all.into_iter().collect();
            Ok((
                proto::RecordHistory {
                    id: id.to_string(),
                    versions,
                },
                vec![],
            ))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Reads many records at once; ids not found are listed as missing.
    pub async fn batch_read(
        &self,
        ctx: &RequestCtx,
        collection: &str,
        req: proto::BatchRead,
    ) -> Result<proto::BatchReadResult> {
        let mut ev = self.event(ctx, "record.batch_read");
        let res = async {
            let prep = self
                .prepare(ctx, &mut ev, collection, Operation::Read)
                .await?;
            if req.ids.is_empty() || req.ids.len() > self.config.max_batch {
                return Err(Error::out_of_range(format!(
                    "a batch names 1 to {} ids",
                    self.config.max_batch
                )));
            }
            let ids = req
                .ids
                .iter()
                .map(|i| parse_record_id(i))
                .collect::<Result<Vec<_>>>()?;
            let mut records = Vec::with_capacity(ids.len());
            let mut missing = Vec::new();
            let mut fields = BTreeSet::new();
            for id in ids {
                // One restricted subject's record refuses the batch (the entry names that
                // subject): nothing of a restricted subject is processed.
                match self.load_active(&prep, &id).await {
                    Ok(row) => {
                        if let Err(e) = self.processable(&prep, &row).await {
                            ev.records.push(id);
                            ev.subject = Some(row.subject);
                            return Err(e);
                        }
                        let (rec, shown) = self.view(&prep, &row).await?;
                        fields.extend(shown);
                        ev.records.push(id);
                        ev.objects.push(row.subject.to_string());
                        records.push(rec);
                    }
                    Err(e) if e.code == Code::NotFound => missing.push(id.to_string()),
                    Err(e) => return Err(e),
                }
            }
            ev.fields = fields.into_iter().collect();
            ev.objects.sort();
            ev.objects.dedup();
            Ok((proto::BatchReadResult { records, missing }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Changes some fields of a record; the previous version is kept in its history.
    pub async fn update_record(
        &self,
        ctx: &RequestCtx,
        collection: &str,
        id: &str,
        req: proto::UpdateRecord,
    ) -> Result<proto::CreatedRecord> {
        let mut ev = self.event(ctx, "record.update");
        let res = async {
            let prep = self
                .prepare(ctx, &mut ev, collection, Operation::Update)
                .await?;
            let id = parse_record_id(id)?;
            if req.fields.is_empty() {
                return Err(Error::out_of_range("name at least one field to change"));
            }
            let mut changes = Vec::with_capacity(req.fields.len());
            for (name, value) in &req.fields {
                let idx = prep
                    .col
                    .def
                    .fields
                    .iter()
                    .position(|f| &f.name == name)
                    .ok_or_else(|| unknown_field(name))?;
                let f = &prep.col.def.fields[idx];
                if value.is_null() {
                    if f.required {
                        return Err(Error::invalid(format!(
                            "field `{}` is required and cannot be cleared",
                            f.name
                        )));
                    }
                    changes.push((idx, None));
                } else {
                    changes.push((idx, Some(validate_value(f, value)?)));
                }
            }
            ev.records.push(id.clone());
            let row = self.load_checked(&prep, &id, &mut ev).await?;
            let dek = self.subject_dek(&prep.tenant, &row.subject).await?;
            let (_, kek) = self.current_kek(&prep.tenant).await?;
            let mut sealed = codec::decode(&row.data)?;
            let mut reindex = Vec::new();
            for (idx, value) in &changes {
                let f = &prep.col.def.fields[*idx];
                sealed.retain(|(n, _)| n != &f.name);
                if let Some(v) = value {
                    sealed.push((
                        f.name.clone(),
                        self.seal_value(&dek, &prep.tenant, &prep.col.name, &id, &f.name, v),
                    ));
                }
                if f.searchable {
                    reindex.push((
                        f.name.clone(),
                        value
                            .as_ref()
                            .map(|v| Self::index_hash(&kek, &prep.col, *idx, v)),
                    ));
                }
            }
            sealed.sort_by_key(|(n, _)| prep.col.def.fields.iter().position(|f| &f.name == n));
            ev.fields = changes
                .iter()
                .map(|(i, _)| prep.col.def.fields[*i].name.clone())
                .collect();
            let next = RecordRow {
                version: row.version + 1,
                updated_at: self.now(),
                data: codec::encode(&sealed),
                ..row
            };
            let out = proto::CreatedRecord {
                id: id.to_string(),
                subject: next.subject.to_string(),
                version: next.version,
            };
            let mut ops = Vec::with_capacity(2);
            // The collection's history depth: the oldest versions beyond it go now.
            if let Some(depth) = prep.col.def.history_depth {
                ops.push(Op::PruneHistory {
                    tenant: prep.tenant.clone(),
                    id: next.id.clone(),
                    below: next.version.saturating_sub(u64::from(depth)),
                });
            }
            ops.insert(0, Op::UpdateRecord { row: next, reindex });
            Ok((out, ops))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Soft-deletes a record: it is blocked (invisible to every read) until purged.
    pub async fn delete_record(&self, ctx: &RequestCtx, collection: &str, id: &str) -> Result<()> {
        let mut ev = self.event(ctx, "record.delete");
        let res = async {
            let id = parse_record_id(id)?;
            ev.records.push(id.clone());
            let prep = self
                .prepare(ctx, &mut ev, collection, Operation::Delete)
                .await?;
            let row = self.load_checked(&prep, &id, &mut ev).await?;
            let op = Op::BlockRecord {
                tenant: prep.tenant.clone(),
                id,
                expected_version: row.version,
                at: self.now(),
            };
            Ok(((), vec![op]))
        }
        .await;
        self.conclude(ev, res).await
    }

    /// Finds active records whose searchable field equals a value, through its blind index.
    pub async fn search(
        &self,
        ctx: &RequestCtx,
        collection: &str,
        terms: Vec<(String, Term)>,
        limit: Option<u32>,
    ) -> Result<proto::RecordList> {
        let mut ev = self.event(ctx, "record.search");
        let res = async {
            let prep = self
                .prepare(ctx, &mut ev, collection, Operation::Search)
                .await?;
            let limit = limit.unwrap_or(SEARCH_DEFAULT);
            if !(1..=SEARCH_MAX).contains(&limit) {
                return Err(Error::out_of_range(format!("limit is 1 to {SEARCH_MAX}")));
            }
            let [(name, term)] = <[(String, Term); 1]>::try_from(terms).map_err(|_| {
                Error::new(
                    Code::InvalidRequest,
                    "search by exactly one searchable field, e.g. ?email=...",
                )
            })?;
            let idx = prep
                .col
                .def
                .fields
                .iter()
                .position(|f| f.name == name)
                .ok_or_else(|| unknown_field(&name))?;
            let f = &prep.col.def.fields[idx];
            if !f.searchable {
                return Err(Error::new(
                    Code::FieldNotSearchable,
                    format!("field `{}` is not searchable", f.name),
                ));
            }
            let value = match term {
                Term::Text(t) => parse_term(f, &t)?,
                Term::Value(v) => validate_value(f, &v)?,
            };
            let (_, kek) = self.current_kek(&prep.tenant).await?;
            let hash = Self::index_hash(&kek, &prep.col, idx, &value);
            let rows = self
                .store
                .find_records_by_index(&prep.tenant, &prep.col.name, &f.name, &hash, limit)
                .await?;
            // The index is only a hint: each hit is checked against its decrypted value, and
            // a hit that does not match (a tampered or stale index row) is dropped and reported.
            let expected = normalise(f, &value);
            let mut matching = Vec::with_capacity(rows.len());
            let mut mismatched = Vec::new();
            // Records of subjects that may not be processed for this purpose (restricted,
            // without consent, objected) are left out of the answer, counted in the entry.
            let before = rows.len();
            let mut allowed = Vec::with_capacity(before);
            for r in rows {
                if self.processable(&prep, &r).await.is_ok() {
                    allowed.push(r);
                }
            }
            let rows = allowed;
            let withheld = before - rows.len();
            for row in rows {
                if self.field_matches(&prep, &row, idx, &expected).await? {
                    matching.push(row);
                } else {
                    mismatched.push(row.id);
                }
            }
            let rows = matching;
            let mut fields = BTreeSet::from([f.name.clone()]);
            let mut records = Vec::with_capacity(rows.len());
            for row in &rows {
                let (rec, shown) = self.view(&prep, row).await?;
                fields.extend(shown);
                ev.records.push(row.id.clone());
                records.push(rec);
            }
            if let [only] = rows.as_slice() {
                ev.subject = Some(only.subject.clone());
            } else {
                ev.objects = rows.iter().map(|r| r.subject.to_string()).collect();
                ev.objects.sort();
                ev.objects.dedup();
            }
            ev.fields = fields.into_iter().collect();
            if withheld > 0 {
                ev.objects.push(format!("withheld:{withheld}"));
            }
            for id in &mismatched {
                tracing::error!(alert = "index_mismatch", record = %id, collection = %prep.col.name,
                    "a blind-index entry points at a record whose value does not match; the record was left out");
                ev.objects.push(format!("index_mismatch:{id}"));
            }
            Ok((proto::RecordList { records }, vec![]))
        }
        .await;
        self.conclude(ev, res).await
    }
}

/// Refuses a data operation on a subject whose processing is restricted (Art. 18).
pub(super) fn unrestricted(subject_flags: u32) -> Result<()> {
    if subject_flags & crate::store::SUBJECT_RESTRICTED != 0 {
        Err(Error::new(
            Code::SubjectRestricted,
            "processing of this data subject is restricted: only the privacy officer's export and erasure are possible until the restriction is lifted",
        ))
    } else {
        Ok(())
    }
}
