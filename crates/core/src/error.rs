//! The one domain error: a stable machine-readable [`Code`] plus a message for people.
//! Messages say what was wrong and what to do; they never contain stored values or secrets.

use std::borrow::Cow;

use serde::Serialize;

/// The class of an error, which the server maps to an HTTP status once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    /// It existed, and is no more (an export downloaded as often as allowed, or expired).
    Gone,
    Conflict,
    TooLarge,
    Unsupported,
    RateLimited,
    Unavailable,
    /// A condition of the request (`If-Match`) does not hold.
    Precondition,
    /// Well-formed, but names something this tenant does not have (a role, a purpose).
    Unprocessable,
    Internal,
}

/// Stable error codes. They are part of the API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    InvalidJson,
    InvalidRequest,
    UnknownField,
    ValidationFailed,
    BodyTooLarge,
    UnsupportedMediaType,
    InvalidId,
    InvalidName,
    InvalidSchema,
    SchemaIncompatible,
    InvalidRole,
    UnknownRole,
    ReservedName,
    PurposeRequired,
    UnknownPurpose,
    FieldNotSearchable,
    WeakPassword,
    Unauthenticated,
    InvalidCredentials,
    MfaRequired,
    SessionExpired,
    RateLimited,
    KeyExpired,
    Forbidden,
    OperationDenied,
    PurposeDenied,
    NotFound,
    UnknownCollection,
    UnknownSubject,
    /// The export expired or was downloaded as often as it allows (and was deleted).
    ExportGone,
    /// One party asks (a tenant's admin or an operator), the other executes.
    TwoPartyRequired,
    AlreadyExists,
    /// A legal hold keeps the data: it may not be purged, erased or retained-out.
    LegalHold,
    /// Processing of the data subject is restricted (Art. 18): only export and erasure.
    SubjectRestricted,
    /// The purpose is based on consent and this subject's consent to it is not live.
    ConsentRequired,
    /// The subject objected to this purpose (based on legitimate interest).
    SubjectObjected,
    VersionConflict,
    MethodNotAllowed,
    IntegrityError,
    AuditUnavailable,
    Unavailable,
    /// The node cannot serve (its store cannot commit): `/readyz` says so.
    NotReady,
    /// The request ran longer than the server allows; it may have taken effect.
    RequestTimeout,
    /// `If-Match` names another version than the current one.
    PreconditionFailed,
    Internal,
}

impl Code {
    pub fn kind(self) -> Kind {
        use Code::*;
        match self {
            // The request breaks a rule its documented schema states.
            InvalidJson | InvalidRequest | UnknownField | InvalidId | InvalidName
            | PurposeRequired => Kind::BadRequest,
            // It fits the schema, but not the tenant's state or a rule across its parts (a
            // value against the collection's schema, a role that does not exist, a password
            // under the tenant's policy, a mask that does not suit its field's type).
            ValidationFailed | InvalidSchema | SchemaIncompatible | InvalidRole | UnknownRole
            | UnknownPurpose | FieldNotSearchable | WeakPassword => Kind::Unprocessable,
            BodyTooLarge => Kind::TooLarge,
            UnsupportedMediaType | MethodNotAllowed => Kind::Unsupported,
            Unauthenticated | KeyExpired | InvalidCredentials | MfaRequired | SessionExpired => {
                Kind::Unauthenticated
            }
            RateLimited => Kind::RateLimited,
            Forbidden | OperationDenied | PurposeDenied | SubjectRestricted | ConsentRequired
            | SubjectObjected => Kind::Forbidden,
            NotFound | UnknownCollection | UnknownSubject => Kind::NotFound,
            ExportGone => Kind::Gone,
            // The name is taken, by an object or by a built-in.
            AlreadyExists | VersionConflict | ReservedName | LegalHold | TwoPartyRequired => {
                Kind::Conflict
            }
            AuditUnavailable | Unavailable | NotReady | RequestTimeout => Kind::Unavailable,
            PreconditionFailed => Kind::Precondition,
            IntegrityError | Internal => Kind::Internal,
        }
    }

    /// The code as it appears on the wire and in audit entries.
    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            InvalidJson => "invalid_json",
            InvalidRequest => "invalid_request",
            UnknownField => "unknown_field",
            ValidationFailed => "validation_failed",
            BodyTooLarge => "body_too_large",
            UnsupportedMediaType => "unsupported_media_type",
            InvalidId => "invalid_id",
            InvalidName => "invalid_name",
            InvalidSchema => "invalid_schema",
            SchemaIncompatible => "schema_incompatible",
            InvalidRole => "invalid_role",
            UnknownRole => "unknown_role",
            ReservedName => "reserved_name",
            PurposeRequired => "purpose_required",
            UnknownPurpose => "unknown_purpose",
            FieldNotSearchable => "field_not_searchable",
            WeakPassword => "weak_password",
            Unauthenticated => "unauthenticated",
            InvalidCredentials => "invalid_credentials",
            MfaRequired => "mfa_required",
            SessionExpired => "session_expired",
            RateLimited => "rate_limited",
            KeyExpired => "key_expired",
            Forbidden => "forbidden",
            OperationDenied => "operation_denied",
            PurposeDenied => "purpose_denied",
            NotFound => "not_found",
            UnknownCollection => "unknown_collection",
            UnknownSubject => "unknown_subject",
            ExportGone => "export_gone",
            TwoPartyRequired => "two_party_required",
            AlreadyExists => "already_exists",
            LegalHold => "legal_hold",
            SubjectRestricted => "subject_restricted",
            ConsentRequired => "consent_required",
            SubjectObjected => "subject_objected",
            VersionConflict => "version_conflict",
            MethodNotAllowed => "method_not_allowed",
            IntegrityError => "integrity_error",
            AuditUnavailable => "audit_unavailable",
            Unavailable => "unavailable",
            NotReady => "not_ready",
            RequestTimeout => "request_timeout",
            PreconditionFailed => "precondition_failed",
            Internal => "internal",
        }
    }
}

/// A domain error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct Error {
    pub code: Code,
    pub message: Cow<'static, str>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.code.kind()
    }

    /// A value the tenant's definitions do not allow (422 `validation_failed`).
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::ValidationFailed, message)
    }

    /// A parameter outside the range its documented schema states (400 `invalid_request`).
    pub fn out_of_range(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::InvalidRequest, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    pub fn not_found(what: &'static str) -> Self {
        Self::new(
            Code::NotFound,
            format!("{what} not found (or not visible to this credential)"),
        )
    }

    pub fn internal() -> Self {
        Self::new(
            Code::Internal,
            "internal error; the request id identifies it in the server log",
        )
    }

    pub fn integrity() -> Self {
        Self::new(
            Code::IntegrityError,
            "stored ciphertext failed authentication: it was altered or moved; nothing was returned",
        )
    }

    pub fn audit_unavailable() -> Self {
        Self::new(
            Code::AuditUnavailable,
            "the audit entry could not be written, so the operation was not carried out",
        )
    }
}

/// Quotes a name from a request in an error message only if it is a plain identifier; anything
/// else could be personal data typed into the wrong place, so it is not echoed.
pub fn quote_name(name: &str) -> String {
    if crate::schema::is_identifier(name) {
        format!("`{name}`")
    } else {
        "(a name that is not a valid identifier)".to_owned()
    }
}
