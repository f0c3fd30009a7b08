//! Store tests on real database files in temporary directories.

use super::*;
use postern_protocol::padding::{pad, unpad};

/// The sender key of every mailbox in these tests.
const SK: [u8; 32] = [4; 32];

fn body(s: &[u8]) -> EnvelopeBody {
    Bytes::new(pad(s).unwrap()).unwrap()
}

/// Quotas with these mailbox limits (10 one-time prekeys, 4 entries per device).
fn quotas(max_envelopes: u32, max_bytes: u64) -> Quotas {
    Quotas {
        max_envelopes,
        max_bytes,
        max_one_time: 10,
        max_entries_per_owner: 4,
    }
}

fn open(dir: &Path) -> Store {
    Store::open(
        dir,
        quotas(100, 1 << 30),
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
        store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
        store.send(s, SK, t, body(b"short")).await.unwrap();
        store.send(s, SK, t + 3600, body(b"long")).await.unwrap();
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
        store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
        let a = store.send(s, SK, u64::MAX, body(b"a")).await.unwrap();
        store.send(s, SK, u64::MAX, body(&[7; 2000])).await.unwrap();
        // A refused send changes nothing.
        assert!(
            store
                .send(MailboxId([9; 32]), SK, u64::MAX, body(b"x"))
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
        quotas(100, 2048),
        64,
        Arc::new(Metrics::default()),
        None,
    )
    .unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
    store.send(s, SK, u64::MAX, body(b"a")).await.unwrap();
    store.send(s, SK, u64::MAX, body(b"b")).await.unwrap();
    assert_eq!(
        store.send(s, SK, u64::MAX, body(b"c")).await.unwrap_err(),
        ErrorCode::QuotaExceeded
    );
    assert_eq!(store.counts().unwrap().envelopes, 2);
    // Stats show padded body sizes, never more.
    assert_eq!(store.bucket_histogram().unwrap(), vec![(1024, 2)]);
}

#[tokio::test]
async fn stored_envelopes_are_staged_for_subscribers_and_refused_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let store = Store::open(
        dir.path(),
        quotas(1, 1 << 20),
        64,
        Arc::new(Metrics::default()),
        Some(tx),
    )
    .unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
    let stored = store.send(s, SK, u64::MAX, body(b"first")).await.unwrap();
    // Over quota, and to a mailbox that does not exist: refused, nothing staged.
    assert_eq!(
        store
            .send(s, SK, u64::MAX, body(b"second"))
            .await
            .unwrap_err(),
        ErrorCode::QuotaExceeded
    );
    assert_eq!(
        store
            .send(MailboxId([9; 32]), SK, u64::MAX, body(b"third"))
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
        quotas(10_000, 1 << 30),
        256,
        metrics.clone(),
        None,
    )
    .unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
    let before = metrics.snapshot().commits;
    let mut tasks = Vec::new();
    for i in 0..500u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.send(s, SK, u64::MAX, body(&i.to_be_bytes())).await
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

/// Every file under `dir` with its bytes.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn holds(dir: &Path, needle: &[u8]) -> Option<std::path::PathBuf> {
    files(dir)
        .into_iter()
        .find(|(_, b)| b.windows(needle.len()).any(|w| w == needle))
        .map(|(p, _)| p)
}

const MARKER: &[u8] = b"zq-plaintext-body-marker-7";

#[tokio::test]
async fn bodies_are_sealed_at_rest_and_unreadable_once_their_epoch_passed() {
    let dir = tempfile::tempdir().unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    let e1 = 1_800_000_000u64; // an hour boundary
    let e2 = e1 + 3600;
    let store = open(dir.path());
    store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
    for e in [e1, e1, e2] {
        store.send(s, SK, e, body(MARKER)).await.unwrap();
    }
    // No body is on disk in the clear, even before anything expired.
    assert_eq!(holds(dir.path(), MARKER), None);
    let keys = store.epochs.live();
    assert_eq!(
        keys.iter().map(|(e, _)| *e).collect::<Vec<_>>(),
        vec![e1, e2]
    );
    for (_, k) in &keys {
        assert!(
            holds(dir.path(), k).is_some(),
            "a live key is in the key file"
        );
    }
    // The owner still reads them.
    let (got, _) = store.fetch(&r, 10, e1 - 100).unwrap();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|e| unpad(e.body.as_slice()) == Ok(MARKER)));

    // The first epoch passes: its key is destroyed, whether or not its envelopes were
    // deleted yet, and nothing can open them any more (even asked with an old clock).
    store.epochs.destroy_through(e1).unwrap();
    let (got, _) = store.fetch(&r, 10, e1 - 100).unwrap();
    assert_eq!(got.len(), 1, "only the second epoch's envelope opens");
    assert_eq!(store.sweep(e1).await.unwrap().count, 2);
    store.close();
    drop(store);
    assert_eq!(
        holds(dir.path(), &keys[0].1),
        None,
        "the first epoch key is gone"
    );
    assert!(holds(dir.path(), &keys[1].1).is_some());
    assert_eq!(holds(dir.path(), MARKER), None);

    // A restart keeps the live key, and the envelope under it opens.
    let store = open(dir.path());
    let (got, _) = store.fetch(&r, 10, e1 + 1).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(unpad(got[0].body.as_slice()), Ok(MARKER));
    store.sweep(e2).await.unwrap();
    store.close();
    drop(store);
    // An image of the data directory now holds no key that opens any body: every key
    // that ever sealed one is overwritten, and the key file is all zeros.
    for (_, k) in &keys {
        assert_eq!(holds(dir.path(), k), None);
    }
    let key_file = std::fs::read(dir.path().join(EPOCH_KEY_FILE)).unwrap();
    assert!(!key_file.is_empty() && key_file.iter().all(|b| *b == 0));
}

