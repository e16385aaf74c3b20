//! API keys: the bearer tokens `--api-key` / `--api-key-file` accept on the inference and model
//! routes of both transports.
//!
//! Only SHA-256 digests of the keys are kept (the keys themselves, from flags or the file, are
//! zeroed once hashed), and a presented token is compared against every
//! one of them in constant time, so neither the comparison's timing nor a heap dump gives a key
//! away. A key file is re-read on SIGHUP; a file that cannot be read leaves the current keys in
//! place, so a botched rotation never locks everyone out.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::telemetry::metrics as m;

type KeyDigest = [u8; 32];

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("this route needs an API key: send `Authorization: Bearer <key>`")]
    Missing,
    #[error("the API key is not valid")]
    Invalid,
}

/// Why the keys could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{flag} {path}: {source}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} {1}: no keys in it (one per line; `#` starts a comment)")]
    Empty(&'static str, PathBuf),
    #[error("an API key must be printable ASCII without spaces, 16 to 256 characters long")]
    Malformed,
}

/// The accepted keys.
#[derive(Debug)]
pub struct ApiKeys {
    /// From `--api-key`: fixed for the life of the process.
    fixed: Vec<KeyDigest>,
    /// `--api-key-file`, re-read on SIGHUP.
    file: Option<PathBuf>,
    current: RwLock<Arc<[KeyDigest]>>,
    /// The flag naming the file, for errors.
    file_flag: &'static str,
    /// Whether these are the inference keys, which `ember_api_keys` counts.
    counted: bool,
}

impl ApiKeys {
    /// The keys from the flags, or `None` when neither flag is given (no authentication).
    pub(crate) fn load<K: AsRef<str>>(
        keys: &[K],
        file: Option<&Path>,
    ) -> Result<Option<Arc<Self>>, KeyFileError> {
        Self::load_as(keys, file, "--api-key-file", true)
    }

    /// The admin keys (`--admin-api-key`, `--admin-api-key-file`): the repository API's, kept
    /// apart from the inference keys.
    pub(crate) fn load_admin<K: AsRef<str>>(
        keys: &[K],
        file: Option<&Path>,
    ) -> Result<Option<Arc<Self>>, KeyFileError> {
        Self::load_as(keys, file, "--admin-api-key-file", false)
    }

    fn load_as<K: AsRef<str>>(
        keys: &[K],
        file: Option<&Path>,
        file_flag: &'static str,
        counted: bool,
    ) -> Result<Option<Arc<Self>>, KeyFileError> {
        if keys.is_empty() && file.is_none() {
            return Ok(None);
        }
        let fixed = keys
            .iter()
            .map(|k| parse_key(k.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let from_file = file
            .map(|f| read_key_file(f, file_flag))
            .transpose()?
            .unwrap_or_default();
        let current: Arc<[KeyDigest]> = fixed.iter().chain(&from_file).copied().collect();
        if counted {
            metrics::gauge!(m::API_KEYS).set(current.len() as f64);
        }
        Ok(Some(Arc::new(Self {
            fixed,
            file: file.map(Path::to_path_buf),
            current: RwLock::new(current),
            file_flag,
            counted,
        })))
    }

    fn digests(&self) -> Arc<[KeyDigest]> {
        match self.current.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether a key of `self` is also one of `other`'s (an admin key that would also pass
    /// as an inference key, or the reverse).
    pub(crate) fn shares_a_key_with(&self, other: &Self) -> bool {
        let theirs = other.digests();
        self.digests().iter().any(|k| theirs.contains(k))
    }

    /// Check an `Authorization` header's value.
    pub(crate) fn verify(&self, authorization: Option<&[u8]>) -> Result<(), AuthError> {
        let token = authorization
            .and_then(bearer_token)
            .ok_or(AuthError::Missing)?;
        let presented: KeyDigest = Sha256::digest(token).into();
        let keys = self.digests();
        // Every key is compared, matching or not, so the time taken says nothing about which.
        let matched = keys.iter().fold(subtle::Choice::from(0), |found, key| {
            found | key.ct_eq(&presented)
        });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }

    /// Re-read the key file (if there is one). On failure the keys in use stay.
    pub(crate) fn reload(&self) -> Result<usize, KeyFileError> {
        let Some(path) = &self.file else {
            return Ok(self.fixed.len());
        };
        let keys: Arc<[KeyDigest]> = self
            .fixed
            .iter()
            .copied()
            .chain(read_key_file(path, self.file_flag)?)
            .collect();
        let count = keys.len();
        match self.current.write() {
            Ok(mut current) => *current = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        if self.counted {
            metrics::gauge!(m::API_KEYS).set(count as f64);
        }
        Ok(count)
    }
}

/// Reload the key file on every SIGHUP, for the life of the process.
#[cfg(unix)]
pub(crate) fn reload_on_sighup(keys: Arc<ApiKeys>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: API keys will not be reloaded");
            return;
        }
    };
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match keys.reload() {
                Ok(count) => {
                    metrics::counter!(m::API_KEY_RELOADS, "result" => "success").increment(1);
                    tracing::info!(keys = count, "SIGHUP: API keys reloaded");
                }
                Err(e) => {
                    metrics::counter!(m::API_KEY_RELOADS, "result" => "failure").increment(1);
                    tracing::error!(error = %e, "SIGHUP: API keys not reloaded, the previous ones stay in use");
                }
            }
        }
    });
}

