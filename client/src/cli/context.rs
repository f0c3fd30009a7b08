//! What every command family shares: the global options ([`Context`]), the tokio runtime
//! network commands run on, and the one way a member's vault is opened.

use std::path::{Path, PathBuf};

use crate::cli::util::spinner;
use crate::member::{self, Member, MemberError};
use crate::passphrase::PassphraseSource;

/// The global options: `--home` and where the passphrase comes from.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `--home` / `POSTERN_HOME`: a member home, or for `org` commands the org home.
    pub home: Option<PathBuf>,
    /// Where the passphrase comes from.
    pub passphrase: PassphraseSource,
}

impl Context {
    /// The member home: `--home`, else the platform default.
    pub(crate) fn member_home(&self) -> Result<PathBuf, MemberError> {
        self.home
            .clone()
            .or_else(member::default_home)
            .ok_or(MemberError::NoHome)
    }

    /// Opens the member's vault in `home`, asking for the passphrase only if there is a
    /// vault to open, with a spinner during the slow unlock.
    pub(crate) fn open_member(&self, home: &Path) -> Result<Member, MemberError> {
        if !Member::exists(home) {
            return Err(MemberError::NoAccount(home.to_owned()));
        }
        let pass = self.passphrase.existing("your Postern vault")?;
        let pb = spinner("Unlocking the vault…");
        let result = Member::open(home, pass.as_bytes());
        pb.finish_and_clear();
        result
    }
}

/// The runtime network commands run on (two worker threads: a staff laptop, not a
/// server).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, MemberError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| MemberError::Internal(e.to_string()))
}
