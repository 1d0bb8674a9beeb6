//! The audit tamper suite, run against both stores: an attacker with write access to the
//! database edits, deletes, inserts and swaps rows of every audit table (entries, the columns
//! generated from them, heads, checkpoints, the subject index, stored tree nodes), truncates
//! logs with and without their checkpoints and heads, deletes whole logs, and restores an old
//! copy of the database. Every case must be refused by the database or caught by
//! `audit verify` with the witness directory; truncations and rollbacks also by the server's
//! start-up check.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use strongroom_core::Store;
use strongroom_server::audit_tools::{self, VerifyError};
use strongroom_server::witness::Witnessed;
use strongroom_server::{audit_check, ServeOptions};
use strongroom_store_sqlite::SqliteStore;
use strongroom_testkit::{postgres, TestVault};

const PEOPLE: &str = "/v1/collections/people/records";

/// A database to tamper with: a SQLite file, or a PostgreSQL database on the test server.
enum Db {
    Sqlite(PathBuf),
    Pg { base: String, name: String },
}

impl Db {
    fn url(base: &str, name: &str) -> String {
        format!("{base} dbname={name}")
    }

    async fn pg_admin(base: &str) -> tokio_postgres::Client {
        postgres::connect(&Self::url(base, "postgres")).await
    }

    /// A fresh copy to spoil.
    async fn copy(&self, dir: &Path, n: usize) -> Db {
        match self {
            Db::Sqlite(p) => {
                let to = dir.join(format!("case{n}.db"));
                std::fs::copy(p, &to).unwrap();
                Db::Sqlite(to)
            }
            Db::Pg { base, name } => {
                let new = format!("{name}_c{n}");
                Self::pg_admin(base)
                    .await
                    .batch_execute(&format!("CREATE DATABASE {new} TEMPLATE {name}"))
                    .await
                    .unwrap();
                Db::Pg {
                    base: base.clone(),
                    name: new,
                }
            }
        }
    }

