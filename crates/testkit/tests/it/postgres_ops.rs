//! PostgreSQL in production: the link (every connection of the suite is TLS with a verified
//! server, plain TCP is refused, a server that cannot prove it is the one named is refused), and
//! rows someone spoiled in the database.

use serde_json::json;
use strongroom_server::ServeOptions;
use strongroom_store_postgres::{PgOptions, PgStore, Target};
use strongroom_testkit::{postgres, TestVault};

/// The test server's connection string without its TLS settings, and the CA file.
async fn parts() -> Option<(String, String)> {
    let url = postgres::fresh_database().await?;
    let ca = url
        .split_whitespace()
        .find_map(|w| w.strip_prefix("sslrootcert="))
        .expect("the test server is reached with a root certificate")
        .to_owned();
    let plain: Vec<&str> = url
        .split_whitespace()
        .filter(|w| !w.starts_with("sslmode=") && !w.starts_with("sslrootcert="))
        .collect();
    Some((plain.join(" "), ca))
}

async fn connects(conninfo: &str) -> Result<(), String> {
    let target = Target::parse(conninfo).map_err(|e| e.to_string())?;
    let client = target.connect().await.map_err(|e| e.to_string())?;
    client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn the_store_talks_to_postgres_over_verified_tls_only() {
    let Some((plain, ca)) = parts().await else {
        return;
    };
    // The store's own connections are encrypted.
    let url = format!("{plain} sslmode=verify-full sslrootcert={ca}");
    let _store = PgStore::open(&url, PgOptions::default()).await.unwrap();
    let client = postgres::connect(&url).await;
    let row = client
        .query_one(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the connection is not encrypted");
    assert!(row.get::<_, String>(1).starts_with("TLSv1."));

    // Plain TCP is refused by this server, so no test of the suite can have run without TLS.
    let err = connects(&format!("{plain} sslmode=disable"))
        .await
        .unwrap_err();
    assert!(
        err.contains("no encryption") || err.contains("pg_hba"),
        "{err}"
    );

    // A certificate from another CA (someone on the path): refused before any row is sent.
    let other = tempfile::NamedTempFile::new().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(other.path(), params.self_signed(&key).unwrap().pem()).unwrap();
    for mode in ["verify-full", "verify-ca", "require"] {
        let err = connects(&format!(
            "{plain} sslmode={mode} sslrootcert={}",
            other.path().display()
        ))
        .await
        .unwrap_err();
        assert!(err.contains("certificate"), "{mode}: {err}");
    }

    // The right CA but another name: verify-full refuses, verify-ca and require take it.
    let port = plain
        .split_whitespace()
        .find_map(|w| w.strip_prefix("port="))
        .unwrap();
    let misnamed = format!(
        "host=db.example hostaddr=127.0.0.1 port={port} user=strongroom dbname=postgres sslrootcert={ca}"
    );
    let err = connects(&format!("{misnamed} sslmode=verify-full"))
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
    connects(&format!("{misnamed} sslmode=verify-ca"))
        .await
        .unwrap();
    connects(&format!("{misnamed} sslmode=require"))
        .await
        .unwrap();
    // Off loopback without any setting: verify-full, which wants the root named.
    let err = connects(&format!(
        "host=db.example hostaddr=127.0.0.1 port={port} user=strongroom"
    ))
    .await
    .unwrap_err();
    assert!(err.contains("sslrootcert"), "{err}");
}

/// Every spoiled row becomes a clear error for the request that reads it, never a panic, and
/// the node keeps answering everything else.
#[tokio::test]
async fn spoiled_rows_are_errors_not_panics() {
    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    let v = TestVault::start_postgres(&url, None, ServeOptions::default()).await;
    let (t, app) = v.scenario("acme").await;
    let db = postgres::connect(&url).await;
    // Constraints go first, as an attacker holding the database would drop them.
    db.batch_execute(
        "ALTER TABLE records ALTER COLUMN created_at DROP NOT NULL;
         ALTER TABLE records ALTER COLUMN data DROP NOT NULL",
    )
    .await
    .unwrap();
    let spoil = [
        "UPDATE records SET version = -5 WHERE id = $1",
        "UPDATE records SET state = 9 WHERE id = $1",
        "UPDATE records SET created_at = NULL WHERE id = $1",
        "UPDATE records SET data = NULL WHERE id = $1",
        // Last: it spoils every record at once (a column of the wrong type).
        "ALTER TABLE records ALTER COLUMN updated_at TYPE TEXT",
    ];
    for (i, sql) in spoil.iter().enumerate() {
        let id = v
            .store_person(
                &app,
                json!({ "email": format!("p{i}@example.com"), "name": "P" }),
            )
            .await;
        if sql.contains("$1") {
            assert_eq!(db.execute(*sql, &[&id]).await.unwrap(), 1, "{sql}");
        } else {
            db.batch_execute(sql).await.unwrap();
        }
        let r = v
            .get(
                &format!("/v1/collections/people/records/{id}"),
                &app,
                Some("support"),
            )
            .await;
        assert_eq!(r.status, 500, "{sql}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "internal", "{sql}: {}", r.text);
        // The node still serves what is intact.
        let ok = v.get("/v1/collections", &t.admin, None).await;
        assert_eq!(ok.status, 200, "{sql}: {}", ok.text);
    }
}
