//! Tenants, API keys, collection schemas and roles.

use serde_json::json;
use strongroom_testkit::{people_schema, TestVault};

#[tokio::test]
async fn operators_create_tenants_with_unique_names() {
    let v = TestVault::start().await;
    let t = v.tenant("acme").await;
    assert!(t.id.starts_with("ten_"));
    let dup = v
        .post("/v1/tenants", &v.operator, None, json!({"name": "acme"}))
        .await;
    assert_eq!((dup.status, dup.code()), (409, "already_exists"));
    let bad = v
        .post(
            "/v1/tenants",
            &v.operator,
            None,
            json!({"name": "Acme Corp"}),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (400, "invalid_name"));
    let by_admin = v
        .post("/v1/tenants", &t.admin, None, json!({"name": "other"}))
        .await;
    assert_eq!((by_admin.status, by_admin.code()), (403, "forbidden"));
    // Each tenant has its own key-encryption key.
    assert_eq!(v.count("tenant_keys"), 1);
    v.tenant("globex").await;
    let distinct: i64 = v
        .sqlite()
        .query_row("SELECT count(DISTINCT wrapped) FROM tenant_keys", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(distinct, 2);
}

#[tokio::test]
async fn api_keys_are_scoped_and_expire() {
    let v = TestVault::start().await;
    let t = v.tenant("acme").await;
    let other = v.tenant("globex").await;
    v.people(&t.admin).await;
    let key = |roles: serde_json::Value, days: serde_json::Value, tenant: Option<&str>| {
        let mut b = json!({"name": "k", "roles": roles, "expires_in_days": days});
        if let Some(t) = tenant {
            b["tenant"] = json!(t);
        }
        b
    };
    // Operators issue admin keys but never data roles.
    let r = v
        .post(
            "/v1/api-keys",
            &v.operator,
            None,
            key(json!(["support_agent"]), json!(5), Some(&t.id)),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    // Expiry is mandatory and bounded.
    for days in [json!(0), json!(731)] {
        let r = v
            .post(
                "/v1/api-keys",
                &t.admin,
                None,
                key(json!(["admin"]), days, None),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "invalid_request"), "{}", r.text);
    }
    let r = v
        .post(
            "/v1/api-keys",
            &t.admin,
            None,
            json!({"name": "k", "roles": ["admin"]}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    // Roles must exist; tenants are separate.
    let r = v
        .post(
            "/v1/api-keys",
            &t.admin,
            None,
            key(json!(["ghost"]), json!(5), None),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "unknown_role"));
    let r = v
        .post(
            "/v1/api-keys",
            &t.admin,
            None,
            key(json!(["admin"]), json!(5), Some(&other.id)),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
    let r = v
        .post(
            "/v1/api-keys",
            &t.admin,
            None,
            key(json!(["operator"]), json!(5), None),
        )
        .await;
    assert_eq!(r.status, 403);

    let auditor = v
        .post(
            "/v1/api-keys",
            &t.admin,
            None,
            key(json!(["auditor"]), json!(2), None),
        )
        .await;
    assert_eq!(auditor.status, 201, "{}", auditor.text);
    let token = auditor.body["key"].as_str().unwrap().to_owned();
    assert!(token.starts_with("srk_"));
    assert_eq!(v.get("/v1/audit/entries", &token, None).await.status, 200);
    v.clock.advance_ms(2 * 24 * 3600 * 1000);
    let r = v.get("/v1/audit/entries", &token, None).await;
    assert_eq!((r.status, r.code()), (401, "key_expired"));
    // Only the hash of a key is stored.
    let found: i64 = v
        .sqlite()
        .query_row(
            "SELECT count(*) FROM api_keys WHERE hash = ?1 OR name = ?2",
            rusqlite::params![token.as_bytes(), token],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(found, 0);
}

#[tokio::test]
async fn operator_keys_create_tenants_but_read_no_tenant_data() {
    let v = TestVault::start().await;
    let r = v
        .post(
            "/v1/api-keys",
            &v.operator,
            None,
            json!({"name": "ops: jane", "expires_in_days": 90}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let jane = r.body["key"].as_str().unwrap().to_owned();
    assert_eq!(r.body["roles"], json!(["operator"]));
    let t = v
        .post("/v1/tenants", &jane, None, json!({"name": "acme"}))
        .await;
    assert_eq!(t.status, 201);
    let r = v
        .get(
            "/v1/collections/people/records/rec_00000000000000000000000000000000",
            &jane,
            Some("support"),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "forbidden"));
}

#[tokio::test]
async fn collection_schemas_are_validated() {
    let v = TestVault::start().await;
    let t = v.tenant("acme").await;
    let (vr, admin) = (&v, t.admin.as_str());
    let put = |body: serde_json::Value| async move {
        vr.put("/v1/collections/people", admin, body).await
    };
    let field =
        |name: &str, ty: &str| json!({"name": name, "type": ty, "classification": "personal"});

    let r = put(json!({"purposes": ["support"], "fields": [field("a", "strin")]})).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_request"),
        "unknown type: {}",
        r.text
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("email"),
        "lists the valid types"
    );
    let r = put(
        json!({"purposes": ["support"], "fields": [field("a", "string"), field("a", "email")]}),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "invalid_schema"),
        "duplicate field"
    );
    let r = put(json!({"purposes": ["support"], "fields": [{"name": "n", "type": "number", "classification": "personal", "mask": "email"}]})).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "invalid_schema"),
        "mask rule does not fit the type"
    );
    let r = put(json!({"purposes": ["support"], "fields": [{"name": "j", "type": "json", "classification": "personal", "searchable": true}]})).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "invalid_schema"),
        "json is not searchable"
    );
    let r = put(json!({"purposes": [], "fields": [field("a", "string")]})).await;
    assert_eq!((r.status, r.code()), (422, "invalid_schema"), "no purposes");
    let r =
        put(json!({"purposes": ["support"], "fields": [field("a", "string")], "owner": "x"})).await;
    assert_eq!((r.status, r.code()), (400, "unknown_field"));
    assert_eq!(
        v.count("collections"),
        0,
        "nothing stored by rejected schemas"
    );

    let r = put(people_schema()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["version"], 1);
    // Compatible change: a new field. Incompatible: removing or retyping one.
    let mut grown = people_schema();
    grown["fields"]
        .as_array_mut()
        .unwrap()
        .push(field("nickname", "string"));
    let r = put(grown.clone()).await;
    assert_eq!((r.status, r.body["version"].as_u64()), (200, Some(2)));
    let mut shrunk = grown.clone();
    shrunk["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "phone");
    let r = put(shrunk).await;
    assert_eq!((r.status, r.code()), (422, "schema_incompatible"));

    let list = v.get("/v1/collections", &t.admin, None).await;
    assert_eq!(list.body["collections"].as_array().unwrap().len(), 1);
    let other = v.tenant("globex").await;
    let list = v.get("/v1/collections", &other.admin, None).await;
    assert!(
        list.body["collections"].as_array().unwrap().is_empty(),
        "schemas are per tenant"
    );
    let r = v.get("/v1/collections/people", &other.admin, None).await;
    assert_eq!((r.status, r.code()), (404, "unknown_collection"));
}

