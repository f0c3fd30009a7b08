//! Store tests on real database files in temporary directories.

use super::*;
use postern_protocol::padding::pad;

fn body(s: &[u8]) -> EnvelopeBody {
    Bytes::new(pad(s).unwrap()).unwrap()
}

fn open(dir: &Path) -> Store {
    Store::open(
        dir,
        Quotas {
            max_envelopes: 100,
            max_bytes: 1 << 30,
            max_one_time: 10,
        },
        64,
        Arc::new(Metrics::default()),
        None,
    )
    .unwrap()
}

#[tokio::test]
async fn an_expired_envelope_is_never_returned_and_the_sweeper_deletes_it_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    let t = 1_800_000_000u64;
    {
        let store = open(dir.path());
        store.create_mailbox(r, s, [3; 32]).await.unwrap();
        store.send(s, t, body(b"short")).await.unwrap();
        store.send(s, t + 3600, body(b"long")).await.unwrap();
        store.close();
    }
    // Reopen (a restart): expiry is judged against the time of each request.
    let store = open(dir.path());
    let (before, _) = store.fetch(&r, 10, t - 1).unwrap();
    assert_eq!(before.len(), 2);
    let (at, _) = store.fetch(&r, 10, t).unwrap();
    assert_eq!(at.len(), 1, "an envelope is expired at its expires_at");
    assert_eq!(at[0].expires_at, t + 3600);
    let swept = store.sweep(t).await.unwrap();
    assert_eq!(swept.count, 1);
    assert_eq!(store.counts().unwrap().envelopes, 1);
    assert_eq!(store.mailbox(&r).unwrap().unwrap().1, 1);
    // Acking an expired-and-swept id is harmless.
    let acked = store
        .ack(r, vec![at[0].id, EnvelopeId([9; 32])])
        .await
        .unwrap();
    assert_eq!(acked.count, 1);
    assert_eq!(store.counts().unwrap().envelopes, 0);
    assert_eq!(store.sweep(u64::MAX - 1).await.unwrap().count, 0);
}

#[tokio::test]
async fn held_bucket_counts_follow_commits_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    let ids = {
        let store = open(dir.path());
        store.create_mailbox(r, s, [3; 32]).await.unwrap();
        let a = store.send(s, u64::MAX, body(b"a")).await.unwrap();
        store.send(s, u64::MAX, body(&[7; 2000])).await.unwrap();
        // A refused send changes nothing.
        assert!(
            store
                .send(MailboxId([9; 32]), u64::MAX, body(b"x"))
                .await
                .is_err()
        );
        assert_eq!(
            store.bucket_histogram().unwrap(),
            vec![(1024, 1), (4096, 1)]
        );
        store.close();
        vec![a.id]
    };
    let store = open(dir.path());
    assert_eq!(
        store.bucket_histogram().unwrap(),
        vec![(1024, 1), (4096, 1)]
    );
    store.ack(r, ids).await.unwrap();
    assert_eq!(store.bucket_histogram().unwrap(), vec![(4096, 1)]);
}

#[tokio::test]
async fn one_time_prekeys_beyond_the_directory_quota_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()); // max_one_time: 10
    let d = HandleTag([4; 32]);
    let eleven = (0..11u8).map(|i| vec![i; 8]).collect();
    assert_eq!(
        store.publish(d, [1; 32], b"entry".to_vec(), eleven).await,
        Err(ErrorCode::QuotaExceeded)
    );
    assert_eq!(store.counts().unwrap().one_time_prekeys, 0);
    assert_eq!(store.counts().unwrap().directory_entries, 0);
    let ten = (0..10u8).map(|i| vec![i; 8]).collect();
    assert_eq!(
        store.publish(d, [1; 32], b"entry".to_vec(), ten).await,
        Ok(10)
    );
    assert_eq!(
        store
            .publish(d, [1; 32], b"entry".to_vec(), vec![vec![0; 8]])
            .await,
        Err(ErrorCode::QuotaExceeded)
    );
    assert_eq!(store.counts().unwrap().one_time_prekeys, 10);
}

#[tokio::test]
async fn the_byte_quota_counts_padded_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        Quotas {
            max_envelopes: 100,
            max_bytes: 2048,
            max_one_time: 10,
        },
        64,
        Arc::new(Metrics::default()),
        None,
    )
    .unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    store.create_mailbox(r, s, [3; 32]).await.unwrap();
    store.send(s, u64::MAX, body(b"a")).await.unwrap();
    store.send(s, u64::MAX, body(b"b")).await.unwrap();
    assert_eq!(
        store.send(s, u64::MAX, body(b"c")).await.unwrap_err(),
        ErrorCode::QuotaExceeded
    );
    assert_eq!(store.counts().unwrap().envelopes, 2);
    // Stats show padded body sizes, never more.
    assert_eq!(store.bucket_histogram().unwrap(), vec![(1024, 2)]);
}

#[tokio::test]
async fn stored_envelopes_are_staged_for_subscribers_and_refused_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let store = Store::open(
        dir.path(),
        Quotas {
            max_envelopes: 1,
            max_bytes: 1 << 20,
            max_one_time: 10,
        },
        64,
        Arc::new(Metrics::default()),
        Some(tx),
    )
    .unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    store.create_mailbox(r, s, [3; 32]).await.unwrap();
    let stored = store.send(s, u64::MAX, body(b"first")).await.unwrap();
    // Over quota, and to a mailbox that does not exist: refused, nothing staged.
    assert_eq!(
        store.send(s, u64::MAX, body(b"second")).await.unwrap_err(),
        ErrorCode::QuotaExceeded
    );
    assert_eq!(
        store
            .send(MailboxId([9; 32]), u64::MAX, body(b"third"))
            .await
            .unwrap_err(),
        ErrorCode::NotFound
    );
    store.close();
    let mut staged = Vec::new();
    while let Some(batch) = rx.recv().await {
        staged.extend(batch);
    }
    assert_eq!(staged.len(), 1);
    let (to, envelope) = &staged[0];
    assert_eq!(*to, r);
    assert_eq!(envelope.id, stored.id);
    assert_eq!(envelope.expires_at, stored.expires_at);
    assert_eq!(envelope.body, body(b"first"));
}

#[tokio::test]
async fn concurrent_sends_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let store = Store::open(
        dir.path(),
        Quotas {
            max_envelopes: 10_000,
            max_bytes: 1 << 30,
            max_one_time: 10,
        },
        256,
        metrics.clone(),
        None,
    )
    .unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    store.create_mailbox(r, s, [3; 32]).await.unwrap();
    let before = metrics.snapshot().commits;
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.send(s, u64::MAX, body(&i.to_be_bytes())).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let commits = metrics.snapshot().commits - before;
    assert_eq!(store.counts().unwrap().envelopes, 500);
    // Group commit: far fewer flushes than sends (the exact number depends on timing).
    assert!(commits < 500, "{commits} commits for 500 sends");
}
