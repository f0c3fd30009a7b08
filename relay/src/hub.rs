//! Subscriptions: which connections get pushes for which mailbox, and the queues that
//! carry them. Memory is bounded whatever subscribers do:
//!
//! - a push is encoded once and its frame shared (reference-counted, never copied) by
//!   every queue it goes to;
//! - each queue holds at most `push_queue_bytes` of frames not yet handed to QUIC; a
//!   subscriber whose queue would pass that (it stopped reading, or reads far slower
//!   than its mail arrives) is dropped: its connection is closed and its envelopes stay
//!   stored for its next fetch;
//! - a mailbox has at most `max_subscribers_per_mailbox` subscribers; a new one replaces
//!   the oldest (most often a connection that died without closing).
//!
//! So one mailbox's pushes cost at most its subscribers' queues, and a connection can
//! subscribe only the one mailbox it opened.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use postern_protocol::frame;
use postern_protocol::ids::MailboxId;
use postern_protocol::message::Push;
use tokio::sync::{Notify, mpsc};

/// One encoded push frame, shared by every queue it is in.
pub(crate) type PushFrame = bytes::Bytes;

/// What a frame costs against a queue's budget: its bytes, and never less than the
/// queue's own bookkeeping for it (so a flood of tiny pushes is bounded too).
fn cost(frame: &PushFrame) -> usize {
    frame.len().max(64)
}

/// Why a subscriber was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// Its queue would have passed its byte budget.
    TooSlow,
    /// A newer subscription to the same mailbox replaced it.
    Replaced,
}

/// The hub's end of one subscriber's queue.
#[derive(Debug)]
struct Subscriber {
    /// The subscribed connection.
    conn: u64,
    /// Frames to write.
    tx: mpsc::UnboundedSender<PushFrame>,
    /// Shared with the receiver.
    shared: Arc<QueueState>,
}

/// What both ends of a queue see.
#[derive(Debug, Default)]
struct QueueState {
    /// Cost of the frames queued and not yet written.
    queued: AtomicUsize,
    /// Why the subscriber was dropped, once it was.
    dropped: Mutex<Option<Dropped>>,
    /// Wakes the writer when the subscriber is dropped.
    wake: Notify,
}

impl QueueState {
    /// Why the subscriber was dropped, if it was.
    fn why(&self) -> Option<Dropped> {
        *self.dropped.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when the subscriber is dropped.
    async fn wait_dropped(&self) -> Dropped {
        loop {
            if let Some(why) = self.why() {
                return why;
            }
            self.wake.notified().await;
        }
    }

    fn drop_subscriber(&self, why: Dropped) {
        let mut d = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_none() {
            *d = Some(why);
        }
        // Stores a permit if the writer is not waiting yet.
        self.wake.notify_one();
    }
}

/// The connection's end of its queue: frames to write, and word when it was dropped.
#[derive(Debug)]
pub(crate) struct PushReceiver {
    rx: mpsc::UnboundedReceiver<PushFrame>,
    shared: Arc<QueueState>,
}

impl PushReceiver {
    /// The next frame to write, or why the subscriber was dropped (`Err`), or `Ok(None)`
    /// once the hub forgot the queue (the connection ended).
    pub(crate) async fn next(&mut self) -> Result<Option<PushFrame>, Dropped> {
        tokio::select! {
            biased;
            why = self.shared.wait_dropped() => Err(why),
            frame = self.rx.recv() => Ok(frame),
        }
    }

    /// Gives back a frame's cost once it was handed to QUIC.
    pub(crate) fn written(&self, frame: &PushFrame) {
        self.shared.queued.fetch_sub(cost(frame), Ordering::Relaxed);
    }

