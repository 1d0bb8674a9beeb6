//! Register text is encrypted at rest: the body of every register entry and the free text of
//! declarations are sealed (AES-256-GCM) under a key derived from the root key, with every
//! other column of the row as associated data — so a row whose id, version, scope, author or
//! time was edited in the database no longer opens (an integrity error), and a body moved to
//! another row neither. Sealing happens in [`Vault::finish`]'s unit for every
//! `PutRegisterEntry` and `PutDeclaration`, so no register can forget it; reading goes through
//! [`Vault::register_entries`] and [`Vault::declarations`].

use base64::Engine;
use strongroom_crypto::{derive_key, open, seal, Aad, Key32};

use super::Vault;
use crate::audit::PLATFORM_LOG;
use crate::error::{Error, Result};
use crate::ids::TenantId;
use crate::rng::RngExt;
use crate::store::{DeclarationRow, Op, RegisterEntryRow};

/// Marks sealed text: `enc1:` and the base64 of the envelope.
const PREFIX: &str = "enc1:";

fn scope(t: Option<&TenantId>) -> &str {
    t.map_or(PLATFORM_LOG, TenantId::as_str)
}

fn entry_aad(r: &RegisterEntryRow) -> Aad {
    Aad::new("register-entry")
        .str(&r.register)
        .str(&r.id)
        .part(&r.version.to_be_bytes())
        .str(scope(r.tenant.as_ref()))
        .str(&r.recorded_by)
        .part(&r.recorded_at.to_be_bytes())
}

fn declaration_aad(d: &DeclarationRow, field: &str) -> Aad {
    Aad::new("declaration")
        .str(field)
        .str(&d.id)
        .part(&d.version.to_be_bytes())
        .str(scope(d.tenant.as_ref()))
        .str(&d.measure)
        // Whether it names an evidence document: removing the name is an edit too.
        .part(&[u8::from(d.evidence_name.is_some())])
        .part(d.evidence_sha256.as_ref().map_or(&[][..], |h| &h[..]))
        .part(&d.declared_at.to_be_bytes())
        .part(&d.review_by.to_be_bytes())
        .part(&[u8::from(d.withdrawn)])
        .str(&d.recorded_by)
        .part(&d.recorded_at.to_be_bytes())
}

impl Vault {
    fn register_key(&self) -> Key32 {
        derive_key(self.keys.root(), b"registers")
    }

    fn seal_text(&self, key: &Key32, aad: &Aad, text: &str) -> String {
        let sealed = seal(key, 0, self.rng.nonce(), aad, text.as_bytes());
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(sealed)
        )
    }

    fn open_text(key: &Key32, aad: &Aad, stored: &str) -> Result<String> {
        let b64 = stored.strip_prefix(PREFIX).ok_or_else(Error::integrity)?;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| Error::integrity())?;
        let plain = open(key, aad, &sealed).map_err(|_| Error::integrity())?;
        String::from_utf8(plain.to_vec()).map_err(|_| Error::integrity())
    }

    /// Seals the register text of `ops` in place.
    pub(super) fn seal_registers(&self, ops: &mut [Op]) {
        let mut key = None;
        for op in ops.iter_mut() {
            match op {
                Op::PutRegisterEntry(r) => {
                    let key = key.get_or_insert_with(|| self.register_key());
                    r.body = self.seal_text(key, &entry_aad(r), &r.body);
                }
                Op::PutDeclaration(d) => {
                    let key = key.get_or_insert_with(|| self.register_key());
                    d.statement =
                        self.seal_text(key, &declaration_aad(d, "statement"), &d.statement);
                    d.owner = self.seal_text(key, &declaration_aad(d, "owner"), &d.owner);
                    if let Some(n) = &d.evidence_name {
                        d.evidence_name =
                            Some(self.seal_text(key, &declaration_aad(d, "evidence_name"), n));
                    }
                }
                _ => {}
            }
        }
    }

    /// Every version of every entry of `register` in a scope (`None`: the platform's), by id then
    /// version, opened. A row that does not open (edited in the database) is an integrity error.
    pub async fn register_entries(
        &self,
        register: &str,
        tenant: Option<&TenantId>,
    ) -> Result<Vec<RegisterEntryRow>> {
        let key = self.register_key();
        let mut rows = self.store.find_register_entries(register, tenant).await?;
        for r in &mut rows {
            r.body = Self::open_text(&key, &entry_aad(r), &r.body)?;
        }
        Ok(rows)
    }

    /// Every version of every declaration of a scope, by id then version, opened.
    pub async fn declarations(&self, tenant: Option<&TenantId>) -> Result<Vec<DeclarationRow>> {
        let key = self.register_key();
        let mut rows = self.store.find_declarations(tenant).await?;
        for d in &mut rows {
            let statement = Self::open_text(&key, &declaration_aad(d, "statement"), &d.statement)?;
            let owner = Self::open_text(&key, &declaration_aad(d, "owner"), &d.owner)?;
            let evidence_name = match &d.evidence_name {
                Some(n) => Some(Self::open_text(
                    &key,
                    &declaration_aad(d, "evidence_name"),
                    n,
                )?),
                None => None,
            };
            d.statement = statement;
            d.owner = owner;
            d.evidence_name = evidence_name;
        }
        Ok(rows)
    }
}
