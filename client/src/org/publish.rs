//! Publishing a revocation list to the org's relays.

use super::*;

/// Offers `list` to every relay of the org descriptor (no admission needed: the list
/// authenticates itself). Succeeds if at least one relay holds it afterwards.
pub(super) fn publish(
    home: &OrgHome,
    org: &OrgKey,
    list: &RevocationList,
    handle: &str,
    out: &mut dyn Write,
) -> Result<(), OrgError> {
    use postern_protocol::message::{PutRevocationList, Request, Response};
    let descriptor = home.descriptor(org)?;
    let relays = descriptor.body().relays.as_slice();
    if relays.is_empty() {
        return Err(OrgError::NoRelayToPublish(handle.to_owned()));
    }
    let request = match postern_protocol::Bytes::new(list.encode()) {
        Ok(bytes) => Request::PutRevocationList(PutRevocationList { list: bytes }),
        Err(_) => {
            return Err(OrgError::PublishFailed {
                version: list.version(),
                path: home.path(REVOCATIONS_FILE),
                reasons: "the list is larger than a relay accepts".into(),
            });
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut accepted = 0;
    let mut reasons = Vec::new();
    for address in relays {
        let outcome = runtime.block_on(async {
            let conn = postern_transport::RelayConnection::connect(address).await?;
            let r = conn.request(&request).await;
            conn.close().await;
            r
        });
        match outcome {
            Ok(Response::RevocationListAccepted(a)) => {
                accepted += 1;
                writeln!(
                    out,
                    "Published to {address}: the relay holds version {}.",
                    a.version
                )?;
            }
            Ok(_) => reasons.push(format!("{address}: unexpected answer")),
            Err(e) => {
                writeln!(out, "Not published to {address}: {e}")?;
                reasons.push(format!("{address}: {e}"));
            }
        }
    }
    if accepted == 0 {
        return Err(OrgError::PublishFailed {
            version: list.version(),
            path: home.path(REVOCATIONS_FILE),
            reasons: reasons.join("; "),
        });
    }
    Ok(())
}