    /// Resolves when the subscriber is dropped (for a writer blocked on QUIC).
    pub(crate) async fn dropped(&self) -> Dropped {
        self.shared.wait_dropped().await
    }
}

/// Subscribed connections, by mailbox recipient id.
#[derive(Debug)]
pub(crate) struct Hub {
    /// Queues, oldest subscription first.
    subscribers: Mutex<HashMap<MailboxId, Vec<Subscriber>>>,
    /// Most subscribers of one mailbox.
    max_per_mailbox: usize,
    /// Most bytes waiting in one queue.
    queue_bytes: usize,
}

impl Hub {
    /// A hub with these limits (each at least 1).
    pub(crate) fn new(max_per_mailbox: u32, queue_bytes: u64) -> Self {
        Self {
            subscribers: Mutex::default(),
            max_per_mailbox: (max_per_mailbox as usize).max(1),
            queue_bytes: usize::try_from(queue_bytes).unwrap_or(usize::MAX).max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<MailboxId, Vec<Subscriber>>> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers connection `conn` as a subscriber of `mailbox`; returns its queue and
    /// how many older subscribers it replaced (0 or 1).
    pub(crate) fn subscribe(&self, mailbox: MailboxId, conn: u64) -> (PushReceiver, usize) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(QueueState::default());
        let mut s = self.lock();
        let list = s.entry(mailbox).or_default();
        list.retain(|sub| sub.conn != conn && !sub.tx.is_closed());
        let mut replaced = 0;
        while list.len() >= self.max_per_mailbox {
            let oldest = list.remove(0);
            oldest.shared.drop_subscriber(Dropped::Replaced);
            replaced += 1;
        }
        list.push(Subscriber {
            conn,
            tx,
            shared: shared.clone(),
        });
        (PushReceiver { rx, shared }, replaced)
    }

    /// Removes a connection's subscription.
    pub(crate) fn unsubscribe(&self, mailbox: &MailboxId, conn: u64) {
        let mut s = self.lock();
        if let Some(list) = s.get_mut(mailbox) {
            list.retain(|sub| sub.conn != conn);
            if list.is_empty() {
                s.remove(mailbox);
            }
        }
    }

    /// Queues `frame` for one subscriber: `Some(true)` if it took it, `Some(false)` if its
    /// queue had no room (it is dropped), `None` if its connection is gone.
    fn offer(&self, sub: &Subscriber, frame: &PushFrame) -> Option<bool> {
        let c = cost(frame);
        let fits = sub
            .shared
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                (q + c <= self.queue_bytes).then_some(q + c)
            })
            .is_ok();
        if !fits {
            sub.shared.drop_subscriber(Dropped::TooSlow);
            return Some(false);
        }
        if sub.tx.send(frame.clone()).is_err() {
            sub.shared.queued.fetch_sub(c, Ordering::Relaxed);
            return None;
        }
        Some(true)
    }

    /// Offers `frame` to each of `list`, keeping those that took it; returns how many
    /// took it and how many were dropped for being too slow.
    fn offer_all(&self, list: &mut Vec<Subscriber>, frame: &PushFrame) -> (usize, usize) {
        let mut slow = 0;
        list.retain(|sub| match self.offer(sub, frame) {
            Some(took) => {
                slow += usize::from(!took);
                took
            }
            None => false,
        });
        (list.len(), slow)
    }

    /// Pushes to a mailbox's subscribers; returns how many took it and how many were
    /// dropped for being too slow.
    pub(crate) fn push(&self, mailbox: &MailboxId, frame: &PushFrame) -> (usize, usize) {
        let mut s = self.lock();
        let Some(list) = s.get_mut(mailbox) else {
            return (0, 0);
        };
        let counts = self.offer_all(list, frame);
        if list.is_empty() {
            s.remove(mailbox);
        }
        counts
    }

    /// Pushes to every subscriber; returns how many were dropped for being too slow.
    pub(crate) fn broadcast(&self, frame: &PushFrame) -> usize {
        let mut s = self.lock();
        let mut slow = 0;
        s.retain(|_, list| {
            slow += self.offer_all(list, frame).1;
            !list.is_empty()
        });
        slow
    }

    /// Subscribers of `mailbox` now.
    #[cfg(test)]
    pub(crate) fn subscribers(&self, mailbox: &MailboxId) -> usize {
        self.lock().get(mailbox).map_or(0, Vec::len)
    }
}

