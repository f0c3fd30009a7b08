//! The commands that change the org home: `init`, `relay add`, `enroll`, `revoke`.

use super::*;

pub(super) fn init(
    home: &OrgHome,
    passphrase: &PassphraseSource,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    if home.path(ORG_KEY_FILE).exists() {
        return Err(OrgError::AlreadyAnOrg(home.dir.clone()));
    }
    if home.path(SECRETS_FILE).exists() {
        return Err(OrgError::IncompleteInit(home.dir.clone()));
    }
    let pass = passphrase.new_secret("the new org")?;
    create_private_dir(&home.dir).map_err(OrgHome::io("create", &home.dir))?;
    create_private_dir(&home.path(MEMBERS_DIR))
        .map_err(OrgHome::io("create", &home.path(MEMBERS_DIR)))?;
    let _lock = home.lock()?;
    if home.path(ORG_KEY_FILE).exists() || home.path(SECRETS_FILE).exists() {
        return Err(OrgError::AlreadyAnOrg(home.dir.clone()));
    }

    let secrets = OrgSecrets {
        root: OrgRoot::generate(),
        sealed_sender: generate_sealed_sender_keys()?,
        directory_key: DirectoryKey::generate(),
    };
    let org = secrets.root.org_key();
    let params = KdfParams::from_env();
    if KdfParams::insecure_fast_ignored() {
        eprintln!(
            "postern: POSTERN_INSECURE_FAST_KDF=1 is ignored: this build derives keys at full strength (the fast setting exists only in test builds)"
        );
    }
    if params != KdfParams::STRONG {
        eprintln!(
            "postern: WARNING: POSTERN_INSECURE_FAST_KDF=1: the org secrets are protected by a weak key derivation; for tests only"
        );
    }
    let stored = secrets.to_stored()?;
    let plain =
        Zeroizing::new(postcard::to_allocvec(&stored).map_err(|e| home.corrupt(SECRETS_FILE, e))?);
    let sealed = secret_file::seal(&plain, pass.as_bytes(), params)
        .map_err(|e| home.corrupt(SECRETS_FILE, e))?;

    let trust_root = SignalPublicKey::from_bytes(&secrets.sealed_sender.trust_root_public)
        .map_err(|e| home.corrupt(SECRETS_FILE, e))?;
    let descriptor = secrets.root.sign_descriptor(OrgDescriptorBody {
        org,
        version: 1,
        relays: BoundedVec::default(),
        sealed_sender_trust_root: trust_root,
        policy: Policy::default(),
    })?;
    let revocations =
        secrets
            .root
            .sign_revocations(RevocationListBody::new(org, 1, Vec::new())?)?;

    home.write(SECRETS_FILE, &sealed)?;
    home.write(DESCRIPTOR_FILE, &descriptor.encode())?;
    home.write(REVOCATIONS_FILE, &revocations.encode())?;
    home.write(ORG_KEY_FILE, format!("{org}\n").as_bytes())?;

    let policy = descriptor.body().policy;
    writeln!(out, "Created the org in {}.", home.dir.display())?;
    writeln!(
        out,
        "  org root, sealed-sender keys and directory key: {} (encrypted under your passphrase)",
        home.path(SECRETS_FILE).display()
    )?;
    writeln!(
        out,
        "  org descriptor version 1: no relays yet (add one with `postern --home {} org relay add <address>`)",
        home.dir.display()
    )?;
    writeln!(
        out,
        "  policy: messages live at most {} h (default {} h); closed deliveries kept {} days",
        policy.max_ttl_secs / 3600,
        policy.default_ttl_secs / 3600,
        policy.retention_days
    )?;
    writeln!(out, "  revocation list version 1: empty")?;
    writeln!(
        out,
        "Keep this directory offline and back it up encrypted. Members need the org key:"
    )?;
    writeln!(out, "{org}")?;
    Ok(())
}

pub(super) fn relay_add(
    home: &OrgHome,
    passphrase: &PassphraseSource,
    address: RelayAddress,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    let org = home.org_key()?;
    let _lock = home.lock()?;
    let current = home.descriptor(&org)?;
    let body = current.body();
    if body.relays.as_slice().contains(&address) {
        return Err(OrgError::DuplicateRelay(address.to_string()));
    }
    if body.relays.as_slice().len() >= MAX_RELAYS {
        return Err(OrgError::TooManyRelays);
    }
    let secrets = home.unlock(passphrase, &org)?;
    let mut relays = body.relays.as_slice().to_vec();
    relays.push(address.clone());
    let next = secrets.root.sign_descriptor(OrgDescriptorBody {
        org,
        version: body.version + 1,
        relays: BoundedVec::new(relays).map_err(|_| OrgError::TooManyRelays)?,
        sealed_sender_trust_root: body.sealed_sender_trust_root,
        policy: body.policy,
    })?;
    home.write(DESCRIPTOR_FILE, &next.encode())?;
    writeln!(out, "Added relay {address}.")?;
    writeln!(
        out,
        "Org descriptor is now version {} with {} relay(s). Members receive it in new bundles.",
        next.body().version,
        next.body().relays.as_slice().len()
    )?;
    Ok(())
}

