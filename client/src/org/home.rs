//! The org home: its files, the secrets file format, the lock, and reading and writing
//! them.

use super::*;

/// The org's secrets as stored (encrypted) in `secrets.pstn`.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredSecrets {
    pub(super) format: u8,
    pub(super) root_seed: [u8; 32],
    pub(super) sealed_sender_trust_root_private: [u8; 32],
    pub(super) sealed_sender_trust_root_public: SignalPublicKey,
    pub(super) sealed_sender_server_private: [u8; 32],
    pub(super) sealed_sender_server_certificate: BoundedBytes<1024>,
    pub(super) directory_key: [u8; 32],
}

impl Drop for StoredSecrets {
    fn drop(&mut self) {
        self.root_seed.zeroize();
        self.sealed_sender_trust_root_private.zeroize();
        self.sealed_sender_server_private.zeroize();
        self.directory_key.zeroize();
    }
}

/// The unlocked secrets.
pub(super) struct OrgSecrets {
    pub(super) root: OrgRoot,
    pub(super) sealed_sender: SealedSenderKeys,
    pub(super) directory_key: DirectoryKey,
}

impl OrgSecrets {
    pub(super) fn to_stored(&self) -> Result<StoredSecrets, OrgError> {
        let key32 = |v: &[u8], what: &'static str| {
            <[u8; 32]>::try_from(v).map_err(|_| OrgError::Corrupt {
                path: PathBuf::from(SECRETS_FILE),
                reason: format!("{what} is not 32 bytes"),
            })
        };
        Ok(StoredSecrets {
            format: 1,
            root_seed: *self.root.seed(),
            sealed_sender_trust_root_private: key32(
                &self.sealed_sender.trust_root_private,
                "trust root key",
            )?,
            sealed_sender_trust_root_public: SignalPublicKey::from_bytes(
                &self.sealed_sender.trust_root_public,
            )
            .map_err(|reason| OrgError::Corrupt {
                path: PathBuf::from(SECRETS_FILE),
                reason: reason.to_owned(),
            })?,
            sealed_sender_server_private: key32(&self.sealed_sender.server_private, "server key")?,
            sealed_sender_server_certificate: BoundedBytes::new(
                self.sealed_sender.server_certificate.clone(),
            )
            .map_err(|_| OrgError::Corrupt {
                path: PathBuf::from(SECRETS_FILE),
                reason: "server certificate too long".into(),
            })?,
            directory_key: *self.directory_key.as_bytes(),
        })
    }

    fn from_stored(s: &StoredSecrets) -> Self {
        OrgSecrets {
            root: OrgRoot::from_seed(&s.root_seed),
            sealed_sender: SealedSenderKeys {
                trust_root_private: Zeroizing::new(s.sealed_sender_trust_root_private.to_vec()),
                trust_root_public: s.sealed_sender_trust_root_public.to_bytes(),
                server_private: Zeroizing::new(s.sealed_sender_server_private.to_vec()),
                server_certificate: s.sealed_sender_server_certificate.as_slice().to_vec(),
            },
            directory_key: DirectoryKey::from_bytes(&s.directory_key),
        }
    }
}

/// An org home directory.
pub(super) struct OrgHome {
    pub(super) dir: PathBuf,
}

/// Held while a command changes the home; released on drop.
pub(super) struct HomeLock(File);

impl Drop for HomeLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl OrgHome {
    pub(super) fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(super) fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OrgError {
        let path = path.to_path_buf();
        move |source| OrgError::Io {
            action,
            path,
            source,
        }
    }

    pub(super) fn lock(&self) -> Result<HomeLock, OrgError> {
        let path = self.path(LOCK_FILE);
        let mut options = fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(Self::io("open", &path))?;
        file.try_lock().map_err(|e| {
            OrgError::Lock(
                self.dir.clone(),
                std::io::Error::other(format!(
                    "another postern command is changing this org home; wait for it ({e})"
                )),
            )
        })?;
        Ok(HomeLock(file))
    }

    pub(super) fn write(&self, name: &str, bytes: &[u8]) -> Result<(), OrgError> {
        let path = self.path(name);
        write_atomic(&path, bytes).map_err(Self::io("write", &path))
    }

