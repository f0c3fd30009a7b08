//! One exit-code policy for every command family. Each error variant of the member,
//! delivery and org commands is classified here, by an exhaustive match (a new variant
//! does not compile until it is given a class), and `postern --help` prints the table
//! from [`ExitClass::ALL`], so the help and the codes cannot drift apart.

use crate::delivery::DeliveryError;
use crate::member::MemberError;
use crate::org::OrgError;

/// What kind of failure a command ended with; its process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitClass {
    /// 1: I/O, damaged files, internal errors.
    Failure,
    /// 2: a command, option or value that does not parse; nothing was asked or changed.
    Usage,
    /// 3: the passphrase is missing or wrong.
    Passphrase,
    /// 4: refused by a rule: trust, the org's policy, the relay, a taken name.
    Refused,
    /// 5: the relay is unreachable or the connection was lost.
    Unreachable,
    /// 6: no account or org here, or not enrolled yet.
    NoAccount,
}

impl ExitClass {
    /// Every class, in code order.
    pub const ALL: [ExitClass; 6] = [
        ExitClass::Failure,
        ExitClass::Usage,
        ExitClass::Passphrase,
        ExitClass::Refused,
        ExitClass::Unreachable,
        ExitClass::NoAccount,
    ];

    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Failure => 1,
            ExitClass::Usage => 2,
            ExitClass::Passphrase => 3,
            ExitClass::Refused => 4,
            ExitClass::Unreachable => 5,
            ExitClass::NoAccount => 6,
        }
    }

    /// What the code means, as `postern --help` prints it.
    pub fn meaning(self) -> &'static str {
        match self {
            ExitClass::Failure => "other failure (I/O, damaged files, internal errors)",
            ExitClass::Usage => {
                "usage error: unknown command or option, or a value that does not parse (amount, currency, family code, deadline, TTL, delivery id, hand-off code); nothing was asked for or changed"
            }
            ExitClass::Passphrase => "passphrase missing or wrong",
            ExitClass::Refused => {
                "refused: revoked or unknown member, failed verification, a rule of the org (role, TTL limit) or of the delivery, a bad bundle or request, a name or file already taken, or the relay refused the request"
            }
            ExitClass::Unreachable => {
                "relay unreachable or connection lost: nothing was sent, or it is queued for your next command; try again"
            }
            ExitClass::NoAccount => "no account or org here, or not enrolled yet",
        }
    }
}

/// The exit-code table `postern --help` ends with.
pub fn help_text() -> String {
    let mut text = String::from(
        "Exit codes:\n  0  success (for `send`: the relay has durably stored the message)",
    );
    for class in ExitClass::ALL {
        text.push_str(&format!("\n  {}  {}", class.code(), class.meaning()));
    }
    text
}

/// An error that knows its exit class.
pub trait Classify {
    /// The class this error exits with.
    fn exit_class(&self) -> ExitClass;
}

impl Classify for MemberError {
    fn exit_class(&self) -> ExitClass {
        use ExitClass::*;
        use MemberError as E;
        match self {
            E::Passphrase(_) | E::WrongPassphrase(_) => Passphrase,
            E::Usage(_) | E::TtlZero => Usage,
            E::BadBundle(_)
            | E::WrongOrg { .. }
            | E::NoRelay
            | E::Refused { .. }
            | E::SelfRevoked
            | E::SelfExpired
            | E::UnknownHandle(_)
            | E::PeerRevoked(_)
            | E::PeerUntrusted { .. }
            | E::BadDirectoryEntry { .. }
            | E::TtlTooLong { .. }
            | E::SelfSend
            | E::TooLong(_)
            | E::BadHandle(_)
            | E::AlreadyEnrolled(_)
            | E::AlreadyInitialised(_)
            | E::NoSession(_)
            | E::BadInput(_) => Refused,
            E::Unreachable { .. } | E::Relay { .. } => Unreachable,
            E::NoAccount(_) | E::NotEnrolled | E::IncompleteInit(_) | E::NoHome => NoAccount,
            E::VaultBusy(_)
            | E::Vault(_)
            | E::Corrupt(_)
            | E::Io { .. }
            | E::Internal(_)
            | E::Output(_)
            | E::E2e(_)
            | E::NotConfirmed => Failure,
        }
    }
}

