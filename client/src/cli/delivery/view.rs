//! What `list` and `show` print, as text or JSON.

use super::*;

/// One history entry, as printed.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryView {
    /// Event id.
    pub event: String,
    /// Event kind.
    pub event_kind: &'static str,
    /// Author's handle.
    pub author: String,
    /// Author's role.
    pub role: String,
    /// Author's time, RFC 3339.
    pub at: String,
    /// Note or failure reason.
    pub text: Option<String>,
    /// Status after it.
    pub status: &'static str,
}

/// A refused event, as printed.
#[derive(Debug, Serialize)]
pub(crate) struct RejectedView {
    /// Event id.
    pub event: String,
    /// Event kind.
    pub event_kind: &'static str,
    /// Author's handle.
    pub author: String,
    /// Why it did not apply.
    pub reason: String,
}

/// A delivery, as printed.
#[derive(Debug, Serialize)]
pub(crate) struct DeliveryView {
    /// Delivery id.
    pub id: String,
    /// Current status.
    pub status: &'static str,
    /// Flagged after too many wrong hand-off codes.
    pub flagged: bool,
    /// Wrong hand-off codes counted.
    pub failed_handoff_attempts: u32,
    /// Family reference code.
    pub family: Option<String>,
    /// Amount, decimal.
    pub amount: Option<String>,
    /// Amount in minor units.
    pub amount_minor: Option<u64>,
    /// Currency.
    pub currency: Option<String>,
    /// Deadline, RFC 3339.
    pub deadline: Option<String>,
    /// Creator.
    pub created_by: Option<String>,
    /// Assigned courier.
    pub courier: Option<String>,
    /// Coordinators known to be on the delivery.
    pub coordinators: Vec<String>,
    /// Whether this view checked codes against the commitment (coordinators).
    pub verified_view: bool,
    /// Failure reason.
    pub failure_reason: Option<String>,
    /// Applied events.
    pub history: Vec<HistoryView>,
    /// Refused events.
    pub rejected: Vec<RejectedView>,
    /// Last activity, RFC 3339.
    pub last_activity_at: String,
}

impl DeliveryView {
    /// The printable view of a derived state.
    pub(crate) fn of(s: &DeliveryState, coordinators: Vec<String>) -> Self {
        let d = s.details.as_ref();
        Self {
            id: s.id.to_string(),
            status: s.status.as_str(),
            flagged: s.flagged,
            failed_handoff_attempts: s.failed_handoff_attempts,
            family: d.map(|d| d.family.as_str().to_owned()),
            amount: d.map(|d| d.amount.to_decimal()),
            amount_minor: d.map(|d| d.amount.minor()),
            currency: d.map(|d| d.amount.currency().code().to_owned()),
            deadline: d.map(|d| rfc3339(d.deadline)),
            created_by: d.map(|d| d.created_by.as_str().to_owned()),
            courier: s.courier.as_ref().map(|c| c.as_str().to_owned()),
            coordinators,
            verified_view: s.verified_view,
            failure_reason: s.failure_reason.as_ref().map(|t| t.as_str().to_owned()),
            history: s
                .history
                .iter()
                .map(|h| HistoryView {
                    event: h.event.to_string(),
                    event_kind: h.name.as_str(),
                    author: h.author.as_str().to_owned(),
                    role: h.role.to_string(),
                    at: rfc3339(h.at),
                    text: h.text.as_ref().map(|t| t.as_str().to_owned()),
                    status: h.status.as_str(),
                })
                .collect(),
            rejected: s
                .rejected
                .iter()
                .map(|r| RejectedView {
                    event: r.event.to_string(),
                    event_kind: r.name.as_str(),
                    author: r.author.as_str().to_owned(),
                    reason: r.reason.to_string(),
                })
                .collect(),
            last_activity_at: rfc3339(s.last_activity_at),
        }
    }
}

