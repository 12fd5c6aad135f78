//! Secrets kept in the database sealed, never in clear text: a collector's client secret or
//! certificate given as a value (over the API) is stored encrypted with ChaCha20-Poly1305
//! under a 256-bit key that the database never holds. The key is a file of 64 hex digits:
//! the one the server's settings name (`--secret-key-file`), else one created on first use
//! beside the embedded database (`{db}.key`, mode 0600). A sealed value is bound to what it
//! belongs to (its context, e.g. the registration), so a value copied to another row does
//! not open, and it names the key it was sealed with, so a node holding another key says so.
//!
//! Sealed form: `sb1:{key id}:{base64 of nonce and ciphertext}`, the key id being the first
//! 8 hex digits of the key's SHA-256.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key file cannot be read, created or parsed.
    #[error("the secret key file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value was sealed with another key than this server's.
    #[error(
        "the secret was sealed with key {sealed_with}, but this server's key ({path}) is \
         {key_id}: give every node the same --secret-key-file"
    )]
    OtherKey {
        /// The id of the key that sealed it.
        sealed_with: String,
        /// This server's key id.
        key_id: String,
        /// This server's key file.
        path: String,
    },
    /// The sealed value is damaged or belongs to something else.
    #[error("the sealed secret does not open: {0}")]
    Damaged(&'static str),
}

const PREFIX: &str = "sb1";

/// A loaded key.
struct SecretKey {
    key: LessSafeKey,
    id: String,
}

impl SecretKey {
    fn from_bytes(bytes: &[u8; 32]) -> Self {
        let id: String = Sha256::digest(bytes)[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = LessSafeKey::new(
            UnboundKey::new(&CHACHA20_POLY1305, bytes)
                .unwrap_or_else(|_| unreachable!("a 32-byte key fits ChaCha20-Poly1305")),
        );
        Self { key, id }
    }
}

/// The server's secret key, loaded (or created) the first time a secret is sealed or opened.
pub struct SecretKeyring {
    path: PathBuf,
    key: Mutex<Option<Arc<SecretKey>>>,
}

impl std::fmt::Debug for SecretKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKeyring")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretKeyring {
    /// The key in the file at `path`, created there on first use if missing.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            key: Mutex::new(None),
        }
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key_file_error(&self, reason: impl std::fmt::Display) -> SecretError {
        SecretError::KeyFile {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn load(&self) -> Result<Arc<SecretKey>, SecretError> {
        let mut slot = self.key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = slot.as_ref() {
            return Ok(Arc::clone(key));
        }
        let bytes = match std::fs::read_to_string(&self.path) {
            Ok(text) => self.parse(&text)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => self.create()?,
            Err(err) => return Err(self.key_file_error(err)),
        };
        let key = Arc::new(SecretKey::from_bytes(&bytes));
        *slot = Some(Arc::clone(&key));
        Ok(key)
    }

    fn parse(&self, text: &str) -> Result<[u8; 32], SecretError> {
        let text = text.trim();
        let mut bytes = [0u8; 32];
        let valid = text.len() == 64
            && bytes.iter_mut().enumerate().all(|(i, byte)| {
                u8::from_str_radix(text.get(2 * i..2 * i + 2).unwrap_or("-"), 16)
                    .map(|value| *byte = value)
                    .is_ok()
            });
        if !valid {
            return Err(self.key_file_error("it does not hold 64 hex digits"));
        }
        Ok(bytes)
    }

    /// Writes a new key to a temporary file and links it into place, so that two processes
    /// creating it at once agree on one key and nobody reads a half-written file.
    fn create(&self) -> Result<[u8; 32], SecretError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| self.key_file_error("no system randomness to create it"))?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let temporary = self
            .path
            .with_extension(format!("key.{}.tmp", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&temporary)?;
            file.write_all(format!("{hex}\n").as_bytes())?;
            file.sync_all()
        })();
        let linked = written.and_then(|()| std::fs::hard_link(&temporary, &self.path));
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
                }
                tracing::info!(path = %self.path.display(), "created the secret key file");
                Ok(bytes)
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let text =
                    std::fs::read_to_string(&self.path).map_err(|err| self.key_file_error(err))?;
                self.parse(&text)
            }
            Err(err) => Err(self.key_file_error(format!("cannot create it: {err}"))),
        }
    }

    /// `plaintext` sealed for `context` (what it belongs to).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<String, SecretError> {
        let key = self.load()?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretError::Damaged("no system randomness"))?;
        let mut sealed = plaintext.to_vec();
        key.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| SecretError::Damaged("it cannot be sealed"))?;
        let mut framed = nonce.to_vec();
        framed.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}:{}:{}", key.id, STANDARD.encode(framed)))
    }

    /// The plaintext of a value [`SecretKeyring::seal`] sealed for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, SecretError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(PREFIX), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SecretError::Damaged("it is not in the sealed form"));
        };
        let key = self.load()?;
        if key_id != key.id {
            return Err(SecretError::OtherKey {
                sealed_with: key_id.to_owned(),
                key_id: key.id.clone(),
                path: self.path.display().to_string(),
            });
        }
        let framed = STANDARD
            .decode(body)
            .map_err(|_| SecretError::Damaged("it is not base64"))?;
        if framed.len() < NONCE_LEN {
            return Err(SecretError::Damaged("it is too short"));
        }
        let (nonce, ciphertext) = framed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| SecretError::Damaged("its nonce is malformed"))?;
        let mut buffer = ciphertext.to_vec();
        let plaintext = key
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer)
            .map_err(|_| SecretError::Damaged("it was changed, or sealed for another collector"))?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_context_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stackbill.db.key");
        let keyring = SecretKeyring::new(&path);
        let sealed = keyring
            .seal(b"s3cr3t value", "collector:hub-a:secret")
            .unwrap();
        assert!(!sealed.contains("s3cr3t"));
        assert!(sealed.starts_with("sb1:"));
        // Each sealing draws a new nonce.
        assert_ne!(
            sealed,
            keyring
                .seal(b"s3cr3t value", "collector:hub-a:secret")
                .unwrap()
        );
        assert_eq!(
            keyring.open(&sealed, "collector:hub-a:secret").unwrap(),
            b"s3cr3t value"
        );
        assert!(matches!(
            keyring.open(&sealed, "collector:hub-b:secret"),
            Err(SecretError::Damaged(_))
        ));
        // The key file was created private, and a second process reads the same key.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SecretKeyring::new(&path);
        assert_eq!(
            again.open(&sealed, "collector:hub-a:secret").unwrap(),
            b"s3cr3t value"
        );
        // Another key names both.
        let other = SecretKeyring::new(dir.path().join("other.key"));
        let err = other.open(&sealed, "collector:hub-a:secret").unwrap_err();
        assert!(matches!(err, SecretError::OtherKey { .. }), "{err}");
        assert!(err.to_string().contains("--secret-key-file"), "{err}");
        // A flipped byte is caught.
        let mut damaged = sealed.clone().into_bytes();
        let last = damaged.len() - 3;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        let damaged = String::from_utf8(damaged).unwrap();
        assert!(keyring.open(&damaged, "collector:hub-a:secret").is_err());
    }

    #[test]
    fn a_key_file_that_is_not_a_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key").unwrap();
        let err = SecretKeyring::new(&path).seal(b"x", "c").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("bad.key") && text.contains("64 hex digits"),
            "{text}"
        );
    }
}