#[tokio::test]
async fn roles_are_validated_against_collections() {
    let v = TestVault::start().await;
    let t = v.tenant("acme").await;
    v.people(&t.admin).await;
    let grant = |purposes: serde_json::Value, fields: serde_json::Value| json!({"collections": {"people": {"operations": ["read"], "purposes": purposes, "fields": fields}}});
    let r = v
        .put(
            "/v1/roles/admin",
            &t.admin,
            grant(json!(["support"]), json!({})),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "reserved_name"));
    let r = v
        .put(
            "/v1/roles/agent",
            &t.admin,
            grant(json!(["spying"]), json!({})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_role"));
    let r = v
        .put(
            "/v1/roles/agent",
            &t.admin,
            grant(json!(["support"]), json!({"ssn": "plain"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_role"));
    let r = v
        .put(
            "/v1/roles/agent",
            &t.admin,
            grant(json!(["support"]), json!({"email": "everything"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "invalid_request"));
    let r = v
        .put(
            "/v1/roles/agent",
            &t.admin,
            json!({"collections": {"orders": {"operations": ["read"], "purposes": ["x"]}}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "invalid_role"));
    let r = v
        .put(
            "/v1/roles/agent",
            &t.admin,
            grant(json!(["support"]), json!({"email": "plain"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = v
        .put(
            "/v1/roles/agent",
            &t.admin,
            grant(json!(["support"]), json!({"email": "masked"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let roles = v.get("/v1/roles", &t.admin, None).await;
    let names: Vec<_> = roles.body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["admin", "auditor", "agent"]);
    let app = v.key(&t.admin, &["agent"]).await;
    assert_eq!(
        v.get("/v1/roles", &app, None).await.status,
        403,
        "only admins manage roles"
    );
    assert_eq!(
        v.put("/v1/collections/people", &app, people_schema())
            .await
            .status,
        403
    );
}

/// Two administrators changing one definition: each change names the version it was made
/// against (`If-Match`), and the one made against an old version is refused, not applied over
/// the other — in sequence and when sent at once. Roles and collections alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_change_only_against_the_version_read() {
    let v = TestVault::start().await;
    let t = v.tenant("acme").await;
    v.people(&t.admin).await;
    let put = |path: String, body: serde_json::Value, headers: Vec<(&'static str, String)>| {
        let mut req = v
            .client
            .put(format!("{}{path}", v.base))
            .bearer_auth(&t.admin)
            .json(&body);
        for (k, val) in headers {
            req = req.header(k, val);
        }
        TestVault::finish(req)
    };
    let mut narrower = strongroom_testkit::support_agent();
    narrower["collections"]["people"]["operations"] = json!(["read"]);
    let mut extended = people_schema();
    extended["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "city", "type": "string", "classification": "personal"}));
    let mut extended2 = extended.clone();
    extended2["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "zip", "type": "string", "classification": "personal"}));
    for (path, first, second, third) in [
        (
            "/v1/roles/agent".to_owned(),
            strongroom_testkit::support_agent(),
            narrower.clone(),
            strongroom_testkit::support_agent(),
        ),
        (
            "/v1/collections/people".to_owned(),
            people_schema(),
            extended.clone(),
            extended2.clone(),
        ),
    ] {
        // Create (or, for `people`, find) the definition and its version.
        let created = put(path.clone(), first.clone(), vec![]).await;
        assert!(
            created.status == 201 || created.status == 200,
            "{}",
            created.text
        );
        let base = created.body["version"].as_u64().unwrap();
        let raw = v
            .client
            .get(format!("{}{path}", v.base))
            .bearer_auth(&t.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            raw.headers()["etag"].to_str().unwrap(),
            format!("\"{base}\""),
            "{path}"
        );
        // If-None-Match: * refuses to replace; If-Match with nonsense never matches.
        for (h, val) in [
            ("If-None-Match", "*".to_owned()),
            ("If-Match", "\"banana\"".to_owned()),
            ("If-Match", format!("\"{}\"", base + 7)),
        ] {
            let r = put(path.clone(), second.clone(), vec![(h, val.clone())]).await;
            assert_eq!(
                (r.status, r.code()),
                (412, "precondition_failed"),
                "{path} {h}: {val}"
            );
        }
        // Admin A changes it against the version read: done.
        let a = put(
            path.clone(),
            second.clone(),
            vec![("If-Match", format!("\"{base}\""))],
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["version"].as_u64(), Some(base + 1));
        // Admin B, who read the same version, is refused and told the current one.
        let b = put(
            path.clone(),
            third.clone(),
            vec![("If-Match", format!("W/\"{base}\""))],
        )
        .await;
        assert_eq!(
            (b.status, b.code()),
            (412, "precondition_failed"),
            "{}",
            b.text
        );
        assert!(
            b.text.contains(&format!("version {}", base + 1)),
            "{}",
            b.text
        );
        let now = v.get(&path, &t.admin, None).await;
        assert_eq!(now.body["version"].as_u64(), Some(base + 1));
        // Ten at once against the same version: exactly one lands.
        let current = base + 1;
        let mut tasks = Vec::new();
        for _ in 0..10 {
            tasks.push(put(
                path.clone(),
                third.clone(),
                vec![("If-Match", format!("\"{current}\""))],
            ));
        }
        let results = futures_util::future::join_all(tasks).await;
        let ok = results.iter().filter(|r| r.status == 200).count();
        assert_eq!(
            ok,
            1,
            "{:?}",
            results.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        assert!(results.iter().all(|r| r.status == 200
            || r.code() == "precondition_failed"
            || r.code() == "version_conflict"));
        let now = v.get(&path, &t.admin, None).await;
        assert_eq!(now.body["version"].as_u64(), Some(current + 1), "{path}");
    }
    v.assert_audit_verifies().await;
}
