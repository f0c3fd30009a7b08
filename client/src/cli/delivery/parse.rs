//! Everything typed is parsed before the vault is opened: a typing mistake is a usage
//! error (exit 2) that costs no unlock. The hand-off code is read here too.

use super::*;

/// Longest line read as a hand-off code (16 digits with generous separators).
pub(super) const MAX_CODE_LINE: u64 = 128;

/// Reads the hand-off code: at a prompt that does not echo, or from the first line of
/// standard input when it is not a terminal. A misread code is refused here, before
/// anything is sent, and does not count as an attempt.
pub(super) fn enter_handoff_code(a: &HandoffArgs) -> Result<HandoffCode, MemberError> {
    use std::io::{BufRead, IsTerminal, Read};
    use zeroize::Zeroizing;
    if a.code.is_some() {
        return Err(MemberError::Usage(
            "--code is refused: a code on the command line stays in your shell history and other users can see it in `ps`. Run `postern delivery handoff ID` and type the code at the prompt (or pipe it on standard input)".into(),
        ));
    }
    let line = if std::io::stdin().is_terminal() {
        Zeroizing::new(
            rpassword::prompt_password(
                "Hand-off code the family reads out (16 digits, not shown): ",
            )
            .map_err(|e| MemberError::BadInput(format!("cannot read the code: {e}")))?,
        )
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .take(MAX_CODE_LINE)
            .read_line(&mut line)
            .map_err(|e| MemberError::BadInput(format!("cannot read the code: {e}")))?;
        line
    };
    if line.trim().is_empty() {
        return Err(MemberError::Usage(
            "no hand-off code was entered; nothing was sent".into(),
        ));
    }
    HandoffCode::parse(line.trim()).map_err(|e| {
        MemberError::Usage(format!(
            "{e} (nothing was sent: a misread code does not count as an attempt)"
        ))
    })
}

/// Parses a deadline: RFC 3339, or a duration from `now`.
pub(crate) fn parse_deadline(text: &str, now: u64) -> Result<u64, DeliveryError> {
    let bad = || DeliveryError::BadDeadline(text.to_owned());
    let at = if let Ok(t) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        u64::try_from(t.unix_timestamp()).map_err(|_| bad())?
    } else {
        let d = humantime::parse_duration(text).map_err(|_| bad())?;
        now.checked_add(d.as_secs()).ok_or_else(bad)?
    };
    if at <= now {
        return Err(bad());
    }
    Ok(at)
}

/// Names the option whose value was refused.
pub(super) fn flag<T>(
    name: &str,
    value: &str,
    r: Result<T, postern_deliveries::ValueError>,
) -> Result<T, DeliveryError> {
    r.map_err(|e| MemberError::Usage(format!("{name} {value:?} refused: {e}")).into())
}

pub(super) fn parse_id(text: &str) -> Result<DeliveryId, DeliveryError> {
    text.trim().parse().map_err(|_| {
        MemberError::Usage(format!(
            "{text:?} is not a delivery id: 26 letters and digits, as `postern delivery list` shows"
        ))
        .into()
    })
}

/// A delivery command with every value from the command line parsed: what `run` has
/// before it asks for the passphrase, so a typing mistake costs no unlock.
pub(super) enum Parsed {
    List {
        json: bool,
    },
    Show {
        id: DeliveryId,
        json: bool,
    },
    New {
        request: NewDeliveryRequest,
        json: bool,
    },
    Update {
        id: DeliveryId,
        updates: Vec<Update>,
    },
    Handoff {
        id: DeliveryId,
        code: HandoffCode,
    },
}

impl Parsed {
    /// Parses `cmd` at `now` (deadlines may be relative). The hand-off code is read here,
    /// at its prompt: the family is waiting, and a misread is caught before the vault's
    /// slow unlock.
    pub(super) fn parse(cmd: DeliveryCommand, now: u64) -> Result<Self, DeliveryError> {
        Ok(match cmd {
            DeliveryCommand::List(a) => Parsed::List { json: a.json },
            DeliveryCommand::Show(a) => Parsed::Show {
                id: parse_id(&a.id)?,
                json: a.json,
            },
            DeliveryCommand::New(a) => Parsed::New {
                request: new_request(&a, now)?,
                json: a.json,
            },
            DeliveryCommand::Update(a) => Parsed::Update {
                id: parse_id(&a.id)?,
                updates: parse_updates(&a)?,
            },
            DeliveryCommand::Handoff(a) => {
                let id = parse_id(&a.id)?;
                Parsed::Handoff {
                    id,
                    code: enter_handoff_code(&a)?,
                }
            }
        })
    }

    /// Whether the command can answer from the device when the relay is unreachable.
    pub(super) fn reads_only(&self) -> bool {
        matches!(self, Parsed::List { .. } | Parsed::Show { .. })
    }
}

pub(super) fn new_request(a: &NewArgs, now: u64) -> Result<NewDeliveryRequest, DeliveryError> {
    let currency = flag("--currency", &a.currency, Currency::new(&a.currency))?;
    Ok(NewDeliveryRequest {
        courier: a.courier.clone(),
        family: flag("--family", &a.family, FamilyRef::new(&a.family))?,
        amount: flag("--amount", &a.amount, Amount::parse(&a.amount, currency))?,
        deadline: match &a.deadline {
            Some(d) => parse_deadline(d, now)?,
            None => now + DEFAULT_DEADLINE.as_secs(),
        },
        coordinators: a.coordinators.clone(),
    })
}

pub(super) fn parse_updates(a: &UpdateArgs) -> Result<Vec<Update>, DeliveryError> {
    let note = match &a.note {
        Some(n) => Some(flag("--note", n, EventText::new(n))?),
        None => None,
    };
    let need_note = |what: &str, text: &str| {
        MemberError::Usage(format!("`{what}` needs --note TEXT (the {text})"))
    };
    let mut updates = Vec::new();
    match a.status.as_str() {
        "failed" => updates.push(Update::Failed(
            note.ok_or_else(|| need_note("failed", "reason"))?,
        )),
        "note" => updates.push(Update::Note(note.ok_or_else(|| need_note("note", "note"))?)),
        other => {
            let u = match other {
                "picked-up" => Update::PickedUp,
                "in-transit" => Update::InTransit,
                "confirmed" => Update::Confirmed,
                "cancelled" => Update::Cancelled,
                _ => {
                    return Err(MemberError::Usage(format!(
                        "unknown status {other:?}: use picked-up, in-transit, confirmed, failed --note REASON, cancelled, or note --note TEXT"
                    ))
                    .into());
                }
            };
            // A note goes first: nothing can be added once the delivery is closed.
            if let Some(n) = note {
                updates.push(Update::Note(n));
            }
            updates.push(u);
        }
    }
    Ok(updates)
}