#[cfg(not(unix))]
pub(crate) fn reload_on_sighup(_: Arc<ApiKeys>) {}

/// The token of `Bearer <token>` (the scheme is case-insensitive, RFC 9110 §11.1).
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = header.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

fn parse_key(key: &str) -> Result<KeyDigest, KeyFileError> {
    let ok = (16..=256).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(Sha256::digest(key.as_bytes()).into())
    } else {
        Err(KeyFileError::Malformed)
    }
}

fn read_key_file(path: &Path, flag: &'static str) -> Result<Vec<KeyDigest>, KeyFileError> {
    // Zeroed when dropped, as the flags' keys are: only digests outlive this function.
    let text = std::fs::read_to_string(path)
        .map(secrecy::SecretString::from)
        .map_err(|source| KeyFileError::Read {
            flag,
            path: path.to_path_buf(),
            source,
        })?;
    let text = secrecy::ExposeSecret::expose_secret(&text);
    let keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(parse_key)
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(KeyFileError::Empty(flag, path.to_path_buf()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k-0123456789abcdef";

    fn keys(list: &[&str]) -> Arc<ApiKeys> {
        ApiKeys::load(list, None).unwrap().unwrap()
    }

    #[test]
    fn no_flags_means_no_authentication() {
        assert!(ApiKeys::load::<&str>(&[], None).unwrap().is_none());
    }

    #[test]
    fn only_a_listed_bearer_token_passes() {
        let k = keys(&[KEY, "second-key-abcdefghij"]);
        assert_eq!(k.verify(Some(format!("Bearer {KEY}").as_bytes())), Ok(()));
        assert_eq!(k.verify(Some(b"bearer second-key-abcdefghij")), Ok(()));
        assert_eq!(k.verify(None), Err(AuthError::Missing));
        assert_eq!(k.verify(Some(KEY.as_bytes())), Err(AuthError::Missing));
        assert_eq!(
            k.verify(Some(b"Basic dXNlcjpwYXNz")),
            Err(AuthError::Missing)
        );
        assert_eq!(k.verify(Some(b"Bearer ")), Err(AuthError::Missing));
        assert_eq!(
            k.verify(Some(format!("Bearer {KEY}x").as_bytes())),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn short_or_spaced_keys_are_refused_at_start() {
        assert!(matches!(
            ApiKeys::load(&["short"], None),
            Err(KeyFileError::Malformed)
        ));
        assert!(matches!(
            ApiKeys::load(&["has a space in it ok"], None),
            Err(KeyFileError::Malformed)
        ));
    }

    #[test]
    fn a_key_file_is_reloaded_and_a_bad_one_keeps_the_old_keys() {
        let dir = std::env::temp_dir().join(format!("ember-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, format!("# rotated weekly\n{KEY}\n\n")).unwrap();
        let k = ApiKeys::load::<&str>(&[], Some(&path)).unwrap().unwrap();
        let bearer = |key: &str| format!("Bearer {key}").into_bytes();
        assert_eq!(k.verify(Some(&bearer(KEY))), Ok(()));

        std::fs::write(&path, "new-key-0123456789\n").unwrap();
        assert_eq!(k.reload().unwrap(), 1);
        assert_eq!(k.verify(Some(&bearer("new-key-0123456789"))), Ok(()));
        assert_eq!(k.verify(Some(&bearer(KEY))), Err(AuthError::Invalid));

        std::fs::write(&path, "# emptied by mistake\n").unwrap();
        assert!(matches!(k.reload(), Err(KeyFileError::Empty(..))));
        assert_eq!(k.verify(Some(&bearer("new-key-0123456789"))), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
