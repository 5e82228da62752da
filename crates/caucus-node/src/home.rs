//! A node's home directory and the secrets kept in it.
//!
//! ```text
//! <home>/keys.wrapped   the vault: database key, device keys, identity key (on the
//!                       organizer's first device only), device certificate, name;
//!                       one Argon2id-wrapped blob (caucus-crypto `at_rest`)
//! <home>/caucus.db      SQLCipher database (+ -wal, -shm): entries, views, keyrings,
//!                       invites, settings; encrypted under the database key
//! <home>/caucus.lock    held (flock) by whichever process writes entries: `caucus run`,
//!                       or one CLI command while no node runs
//! <home>/caucus.sock    the running node's control socket (0600; see `control`)
//! ```
//!
//! One Argon2id derivation per process: the passphrase unwraps the vault once, and
//! everything else is either inside it or inside the database it unlocks. Group
//! keyrings are stored in the database's `wrapped_keys` table, so they are encrypted at
//! rest by SQLCipher under the vault's database key.

use crate::NodeError;
use caucus_crypto::at_rest::{KdfParams, WrappedSecret};
use caucus_crypto::{DeviceKeys, IdentityKeypair};
use caucus_proto::{DeviceCert, codec};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The vault file.
pub(crate) const KEYS_FILE: &str = "keys.wrapped";
/// The database file.
pub(crate) const DB_FILE: &str = "caucus.db";
/// The writer lock file.
pub(crate) const LOCK_FILE: &str = "caucus.lock";
/// The running node's control socket.
pub(crate) const SOCKET_FILE: &str = "caucus.sock";

/// Purpose string bound into the vault's wrapping.
const VAULT_PURPOSE: &str = "caucus home vault";
/// Largest vault, encoded.
const MAX_VAULT_BYTES: usize = 16 * 1024;

/// The secrets of one device, as kept in the vault. Zeroized on drop.
#[derive(Serialize, Deserialize, Zeroize)]
#[zeroize(drop)]
pub(crate) struct Vault {
    pub(crate) version: u8,
    pub(crate) db_key: [u8; 32],
    pub(crate) device: Vec<u8>,
    pub(crate) identity: Option<[u8; 32]>,
    #[zeroize(skip)]
    pub(crate) cert: DeviceCert,
    pub(crate) name: String,
}

/// What a vault unlocks, decoded.
pub(crate) struct Unlocked {
    pub(crate) db_key: Zeroizing<[u8; 32]>,
    pub(crate) device: DeviceKeys,
    pub(crate) identity: Option<IdentityKeypair>,
    pub(crate) cert: DeviceCert,
    pub(crate) name: String,
}

/// Paths of a home directory.
#[derive(Clone, Debug)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// The home at `dir` (nothing is touched).
    pub fn new(dir: impl Into<PathBuf>) -> Home {
        Home { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The vault file.
    pub fn keys_file(&self) -> PathBuf {
        self.dir.join(KEYS_FILE)
    }

    /// The database file.
    pub fn db_file(&self) -> PathBuf {
        self.dir.join(DB_FILE)
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join(SOCKET_FILE)
    }

    /// Whether `init` (or a device add) has run here.
    pub fn is_initialized(&self) -> bool {
        self.keys_file().exists()
    }

    /// Creates the directory (owner-only) if needed.
    pub(crate) fn create_dir(&self) -> Result<(), NodeError> {
        fs::create_dir_all(&self.dir).map_err(|e| NodeError::io(&self.dir, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| NodeError::io(&self.dir, e))?;
        }
        Ok(())
    }

    /// Writes a new vault; refuses to overwrite one.
    pub(crate) fn write_vault(
        &self,
        vault: &Vault,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<(), NodeError> {
        let path = self.keys_file();
        if path.exists() {
            return Err(NodeError::AlreadyInitialized(self.dir.clone()));
        }
        let bytes = Zeroizing::new(
            codec::encode::<_, MAX_VAULT_BYTES>(vault)
                .map_err(|e| NodeError::Corrupt(format!("vault: {e}")))?,
        );
        let wrapped =
            WrappedSecret::wrap(passphrase, VAULT_PURPOSE, &bytes, params, &mut rand::rng())
                .map_err(|e| NodeError::Crypto(e.to_string()))?;
        let out = wrapped
            .to_bytes()
            .map_err(|e| NodeError::Crypto(e.to_string()))?;
        let tmp = self.dir.join("keys.wrapped.tmp");
        fs::write(&tmp, &out).map_err(|e| NodeError::io(&tmp, e))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| NodeError::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| NodeError::io(&path, e))?;
        Ok(())
    }

    /// Unwraps the vault with the passphrase (one Argon2id).
    pub(crate) fn unlock(&self, passphrase: &[u8]) -> Result<Unlocked, NodeError> {
        let path = self.keys_file();
        if !path.exists() {
            return Err(NodeError::NotInitialized(self.dir.clone()));
        }
        let bytes = fs::read(&path).map_err(|e| NodeError::io(&path, e))?;
        let wrapped = WrappedSecret::from_bytes(&bytes)
            .map_err(|e| NodeError::Corrupt(format!("{}: {e}", path.display())))?;
        let plain = wrapped
            .unwrap(passphrase, VAULT_PURPOSE)
            .map_err(|_| NodeError::WrongPassphrase)?;
        let vault: Vault = codec::decode::<_, MAX_VAULT_BYTES>(&plain)
            .map_err(|e| NodeError::Corrupt(format!("vault: {e}")))?;
        if vault.version != 1 {
            return Err(NodeError::Corrupt(
                "vault from another caucus version".into(),
            ));
        }
        let device = DeviceKeys::from_secret_bytes(&vault.device)
            .map_err(|e| NodeError::Corrupt(format!("device keys: {e}")))?;
        let identity = vault
            .identity
            .as_ref()
            .map(IdentityKeypair::from_secret_bytes);
        Ok(Unlocked {
            db_key: Zeroizing::new(vault.db_key),
            device,
            identity,
            cert: vault.cert.clone(),
            name: vault.name.clone(),
        })
    }

    /// Takes the writer lock without waiting: `None` if another process holds it.
    pub fn try_lock(&self) -> Result<Option<File>, NodeError> {
        let path = self.dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| NodeError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(NodeError::io(&path, e)),
        }
    }
}