/// `push` encoded as a frame to share, or `None` if it cannot be (it never exceeds the
/// frame limit: an envelope body is at most 64 KiB).
pub(crate) fn encode(push: &Push) -> Option<PushFrame> {
    frame::encode_frame(push).ok().map(PushFrame::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frame(len: usize) -> PushFrame {
        PushFrame::from(vec![7u8; len])
    }

    #[tokio::test]
    async fn a_frame_is_shared_by_every_queue_not_copied() {
        let hub = Hub::new(4, 1 << 20);
        let mb = MailboxId([1; 32]);
        let (mut a, _) = hub.subscribe(mb, 1);
        let (mut b, _) = hub.subscribe(mb, 2);
        let f = frame(60_000);
        assert_eq!(hub.push(&mb, &f), (2, 0));
        let fa = a.next().await.unwrap().unwrap();
        let fb = b.next().await.unwrap().unwrap();
        assert_eq!(fa.as_ptr(), f.as_ptr());
        assert_eq!(fb.as_ptr(), f.as_ptr());
    }

    #[tokio::test]
    async fn a_subscriber_that_stops_reading_is_dropped_at_its_byte_budget() {
        let hub = Hub::new(4, 200_000);
        let mb = MailboxId([1; 32]);
        let (mut stalled, _) = hub.subscribe(mb, 1);
        let (mut reader, _) = hub.subscribe(mb, 2);
        let f = frame(60_000);
        for _ in 0..3 {
            assert_eq!(hub.push(&mb, &f), (2, 0));
            // The reader writes each frame out; the stalled one never does.
            let got = reader.next().await.unwrap().unwrap();
            reader.written(&got);
        }
        // The fourth would take the stalled queue past 200,000 bytes.
        assert_eq!(hub.push(&mb, &f), (1, 1));
        assert_eq!(stalled.next().await, Err(Dropped::TooSlow));
        assert_eq!(hub.subscribers(&mb), 1);
        // The reader is untouched.
        assert_eq!(hub.push(&mb, &f), (1, 0));
        assert!(reader.next().await.unwrap().is_some());
    }

    #[tokio::test]
    async fn tiny_pushes_are_bounded_too() {
        let hub = Hub::new(4, 64 * 100);
        let mb = MailboxId([1; 32]);
        let (mut q, _) = hub.subscribe(mb, 1);
        let f = frame(3);
        let took: usize = (0..1000).map(|_| hub.push(&mb, &f).0).sum();
        assert_eq!(took, 100);
        // The queued frames are still there, then the word that it was dropped.
        assert_eq!(q.next().await, Err(Dropped::TooSlow));
    }

    #[tokio::test]
    async fn a_mailbox_has_at_most_its_subscriber_limit_and_the_oldest_goes() {
        let hub = Hub::new(2, 1 << 20);
        let mb = MailboxId([1; 32]);
        let (mut first, r1) = hub.subscribe(mb, 1);
        let (_second, r2) = hub.subscribe(mb, 2);
        let (_third, r3) = hub.subscribe(mb, 3);
        assert_eq!((r1, r2, r3), (0, 0, 1));
        assert_eq!(first.next().await, Err(Dropped::Replaced));
        assert_eq!(hub.subscribers(&mb), 2);
        assert_eq!(hub.push(&mb, &frame(10)), (2, 0));
    }

    #[tokio::test]
    async fn a_dropped_writer_blocked_on_quic_is_woken() {
        let hub = Hub::new(1, 1 << 20);
        let mb = MailboxId([1; 32]);
        let (first, _) = hub.subscribe(mb, 1);
        let waiter = tokio::spawn(async move { first.dropped().await });
        tokio::task::yield_now().await;
        let _second = hub.subscribe(mb, 2);
        assert_eq!(waiter.await.unwrap(), Dropped::Replaced);
    }

    #[test]
    fn broadcast_reaches_every_mailbox() {
        let hub = Hub::new(4, 1 << 20);
        let (_a, _) = hub.subscribe(MailboxId([1; 32]), 1);
        let (_b, _) = hub.subscribe(MailboxId([2; 32]), 2);
        assert_eq!(hub.broadcast(&frame(10)), 0);
        assert_eq!(hub.push(&MailboxId([1; 32]), &frame(10)), (1, 0));
    }
}