impl MemberError {
    /// Whether trying again cannot help: the request was refused by a rule, or a value
    /// does not parse. A delivery outbox drops such a message instead of keeping it.
    pub fn is_refusal(&self) -> bool {
        matches!(self.exit_class(), ExitClass::Refused | ExitClass::Usage)
    }
}

impl Classify for DeliveryError {
    fn exit_class(&self) -> ExitClass {
        use DeliveryError as E;
        use ExitClass::*;
        match self {
            E::Member(e) => e.exit_class(),
            E::BadValue(_) | E::BadDeadline(_) | E::TooManyCoordinators => Usage,
            E::Refused(_)
            | E::NotPermitted { .. }
            | E::NotACourier { .. }
            | E::NotACoordinator { .. }
            | E::UnknownDelivery(_)
            | E::NothingToConfirm(_) => Refused,
            E::NotYetSent(_) => Unreachable,
            E::Corrupt(_) => Failure,
        }
    }
}

impl Classify for OrgError {
    fn exit_class(&self) -> ExitClass {
        use ExitClass::*;
        use OrgError as E;
        match self {
            E::Passphrase(_) | E::WrongPassphrase(_) => Passphrase,
            E::BadRequest { .. }
            | E::FingerprintMismatch { .. }
            | E::AlreadyAnOrg(_)
            | E::HandleTaken { .. }
            | E::KeysTaken(_)
            | E::UnknownHandle(_)
            | E::DuplicateRelay(_)
            | E::TooManyRelays
            | E::NoRelayToPublish(_)
            | E::OutputExists(_)
            | E::Trust(_) => Refused,
            E::PublishFailed { .. } => Unreachable,
            E::NoHome | E::NotAnOrg(_) | E::IncompleteInit(_) => NoAccount,
            E::Io { .. } | E::Lock(..) | E::Corrupt { .. } | E::SealedSender(_) | E::Output(_) => {
                Failure
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use clap::CommandFactory;
    use postern_identity::{OrgRoot, Role, TrustError};
    use postern_protocol::ErrorCode;
    use postern_transport::TransportError;
    use strum::IntoEnumIterator;

    use super::*;
    use crate::delivery::DeliveryErrorDiscriminants as D;
    use crate::member::MemberErrorDiscriminants as M;
    use crate::org::OrgErrorDiscriminants as O;

    fn path() -> PathBuf {
        PathBuf::from("/home/x")
    }

    fn io() -> std::io::Error {
        std::io::Error::other("disk")
    }

    fn trust() -> TrustError {
        TrustError::Malformed {
            object: "request",
            reason: "truncated",
        }
    }

    /// One value of each member error variant (a new variant fails to compile here).
    fn member(kind: M) -> MemberError {
        let org = OrgRoot::generate().org_key();
        let s = || "x".to_owned();
        match kind {
            M::NoHome => MemberError::NoHome,
            M::NoAccount => MemberError::NoAccount(path()),
            M::AlreadyInitialised => MemberError::AlreadyInitialised(path()),
            M::IncompleteInit => MemberError::IncompleteInit(path()),
            M::BadHandle => MemberError::BadHandle(s()),
            M::Passphrase => {
                MemberError::Passphrase(crate::passphrase::PassphraseError::Unavailable)
            }
            M::WrongPassphrase => MemberError::WrongPassphrase(path()),
            M::VaultBusy => MemberError::VaultBusy(path()),
            M::NotEnrolled => MemberError::NotEnrolled,
            M::AlreadyEnrolled => MemberError::AlreadyEnrolled(org),
            M::BadBundle => MemberError::BadBundle(s()),
            M::WrongOrg => MemberError::WrongOrg {
                expected: org,
                found: org,
            },
            M::NoRelay => MemberError::NoRelay,
            M::Unreachable => MemberError::Unreachable {
                relay: s(),
                source: TransportError::UnexpectedResponse,
            },
            M::Refused => MemberError::Refused {
                what: "sending",
                code: ErrorCode::QuotaExceeded,
            },
            M::Relay => MemberError::Relay {
                what: "sending",
                source: TransportError::UnexpectedResponse,
            },
            M::SelfRevoked => MemberError::SelfRevoked,
            M::SelfExpired => MemberError::SelfExpired,
            M::UnknownHandle => MemberError::UnknownHandle(s()),
            M::PeerRevoked => MemberError::PeerRevoked(s()),
            M::PeerUntrusted => MemberError::PeerUntrusted {
                handle: s(),
                reason: s(),
            },
            M::BadDirectoryEntry => MemberError::BadDirectoryEntry {
                handle: s(),
                source: crate::directory::DirectoryError::Tampered,
            },
            M::TtlTooLong => MemberError::TtlTooLong {
                requested: s(),
                max: s(),
                limit: "org",
            },
            M::TtlZero => MemberError::TtlZero,
            M::SelfSend => MemberError::SelfSend,
            M::TooLong => MemberError::TooLong(1),
            M::NoSession => MemberError::NoSession(s()),
            M::E2e => MemberError::E2e(postern_e2e::E2eError::Vault(
                postern_e2e::VaultError::WrongPassphrase,
            )),
            M::Vault => MemberError::Vault(postern_e2e::VaultError::WrongPassphrase),
            M::Corrupt => MemberError::Corrupt("account"),
            M::Io => MemberError::Io {
                action: "read",
                path: path(),
                source: io(),
            },
            M::Internal => MemberError::Internal(s()),
            M::Output => MemberError::Output(io()),
            M::NotConfirmed => MemberError::NotConfirmed,
            M::BadInput => MemberError::BadInput(s()),
            M::Usage => MemberError::Usage(s()),
        }
    }

    /// One value of each delivery error variant; `Member` once per member variant.
    fn delivery(kind: D) -> Vec<DeliveryError> {
        let s = || "x".to_owned();
        vec![match kind {
            D::Member => {
                return M::iter()
                    .map(|k| DeliveryError::Member(member(k)))
                    .collect();
            }
            D::Refused => DeliveryError::Refused(postern_deliveries::LogError::ClockExhausted),
            D::BadValue => {
                DeliveryError::BadValue(postern_deliveries::ValueError::BadId { what: "id" })
            }
            D::NotPermitted => DeliveryError::NotPermitted {
                role: Role::Courier,
                action: "create deliveries",
                fix: "ask a coordinator",
            },
            D::NotACourier => DeliveryError::NotACourier {
                handle: s(),
                role: Role::Coordinator,
            },
            D::NotACoordinator => DeliveryError::NotACoordinator {
                handle: s(),
                role: Role::Courier,
            },
            D::UnknownDelivery => DeliveryError::UnknownDelivery(s()),
            D::BadDeadline => DeliveryError::BadDeadline(s()),
            D::NothingToConfirm => DeliveryError::NothingToConfirm(s()),
            D::TooManyCoordinators => DeliveryError::TooManyCoordinators,
            D::NotYetSent => DeliveryError::NotYetSent(s()),
            D::Corrupt => DeliveryError::Corrupt("deliveries"),
        }]
    }

    /// One value of each org error variant.
    fn org(kind: O) -> OrgError {
        let s = || "x".to_owned();
        match kind {
            O::NoHome => OrgError::NoHome,
            O::NotAnOrg => OrgError::NotAnOrg(path()),
            O::AlreadyAnOrg => OrgError::AlreadyAnOrg(path()),
            O::IncompleteInit => OrgError::IncompleteInit(path()),
            O::Io => OrgError::Io {
                action: "write",
                path: path(),
                source: io(),
            },
            O::Lock => OrgError::Lock(path(), io()),
            O::Passphrase => OrgError::Passphrase(crate::passphrase::PassphraseError::Unavailable),
            O::WrongPassphrase => OrgError::WrongPassphrase(path()),
            O::Corrupt => OrgError::Corrupt {
                path: path(),
                reason: s(),
            },
            O::BadRequest => OrgError::BadRequest {
                path: path(),
                source: trust(),
            },
            O::FingerprintMismatch => OrgError::FingerprintMismatch {
                expected: s(),
                actual: s(),
            },
            O::HandleTaken => OrgError::HandleTaken {
                handle: s(),
                serial: 1,
            },
            O::KeysTaken => OrgError::KeysTaken(s()),
            O::UnknownHandle => OrgError::UnknownHandle(s()),
            O::DuplicateRelay => OrgError::DuplicateRelay(s()),
            O::TooManyRelays => OrgError::TooManyRelays,
            O::NoRelayToPublish => OrgError::NoRelayToPublish(s()),
            O::PublishFailed => OrgError::PublishFailed {
                version: 2,
                path: path(),
                reasons: s(),
            },
            O::OutputExists => OrgError::OutputExists(path()),
            O::SealedSender => OrgError::SealedSender(
                postern_e2e::sender_certificate::SenderCertificateError::InvalidKey("key"),
            ),
            O::Trust => OrgError::Trust(trust()),
            O::Output => OrgError::Output(io()),
        }
    }

    /// The codes `postern --help` documents, read from the help text itself.
    fn documented() -> BTreeMap<u8, String> {
        let help = crate::cli::Cli::command().render_long_help().to_string();
        let table = help
            .split_once("Exit codes:")
            .map(|(_, t)| t.to_owned())
            .unwrap_or_else(|| panic!("no exit-code table in --help:\n{help}"));
        table
            .lines()
            .filter_map(|l| {
                let l = l.trim_start();
                let (code, meaning) = l.split_once("  ")?;
                Some((code.parse().ok()?, meaning.trim().to_owned()))
            })
            .collect()
    }

    #[test]
    fn every_error_of_every_command_family_exits_with_a_documented_code() {
        let documented = documented();
        assert_eq!(
            documented.keys().copied().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4, 5, 6],
            "{documented:?}"
        );
        let mut used = BTreeSet::new();
        let mut check = |family: &str, name: String, class: ExitClass| {
            let code = class.code();
            let meaning = documented
                .get(&code)
                .unwrap_or_else(|| panic!("{family} {name} exits {code}, not in --help"));
            assert_eq!(meaning, class.meaning(), "{family} {name}");
            used.insert(code);
            println!("{family:8} {name:24} {code}");
        };
        for k in M::iter() {
            check("member", format!("{k:?}"), member(k).exit_class());
        }
        for k in D::iter() {
            for e in delivery(k) {
                check("delivery", format!("{k:?}"), e.exit_class());
            }
        }
        for k in O::iter() {
            check("org", format!("{k:?}"), org(k).exit_class());
        }
        // Every documented failure code is one some error really exits with.
        assert_eq!(used, (1..=6).collect(), "documented but never used");
    }

    #[test]
    fn the_codes_people_script_against() {
        use ExitClass::*;
        let cases: [(&dyn Classify, ExitClass); 12] = [
            (&org(O::PublishFailed), Unreachable),
            (&org(O::UnknownHandle), Refused),
            (&org(O::HandleTaken), Refused),
            (&org(O::NotAnOrg), NoAccount),
            (&org(O::WrongPassphrase), Passphrase),
            (&DeliveryError::BadDeadline("tomorrow-ish".into()), Usage),
            (
                &DeliveryError::Member(MemberError::Usage("--amount".into())),
                Usage,
            ),
            (&DeliveryError::NotYetSent("coord-1".into()), Unreachable),
            (&DeliveryError::UnknownDelivery("X".into()), Refused),
            (&member(M::TtlTooLong), Refused),
            (&member(M::Unreachable), Unreachable),
            (&member(M::NotEnrolled), NoAccount),
        ];
        for (e, class) in cases {
            assert_eq!(e.exit_class(), class);
        }
        assert!(member(M::PeerRevoked).is_refusal());
        assert!(!member(M::Unreachable).is_refusal());
    }
}
