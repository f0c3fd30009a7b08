//! proptest strategies for every wire message (shared by the property tests).
#![allow(missing_docs, dead_code)]

use postern_protocol::bytes::{BoundedVec, Bytes, FixedBytes};
use postern_protocol::error::ErrorCode;
use postern_protocol::ids::{EnvelopeId, HandleTag, MailboxId};
use postern_protocol::limits::*;
use postern_protocol::message::*;
use proptest::collection::vec;
use proptest::prelude::*;

pub fn bytes<const MAX: usize>(max: usize) -> impl Strategy<Value = Bytes<MAX>> {
    vec(any::<u8>(), 0..=max.min(MAX)).prop_map(|v| Bytes::new(v).unwrap())
}

pub fn fixed<const N: usize>() -> impl Strategy<Value = FixedBytes<N>> {
    vec(any::<u8>(), N).prop_map(|v| FixedBytes(v.try_into().unwrap()))
}

pub fn mailbox() -> impl Strategy<Value = MailboxId> {
    any::<[u8; 32]>().prop_map(MailboxId)
}

pub fn envelope_id() -> impl Strategy<Value = EnvelopeId> {
    any::<[u8; 32]>().prop_map(EnvelopeId)
}

pub fn directory() -> impl Strategy<Value = HandleTag> {
    any::<[u8; 32]>().prop_map(HandleTag)
}

pub fn envelope() -> impl Strategy<Value = Envelope> {
    (
        envelope_id(),
        any::<u64>(),
        bytes::<MAX_ENVELOPE_BODY>(2048),
    )
        .prop_map(|(id, expires_at, body)| Envelope {
            id,
            expires_at,
            body,
        })
}

pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        vec(any::<u16>(), 0..=MAX_OFFERED_VERSIONS).prop_map(|v| Request::Hello(Hello {
            versions: BoundedVec::new(v).unwrap()
        })),
        (bytes::<MAX_CERTIFICATE_LEN>(600), fixed::<64>()).prop_map(|(certificate, signature)| {
            Request::Authenticate(Authenticate {
                certificate,
                signature,
            })
        }),
        (mailbox(), mailbox(), fixed::<32>(), fixed::<32>()).prop_map(
            |(recipient, sender, owner, sender_key)| {
                Request::CreateMailbox(CreateMailbox {
                    recipient,
                    sender,
                    owner,
                    sender_key,
                })
            }
        ),
        (mailbox(), fixed::<64>()).prop_map(|(recipient, signature)| Request::OpenMailbox(
            OpenMailbox {
                recipient,
                signature
            }
        )),
        (
            directory(),
            bytes::<MAX_DIRECTORY_ENTRY_LEN>(600),
            vec(bytes::<MAX_ONE_TIME_PREKEY_LEN>(100), 0..8)
        )
            .prop_map(|(directory, entry, one_time)| {
                Request::PublishPrekeys(PublishPrekeys {
                    directory,
                    entry,
                    one_time: BoundedVec::new(one_time).unwrap(),
                })
            }),
        directory().prop_map(|directory| Request::FetchPrekeys(FetchPrekeys { directory })),
        directory().prop_map(|directory| Request::FetchEntry(FetchEntry { directory })),
        (
            mailbox(),
            any::<u32>(),
            bytes::<MAX_ENVELOPE_BODY>(2048),
            fixed::<64>()
        )
            .prop_map(
                |(to, ttl_secs, body, signature)| Request::Send(SendEnvelope {
                    to,
                    ttl_secs,
                    body,
                    signature
                })
            ),
        Just(Request::Subscribe),
        any::<u16>().prop_map(|limit| Request::Fetch(Fetch { limit })),
        vec(envelope_id(), 0..20).prop_map(|ids| Request::Ack(Ack {
            ids: BoundedVec::new(ids).unwrap()
        })),
        Just(Request::GetRevocationList),
        bytes::<MAX_REVOCATION_LIST_LEN>(600)
            .prop_map(|list| Request::PutRevocationList(PutRevocationList { list })),
        any::<u64>().prop_map(|nonce| Request::Ping(Ping { nonce })),
        fixed::<32>().prop_map(|sender_key| Request::SetSenderKey(SetSenderKey { sender_key })),
    ]
}

pub fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        any::<u16>().prop_map(|n| Response::Error(ErrorCode::from_number(n))),
        (any::<u16>(), fixed::<32>())
            .prop_map(|(version, challenge)| Response::Welcome(Welcome { version, challenge })),
        any::<u32>()
            .prop_map(|max_ttl_secs| Response::Authenticated(Authenticated { max_ttl_secs })),
        Just(Response::MailboxCreated),
        any::<u32>().prop_map(|pending| Response::MailboxOpened(MailboxOpened { pending })),
        any::<u32>().prop_map(
            |one_time_available| Response::PrekeysPublished(PrekeysPublished {
                one_time_available
            })
        ),
        (
            bytes::<MAX_DIRECTORY_ENTRY_LEN>(600),
            proptest::option::of(bytes::<MAX_ONE_TIME_PREKEY_LEN>(100))
        )
            .prop_map(|(entry, one_time)| Response::Prekeys(Prekeys { entry, one_time })),
        (envelope_id(), any::<u64>())
            .prop_map(|(id, expires_at)| Response::Sent(Sent { id, expires_at })),
        Just(Response::Subscribed),
        (vec(envelope(), 0..4), any::<bool>()).prop_map(|(e, more)| Response::Envelopes(
            Envelopes {
                envelopes: BoundedVec::new(e).unwrap(),
                more
            }
        )),
        any::<u32>().prop_map(|deleted| Response::Acked(Acked { deleted })),
        proptest::option::of(bytes::<MAX_REVOCATION_LIST_LEN>(600))
            .prop_map(|list| Response::RevocationList(RevocationList { list })),
        any::<u64>().prop_map(
            |version| Response::RevocationListAccepted(RevocationListAccepted { version })
        ),
        any::<u64>().prop_map(|nonce| Response::Pong(Ping { nonce })),
        Just(Response::SenderKeySet),
    ]
}

pub fn push() -> impl Strategy<Value = Push> {
    prop_oneof![
        envelope().prop_map(Push::Envelope),
        Just(Push::SpaceAvailable),
        any::<u64>().prop_map(|version| Push::RevocationListUpdated { version }),
    ]
}