    /// Runs SQL as the attacker; `Err` when the database refuses it.
    async fn exec(&self, sql: &str) -> Result<(), String> {
        match self {
            Db::Sqlite(p) => {
                let c = rusqlite::Connection::open(p).unwrap();
                c.execute_batch(&format!("BEGIN; {sql}; COMMIT;"))
                    .map_err(|e| e.to_string())
            }
            Db::Pg { base, name } => {
                let c = postgres::connect(&Self::url(base, name)).await;
                c.batch_execute(&format!("BEGIN; {sql}; COMMIT;"))
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }

    async fn store(&self) -> Arc<dyn Store> {
        match self {
            Db::Sqlite(p) => Arc::new(SqliteStore::open(p, Default::default()).unwrap()),
            Db::Pg { base, name } => Arc::new(
                strongroom_store_postgres::PgStore::open(
                    &Self::url(base, name),
                    Default::default(),
                )
                .await
                .unwrap(),
            ),
        }
    }

    async fn drop_copy(self) {
        match self {
            Db::Sqlite(p) => {
                let _ = std::fs::remove_file(p);
            }
            Db::Pg { base, name } => {
                let _ = Self::pg_admin(&base)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        }
    }
}

/// What one run of the suite starts from.
struct Pristine {
    db: Db,
    /// An older copy of the same database (a backup restored by the attacker).
    old: Db,
    witness: PathBuf,
    public_key: [u8; 32],
    tenant: String,
    size: i64,
    _dirs: Vec<tempfile::TempDir>,
}

async fn traffic(v: &TestVault, app: &str, n: usize, offset: usize) {
    for i in offset..offset + n {
        let id = v
            .store_person(app, json!({"email": format!("p{i}@example.com")}))
            .await;
        v.get(&format!("{PEOPLE}/{id}"), app, Some("support")).await;
        v.get(&format!("{PEOPLE}/{id}"), app, Some("marketing"))
            .await;
        if i % 10 == 0 {
            // A search that finds two people names both subjects: rows of the subject index.
            for _ in 0..2 {
                v.store_person(app, json!({"email": format!("team{i}@example.com")}))
                    .await;
            }
            let r = v
                .get(
                    &format!("{PEOPLE}?email=team{i}%40example.com"),
                    app,
                    Some("support"),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    }
}

fn opts(witness: &Path) -> ServeOptions {
    ServeOptions {
        checkpoint_every_entries: 25,
        witness_dir: Some(witness.to_owned()),
        ..Default::default()
    }
}

/// Writes a log of ~300 entries (so that stored tree nodes exist) with checkpoints published
/// to a witness, keeping a copy of the database from half-way.
async fn pristine(pg: Option<(String, String)>) -> Pristine {
    let wdir = tempfile::tempdir().unwrap();
    let witness = wdir.path().join("witness");
    let files = tempfile::tempdir().unwrap();
    let (db, old, tenant, public_key) = match pg {
        None => {
            let mut v = TestVault::start_with(opts(&witness)).await;
            let (t, app) = v.scenario("acme").await;
            traffic(&v, &app, 60, 0).await;
            let public_key = v.running_vault().public_key().unwrap();
            v.stop().await;
            let db = v.data_path().join("strongroom.db");
            let c = rusqlite::Connection::open(&db).unwrap();
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            drop(c);
            let old = files.path().join("old.db");
            std::fs::copy(&db, &old).unwrap();
            let mut v = v.restart_with(opts(&witness)).await;
            traffic(&v, &app, 60, 60).await;
            v.stop().await;
            let c = rusqlite::Connection::open(&db).unwrap();
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            drop(c);
            let now = files.path().join("now.db");
            std::fs::copy(&db, &now).unwrap();
            (Db::Sqlite(now), Db::Sqlite(old), t.id, public_key)
        }
        Some((base, name)) => {
            let url = Db::url(&base, &name);
            let mut v = TestVault::start_postgres(&url, None, opts(&witness)).await;
            let (t, app) = v.scenario("acme").await;
            traffic(&v, &app, 60, 0).await;
            let public_key = v.running_vault().public_key().unwrap();
            let root_key = files.path().join("root.key");
            std::fs::copy(v.data_path().join("root.key"), &root_key).unwrap();
            v.stop().await;
            drop(v);
            let old_name = format!("{name}_old");
            let admin = Db::pg_admin(&base).await;
            admin
                .batch_execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ))
                .await
                .unwrap();
            admin
                .batch_execute(&format!("CREATE DATABASE {old_name} TEMPLATE {name}"))
                .await
                .unwrap();
            let mut v = TestVault::start_postgres(&url, Some(&root_key), opts(&witness)).await;
            traffic(&v, &app, 60, 60).await;
            v.stop().await;
            drop(v);
            admin
                .batch_execute(&format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ))
                .await
                .unwrap();
            (
                Db::Pg {
                    base: base.clone(),
                    name,
                },
                Db::Pg {
                    base,
                    name: old_name,
                },
                t.id,
                public_key,
            )
        }
    };
    let store = db.store().await;
    let size = store.find_audit_head(&tenant).await.unwrap().unwrap().size as i64;
    drop(store);
    Pristine {
        db,
        old,
        witness,
        public_key,
        tenant,
        size,
        _dirs: vec![wdir, files],
    }
}

/// The attacks, as SQL both databases accept. `{T}` is the tenant's log, `{N}` its size.
fn cases(size: i64) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut add = |sql: String, startup: bool| out.push((sql, startup));
    let positions = [1, 2, size / 3, size / 2, size - 1, size];
    let w = "WHERE log = '{T}'";
    for k in positions {
        let at = format!("{w} AND seq = {k}");
        let other = if k > 1 { k - 1 } else { 2 };
        add(format!("UPDATE audit SET body = replace(replace(body, '\"outcome\":\"ok\"', '\"outcome\":\"ko\"'), '\"outcome\":\"denied\"', '\"outcome\":\"ok\"') {at}"), false);
        add(
            format!("UPDATE audit SET body = replace(body, '\"seq\":', '\"seq\": ') {at}"),
            false,
        );
        add(format!("UPDATE audit SET body = body || ' ' {at}"), false);
        add(
            format!("UPDATE audit SET hash = (SELECT hash FROM audit {w} AND seq = {other}) {at}"),
            false,
        );
        add(format!("UPDATE audit SET seq = seq + 100000 {at}"), false);
        add(
            format!("UPDATE audit SET log = 'platform', seq = seq + 100000 {at}"),
            false,
        );
        add(format!("DELETE FROM audit {at}"), false);
        add(format!("INSERT INTO audit (log, seq, body, hash) SELECT log, {}, body, hash FROM audit {at}", size + 1), false);
        for (column, value) in [
            ("time", "0"),
            ("actor", "'key:someone_else'"),
            ("action", "'record.create'"),
            ("outcome", "'ok'"),
            ("subject", "NULL"),
            ("collection", "'other'"),
        ] {
            add(format!("UPDATE audit SET {column} = {value} {at}"), false);
        }
    }
    for j in [1, 10, 100] {
        let cut = size - j;
        let trunc = format!("DELETE FROM audit {w} AND seq > {cut}");
        let cps = format!("DELETE FROM audit_checkpoints {w} AND size > {cut}");
        let nodes =
            format!("DELETE FROM audit_nodes {w} AND (idx + 1) * 256 > {cut} AND level = 8");
        let subjects = format!("DELETE FROM audit_subjects {w} AND seq > {cut}");
        let head = format!("UPDATE audit_heads SET size = {cut}, hash = (SELECT hash FROM audit {w} AND seq = {cut}) {w}");
        add(trunc.clone(), true);
        add(format!("{trunc}; {cps}"), true);
        add(
            format!("{trunc}; {cps}; {nodes}; {subjects}; DELETE FROM audit_heads {w}"),
            true,
        );
        add(format!("{trunc}; {cps}; {nodes}; {subjects}; {head}"), true);
    }
    for set in [
        "size = size + 1",
        "size = size - 1",
        "hash = (SELECT hash FROM audit WHERE log = '{T}' AND seq = 1)",
        "compact = (SELECT compact FROM audit_heads WHERE log = 'platform')",
    ] {
        add(format!("UPDATE audit_heads SET {set} {w}"), true);
    }
    add(format!("DELETE FROM audit_heads {w}"), true);
    let latest = format!("(SELECT max(seq) FROM audit_checkpoints {w})");
    for c in ["1", "2", latest.as_str()] {
        let at = format!("{w} AND seq = {c}");
        for set in [
            "size = size + 1".to_owned(),
            "time = time + 1".to_owned(),
            format!("root = (SELECT hash FROM audit {w} AND seq = 3)"),
            format!("prev = (SELECT hash FROM audit {w} AND seq = 3)"),
            // Another checkpoint's signature (never this one's own).
            format!("signature = (SELECT signature FROM audit_checkpoints {w} AND seq = (SELECT min(seq) FROM audit_checkpoints {w} AND seq <> {c}))"),
            "format = 1".to_owned(),
            "origin = origin || 'x'".to_owned(),
            "seq = seq + 100".to_owned(),
        ] {
            add(format!("UPDATE audit_checkpoints SET {set} {at}"), false);
        }
        add(format!("DELETE FROM audit_checkpoints {at}"), false);
    }
    add(
        format!("UPDATE audit_checkpoints SET log = 'platform', seq = seq + 1000 {w} AND seq = 2"),
        false,
    );
    let first_subject = format!("{w} AND seq = (SELECT min(seq) FROM audit_subjects {w})");
    add(format!("DELETE FROM audit_subjects {first_subject}"), false);
    add(
        format!("UPDATE audit_subjects SET seq = seq + 1 {first_subject}"),
        false,
    );
    add(format!("UPDATE audit_subjects SET subject = 'sub_00000000000000000000000000000000' {first_subject}"), false);
    add("INSERT INTO audit_subjects (log, subject, seq) VALUES ('{T}', 'sub_00000000000000000000000000000000', 5)".to_owned(), false);
    add(
        format!("UPDATE audit_nodes SET hash = (SELECT hash FROM audit {w} AND seq = 1) {w}"),
        false,
    );
    add(format!("DELETE FROM audit_nodes {w}"), false);
    add(format!("UPDATE audit_nodes SET idx = idx + 7 {w}"), false);
    add(format!("INSERT INTO audit_nodes (log, level, idx, hash) SELECT log, 16, 0, hash FROM audit {w} AND seq = 1"), false);
    let whole = |log: &str| {
        [
            "audit",
            "audit_checkpoints",
            "audit_heads",
            "audit_nodes",
            "audit_subjects",
        ]
        .iter()
        .map(|t| format!("DELETE FROM {t} WHERE log = '{log}'"))
        .collect::<Vec<_>>()
        .join("; ")
    };
    add(whole("{T}"), true);
    add(whole("platform"), true);
    out
}

async fn caught(p: &Pristine, db: &Db, sql: &str) -> Result<&'static str, String> {
    if let Err(refused) = db.exec(sql).await {
        return Ok(if refused.contains("generated") {
            "refused: generated column"
        } else {
            "refused by the database"
        });
    }
    let store = db.store().await;
    let witness = Witnessed::load(&p.witness, &p.public_key, &[]).unwrap();
    match audit_tools::verify_store(store.as_ref(), &p.public_key, Some(&witness)).await {
        Err(VerifyError::Failed(_)) => Ok("caught by audit verify"),
        Err(e) => Err(format!("verify could not run: {e}")),
        Ok(_) => Err("audit verify says intact".into()),
    }
}

