//! The OpenAPI document, made to tell the whole truth: beyond what each handler's annotation
//! says, every answer the common layers can give (authentication, limits, body parsing,
//! availability) and every constraint the server enforces on paths, headers and queries are
//! written into it here, once, from the same rules the server applies. Schemathesis checks
//! the result against a live server in CI.

use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{Content, OpenApi, RefOr, Required, Response, ResponseBuilder};

/// The pattern of tenant, collection, field, role and purpose names (`schema::is_identifier`).
pub const NAME_PATTERN: &str = "^[a-z][a-z0-9_-]{0,63}$";

fn error(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorBody",
                )))),
            )
            .build(),
    )
}

fn string(pattern: Option<&str>, min: Option<usize>, max: Option<usize>) -> RefOr<Schema> {
    let mut b = ObjectBuilder::new().schema_type(SchemaType::new(Type::String));
    if let Some(p) = pattern {
        b = b.pattern(Some(p));
    }
    b = b.min_length(min).max_length(max);
    RefOr::T(Schema::Object(b.build()))
}

fn integer(min: i64, max: i64) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Integer))
            .minimum(Some(min))
            .maximum(Some(max))
            .build(),
    ))
}

fn one_of(values: &[&str]) -> RefOr<Schema> {
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .enum_values(Some(values.iter().copied()))
            .build(),
    ))
}

fn id_pattern(prefix: &str) -> String {
    format!("^{prefix}_[0-9a-f]{{32}}$")
}

/// The constraint on a path parameter, from its name and the path.
fn path_schema(path: &str, name: &str) -> Option<RefOr<Schema>> {
    let id = |p: &str| Some(string(Some(&id_pattern(p)), None, None));
    match name {
        "collection" | "name" => Some(string(Some(NAME_PATTERN), None, None)),
        "subject" => id("sub"),
        "id" if path.starts_with("/v1/collections/") => id("rec"),
        "id" if path.starts_with("/v1/users/") => id("usr"),
        "id" if path.starts_with("/v1/api-keys/") => id("key"),
        "id" if path.starts_with("/v1/compliance/declarations/") => id("dcl"),
        "id" if path.starts_with("/v1/compliance/incidents/") => id("inc"),
        "id" if path.starts_with("/v1/compliance/trainings/") => id("trn"),
        "id" if path.starts_with("/v1/compliance/subprocessors/") => id("spr"),
        "id" if path.starts_with("/v1/holds/") => id("hld"),
        "id" if path.starts_with("/v1/exports/") => id("exp"),
        "id" if path.starts_with("/v1/dsars/") => id("dsr"),
        "id" if path.starts_with("/v1/tenants/") || path.starts_with("/v1/offboarding/") => {
            id("ten")
        }
        "id" if path.starts_with("/v1/jobs/") => Some(string(
            Some("^[a-z][a-z._]{0,63}(:ten_[0-9a-f]{32})?$"),
            None,
            None,
        )),
        "action" => Some(RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .enum_values(Some(["disable", "enable", "unlock", "reset-mfa"]))
                .build(),
        ))),
        _ => None,
    }
}

fn tighten(path: &str, p: &mut Parameter) {
    match (&p.parameter_in, p.name.as_str()) {
        (ParameterIn::Path, name) => {
            if let Some(s) = path_schema(path, name) {
                p.schema = Some(s);
            }
        }
        (ParameterIn::Header, "X-Purpose") => {
            // Required by every data operation; 1-64 visible characters.
            p.required = Required::True;
            p.schema = Some(string(
                Some("^[!-~]([ -~]{0,62}[!-~])?$"),
                Some(1),
                Some(64),
            ));
        }
        (ParameterIn::Query, "seq" | "from") if path.starts_with("/v1/audit/proofs/") => {
            p.schema = Some(integer(1, i64::MAX))
        }
        (ParameterIn::Query, "size" | "to") if path.starts_with("/v1/audit/proofs/") => {
            p.schema = Some(integer(0, i64::MAX))
        }
        (ParameterIn::Query, "after") => p.schema = Some(integer(0, i64::MAX)),
        (ParameterIn::Query, "format") if path == "/v1/compliance/toms" => {
            p.schema = Some(one_of(&["json", "md", "html"]))
        }
        (ParameterIn::Query, "format") if path == "/v1/compliance/ropa" => {
            p.schema = Some(one_of(&["json", "csv", "md"]))
        }
        (ParameterIn::Query, "format") if path == "/v1/compliance/versions" => {
            p.schema = Some(one_of(&["json", "md"]))
        }
        (ParameterIn::Query, "format") if path == "/v1/exports/{id}" => {
            p.schema = Some(one_of(&["json", "text"]))
        }
        (ParameterIn::Query, "kind") if path == "/v1/config/history" => {
            p.schema = Some(one_of(&[
                "collection",
                "role",
                "settings",
                "tenant",
                "server",
            ]))
        }
        (ParameterIn::Query, "layout") if path == "/v1/compliance/toms" => {
            p.schema = Some(one_of(&["art32", "scc"]))
        }
        (ParameterIn::Query, "limit") => {
            p.schema = Some(RefOr::T(Schema::Object(
                ObjectBuilder::new()
                    .schema_type(SchemaType::new(Type::Integer))
                    .minimum(Some(1))
                    .maximum(Some(1000))
                    .build(),
            )));
        }
        _ => {}
    }
}