pub(super) fn normalise_fingerprint(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

pub(super) fn enroll(
    home: &OrgHome,
    passphrase: &PassphraseSource,
    args: &EnrollArgs,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    let org = home.org_key()?;
    if args.out.exists() {
        return Err(OrgError::OutputExists(args.out.clone()));
    }
    let bytes = read_bounded(&args.request, EnrollmentRequestBody::MAX_ENCODED_LEN)
        .map_err(OrgHome::io("read the enrollment request", &args.request))?;
    let request = EnrollmentRequest::decode(&bytes).map_err(|source| OrgError::BadRequest {
        path: args.request.clone(),
        source,
    })?;
    let fingerprint = request.fingerprint();
    if let Some(expected) = &args.fingerprint
        && normalise_fingerprint(expected) != normalise_fingerprint(&fingerprint)
    {
        return Err(OrgError::FingerprintMismatch {
            expected: expected.clone(),
            actual: fingerprint,
        });
    }
    let req = request.body();

    let _lock = home.lock()?;
    let secrets = home.unlock(passphrase, &org)?;
    let descriptor = home.descriptor(&org)?;
    let trust_root = descriptor.body().sealed_sender_trust_root.to_bytes();
    if trust_root != secrets.sealed_sender.trust_root_public {
        return Err(home.corrupt(
            DESCRIPTOR_FILE,
            "its sealed-sender trust root is not the org's",
        ));
    }
    let revocations = home.revocations(&org)?;
    let existing = home.members(&org)?;
    let now = now();

    let mut renewal = false;
    for cert in &existing {
        let c = cert.body();
        let live = !matches!(
            certificate_status(cert, &revocations, now),
            CertificateStatus::Revoked | CertificateStatus::Expired
        );
        let same_keys =
            c.device_key == req.device_key && c.signal_identity_key == req.signal_identity_key;
        if c.handle == req.handle && live {
            if same_keys {
                renewal = true;
            } else {
                return Err(OrgError::HandleTaken {
                    handle: c.handle.to_string(),
                    serial: c.serial,
                });
            }
        }
        if c.handle != req.handle
            && live
            && (c.device_key == req.device_key || c.signal_identity_key == req.signal_identity_key)
        {
            return Err(OrgError::KeysTaken(c.handle.to_string()));
        }
    }

    // Random serials reveal nothing about how many members the org has.
    let serial = loop {
        let s: u64 = rand::random();
        if s != 0 && !existing.iter().any(|c| c.body().serial == s) && !revocations.is_revoked(s) {
            break s;
        }
    };
    let issuer = Issuer {
        root: &secrets.root,
        sealed_sender: &secrets.sealed_sender,
        directory_key: &secrets.directory_key,
        descriptor: &descriptor,
        revocations: &revocations,
    };
    let Issued {
        certificate: cert,
        sealed_bundle: sealed,
    } = issuer.issue_bundle(&request, args.role, args.valid_days, serial, now)?;
    let (not_before, not_after) = (cert.body().not_before, cert.body().not_after);

    // Record the certificate first: a bundle on disk always has its roster entry.
    home.write(&format!("{MEMBERS_DIR}/{serial:016x}.cert"), &cert.encode())?;
    create_atomic(&args.out, &sealed).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            OrgError::OutputExists(args.out.clone())
        } else {
            OrgHome::io("write", &args.out)(e)
        }
    })?;

    writeln!(
        out,
        "{} {} as {} (serial {serial:016x}), valid {} to {}.",
        if renewal { "Renewed" } else { "Enrolled" },
        req.handle,
        args.role,
        rfc3339(not_before),
        rfc3339(not_after)
    )?;
    writeln!(out, "Request fingerprint: {fingerprint}")?;
    if args.fingerprint.is_none() {
        writeln!(
            out,
            "  Compare it with the fingerprint on the member's device, in person or by voice, before handing over the bundle."
        )?;
    }
    writeln!(
        out,
        "Wrote the sealed bundle to {} (descriptor version {}, revocation list version {}).",
        args.out.display(),
        descriptor.body().version,
        revocations.version()
    )?;
    writeln!(
        out,
        "  Only the requesting device can open it, but give it to that member alone, then delete your copy."
    )?;
    Ok(())
}

pub(super) fn revoke(
    home: &OrgHome,
    passphrase: &PassphraseSource,
    args: &RevokeArgs,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    let org = home.org_key()?;
    let _lock = home.lock()?;
    let current = home.revocations(&org)?;
    let serials: Vec<u64> = home
        .members(&org)?
        .iter()
        .filter(|c| c.body().handle.as_str() == args.handle)
        .map(|c| c.body().serial)
        .collect();
    if serials.is_empty() {
        return Err(OrgError::UnknownHandle(args.handle.clone()));
    }
    let new: Vec<u64> = serials
        .iter()
        .copied()
        .filter(|s| !current.is_revoked(*s))
        .collect();
    if new.is_empty() {
        writeln!(
            out,
            "{} is already revoked (revocation list version {}); nothing changed.",
            args.handle,
            current.version()
        )?;
        if args.publish {
            publish(home, &org, &current, &args.handle, out)?;
        }
        return Ok(());
    }
    let secrets = home.unlock(passphrase, &org)?;
    let mut all = current.body().revoked.as_slice().to_vec();
    all.extend_from_slice(&new);
    let next =
        secrets
            .root
            .sign_revocations(RevocationListBody::new(org, current.version() + 1, all)?)?;
    home.write(REVOCATIONS_FILE, &next.encode())?;
    let shown: Vec<String> = new.iter().map(|s| format!("{s:016x}")).collect();
    writeln!(
        out,
        "Revoked {} (serial {}).",
        args.handle,
        shown.join(", ")
    )?;
    writeln!(
        out,
        "Wrote revocation list version {} to {}.",
        next.version(),
        home.path(REVOCATIONS_FILE).display()
    )?;
    if args.publish {
        publish(home, &org, &next, &args.handle, out)?;
    } else {
        writeln!(
            out,
            "It is NOT published yet: run `postern org revoke {} --publish` when a relay is reachable. Relays and members refuse any older list.",
            args.handle
        )?;
    }
    Ok(())
}