async fn run_suite(p: Pristine) {
    let work = tempfile::tempdir().unwrap();
    // The pristine database verifies, with the witness, and passes the start-up check.
    let store = p.db.store().await;
    let witness = Witnessed::load(&p.witness, &p.public_key, &[]).unwrap();
    assert!(witness.len() >= 2, "the server published checkpoints");
    audit_tools::verify_store(store.as_ref(), &p.public_key, Some(&witness))
        .await
        .unwrap();
    assert!(
        audit_check::check(store.as_ref(), &p.public_key, Some(&witness))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        p.size >= 256,
        "the log is long enough to hold stored tree nodes ({})",
        p.size
    );
    let subject_rows = store
        .find_audit_subject_rows(&p.tenant, None, 1000)
        .await
        .unwrap();
    assert!(subject_rows.len() >= 10, "{subject_rows:?}");
    drop(store);

    let mut tally = std::collections::BTreeMap::new();
    let all = cases(p.size);
    for (n, (sql, startup)) in all.iter().enumerate() {
        let sql = sql
            .replace("{T}", &p.tenant)
            .replace("{N}", &p.size.to_string());
        let db = p.db.copy(work.path(), n).await;
        let how = caught(&p, &db, &sql)
            .await
            .unwrap_or_else(|e| panic!("case {n} not caught: {sql}: {e}"));
        if *startup && !how.starts_with("refused") {
            let store = db.store().await;
            let found = audit_check::check(store.as_ref(), &p.public_key, Some(&witness))
                .await
                .unwrap();
            assert!(
                !found.is_empty(),
                "the start-up check missed case {n}: {sql}"
            );
        }
        *tally.entry(how).or_insert(0) += 1;
        db.drop_copy().await;
    }
    eprintln!("tamper suite: {} cases: {tally:?}", all.len());
    assert!(all.len() >= 120);

    // An old copy of the whole database (log, checkpoints and heads consistent with each
    // other) is caught by the witness, offline and at start-up.
    let store = p.old.store().await;
    audit_tools::verify_store(store.as_ref(), &p.public_key, None)
        .await
        .expect("without a witness the old copy is self-consistent");
    assert!(matches!(
        audit_tools::verify_store(store.as_ref(), &p.public_key, Some(&witness)).await,
        Err(VerifyError::Failed(_))
    ));
    let found = audit_check::check(store.as_ref(), &p.public_key, Some(&witness))
        .await
        .unwrap();
    assert!(
        found
            .iter()
            .any(|m| m.log == p.tenant && m.code == "truncated"),
        "{found:?}"
    );
}