fn complete(path: &str, op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let params = op.parameters.get_or_insert_with(Vec::new);
    for p in params.iter_mut() {
        tighten(path, p);
    }
    let has_params = !params.is_empty();
    let has_path_params = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let responses = &mut op.responses.responses;
    let mut add = |code: &str, why: &str| {
        responses
            .entry(code.to_owned())
            .or_insert_with(|| error(why));
    };
    if has_body || has_params {
        add(
            "400",
            "the request is malformed or fails validation (the code says which rule)",
        );
    }
    if secured {
        add(
            "401",
            "`unauthenticated`, `key_expired` or `session_expired`",
        );
        add("403", "`forbidden`, `operation_denied` or `purpose_denied`");
        add(
            "429",
            "`rate_limited`: too many failed authentications from this client",
        );
    }
    if has_body {
        add("413", "`body_too_large`");
        add("415", "`unsupported_media_type`: send JSON");
    }
    if has_path_params {
        add("404", "`not_found`");
    }
    if (has_body || has_params) && secured {
        add(
            "422",
            "fits the schema, but not this tenant's definitions or a rule across its parts \
             (`validation_failed`, `unknown_role`, `unknown_purpose`, `invalid_schema`, \
             `schema_incompatible`, `invalid_role`, `field_not_searchable`, `weak_password`)",
        );
    }
    if path.starts_with("/v1/audit/proofs/") {
        add(
            "404",
            "`not_found`: the log has no such entry or tree size yet",
        );
    }
    if path.starts_with("/v1/") || path == "/readyz" {
        add("500", "`internal`: a stored row could not be read");
        add(
            "503",
            "`unavailable`, `audit_unavailable` or `request_timeout`: nothing was confirmed; retry later",
        );
    }
}

/// Keys of a map property that are names: `propertyNames` with the name pattern (the schema
/// derive cannot say it).
fn name_keys(doc: &mut OpenApi, schema: &str, property: &str) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(obj))) = components.schemas.get_mut(schema) else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(map))) = obj.properties.get_mut(property) {
        map.property_names = Some(Box::new(Schema::Object(
            ObjectBuilder::new()
                .schema_type(SchemaType::new(Type::String))
                .pattern(Some(NAME_PATTERN))
                .build(),
        )));
    }
}

/// A property whose values are a closed list the server knows (a schema only says "string").
fn enumerate(doc: &mut OpenApi, schema: &str, property: &str, values: Vec<String>) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(obj))) = components.schemas.get_mut(schema) else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(p))) = obj.properties.get_mut(property) {
        p.enum_values = Some(values.into_iter().map(serde_json::Value::String).collect());
    }
}

/// An object property that must hold at least `n` entries.
fn min_entries(doc: &mut OpenApi, schema: &str, property: &str, n: usize) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(obj))) = components.schemas.get_mut(schema) else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(map))) = obj.properties.get_mut(property) {
        map.min_properties = Some(n);
    }
}

/// Completes every operation of `doc` (see the module comment).
pub fn tell_the_truth(doc: &mut OpenApi) {
    min_entries(doc, "UpdateRecord", "fields", 1);
    min_entries(doc, "RoleDef", "collections", 1);
    name_keys(doc, "RoleDef", "collections");
    // A declaration names a measure of the catalogue built into this server; a subprocessor
    // an officially assigned country code.
    let ids = strongroom_compliance::catalogue::Catalogue::get()
        .measures
        .iter()
        .map(|m| m.id.clone())
        .collect();
    enumerate(doc, "DeclarationInput", "measure", ids);
    let countries = strongroom_compliance::subprocessors::countries()
        .map(str::to_owned)
        .collect();
    enumerate(doc, "SubprocessorInput", "country", countries);
    name_keys(doc, "CollectionGrant", "fields");
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            complete(path, op);
        }
    }
}
