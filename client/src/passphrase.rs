//! Where a passphrase comes from: `--passphrase-file FILE`, else the `POSTERN_PASSPHRASE`
//! environment variable, else a prompt on the terminal.

use std::io::IsTerminal;
use std::path::PathBuf;

use zeroize::Zeroizing;

/// Environment variable holding the passphrase (for scripts and tests).
pub const PASSPHRASE_ENV: &str = "POSTERN_PASSPHRASE";

/// Shortest passphrase accepted when a new secret is created.
pub const MIN_NEW_PASSPHRASE_CHARS: usize = 12;

/// No passphrase could be obtained, or a new one is unacceptable.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// No file, no variable, no terminal.
    #[error(
        "no passphrase: pass --passphrase-file FILE, set POSTERN_PASSPHRASE, or run in a terminal to be prompted"
    )]
    Unavailable,
    /// The passphrase file could not be read.
    #[error("cannot read the passphrase file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The passphrase file can be read or written by other users.
    #[error(
        "the passphrase file {path} is open to other users (mode {mode:o}): run `chmod 600 {path}` (and consider a new passphrase), then try again"
    )]
    FileExposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The prompt failed.
    #[error("cannot read the passphrase from the terminal: {0}")]
    Prompt(std::io::Error),
    /// A new passphrase is too short.
    #[error(
        "the passphrase is too short: use at least {MIN_NEW_PASSPHRASE_CHARS} characters (a few random words are best)"
    )]
    TooShort,
    /// A new passphrase is too easy to guess.
    #[error(
        "the passphrase is too easy to guess{advice}: an examiner with the vault file could try every likely one; use four or more random words, or a long sentence only you would write"
    )]
    TooWeak {
        /// What the estimator says, if anything (leading `: `, or empty).
        advice: String,
    },
    /// The two entries of a new passphrase differ.
    #[error("the two passphrases differ: nothing was created; try again")]
    Mismatch,
    /// Empty passphrase.
    #[error("the passphrase is empty")]
    Empty,
}

/// Least strength of a new passphrase: zxcvbn's estimate of more than 10^10 guesses
/// (its score 4). A vault or org home seized with its device is open to an offline
/// guessing attack slowed only by Argon2id; fewer guesses than that fall to a patient
/// adversary with hardware.
const MIN_SCORE: zxcvbn::Score = zxcvbn::Score::Four;

/// Refuses a passphrase that the estimator finds too easy to guess, with its advice.
fn check_strength(pass: &str) -> Result<(), PassphraseError> {
    let estimate = zxcvbn::zxcvbn(pass, &[]);
    if estimate.score() >= MIN_SCORE {
        return Ok(());
    }
    let advice = estimate
        .feedback()
        .and_then(|f| f.warning())
        .map(|w| format!(" ({w})"))
        .unwrap_or_default();
    Err(PassphraseError::TooWeak { advice })
}

/// Refuses a passphrase file that other users may read or write (group or other bits).
fn check_private(path: &std::path::Path) -> Result<(), PassphraseError> {
    let meta = std::fs::metadata(path).map_err(|source| PassphraseError::File {
        path: path.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(PassphraseError::FileExposed {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(())
}

/// How to obtain the passphrase, resolved only when a command needs it.
#[derive(Debug, Clone, Default)]
pub struct PassphraseSource {
    /// `--passphrase-file` (refused unless only its owner may read it: mode 0600).
    pub file: Option<PathBuf>,
}

impl PassphraseSource {
    /// The passphrase for an existing secret.
    pub fn existing(&self, what: &str) -> Result<Zeroizing<String>, PassphraseError> {
        self.obtain(what, false)
    }

    /// A passphrase for a new secret: confirmed when prompted, and long enough.
    pub fn new_secret(&self, what: &str) -> Result<Zeroizing<String>, PassphraseError> {
        let pass = self.obtain(what, true)?;
        if pass.chars().count() < MIN_NEW_PASSPHRASE_CHARS {
            return Err(PassphraseError::TooShort);
        }
        check_strength(&pass)?;
        Ok(pass)
    }

    fn obtain(&self, what: &str, confirm: bool) -> Result<Zeroizing<String>, PassphraseError> {
        let pass = if let Some(path) = &self.file {
            check_private(path)?;
            let text = std::fs::read_to_string(path).map_err(|source| PassphraseError::File {
                path: path.clone(),
                source,
            })?;
            let text = Zeroizing::new(text);
            let line = text.lines().next().unwrap_or("");
            Zeroizing::new(line.to_owned())
        } else if let Some(value) = std::env::var_os(PASSPHRASE_ENV) {
            Zeroizing::new(value.to_string_lossy().into_owned())
        } else if std::io::stdin().is_terminal() || std::io::stderr().is_terminal() {
            let first = Zeroizing::new(
                rpassword::prompt_password(format!("Passphrase for {what}: "))
                    .map_err(PassphraseError::Prompt)?,
            );
            if confirm {
                let second = Zeroizing::new(
                    rpassword::prompt_password("Repeat the passphrase: ")
                        .map_err(PassphraseError::Prompt)?,
                );
                if first != second {
                    return Err(PassphraseError::Mismatch);
                }
            }
            first
        } else {
            return Err(PassphraseError::Unavailable);
        };
        if pass.is_empty() {
            return Err(PassphraseError::Empty);
        }
        Ok(pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_passphrase_must_be_hard_to_guess() {
        for weak in [
            "password1234",
            "qwertyuiop12",
            "aaaaaaaaaaaa",
            "seoul2026!!!",
        ] {
            let err = check_strength(weak).unwrap_err();
            assert!(
                err.to_string().contains("too easy to guess"),
                "{weak}: {err}"
            );
        }
        for strong in [
            "correct horse battery staple",
            "tangerine ladder quietly 48 comets",
        ] {
            assert!(check_strength(strong).is_ok(), "{strong}");
        }
    }
}