#[tokio::test]
async fn every_tampering_of_a_sqlite_audit_log_is_caught() {
    let p = pristine(None).await;
    // SQLite's schema itself can be rewritten: a generated column turned into a constant,
    // or a trigger or an extra object on the audit tables.
    let work = tempfile::tempdir().unwrap();
    for (n, sql) in [
        "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql, 'json_extract(body, ''$.outcome'')', '''ok''') WHERE name = 'audit'",
        "CREATE TRIGGER audit_quiet AFTER INSERT ON audit BEGIN SELECT 1; END",
        "CREATE INDEX audit_extra ON audit (log, seq)",
    ]
    .into_iter()
    .enumerate()
    {
        let db = p.db.copy(work.path(), 9000 + n).await;
        assert_eq!(
            caught(&p, &db, sql).await,
            Ok("caught by audit verify"),
            "{sql}"
        );
        db.drop_copy().await;
    }
    single_byte_changes_are_caught(&p, 300).await;
    run_suite(p).await;
}

#[tokio::test]
async fn every_tampering_of_a_postgres_audit_log_is_caught() {
    let Some(url) = postgres::fresh_database().await else {
        return;
    };
    let (base, name) = url.rsplit_once(" dbname=").unwrap();
    let p = pristine(Some((base.to_owned(), name.to_owned()))).await;
    // PostgreSQL's owner could also turn a generated column into a plain one first.
    let db = p.db.copy(Path::new("/"), 9999).await;
    let sql = format!(
        "ALTER TABLE audit ALTER COLUMN outcome DROP EXPRESSION; UPDATE audit SET outcome = 'ok' WHERE log = '{}' AND seq = 3",
        p.tenant
    );
    assert_eq!(caught(&p, &db, &sql).await, Ok("caught by audit verify"));
    db.drop_copy().await;
    single_byte_changes_are_caught(&p, 150).await;
    run_suite(p).await;
}