    pub(super) fn read(&self, name: &str, max: usize) -> Result<Vec<u8>, OrgError> {
        let path = self.path(name);
        read_bounded(&path, max).map_err(Self::io("read", &path))
    }

    pub(super) fn corrupt(&self, name: &str, reason: impl ToString) -> OrgError {
        OrgError::Corrupt {
            path: self.path(name),
            reason: reason.to_string(),
        }
    }

    pub(super) fn org_key(&self) -> Result<OrgKey, OrgError> {
        let path = self.path(ORG_KEY_FILE);
        if !path.exists() {
            return Err(OrgError::NotAnOrg(self.dir.clone()));
        }
        let text = self.read(ORG_KEY_FILE, 256)?;
        String::from_utf8_lossy(&text)
            .parse::<OrgKey>()
            .map_err(|e| self.corrupt(ORG_KEY_FILE, e))
    }

    pub(super) fn unlock(
        &self,
        passphrase: &PassphraseSource,
        org: &OrgKey,
    ) -> Result<OrgSecrets, OrgError> {
        let path = self.path(SECRETS_FILE);
        let file = self.read(SECRETS_FILE, secret_file::MAX_FILE_LEN)?;
        let pass = passphrase.existing(&format!("the org in {}", self.dir.display()))?;
        let plain = secret_file::open(&file, pass.as_bytes()).map_err(|e| match e {
            SecretFileError::WrongPassphrase => OrgError::WrongPassphrase(path.clone()),
            other => self.corrupt(SECRETS_FILE, other),
        })?;
        let stored: StoredSecrets =
            postcard::from_bytes(&plain).map_err(|e| self.corrupt(SECRETS_FILE, e))?;
        if stored.format != 1 {
            return Err(self.corrupt(SECRETS_FILE, "unknown secrets format"));
        }
        let secrets = OrgSecrets::from_stored(&stored);
        if secrets.root.org_key() != *org {
            return Err(self.corrupt(SECRETS_FILE, "the root key does not match org.key"));
        }
        Ok(secrets)
    }

    pub(super) fn descriptor(&self, org: &OrgKey) -> Result<OrgDescriptor, OrgError> {
        let bytes = self.read(DESCRIPTOR_FILE, OrgDescriptorBody::MAX_ENCODED_LEN)?;
        let d = OrgDescriptor::decode(&bytes).map_err(|e| self.corrupt(DESCRIPTOR_FILE, e))?;
        if d.body().org != *org {
            return Err(self.corrupt(DESCRIPTOR_FILE, "signed by another org"));
        }
        Ok(d)
    }

    pub(super) fn revocations(&self, org: &OrgKey) -> Result<RevocationList, OrgError> {
        let bytes = self.read(REVOCATIONS_FILE, RevocationListBody::MAX_ENCODED_LEN)?;
        let rl = RevocationList::decode(&bytes).map_err(|e| self.corrupt(REVOCATIONS_FILE, e))?;
        rl.check_org(org)
            .map_err(|e| self.corrupt(REVOCATIONS_FILE, e))?;
        Ok(rl)
    }

    /// Every issued certificate, verified as the org's.
    pub(super) fn members(&self, org: &OrgKey) -> Result<Vec<MemberCertificate>, OrgError> {
        let dir = self.path(MEMBERS_DIR);
        let mut certs = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(certs),
            Err(e) => return Err(Self::io("list", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(Self::io("list", &dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.ends_with(".cert") {
                continue;
            }
            let rel = format!("{MEMBERS_DIR}/{name}");
            let bytes = self.read(&rel, MemberCertificateBody::MAX_ENCODED_LEN)?;
            let cert = MemberCertificate::decode(&bytes).map_err(|e| self.corrupt(&rel, e))?;
            if cert.body().org != *org {
                return Err(self.corrupt(&rel, "signed by another org"));
            }
            certs.push(cert);
        }
        certs.sort_by(|a, b| {
            (a.body().handle.as_str(), a.body().not_before)
                .cmp(&(b.body().handle.as_str(), b.body().not_before))
        });
        Ok(certs)
    }
}
