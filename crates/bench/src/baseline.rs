//! The do-it-yourself baseline: PostgreSQL (Debian's packages, started here in a temporary
//! directory, `fsync=on`, `synchronous_commit=on`) holding the same people encrypted with
//! pgcrypto, driven by `pgbench` with custom scripts at the same concurrency as the HTTP
//! workloads. A read is `SELECT` + decrypt + `INSERT` of an audit row in one transaction; a
//! write inserts the row (encrypted fields, HMAC blind indexes for the two searchable ones) and
//! its audit row. Statements are prepared (`-M prepared`), which is the fastest pgbench allows.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use hdrhistogram::Histogram;

use crate::load::{histogram, Dice};

/// What the baseline needs, and how to get it on Debian or Ubuntu.
const NEEDS: &str = "the baseline needs PostgreSQL's server binaries, pgbench and the pgcrypto \
                     extension: apt-get install -y postgresql postgresql-contrib \
                     (or run with --no-baseline)";

/// A baseline database holding `n` people.
pub struct Baseline {
    conninfo: String,
    pgbench: std::path::PathBuf,
    key: String,
    index_key: String,
    stored: u64,
    scripts: tempfile::TempDir,
}

/// What pgbench measured.
pub struct BaselineRun {
    pub tps: f64,
    pub histogram: Histogram<u64>,
}