#[tokio::test]
async fn a_damaged_key_file_loses_its_bodies_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    let e = 1_800_000_000u64;
    {
        let store = open(dir.path());
        store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
        store.send(s, SK, e, body(b"lost")).await.unwrap();
        store.close();
    }
    for damage in [vec![0xa5u8; 64], vec![1, 2, 3], Vec::new()] {
        std::fs::write(dir.path().join(EPOCH_KEY_FILE), &damage).unwrap();
        let store = open(dir.path());
        let (got, _) = store.fetch(&r, 10, e - 100).unwrap();
        assert!(got.is_empty(), "a body without its key is skipped");
        // New sends work and open.
        store.send(s, SK, e + 3600, body(b"new")).await.unwrap();
        let (got, _) = store.fetch(&r, 10, e - 100).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(unpad(got[0].body.as_slice()), Ok(&b"new"[..]));
        store.ack(r, vec![got[0].id]).await.unwrap();
        store.close();
    }
}

#[tokio::test]
async fn bodies_stored_before_sealing_are_sealed_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    let e = 1_800_000_000u64;
    {
        let store = open(dir.path());
        store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
        store.send(s, SK, e, body(MARKER)).await.unwrap();
        store.close();
    }
    // Turn it into an older relay's database: plaintext bodies, no format, no keys.
    {
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(ENVELOPES).unwrap();
            let keys: Vec<Vec<u8>> = t
                .iter()
                .unwrap()
                .map(|i| i.unwrap().0.value().to_vec())
                .collect();
            for k in keys {
                t.insert(k.as_slice(), body(MARKER).as_slice()).unwrap();
            }
            txn.open_table(META)
                .unwrap()
                .remove(ENVELOPE_FORMAT_KEY)
                .unwrap();
        }
        txn.commit().unwrap();
    }
    std::fs::remove_file(dir.path().join(EPOCH_KEY_FILE)).unwrap();
    let store = open(dir.path());
    let (got, _) = store.fetch(&r, 10, e - 100).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(unpad(got[0].body.as_slice()), Ok(MARKER));
    assert_eq!(store.counts().unwrap().envelopes, 1);
    // Sealed once only: a second open changes nothing.
    store.close();
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.fetch(&r, 10, e - 100).unwrap().0.len(), 1);
    store.close();
}

#[tokio::test]
async fn one_time_prekeys_are_stored_in_random_slots_with_no_counter() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let tag = HandleTag([4; 32]);
    let n = store
        .publish(tag, [5; 32], vec![1; 10], vec![vec![7; 8]; 3])
        .await
        .unwrap();
    assert_eq!(n, 3);
    let txn = store.db.begin_read().unwrap();
    let rec: DirectoryRecord = decode(
        txn.open_table(DIRECTORY)
            .unwrap()
            .get(tag.as_bytes().as_slice())
            .unwrap()
            .unwrap()
            .value(),
        "directory",
    )
    .unwrap();
    assert_eq!(rec.next_seq, 0, "no publish counter at rest");
    let slots: Vec<u64> = txn
        .open_table(ONE_TIME)
        .unwrap()
        .iter()
        .unwrap()
        .map(|i| {
            let k = i.unwrap().0.value().to_vec();
            u64::from_be_bytes(k[32..40].try_into().unwrap())
        })
        .collect();
    assert_eq!(slots.len(), 3);
    assert!(
        slots.iter().all(|s| *s > 3),
        "slots are not a sequence: {slots:?}"
    );
    drop(txn);
    store.close();
}

