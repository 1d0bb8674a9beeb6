//! Lawful bases, the consent register and objections (GDPR Art. 6, 7, 21).
//!
//! A collection states the lawful basis of each purpose (`bases`). For a purpose based on
//! `consent`, every data operation needs the subject's live consent to it — the latest change in
//! the subject's consent register is `given` — else `consent_required`. For a purpose based on
//! `legitimate_interest`, a subject who objected is refused (`subject_objected`); the objection
//! also sets a flag on the subject, read with every record, so the register is consulted only
//! for subjects who ever objected. Other bases need no check. The register keeps every change
//! (state, time, source, the hash of the text agreed to, who recorded it); each change is also
//! an audit entry (`consent.record`), which is what makes the register's history tamper-evident.

use strongroom_crypto::hex;
use strongroom_proto as proto;
use strongroom_proto::{ConsentStateName, LawfulBasis};

use super::records::{unrestricted, Prepared};
use super::{RequestCtx, Vault};
use crate::error::{Code, Error, Result};
use crate::ids::{SubjectId, TenantId};
use crate::policy::{ROLE_ADMIN, ROLE_PRIVACY_OFFICER};
use crate::store::{ConsentRow, ConsentState, Op, RecordRow, SUBJECT_OBJECTED};

/// Longest `source` of a consent change.
const MAX_SOURCE: usize = 128;

fn state_name(s: ConsentState) -> ConsentStateName {
    match s {
        ConsentState::Given => ConsentStateName::Given,
        ConsentState::Withdrawn => ConsentStateName::Withdrawn,
        ConsentState::Objected => ConsentStateName::Objected,
    }
}

fn stored_state(s: ConsentStateName) -> ConsentState {
    match s {
        ConsentStateName::Given => ConsentState::Given,
        ConsentStateName::Withdrawn => ConsentState::Withdrawn,
        ConsentStateName::Objected => ConsentState::Objected,
    }
}

pub(super) fn entry_view(c: &ConsentRow) -> proto::ConsentEntry {
    proto::ConsentEntry {
        purpose: c.purpose.clone(),
        seq: c.seq,
        state: state_name(c.state),
        at: c.at,
        source: c.source.clone(),
        text_sha256: c.text_hash.map(|h| hex(&h)),
        recorded_by: c.recorded_by.clone(),
    }
}

/// A `source`: 1 to 128 characters, no control characters.
fn check_source(source: &str) -> Result<()> {
    if source.is_empty()
        || source.chars().count() > MAX_SOURCE
        || source.chars().any(char::is_control)
    {
        return Err(Error::out_of_range(format!(
            "`source` is 1 to {MAX_SOURCE} characters without control characters"
        )));
    }
    Ok(())
}

/// A SHA-256 in lowercase hex (one spelling only).
fn parse_hash(h: &str) -> Result<[u8; 32]> {
    let ok = h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let bytes = ok
        .then(|| strongroom_crypto::unhex(h))
        .flatten()
        .and_then(|v| <[u8; 32]>::try_from(v).ok());
    bytes.ok_or_else(|| {
        Error::new(
            Code::InvalidRequest,
            "`text_sha256` is a SHA-256 in 64 lowercase hex digits",
        )
    })
}

/// Refuses a purpose based on consent unless the subject's latest change is `given`.
pub(super) fn consent_live(purpose: &str, latest: Option<ConsentState>) -> Result<()> {
    if latest == Some(ConsentState::Given) {
        Ok(())
    } else {
        Err(Error::new(
            Code::ConsentRequired,
            format!("purpose `{purpose}` is based on consent, and this data subject's consent to it is not given (or was withdrawn)"),
        ))
    }
}

impl Vault {
    /// Whether `row`'s subject may be processed for the prepared request's purpose: not
    /// restricted, with live consent where the purpose is based on consent, not objected to
    /// where it is based on legitimate interest.
    pub(super) async fn processable(&self, prep: &Prepared, row: &RecordRow) -> Result<()> {
        unrestricted(row.subject_flags)?;
        self.lawful(prep, &row.subject, row.subject_flags).await
    }

