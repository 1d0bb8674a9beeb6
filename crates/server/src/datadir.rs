//! The data directory: its lock, the root key file, the TLS certificate, and the database path.
//! It refuses unsafe states (a key file others can read, a directory in use) and says why.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use strongroom_core::rng::{Rng, RngExt};
use strongroom_crypto::{hex, unhex, Key32};

/// Why the vault cannot start. Messages name files and fixes, never key material.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("unsafe set-up: {0}")]
    Unsafe(String),
    #[error("{what} ({path}): {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SetupError + 'a {
    move |source| SetupError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// An open, locked data directory. Only one vault process uses a directory at a time.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Opens the directory, creating it (mode 0700) if it does not exist, and locks it.
    pub fn open(path: &Path) -> Result<Self, SetupError> {
        if !path.exists() {
            fs::create_dir_all(path).map_err(io("cannot create the data directory", path))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(io("cannot restrict the data directory", path))?;
        }
        let lock_path = path.join("strongroom.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io("cannot open the lock file", &lock_path))?;
        if lock.try_lock().is_err() {
            return Err(SetupError::Unsafe(format!(
                "another Strongroom process is using {}; stop it first",
                path.display()
            )));
        }
        Ok(Self {
            path: path.to_owned(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.path.join("strongroom.db")
    }

    pub fn root_key_path(&self) -> PathBuf {
        self.path.join("root.key")
    }

    pub fn cert_path(&self) -> PathBuf {
        self.path.join("tls").join("cert.pem")
    }

    pub fn tls_key_path(&self) -> PathBuf {
        self.path.join("tls").join("key.pem")
    }

    /// Whether the database exists already (the directory was initialised before).
    pub fn has_database(&self) -> bool {
        self.db_path().exists()
    }

    /// Loads the root key, or creates it (mode 0600) when `create` is set and there is none.
    /// Returns the key and whether it was created.
    pub fn root_key(&self, rng: &dyn Rng, create: bool) -> Result<(Key32, bool), SetupError> {
        let path = self.root_key_path();
        if path.exists() {
            refuse_if_readable_by_others(&path, "the root key file")?;
            let text = zeroize::Zeroizing::new(
                fs::read_to_string(&path).map_err(io("cannot read the root key file", &path))?,
            );
            let key = unhex(text.trim())
                .map(zeroize::Zeroizing::new)
                .and_then(|b| Key32::from_slice(&b))
                .ok_or_else(|| {
                    SetupError::Invalid(format!(
                        "the root key file {} does not hold a 256-bit key in hex",
                        path.display()
                    ))
                })?;
            return Ok((key, false));
        }
        if !create {
            return Err(SetupError::Invalid(format!(
                "the root key file {} is missing; without it the data cannot be decrypted",
                path.display()
            )));
        }
        let key = rng.key();
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io("cannot create the root key file", &path))?;
        f.write_all(format!("{}\n", hex(key.expose())).as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io("cannot write the root key file", &path))?;
        Ok((key, true))
    }

    /// Makes a self-signed certificate for localhost if the directory has none. Returns whether
    /// one was made.
    pub fn ensure_self_signed_cert(&self) -> Result<bool, SetupError> {
        let (cert, key) = (self.cert_path(), self.tls_key_path());
        if cert.exists() && key.exists() {
            return Ok(false);
        }
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        let made = rcgen::generate_simple_self_signed(names)
            .map_err(|e| SetupError::Invalid(format!("cannot make a TLS certificate: {e}")))?;
        let dir = self.path.join("tls");
        fs::create_dir_all(&dir).map_err(io("cannot create the tls directory", &dir))?;
        write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
        fs::write(&cert, made.cert.pem()).map_err(io("cannot write the certificate", &cert))?;
        Ok(true)
    }
}

/// Refuses a secret file (`what`) that other users can read or write, saying how to fix it.
pub fn refuse_if_readable_by_others(path: &Path, what: &str) -> Result<(), SetupError> {
    let mode = fs::metadata(path)
        .map_err(|source| SetupError::Io {
            what: "cannot read a secret file",
            path: path.display().to_string(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(SetupError::Unsafe(format!(
            "{what} {} can be read by other users (mode {:o}); run `chmod 600` on it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SetupError> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot create a private key file", path))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(io("cannot write a private key file", path))
}