#[tokio::test]
async fn a_send_lands_only_under_the_mailboxs_current_sender_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
    assert_eq!(store.sender_key(&s).unwrap(), Some(Some(SK)));
    assert_eq!(store.sender_key(&r).unwrap(), None, "by sender id only");
    assert_eq!(
        store
            .send(s, [5; 32], u64::MAX, body(b"x"))
            .await
            .unwrap_err(),
        ErrorCode::Unauthorized
    );
    store.send(s, SK, u64::MAX, body(b"a")).await.unwrap();
    // Rotated: the old key no longer writes, the new one does.
    store.set_sender_key(r, [6; 32]).await.unwrap();
    assert_eq!(store.sender_key(&s).unwrap(), Some(Some([6; 32])));
    assert_eq!(
        store.send(s, SK, u64::MAX, body(b"b")).await.unwrap_err(),
        ErrorCode::Unauthorized
    );
    store.send(s, [6; 32], u64::MAX, body(b"c")).await.unwrap();
    assert_eq!(store.mailbox(&r).unwrap().unwrap().1, 2);
    assert_eq!(
        store
            .set_sender_key(MailboxId([9; 32]), [6; 32])
            .await
            .unwrap_err(),
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn a_mailbox_from_before_sender_keys_takes_no_send_until_its_owner_sets_one() {
    let dir = tempfile::tempdir().unwrap();
    let (r, s) = (MailboxId([1; 32]), MailboxId([2; 32]));
    {
        let store = open(dir.path());
        store.create_mailbox(r, s, [3; 32], SK).await.unwrap();
        // What an older relay wrote: the recipient id alone.
        let txn = store.db.begin_write().unwrap();
        {
            let mut t = txn.open_table(SENDERS).unwrap();
            t.insert(s.as_bytes().as_slice(), r.as_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
        store.close();
    }
    let store = open(dir.path());
    assert_eq!(store.sender_key(&s).unwrap(), Some(None));
    for key in [SK, [0; 32]] {
        assert_eq!(
            store.send(s, key, u64::MAX, body(b"x")).await.unwrap_err(),
            ErrorCode::Unauthorized
        );
    }
    store.set_sender_key(r, SK).await.unwrap();
    store.send(s, SK, u64::MAX, body(b"x")).await.unwrap();
}

#[tokio::test]
async fn the_sweep_finds_every_due_envelope_and_only_looks_where_something_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(
        dir.path(),
        quotas(10_000, 1 << 30),
        512,
        Arc::new(Metrics::default()),
        None,
    )
    .unwrap();
    let t = 1_800_000_000u64;
    let (r1, s1) = (MailboxId([1; 32]), MailboxId([2; 32]));
    let (r2, s2) = (MailboxId([3; 32]), MailboxId([4; 32]));
    store.create_mailbox(r1, s1, [5; 32], SK).await.unwrap();
    store.create_mailbox(r2, s2, [5; 32], SK).await.unwrap();
    // More than one sweep operation deletes, in one mailbox; one in the other.
    for _ in 0..SWEEP_BATCH + 5 {
        store.send(s1, SK, t, body(b"a")).await.unwrap();
    }
    store.send(s2, SK, t, body(b"b")).await.unwrap();
    store.send(s2, SK, t + 7200, body(b"later")).await.unwrap();
    // A hundred mailboxes with nothing due are not looked into.
    for n in 0..100u8 {
        let (r, s) = (MailboxId([n; 32]), MailboxId([n.wrapping_add(128); 32]));
        if n < 10 {
            continue;
        }
        store.create_mailbox(r, s, [5; 32], SK).await.unwrap();
        store.send(s, SK, t + 86_400, body(b"far")).await.unwrap();
    }
    let none = store.sweep(t - 1).await.unwrap();
    assert_eq!((none.count, none.mailboxes_visited), (0, 0));
    let first = store.sweep(t).await.unwrap();
    assert_eq!(
        first.mailboxes_visited, 1,
        "stopped in the first, full mailbox"
    );
    let mut swept = first.count;
    loop {
        let d = store.sweep(t).await.unwrap();
        assert!(d.mailboxes_visited <= 2);
        if d.count == 0 {
            break;
        }
        swept += d.count;
    }
    assert_eq!(swept as usize, SWEEP_BATCH + 6);
    // The mailbox emptied by the sweep gets new mail: it is swept when that is due.
    store.send(s1, SK, t + 3600, body(b"c")).await.unwrap();
    assert_eq!(store.sweep(t + 3599).await.unwrap().count, 0);
    assert_eq!(store.sweep(t + 3600).await.unwrap().count, 1);
    assert_eq!(store.sweep(t + 7200).await.unwrap().count, 1);
    let far = store.sweep(t + 86_400).await.unwrap();
    assert_eq!((far.count, far.mailboxes_visited), (90, 90));
    assert_eq!(store.counts().unwrap().envelopes, 0);
}