    async fn lawful(&self, prep: &Prepared, subject: &SubjectId, flags: u32) -> Result<()> {
        let (Some(basis), Some(purpose)) = (prep.basis, prep.purpose.as_deref()) else {
            return Ok(());
        };
        match basis {
            LawfulBasis::Consent => {
                let state = self
                    .store
                    .find_consent(&prep.tenant, subject, purpose)
                    .await?
                    .map(|c| c.state);
                consent_live(purpose, state)
            }
            LawfulBasis::LegitimateInterest if flags & SUBJECT_OBJECTED != 0 => {
                let objected = self
                    .store
                    .find_consent(&prep.tenant, subject, purpose)
                    .await?
                    .is_some_and(|c| c.state == ConsentState::Objected);
                if objected {
                    Err(Error::new(
                        Code::SubjectObjected,
                        format!("this data subject objected to purpose `{purpose}`"),
                    ))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// The check for a new record: consent given with it is recorded in the same unit (once
    /// per subject and purpose in a batch); otherwise the subject must already be processable.
    pub(super) async fn lawful_new(
        &self,
        prep: &Prepared,
        subject: &SubjectId,
        consent: Option<proto::GivenConsent>,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        let Some(given) = consent else {
            if prep.basis.is_none() {
                return Ok(());
            }
            let flags = self
                .store
                .find_subject(&prep.tenant, subject)
                .await?
                .map_or(0, |s| s.flags);
            return self.lawful(prep, subject, flags).await;
        };
        let (Some(LawfulBasis::Consent), Some(purpose)) = (prep.basis, prep.purpose.as_deref())
        else {
            return Err(Error::new(
                Code::ValidationFailed,
                "`consent` is given with a record only for a purpose the collection bases on consent",
            ));
        };
        check_source(&given.source)?;
        let hash = parse_hash(&given.text_sha256)?;
        let earlier = ops.iter().any(|op| {
            matches!(op, Op::RecordConsent(c) if &c.subject == subject && c.purpose == purpose)
        });
        if earlier {
            return Ok(());
        }
        ops.push(Op::RecordConsent(ConsentRow {
            tenant: prep.tenant.clone(),
            subject: subject.clone(),
            purpose: purpose.to_owned(),
            seq: 0,
            state: ConsentState::Given,
            at: self.now(),
            source: given.source,
            text_hash: Some(hash),
            recorded_by: prep.actor.clone(),
        }));
        Ok(())
    }

    /// The basis some collection of the tenant gives `purpose` (`consent` wins if several do,
    /// then `legitimate_interest`), and whether the caller's roles use the purpose.
    async fn purpose_basis(
        &self,
        ctx: &RequestCtx,
        tenant: &TenantId,
        purpose: &str,
    ) -> Result<(Option<LawfulBasis>, bool)> {
        let mut found = None;
        for c in self.store.find_collections(tenant).await? {
            match c.def.bases.get(purpose) {
                Some(LawfulBasis::Consent) => found = Some(LawfulBasis::Consent),
                Some(LawfulBasis::LegitimateInterest) if found.is_none() => {
                    found = Some(LawfulBasis::LegitimateInterest)
                }
                _ => {}
            }
        }
        let mut uses = false;
        for name in ctx
            .principal
            .roles
            .iter()
            .filter(|n| !crate::policy::is_builtin(n))
        {
            if let Some(role) = self.store.find_role(tenant, name).await? {
                uses |= role
                    .def
                    .collections
                    .values()
                    .any(|g| g.purposes.iter().any(|p| p == purpose));
            }
        }
        Ok((found, uses))
    }

    /// Records a change of a subject's consent to a purpose, or an objection to one: the
    /// privacy officer, the tenant's admin, or an application whose roles use the purpose.
    /// Audited as `consent.record` (subject, purpose, state; never the source).
    pub async fn record_consent(
        &self,
        ctx: &RequestCtx,
        subject: &str,
        req: proto::ConsentChange,
    ) -> Result<proto::ConsentEntry> {
        let mut ev = self.event(ctx, "consent.record");
        let res = async {
            let subject = SubjectId::parse(subject)
                .ok_or_else(|| Error::new(Code::InvalidId, "not a subject id"))?;
            ev.subject = Some(subject.clone());
            let tenant = self.tenant_of(ctx)?;
            crate::schema::check_name("purpose", &req.purpose)?;
            ev.purpose = Some(req.purpose.clone());
            check_source(&req.source)?;
            let hash = req.text_sha256.as_deref().map(parse_hash).transpose()?;
            let (basis, uses) = self.purpose_basis(ctx, &tenant, &req.purpose).await?;
            match (req.state, basis) {
                (ConsentStateName::Given | ConsentStateName::Withdrawn, Some(LawfulBasis::Consent)) => {}
                (ConsentStateName::Objected, Some(LawfulBasis::LegitimateInterest)) => {}
                (ConsentStateName::Objected, _) => {
                    return Err(Error::new(
                        Code::UnknownPurpose,
                        format!("no collection of this tenant bases purpose `{}` on legitimate interest: there is nothing to object to", req.purpose),
                    ))
                }
                _ => {
                    return Err(Error::new(
                        Code::UnknownPurpose,
                        format!("no collection of this tenant bases purpose `{}` on consent", req.purpose),
                    ))
                }
            }
            let p = &ctx.principal;
            if !(uses || p.has_role(ROLE_PRIVACY_OFFICER) || p.has_role(ROLE_ADMIN)) {
                return Err(Error::forbidden(
                    "recording consent needs a role that uses the purpose, or the tenant's `privacy_officer` or `admin`",
                ));
            }
            if req.state == ConsentStateName::Given && hash.is_none() {
                return Err(Error::invalid(
                    "consent given names the text agreed to: `text_sha256`",
                ));
            }
            if self.store.find_subject(&tenant, &subject).await?.is_none() {
                return Err(Error::new(Code::UnknownSubject, "no such data subject"));
            }
            ev.objects = vec![format!("state:{}", state_word(req.state))];
            // The store gives it the next number in the subject's and purpose's sequence.
            let row = ConsentRow {
                tenant,
                subject,
                purpose: req.purpose.clone(),
                seq: 0,
                state: stored_state(req.state),
                at: self.now(),
                source: req.source.clone(),
                text_hash: hash,
                recorded_by: ctx.principal.actor(),
            };
            Ok(((row.tenant.clone(), row.subject.clone()), vec![Op::RecordConsent(row)]))
        }
        .await;
        let (tenant, subject) = self.conclude(ev, res).await?;
        let latest = self
            .store
            .find_consent(&tenant, &subject, &req.purpose)
            .await?
            .ok_or_else(Error::integrity)?;
        Ok(entry_view(&latest))
    }

    /// A subject's consent register (the privacy officer or the admin). Audited as
    /// `consent.read`.
    pub async fn subject_consents(
        &self,
        ctx: &RequestCtx,
        subject: &str,
    ) -> Result<proto::SubjectConsents> {
        let mut ev = self.event(ctx, "consent.read");
        let res = async {
            let subject = SubjectId::parse(subject)
                .ok_or_else(|| Error::new(Code::InvalidId, "not a subject id"))?;
            ev.subject = Some(subject.clone());
            let tenant = self.privacy_officer(ctx, true)?;
            if self.store.find_subject(&tenant, &subject).await?.is_none() {
                return Err(Error::new(Code::UnknownSubject, "no such data subject"));
            }
            let entries = self
                .store
                .find_consents(&tenant, &subject)
                .await?
                .iter()
                .map(entry_view)
                .collect();
            Ok((
                proto::SubjectConsents {
                    subject: subject.to_string(),
                    entries,
                },
                vec![],
            ))
        }
        .await;
        self.conclude(ev, res).await
    }
}

fn state_word(s: ConsentStateName) -> &'static str {
    match s {
        ConsentStateName::Given => "given",
        ConsentStateName::Withdrawn => "withdrawn",
        ConsentStateName::Objected => "objected",
    }
}
