//! A small HTTPS client for the CLI tests: trusts the data directory's certificate.

use serde_json::{json, Value};

pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(cert: &std::path::Path, addr: &str) -> Self {
        let pem = std::fs::read(cert).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            client,
            base: format!("https://{addr}"),
        }
    }

    /// `None` when the connection failed (the server is gone).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("X-Purpose", "support");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status().as_u16();
        let body = resp.json().await.ok()?;
        Some((status, body))
    }

    /// A tenant `acme` with the `people` collection, a `support_agent` role and an app key
    /// holding it, made with the bootstrap `operator` token. Returns (admin key, app key).
    pub async fn scenario(&self, operator: &str) -> (String, String) {
        let post = reqwest::Method::POST;
        let (s, t) = self
            .call(
                post.clone(),
                "/v1/tenants",
                operator,
                Some(json!({"name": "acme"})),
            )
            .await
            .unwrap();
        assert_eq!(s, 201, "{t}");
        let (s, k) = self
        .call(
            post.clone(),
            "/v1/api-keys",
            operator,
            Some(json!({"name": "admin", "roles": ["admin"], "expires_in_days": 30, "tenant": t["id"]})),
        )
        .await
        .unwrap();
        assert_eq!(s, 201, "{k}");
        let admin = k["key"].as_str().unwrap().to_owned();
        let put = reqwest::Method::PUT;
        let (s, b) = self
            .call(
                put.clone(),
                "/v1/collections/people",
                &admin,
                Some(strongroom_testkit::people_schema()),
            )
            .await
            .unwrap();
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .call(
                put,
                "/v1/roles/support_agent",
                &admin,
                Some(strongroom_testkit::support_agent()),
            )
            .await
            .unwrap();
        assert_eq!(s, 201, "{b}");
        let (s, k) = self
            .call(
                post.clone(),
                "/v1/api-keys",
                &admin,
                Some(json!({"name": "app", "roles": ["support_agent"], "expires_in_days": 30})),
            )
            .await
            .unwrap();
        assert_eq!(s, 201, "{k}");
        let app = k["key"].as_str().unwrap().to_owned();
        (admin, app)
    }
}
