//! `org members` and `org show`: what the org home holds, as text or JSON.

use super::*;

#[derive(Serialize)]
pub(super) struct MemberRow {
    pub(super) handle: String,
    pub(super) role: &'static str,
    pub(super) status: &'static str,
    pub(super) serial: String,
    pub(super) not_before: u64,
    pub(super) not_after: u64,
    pub(super) not_before_utc: String,
    pub(super) not_after_utc: String,
    pub(super) device_key: String,
}

pub(super) fn members(home: &OrgHome, json: bool, out: &mut dyn Write) -> Result<(), OrgError> {
    let org = home.org_key()?;
    let revocations = home.revocations(&org)?;
    let now = now();
    let rows: Vec<MemberRow> = home
        .members(&org)?
        .iter()
        .map(|cert| {
            let c = cert.body();
            MemberRow {
                handle: c.handle.to_string(),
                role: c.role.as_str(),
                status: certificate_status(cert, &revocations, now).as_str(),
                serial: format!("{:016x}", c.serial),
                not_before: c.not_before,
                not_after: c.not_after,
                not_before_utc: rfc3339(c.not_before),
                not_after_utc: rfc3339(c.not_after),
                device_key: postern_identity::keys::encode_base32(&c.device_key.to_bytes()),
            }
        })
        .collect();
    if json {
        let text = serde_json::to_string_pretty(&rows).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
        return Ok(());
    }
    if rows.is_empty() {
        writeln!(
            out,
            "No members yet. Enroll one with `postern --home {} org enroll <request-file> --role <role> --out <bundle-file>`.",
            home.dir.display()
        )?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "handle",
        "role",
        "status",
        "serial",
        "valid from",
        "valid until",
    ]);
    for r in &rows {
        table.add_row([
            r.handle.as_str(),
            r.role,
            r.status,
            r.serial.as_str(),
            r.not_before_utc.as_str(),
            r.not_after_utc.as_str(),
        ]);
    }
    writeln!(out, "{table}")?;
    writeln!(
        out,
        "{} certificate(s); revocation list version {}.",
        rows.len(),
        revocations.version()
    )?;
    Ok(())
}

pub(super) fn show(home: &OrgHome, out: &mut dyn Write) -> Result<(), OrgError> {
    let org = home.org_key()?;
    let d = home.descriptor(&org)?;
    let rl = home.revocations(&org)?;
    let body = d.body();
    writeln!(out, "org key:            {org}")?;
    writeln!(out, "descriptor version: {}", body.version)?;
    if body.relays.as_slice().is_empty() {
        writeln!(out, "relays:             none (add with `org relay add`)")?;
    }
    for r in body.relays.as_slice() {
        writeln!(out, "relay:              {r}")?;
    }
    writeln!(
        out,
        "policy:             max TTL {} s, default TTL {} s, retention {} days",
        body.policy.max_ttl_secs, body.policy.default_ttl_secs, body.policy.retention_days
    )?;
    writeln!(
        out,
        "revocation list:    version {}, {} serial(s)",
        rl.version(),
        rl.body().revoked.as_slice().len()
    )?;
    Ok(())
}