/// The kind of a stored column, with its PostgreSQL width.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Text,
    Blob,
    /// BIGINT (SQLite: INTEGER).
    Int,
    /// INTEGER.
    Int4,
    /// SMALLINT.
    Int2,
}

#[derive(Clone, Debug, PartialEq)]
enum Val {
    T(String),
    B(Vec<u8>),
    I(i64),
}

/// Every stored (not generated) column of every audit table, keys first.
/// A table: its name, how many leading columns are its key, its columns.
type TableSpec = (&'static str, usize, &'static [(&'static str, Kind)]);

const TABLES: [TableSpec; 5] = [
    (
        "audit",
        2,
        &[
            ("log", Kind::Text),
            ("seq", Kind::Int),
            ("body", Kind::Text),
            ("hash", Kind::Blob),
        ],
    ),
    (
        "audit_heads",
        1,
        &[
            ("log", Kind::Text),
            ("size", Kind::Int),
            ("hash", Kind::Blob),
            ("compact", Kind::Blob),
        ],
    ),
    (
        "audit_checkpoints",
        2,
        &[
            ("log", Kind::Text),
            ("seq", Kind::Int),
            ("size", Kind::Int),
            ("root", Kind::Blob),
            ("time", Kind::Int),
            ("prev", Kind::Blob),
            ("signature", Kind::Blob),
            ("format", Kind::Int2),
            ("origin", Kind::Text),
        ],
    ),
    (
        "audit_subjects",
        3,
        &[
            ("log", Kind::Text),
            ("subject", Kind::Text),
            ("seq", Kind::Int),
        ],
    ),
    (
        "audit_nodes",
        3,
        &[
            ("log", Kind::Text),
            ("level", Kind::Int4),
            ("idx", Kind::Int),
            ("hash", Kind::Blob),
        ],
    ),
];

impl Db {
    /// Every row of `table` in the tenant's log and the platform log, as typed values.
    async fn rows(&self, table: &str, cols: &[(&str, Kind)]) -> Vec<Vec<Val>> {
        let names: Vec<&str> = cols.iter().map(|c| c.0).collect();
        let sql = format!(
            "SELECT {} FROM {table} ORDER BY {}",
            names.join(", "),
            names[..2.min(names.len())].join(", ")
        );
        match self {
            Db::Sqlite(p) => {
                let c = rusqlite::Connection::open(p).unwrap();
                let mut st = c.prepare(&sql).unwrap();
                st.query_map([], |r| {
                    Ok(cols
                        .iter()
                        .enumerate()
                        .map(|(i, (_, k))| match k {
                            Kind::Text => Val::T(r.get(i).unwrap()),
                            Kind::Blob => Val::B(r.get(i).unwrap()),
                            _ => Val::I(r.get(i).unwrap()),
                        })
                        .collect())
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            Db::Pg { base, name } => {
                let c = postgres::connect(&Self::url(base, name)).await;
                c.query(&sql, &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| {
                        cols.iter()
                            .enumerate()
                            .map(|(i, (_, k))| match k {
                                Kind::Text => Val::T(r.get(i)),
                                Kind::Blob => Val::B(r.get(i)),
                                Kind::Int => Val::I(r.get(i)),
                                Kind::Int4 => Val::I(i64::from(r.get::<_, i32>(i))),
                                Kind::Int2 => Val::I(i64::from(r.get::<_, i16>(i))),
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// Sets one column of the row with these keys; `Err` when the database refuses.
    async fn set(
        &self,
        table: &str,
        keys: &[(&str, Kind, Val)],
        column: (&str, Kind, Val),
    ) -> Result<(), String> {
        let mut all = vec![column.clone()];
        all.extend(keys.iter().cloned());
        let placeholders = |i: usize| match self {
            Db::Sqlite(_) => format!("?{}", i + 1),
            Db::Pg { .. } => format!("${}", i + 1),
        };
        let cond: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (k, _, _))| format!("{k} = {}", placeholders(i + 1)))
            .collect();
        let sql = format!(
            "UPDATE {table} SET {} = {} WHERE {}",
            column.0,
            placeholders(0),
            cond.join(" AND ")
        );
        match self {
            Db::Sqlite(p) => {
                let c = rusqlite::Connection::open(p).unwrap();
                let params: Vec<rusqlite::types::Value> = all
                    .iter()
                    .map(|(_, _, v)| match v {
                        Val::T(s) => rusqlite::types::Value::Text(s.clone()),
                        Val::B(b) => rusqlite::types::Value::Blob(b.clone()),
                        Val::I(i) => rusqlite::types::Value::Integer(*i),
                    })
                    .collect();
                c.execute(&sql, rusqlite::params_from_iter(params))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Db::Pg { base, name } => {
                let c = postgres::connect(&Self::url(base, name)).await;
                let params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = all
                    .iter()
                    .map(
                        |(_, k, v)| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
                            match (k, v) {
                                (_, Val::T(s)) => Box::new(s.clone()),
                                (_, Val::B(b)) => Box::new(b.clone()),
                                (Kind::Int4, Val::I(i)) => Box::new(*i as i32),
                                (Kind::Int2, Val::I(i)) => Box::new(*i as i16),
                                (_, Val::I(i)) => Box::new(*i),
                            }
                        },
                    )
                    .collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                    .iter()
                    .map(|b| b.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                c.execute(&sql, &refs)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Changes one byte of a value: a different ASCII character in text, a flipped bit in a
/// blob, one bit of an integer.
fn change_byte(v: &Val, r: u64) -> Val {
    match v {
        Val::T(s) => {
            let mut b = s.clone().into_bytes();
            let ascii: Vec<usize> = (0..b.len()).filter(|&i| b[i].is_ascii_graphic()).collect();
            let i = ascii[(r as usize) % ascii.len()];
            b[i] = if b[i] == b'~' { b'!' } else { b[i] + 1 };
            Val::T(String::from_utf8(b).unwrap())
        }
        Val::B(b) => {
            let mut b = b.clone();
            let i = (r as usize) % b.len();
            b[i] ^= 1 << ((r >> 32) % 8);
            Val::B(b)
        }
        Val::I(i) => Val::I(i ^ (1 << ((r >> 8) % 12))),
    }
}

/// Any single-byte change to any stored audit row (every table, every column, random rows
/// and positions) is refused by the database or caught by `audit verify`.
async fn single_byte_changes_are_caught(p: &Pristine, cases: usize) {
    let work = tempfile::tempdir().unwrap();
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut snapshot = Vec::new();
    for (table, keys, cols) in TABLES {
        let rows = p.db.rows(table, cols).await;
        assert!(!rows.is_empty(), "{table} has rows");
        snapshot.push((table, keys, cols, rows));
    }
    let mut tally = std::collections::BTreeMap::new();
    for n in 0..cases {
        let (table, keys, cols, rows) = &snapshot[(next() % snapshot.len() as u64) as usize];
        let row = &rows[(next() % rows.len() as u64) as usize];
        let c = (next() % cols.len() as u64) as usize;
        let changed = change_byte(&row[c], next());
        assert_ne!(changed, row[c]);
        let key: Vec<(&str, Kind, Val)> = (0..*keys)
            .map(|k| (cols[k].0, cols[k].1, row[k].clone()))
            .collect();
        let db = p.db.copy(work.path(), 20_000 + n).await;
        let what = format!(
            "{table}.{} of {key:?}: {:?} -> {changed:?}",
            cols[c].0, row[c]
        );
        let how = match db.set(table, &key, (cols[c].0, cols[c].1, changed)).await {
            Err(_) => "refused by the database",
            Ok(()) => {
                let store = db.store().await;
                let witness = Witnessed::load(&p.witness, &p.public_key, &[]).unwrap();
                match audit_tools::verify_store(store.as_ref(), &p.public_key, Some(&witness)).await
                {
                    Err(VerifyError::Failed(_)) => "caught by audit verify",
                    other => panic!("single-byte change not caught: {what}: {other:?}"),
                }
            }
        };
        *tally.entry(how).or_insert(0) += 1;
        db.drop_copy().await;
    }
    eprintln!("single-byte changes: {cases}: {tally:?}");
}