pub(super) fn list(
    deliveries: &Deliveries<'_>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let views: Vec<DeliveryView> = deliveries
        .list()
        .iter()
        .map(|s| DeliveryView::of(s, deliveries.coordinators(&s.id)))
        .collect();
    if json {
        serde_json::to_writer_pretty(&mut *out, &views)
            .map_err(|e| MemberError::Internal(e.to_string()))?;
        writeln!(out).map_err(MemberError::from)?;
        return Ok(());
    }
    if views.is_empty() {
        writeln!(out, "No deliveries.").map_err(MemberError::from)?;
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(vec![
        "ID", "STATUS", "FAMILY", "AMOUNT", "COURIER", "DEADLINE",
    ]);
    for v in &views {
        let status = if v.flagged {
            format!("{} FLAGGED", v.status)
        } else {
            v.status.to_owned()
        };
        table.add_row(vec![
            v.id.clone(),
            status,
            v.family.clone().unwrap_or_default(),
            match (&v.amount, &v.currency) {
                (Some(a), Some(c)) => format!("{a} {c}"),
                _ => String::new(),
            },
            v.courier.clone().unwrap_or_default(),
            v.deadline.clone().unwrap_or_default(),
        ]);
    }
    writeln!(out, "{table}").map_err(MemberError::from)?;
    Ok(())
}

pub(super) fn show(
    deliveries: &Deliveries<'_>,
    id: &DeliveryId,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), DeliveryError> {
    let state = deliveries.show(id)?;
    let v = DeliveryView::of(&state, deliveries.coordinators(id));
    if json {
        serde_json::to_writer_pretty(&mut *out, &v)
            .map_err(|e| MemberError::Internal(e.to_string()))?;
        writeln!(out).map_err(MemberError::from)?;
        return Ok(());
    }
    print_view(&v, out).map_err(MemberError::from)?;
    Ok(())
}

pub(super) fn print_view(v: &DeliveryView, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "Delivery {}", v.id)?;
    writeln!(out, "  status:       {}", v.status)?;
    if v.flagged {
        writeln!(
            out,
            "  FLAGGED:      {} wrong hand-off codes; hand-offs are refused. A coordinator must investigate and close it (failed or cancelled).",
            v.failed_handoff_attempts
        )?;
    } else if v.failed_handoff_attempts > 0 {
        writeln!(out, "  wrong codes:  {}", v.failed_handoff_attempts)?;
    }
    if let (Some(f), Some(a), Some(c)) = (&v.family, &v.amount, &v.currency) {
        writeln!(out, "  family:       {f}")?;
        writeln!(out, "  amount:       {a} {c}")?;
    }
    if let Some(d) = &v.deadline {
        writeln!(out, "  deadline:     {d}")?;
    }
    if let Some(c) = &v.courier {
        writeln!(out, "  courier:      {c}")?;
    }
    if !v.coordinators.is_empty() {
        writeln!(out, "  coordinators: {}", v.coordinators.join(", "))?;
    }
    // Notes, reasons and refusals carry text members typed: escaped, and continued
    // under a bar, so nothing in them can pose as a history line.
    let peer = |t: &str| safe_text(t, "                | ");
    if let Some(r) = &v.failure_reason {
        writeln!(out, "  failed:       {}", peer(r))?;
    }
    writeln!(out, "  history:")?;
    for h in &v.history {
        write!(
            out,
            "    {}  {:<16} by {} ({}) -> {}",
            h.at, h.event_kind, h.author, h.role, h.status
        )?;
        match &h.text {
            Some(t) => writeln!(out, ": {}", peer(t))?,
            None => writeln!(out)?,
        }
    }
    for r in &v.rejected {
        writeln!(
            out,
            "    refused {} by {}: {}",
            r.event_kind,
            r.author,
            peer(&r.reason)
        )?;
    }
    Ok(())
}

pub(super) fn request_amount(state: &DeliveryState) -> String {
    state
        .details
        .as_ref()
        .map(|d| format!("{} {}", d.amount.to_decimal(), d.amount.currency().code()))
        .unwrap_or_default()
}
