//! The unlinkability property (issue 12): a relay that records, for every connection,
//! the certificate it was admitted with, the mailboxes it opened and the mailboxes it
//! sent to, watches a simulated org at work — coordinators and couriers, deliveries run
//! to the hand-off, chat from `postern send`'s path, a revocation — and no connection
//! both identifies a member and sends or looks anyone up; no connection that sends ever
//! presents a certificate or device key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use postern::delivery::{Deliveries, NewDeliveryRequest, Update};
use postern::member::{Member, MemberError, unix_now};
use postern_deliveries::{Amount, Currency, FamilyRef, Status};
use postern_demo::DemoWorld;
use postern_e2e::KdfParams;
use postern_identity::{Policy, Role};
use postern_protocol::bytes::Bytes;
use postern_protocol::message::{PutRevocationList, Request, Response};
use postern_relay::recorder::ConnectionRecord;
use postern_transport::RelayConnection;

const PASS: &[u8] = b"correct horse battery staple";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What identifies `m` on the wire: its certificate and its device key.
fn identity_of(m: &Member) -> Vec<Vec<u8>> {
    let cert = m.certificate().unwrap();
    vec![cert.encode(), cert.body().device_key.to_bytes().to_vec()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_relay_connection_both_identifies_a_member_and_sends() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = DemoWorld::start(tmp.path(), Policy::default())
        .await
        .unwrap();
    w.relay().recorder().start();
    let enroll = |h: &'static str, role| {
        let w = &w;
        async move {
            w.enroll(h, role, PASS, KdfParams::insecure_for_tests())
                .await
                .unwrap()
        }
    };
    let coord = enroll("coord-1", Role::Coordinator).await;
    let coord2 = enroll("coord-2", Role::Coordinator).await;
    let couriers = [
        enroll("courier-a", Role::Courier).await,
        enroll("courier-b", Role::Courier).await,
        enroll("courier-c", Role::Courier).await,
    ];

    // Deliveries: coord-1 creates one per courier (coord-2 on the first), the couriers
    // pick up, carry and claim the hand-off with the code, the coordinators confirm.
    let (cc, cc2) = (
        coord.connect().await.unwrap(),
        coord2.connect().await.unwrap(),
    );
    let mut cd = Deliveries::open(&coord).unwrap();
    let mut cd2 = Deliveries::open(&coord2).unwrap();
    let mut made = Vec::new();
    for (i, k) in couriers.iter().enumerate() {
        let extra = if i == 0 {
            vec!["coord-2".to_owned()]
        } else {
            vec![]
        };
        let d = cd
            .create(
                &cc,
                NewDeliveryRequest {
                    courier: k.handle().into(),
                    family: FamilyRef::new(&format!("F-{i}")).unwrap(),
                    amount: Amount::parse("100", Currency::new("USD").unwrap()).unwrap(),
                    deadline: unix_now() + 86_400,
                    coordinators: extra,
                },
            )
            .await
            .unwrap();
        made.push((d.id, d.code));
    }
    for (k, (id, code)) in couriers.iter().zip(&made) {
        let kc = k.connect().await.unwrap();
        let mut kd = Deliveries::open(k).unwrap();
        kd.sync(&kc).await.unwrap();
        kd.update(&kc, id, Update::PickedUp).await.unwrap();
        kd.update(&kc, id, Update::InTransit).await.unwrap();
        kd.handoff(&kc, id, code.clone()).await.unwrap();
        kc.close().await;
    }
    cd.sync(&cc).await.unwrap();
    cd2.sync(&cc2).await.unwrap();
    for (id, _) in &made {
        let status = cd.show(id).unwrap().status;
        assert!(
            matches!(status, Status::HandedOff | Status::Confirmed),
            "{status:?}"
        );
    }

    // Chat the way `postern send` does it: a send connection and nothing else.
    for k in &couriers[..2] {
        let sender = k.connect_sender().await.unwrap();
        k.send_text(&sender, "coord-1", "arrived, all well", None)
            .await
            .unwrap();
        sender.close().await;
    }
    let sender = coord.connect_sender().await.unwrap();
    coord
        .send_text(&sender, "courier-a", "thank you", None)
        .await
        .unwrap();
    sender.close().await;
    assert_eq!(coord.fetch(&cc).await.unwrap().new.len(), 2);

    // Revocation of courier-c: published; it can no longer open an owner connection,
    // and its client refuses to send.
    let revoked = couriers[2].certificate().unwrap().body().serial;
    let list = w.revoke(&[revoked]).unwrap();
    let admin = RelayConnection::connect(&w.relay().address).await.unwrap();
    let put = Request::PutRevocationList(PutRevocationList {
        list: Bytes::new(list.encode()).unwrap(),
    });
    assert!(matches!(
        admin.request(&put).await.unwrap(),
        Response::RevocationListAccepted(_)
    ));
    admin.close().await;
    assert!(matches!(
        couriers[2].connect().await.unwrap_err(),
        MemberError::SelfRevoked
    ));
    assert!(matches!(
        couriers[2].connect_sender().await.unwrap_err(),
        MemberError::SelfRevoked
    ));
    cc.close().await;
    cc2.close().await;

    // The property, over every connection the relay saw.
    let records: Vec<ConnectionRecord> = w.relay().recorder().records();
    let identities: Vec<Vec<u8>> = [&coord, &coord2]
        .into_iter()
        .chain(couriers.iter())
        .flat_map(identity_of)
        .collect();
    let owners: Vec<&ConnectionRecord> = records.iter().filter(|r| r.admitted.is_some()).collect();
    let senders: Vec<&ConnectionRecord> = records
        .iter()
        .filter(|r| r.send_attempts > 0 || !r.looked_up.is_empty())
        .collect();
    for r in &records {
        assert!(
            r.admitted.is_none() || (r.send_attempts == 0 && r.looked_up.is_empty()),
            "connection {} was admitted and sent or looked up",
            r.conn_id
        );
        assert!(
            r.opened.is_empty() || r.admitted.is_some(),
            "connection {} opened a mailbox without admission",
            r.conn_id
        );
    }
    for r in &senders {
        assert!(
            r.presented.is_empty(),
            "send connection {} presented a certificate",
            r.conn_id
        );
        for body in &r.requests {
            for id in &identities {
                assert!(
                    !contains(body, id),
                    "send connection {} carried a member's certificate or device key",
                    r.conn_id
                );
            }
        }
    }
    // It was exercised: every member was admitted at some point, and the envelopes of
    // the deliveries and the chat all went over send connections.
    let sent: usize = senders.iter().map(|r| r.sent_to.len()).sum();
    assert!(owners.len() >= 5, "{} owner connections", owners.len());
    assert!(sent >= 3 * 5 + 3, "{sent} envelopes sent");
    assert!(senders.len() >= 3 + 3, "{} send connections", senders.len());
    let m = w.relay().metrics().snapshot();
    assert_eq!(m.owner_admissions, owners.len() as u64);
    assert_eq!(m.anonymous_connections, senders.len() as u64);
    w.shutdown().await;
}
