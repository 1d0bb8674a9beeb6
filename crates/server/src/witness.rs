//! The witness directory: checkpoints published outside the database as they are signed, so
//! that a rollback or truncation of the log together with its checkpoints is caught.
//!
//! `serve --witness-dir DIR` writes each log's latest checkpoint as a C2SP signed note to
//! `DIR/<log>.checkpoint` (replaced atomically, 0600); the directory should live on another
//! machine or mount the database's writers cannot reach (a network share, a bucket synced by a
//! separate account, an append-only store). `audit verify --witness DIR` reads every
//! `*.checkpoint` file below `DIR` — the ones this server wrote, and older copies an operator
//! or an external witness kept — and checks the log against each.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use strongroom_core::checkpoint::{CheckpointRow, Cosigner};
use strongroom_core::Store;

/// Checkpoints a witness holds, by log.
#[derive(Debug, Clone, Default)]
pub struct Witnessed {
    by_log: BTreeMap<String, Vec<CheckpointRow>>,
}

impl Witnessed {
    /// Reads every `*.checkpoint` file below `dir` (recursively) and checks each signature
    /// with `public_key`. A file that is not a valid checkpoint of this installation is an
    /// error: a witness that holds garbage cannot vouch for anything.
    ///
    /// With `cosigners`, only checkpoints that every one of them cosigned (C2SP
    /// tlog-cosignature) count, a cosignature that does not verify is an error, and a witness
    /// holding no such checkpoint is an error too.
    pub fn load(dir: &Path, public_key: &[u8; 32], cosigners: &[Cosigner]) -> Result<Self, String> {
        let mut out = Self::default();
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d)
                .map_err(|e| format!("cannot read the witness directory {}: {e}", d.display()))?;
            for entry in entries {
                let path = entry.map_err(|e| e.to_string())?.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "checkpoint") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                let row = CheckpointRow::from_note(&text, public_key)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let mut cosigned = true;
                for c in cosigners {
                    let time = c
                        .verify_note(&text)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    cosigned &= time.is_some();
                }
                if !cosigned {
                    continue;
                }
                let list = out.by_log.entry(row.log.clone()).or_default();
                if !list.contains(&row) {
                    list.push(row);
                }
            }
        }
        if !cosigners.is_empty() && out.is_empty() {
            let names: Vec<&str> = cosigners.iter().map(|c| c.name.as_str()).collect();
            return Err(format!(
                "the witness directory {} holds no checkpoint cosigned by {}",
                dir.display(),
                names.join(" and ")
            ));
        }
        Ok(out)
    }

    /// The logs the witness knows.
    pub fn logs(&self) -> impl Iterator<Item = &str> {
        self.by_log.keys().map(String::as_str)
    }

    /// The checkpoints the witness holds for `log`.
    pub fn of(&self, log: &str) -> Vec<CheckpointRow> {
        self.by_log.get(log).cloned().unwrap_or_default()
    }

    /// How many checkpoints in all.
    pub fn len(&self) -> usize {
        self.by_log.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Publishes each log's newest checkpoint to a witness directory.
pub struct Publisher {
    dir: PathBuf,
    public_key: [u8; 32],
    published: HashMap<String, u64>,
}

impl Publisher {
    /// Creates the directory (0700) if needed.
    pub fn new(dir: &Path, public_key: [u8; 32]) -> Result<Self, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create the witness directory {}: {e}", dir.display()))?;
        Ok(Self {
            dir: dir.to_owned(),
            public_key,
            published: HashMap::new(),
        })
    }

    /// Writes each of `made` (checkpoints just signed) as its log's latest. The server's
    /// checkpointer hands over what it signs, so nothing is scanned to find them; a checkpoint
    /// signed elsewhere (on request) is covered by the next one the checkpointer signs.
    pub async fn publish(
        &mut self,
        store: &dyn Store,
        made: &[CheckpointRow],
    ) -> Result<usize, String> {
        let mut written = 0;
        for c in made {
            // The name becomes a file name: only the logs the vault itself names.
            if c.log != strongroom_core::audit::PLATFORM_LOG
                && strongroom_core::TenantId::parse(&c.log).is_none()
            {
                continue;
            }
            if self.published.get(&c.log).is_some_and(|&seq| seq >= c.seq) {
                continue;
            }
            let Some(note) = c.note(&self.public_key) else {
                continue; // a legacy checkpoint: the next one will be in the C2SP format
            };
            let path = self.dir.join(format!("{}.checkpoint", c.log));
            self.keep_if_forked(store, &c.log, &path, c).await?;
            write_atomically(&path, &note)?;
            self.published.insert(c.log.clone(), c.seq);
            written += 1;
        }
        Ok(written)
    }
}

impl Publisher {
    /// Before `path` is replaced by `next`: if the checkpoint it holds is not a prefix of the
    /// log as it is now (the log was rolled back, and the operator let the server start on
    /// it), the old file is kept beside it as `<log>.<seq>.forked.checkpoint`, so that the
    /// evidence is never overwritten; `audit verify --witness` keeps failing until someone
    /// moves it away deliberately.
    async fn keep_if_forked(
        &self,
        store: &dyn Store,
        log: &str,
        path: &Path,
        next: &CheckpointRow,
    ) -> Result<(), String> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Ok(());
        };
        let extends = match CheckpointRow::from_note(&text, &self.public_key) {
            Ok(old) if old.size <= next.size => {
                strongroom_core::proofs::root(store, log, old.size)
                    .await
                    .map_err(|e| e.to_string())?
                    == old.root
            }
            Ok(_) => false,
            Err(_) => false,
        };
        if !extends {
            let seq = CheckpointRow::from_note(&text, &self.public_key).map_or(0, |c| c.seq);
            let kept = self.dir.join(format!("{log}.{seq}.forked.checkpoint"));
            tracing::error!(
                alert = "witness_fork",
                log,
                kept = %kept.display(),
                "the witnessed checkpoint is not a prefix of the log any more; keeping it"
            );
            std::fs::rename(path, &kept)
                .map_err(|e| format!("cannot keep {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("checkpoint.tmp");
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(text.as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}