const SCHEMA: &str = "
CREATE TABLE people (
    id bigserial PRIMARY KEY,
    subject uuid NOT NULL,
    email bytea NOT NULL, phone bytea, name bytea, birth_date bytea, city bytea,
    email_idx bytea NOT NULL, phone_idx bytea,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX people_email_idx ON people (email_idx);
CREATE INDEX people_phone_idx ON people (phone_idx);
CREATE TABLE audit (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL, action text NOT NULL, purpose text, record_id bigint, fields text[]
);
-- Person number k, the same values the Strongroom workloads store.
CREATE FUNCTION seal(t text, key text) RETURNS bytea LANGUAGE sql IMMUTABLE
    AS $$ SELECT encrypt(convert_to(t, 'UTF8'), decode(key, 'hex'), 'aes') $$;
CREATE FUNCTION unseal(b bytea, key text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT convert_from(decrypt(b, decode(key, 'hex'), 'aes'), 'UTF8') $$;
CREATE FUNCTION blind(t text, key text) RETURNS bytea LANGUAGE sql IMMUTABLE
    AS $$ SELECT hmac(convert_to(lower(t), 'UTF8'), decode(key, 'hex'), 'sha256') $$;
CREATE FUNCTION phone_of(k bigint) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT '+44 20 ' || lpad((k / 10000 % 10000)::text, 4, '0') || ' ' || lpad((k % 10000)::text, 4, '0') $$;
CREATE FUNCTION birth_of(k bigint) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT '19' || lpad((k % 100)::text, 2, '0') || '-' || lpad((k % 12 + 1)::text, 2, '0') || '-' || lpad((k % 28 + 1)::text, 2, '0') $$;
";

/// Inserts people `k` for `k` in the rows of the query `FROM`, with one audit row each.
fn insert_people(from: &str) -> String {
    format!(
        "WITH r AS (INSERT INTO people (subject, email, phone, name, birth_date, city, email_idx, phone_idx)
            SELECT gen_random_uuid(), seal('user' || k || '@example.com', :key), seal(phone_of(k), :key),
                   seal('Person Number ' || k, :key), seal(birth_of(k), :key), seal('London', :key),
                   blind('user' || k || '@example.com', :ikey), blind(phone_of(k), :ikey)
            {from} RETURNING id)
         INSERT INTO audit (actor, action, purpose, record_id, fields)
            SELECT 'bench_app', 'record.create', 'support', id, '{{email,phone,name,birth_date,city}}' FROM r;"
    )
}

const SELECT_PERSON: &str = "SELECT id, subject, unseal(email, :key) AS email, unseal(phone, :key) AS phone,
       unseal(name, :key) AS name, unseal(birth_date, :key) AS birth_date, unseal(city, :key) AS city
    FROM people";

fn audit_read(id: &str) -> String {
    format!(
        "INSERT INTO audit (actor, action, purpose, record_id, fields)
    VALUES ('bench_app', 'record.read', 'support', {id}::bigint, '{{email,phone,name,birth_date,city}}');"
    )
}

fn script_texts() -> Vec<(&'static str, String)> {
    vec![
        (
            "read",
            format!(
                "\\set id random(1, :n)\nBEGIN;\n{SELECT_PERSON} WHERE id = :id;\n{}\nEND;\n",
                audit_read(":id")
            ),
        ),
        (
            "search",
            format!(
                "\\set k random(0, :n - 1)\nBEGIN;\n{SELECT_PERSON} WHERE email_idx = blind('user' || :k || '@example.com', :ikey) \\gset\n{}\nEND;\n",
                audit_read(":id")
            ),
        ),
        (
            "write",
            format!(
                "\\set k random(1000000000, 1999999999)\nBEGIN;\n{}\nEND;\n",
                insert_people("FROM (SELECT :k::bigint AS k) AS one")
            ),
        ),
        (
            "batch",
            format!(
                "\\set k random(1000000000, 1999999999)\nBEGIN;\n{}\nEND;\n",
                insert_people("FROM generate_series(:k::bigint, :k::bigint + 99) AS k")
            ),
        ),
    ]
}

/// A PostgreSQL error with the server's own message (tokio-postgres shows only "db error").
fn pg_error(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

fn random_hex(dice: &mut Dice) -> String {
    let bytes: Vec<u8> = (0..4).flat_map(|_| dice.next().to_le_bytes()).collect();
    strongroom_crypto::hex(&bytes)
}

impl Baseline {
    /// Starts PostgreSQL and stores nobody yet. Fails with what to install when the parts are
    /// missing.
    pub async fn start(seed: u64) -> Result<Self> {
        let pgbench = strongroom_testkit::postgres::find_bin("pgbench").context(NEEDS)?;
        let base = strongroom_testkit::postgres::server_base()
            .map_err(|why| anyhow::anyhow!("{why}; {NEEDS}"))?;
        let conninfo = strongroom_testkit::postgres::create_database(base).await;
        let client = strongroom_testkit::postgres::connect(&conninfo).await;
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")
            .await
            .map_err(|e| anyhow::anyhow!("{}; {NEEDS}", pg_error(&e)))?;
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| anyhow::anyhow!("baseline schema: {}", pg_error(&e)))?;
        let scripts = tempfile::Builder::new()
            .prefix("strongroom-baseline")
            .tempdir()?;
        for (name, text) in script_texts() {
            std::fs::write(scripts.path().join(format!("{name}.sql")), text)?;
        }
        let mut dice = Dice::new(seed);
        Ok(Self {
            conninfo,
            pgbench,
            key: random_hex(&mut dice),
            index_key: random_hex(&mut dice),
            stored: 0,
            scripts,
        })
    }

    /// Stores people until there are `target`, in units of 100,000.
    pub async fn preload(&mut self, target: u64) -> Result<()> {
        let client = strongroom_testkit::postgres::connect(&self.conninfo).await;
        while self.stored < target {
            let n = 100_000.min(target - self.stored);
            let sql = insert_people(&format!(
                "FROM generate_series({}::bigint, {}::bigint) AS k",
                self.stored,
                self.stored + n - 1
            ))
            .replace(":ikey", &format!("'{}'", self.index_key))
            .replace(":key", &format!("'{}'", self.key));
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| anyhow::anyhow!("baseline preload: {}", pg_error(&e)))?;
            self.stored += n;
            eprintln!("  baseline preload: {} of {target} people", self.stored);
        }
        client.batch_execute("VACUUM ANALYZE").await?;
        Ok(())
    }

    /// Runs one workload with pgbench: `warmup` seconds unmeasured, then `duration` seconds
    /// measured with a per-transaction log for the latency quantiles.
    pub fn run(
        &self,
        workload: &str,
        clients: usize,
        warmup: u64,
        duration: u64,
    ) -> Result<BaselineRun> {
        let dir = self.scripts.path();
        let files: Vec<String> = match workload {
            "mixed" => vec![
                format!("{}/read.sql@9", dir.display()),
                format!("{}/write.sql@1", dir.display()),
            ],
            w => vec![format!("{}/{w}.sql", dir.display())],
        };
        if warmup > 0 {
            self.pgbench(&files, clients, warmup, None)?;
        }
        let logs = tempfile::Builder::new()
            .prefix("strongroom-pgbench")
            .tempdir()?;
        let prefix = logs.path().join("tx");
        let tps = self.pgbench(&files, clients, duration, Some(&prefix))?;
        let mut hist = histogram()?;
        for entry in std::fs::read_dir(logs.path())? {
            let text = std::fs::read_to_string(entry?.path())?;
            for line in text.lines() {
                // client_id transaction_no time_us script_no epoch epoch_us
                if let Some(us) = line.split(' ').nth(2).and_then(|v| v.parse::<u64>().ok()) {
                    hist.saturating_record(us);
                }
            }
        }
        ensure!(!hist.is_empty(), "pgbench logged no transactions");
        Ok(BaselineRun {
            tps,
            histogram: hist,
        })
    }

    fn pgbench(
        &self,
        files: &[String],
        clients: usize,
        seconds: u64,
        log: Option<&Path>,
    ) -> Result<f64> {
        let mut cmd = Command::new(&self.pgbench);
        cmd.args(["-n", "-M", "prepared", "-j", "2"])
            .args(["-c", &clients.to_string(), "-T", &seconds.to_string()])
            .args(["-D", &format!("n={}", self.stored)])
            .args(["-D", &format!("key={}", self.key)])
            .args(["-D", &format!("ikey={}", self.index_key)]);
        for f in files {
            cmd.args(["-f", f]);
        }
        if let Some(prefix) = log {
            cmd.arg("-l")
                .arg(format!("--log-prefix={}", prefix.display()));
        }
        cmd.arg(&self.conninfo);
        let out = cmd.output().context("cannot run pgbench")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "pgbench failed: {}{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let failed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        ensure!(
            failed == 0,
            "pgbench: {failed} transactions failed:\n{stdout}"
        );
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no tps in pgbench's output:\n{stdout}"))
    }
}
