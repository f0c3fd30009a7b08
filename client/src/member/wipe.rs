//! `postern wipe`: overwrite and delete the vault.

use super::*;

/// What [`wipe`] destroyed.
#[derive(Debug, Clone, Serialize)]
pub struct WipeReport {
    /// Files overwritten and deleted.
    pub files: usize,
    /// Bytes overwritten.
    pub bytes: u64,
}

/// Destroys the account in `home`: every file of the vault is overwritten with random
/// bytes, synced, truncated and deleted, then the vault directory is removed (and
/// `home`, if nothing else is left in it). On SSDs, flash and journaling or
/// copy-on-write file systems, old copies of blocks may survive the overwrite: only
/// full-disk encryption makes deletion final there.
pub fn wipe(home: &Path) -> Result<WipeReport, MemberError> {
    use std::io::{Seek, Write};
    let dir = home.join(VAULT_DIR);
    if !dir.is_dir() {
        return Err(MemberError::NoAccount(home.to_owned()));
    }
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| MemberError::Io {
            action,
            path,
            source,
        }
    };
    let mut report = WipeReport { files: 0, bytes: 0 };
    let entries = std::fs::read_dir(&dir).map_err(io("list", &dir))?;
    for entry in entries {
        let path = entry.map_err(io("list", &dir))?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(io("delete", &path))?;
            continue;
        }
        let len = std::fs::metadata(&path)
            .map_err(io("inspect", &path))?
            .len();
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io("open", &path))?;
            let mut left = len;
            let mut buf = vec![0u8; 64 * 1024];
            f.seek(std::io::SeekFrom::Start(0))
                .map_err(io("overwrite", &path))?;
            while left > 0 {
                let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                rand::Rng::fill(&mut rand::rng(), &mut buf[..n]);
                f.write_all(&buf[..n]).map_err(io("overwrite", &path))?;
                left -= n as u64;
            }
            f.sync_all().map_err(io("sync", &path))?;
            f.set_len(0).map_err(io("truncate", &path))?;
            f.sync_all().map_err(io("sync", &path))?;
        }
        std::fs::remove_file(&path).map_err(io("delete", &path))?;
        report.files += 1;
        report.bytes += len;
    }
    std::fs::remove_dir(&dir).map_err(io("delete", &dir))?;
    // Leave the home if the user keeps other things in it.
    let _ = std::fs::remove_dir(home);
    Ok(report)
}
