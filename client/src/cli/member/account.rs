//! `init`, `enroll` and `wipe`: making, joining and destroying the account.

use super::*;

pub(super) fn init(
    home: &Path,
    passphrase: &PassphraseSource,
    args: &InitArgs,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    if Member::exists(home) {
        return Err(MemberError::AlreadyInitialised(home.to_owned()));
    }
    if args.out.exists() {
        return Err(MemberError::BadInput(format!(
            "{} already exists: choose another --out (refusing to overwrite)",
            args.out.display()
        )));
    }
    let kdf = vault_kdf_from_env();
    if postern_identity::secret_file::KdfParams::insecure_fast_ignored() {
        eprintln!(
            "postern: POSTERN_INSECURE_FAST_KDF=1 is ignored: this build derives keys at full strength (the fast setting exists only in test builds)"
        );
    }
    if kdf != postern_e2e::KdfParams::default() {
        eprintln!(
            "postern: WARNING: POSTERN_INSECURE_FAST_KDF=1: the vault is protected by a weak key derivation; for tests only"
        );
    }
    let pass = passphrase.new_secret("your new Postern vault")?;
    let pb = spinner("Creating the vault and your keys…");
    let result = Member::init(home, &args.handle, pass.as_bytes(), kdf);
    pb.finish_and_clear();
    let (member, request) = result?;
    create_atomic(&args.out, &request.encode()).map_err(|source| MemberError::Io {
        action: "write the request to",
        path: args.out.clone(),
        source,
    })?;
    writeln!(
        out,
        "Created the account {} in {}.",
        member.handle(),
        home.display()
    )?;
    writeln!(
        out,
        "Wrote the enrollment request to {}. Give it to your org admin.",
        args.out.display()
    )?;
    writeln!(
        out,
        "When they enroll you, read them this fingerprint (in person or by voice); they must see the same:"
    )?;
    writeln!(out, "{}", request.fingerprint())?;
    Ok(())
}

pub(super) async fn enroll(
    member: &mut Member,
    args: &EnrollArgs,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    let sealed = read_bounded(&args.bundle, 256 * 1024).map_err(|source| MemberError::Io {
        action: "read the bundle",
        path: args.bundle.clone(),
        source,
    })?;
    let pb = spinner("Opening the bundle…");
    let progress = |m: &str| pb.set_message(m.to_owned());
    let result = member.enroll(&sealed, args.org, &progress).await;
    pb.finish_and_clear();
    let report = result?;
    writeln!(
        out,
        "Enrolled as {} ({}) in org {}.",
        report.handle, report.role, report.org
    )?;
    if args.org.is_none() {
        writeln!(
            out,
            "  Check that this org key is the one your admin gave you (or pass --org next time)."
        )?;
    }
    writeln!(
        out,
        "Your certificate is valid until {}.",
        rfc3339(report.not_after)
    )?;
    writeln!(
        out,
        "Mailbox created on {}; {} one-time prekeys published.",
        report.relay, report.one_time_prekeys
    )?;
    writeln!(
        out,
        "You can now send (`postern send <handle> <text>`) and receive (`postern inbox`). Delete the bundle file."
    )?;
    Ok(())
}

pub(super) fn wipe(
    home: &Path,
    ctx: &Context,
    args: &WipeArgs,
    out: &mut dyn Write,
) -> Result<(), MemberError> {
    if !home.join(member::VAULT_DIR).is_dir() {
        return Err(MemberError::NoAccount(home.to_owned()));
    }
    if !args.yes {
        // Confirmation names the account, which only the passphrase reveals.
        let m = ctx.open_member(home)?;
        let handle = m.handle().to_owned();
        drop(m);
        eprint!(
            "This destroys the account {handle} in {} and every message in it, irrecoverably.\nType the handle ({handle}) to confirm: ",
            home.display()
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if line.trim() != handle {
            return Err(MemberError::NotConfirmed);
        }
    } else if std::io::stderr().is_terminal() {
        eprintln!(
            "postern: wiping {} without confirmation (--yes)",
            home.display()
        );
    }
    let report = member::wipe(home)?;
    writeln!(
        out,
        "Wiped {}: {} file(s), {} bytes overwritten with random data and deleted.",
        home.display(),
        report.files,
        report.bytes
    )?;
    writeln!(
        out,
        "What this cannot guarantee: on SSDs and flash, and on journaling or copy-on-write file systems, old copies of the data may survive in blocks the overwrite never reached. They are encrypted under your passphrase; only full-disk encryption makes deletion final there."
    )?;
    writeln!(
        out,
        "Ask your admin to revoke your membership (`postern org revoke`) if this device may be in someone else's hands."
    )?;
    Ok(())
}
