//! The concurrency layer shared by the parallel driver and the streaming reader: how much of
//! the input is final ([`Feed`]), back-pressure for the thread that fills it, and abandoning a
//! run ([`Abort`]) so that every waiter returns. It knows nothing of deflate; the exactness
//! argument of the algorithm is in `parallel.rs` and docs/PARDEFLATE.md.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::sync::lock;

/// The run was abandoned (input error, consumer gone, or a worker panicked).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Abort;

/// How much of the input can be read: bytes `..avail` are final. Shared with the thread that
/// fills the input (streaming mode); complete from the start in batch mode.
pub(crate) struct Feed {
    len: usize,
    state: Mutex<FeedState>,
    cv: Condvar,
}

struct FeedState {
    avail: usize,
    failed: bool,
    /// Input before this position will not be read again.
    low: usize,
    /// Threads waiting for more input.
    waiters: usize,
}

/// How long a waiter sleeps before it checks for an abandoned run again.
pub(crate) const POLL: Duration = Duration::from_millis(50);

impl Feed {
    /// Nothing available yet; total length `len`.
    pub(crate) fn new(len: usize) -> Self {
        Feed {
            len,
            state: Mutex::new(FeedState {
                avail: 0,
                failed: false,
                low: 0,
                waiters: 0,
            }),
            cv: Condvar::new(),
        }
    }

    /// All `len` bytes available.
    pub(crate) fn complete(len: usize) -> Self {
        let f = Feed::new(len);
        f.publish(len);
        f
    }

    /// Bytes `..avail` are written and final.
    pub(crate) fn publish(&self, avail: usize) {
        lock(&self.state).avail = avail.min(self.len);
        self.cv.notify_all();
    }

    /// Input before `low` will not be read again.
    pub(crate) fn set_low(&self, low: usize) {
        let mut g = lock(&self.state);
        g.low = g.low.max(low);
        drop(g);
        self.cv.notify_all();
    }

    /// For the filling thread: wait until writing at `off` keeps the input at most `window`
    /// bytes ahead of the consumers' low mark, or someone waits for input (so that a chunk
    /// longer than the window cannot deadlock).
    pub(crate) fn wait_room(&self, off: usize, window: usize) -> Result<(), Abort> {
        let mut g = lock(&self.state);
        loop {
            if g.failed {
                return Err(Abort);
            }
            if off < g.low.saturating_add(window) || g.waiters > 0 {
                return Ok(());
            }
            g = self
                .cv
                .wait_timeout(g, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Abandon the run: every waiter returns [`Abort`].
    pub(crate) fn fail(&self) {
        lock(&self.state).failed = true;
        self.cv.notify_all();
    }

    /// Whether the run was abandoned.
    pub(crate) fn failed(&self) -> bool {
        lock(&self.state).failed
    }

    /// Bytes available now.
    pub(crate) fn avail(&self) -> usize {
        lock(&self.state).avail
    }

    /// Wait until more than `seen` bytes are available (or all are).
    pub(crate) fn wait_beyond(&self, seen: usize) -> Result<usize, Abort> {
        let mut g = lock(&self.state);
        g.waiters += 1;
        self.cv.notify_all();
        let r = loop {
            if g.failed {
                break Err(Abort);
            }
            if g.avail > seen || g.avail == self.len {
                break Ok(g.avail);
            }
            g = self
                .cv
                .wait_timeout(g, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        g.waiters -= 1;
        r
    }

    /// Wait until `..pos` (capped at the length) is available.
    pub(crate) fn wait_for(&self, pos: usize) -> Result<(), Abort> {
        let pos = pos.min(self.len);
        let mut seen = self.avail();
        while seen < pos {
            seen = self.wait_beyond(seen)?;
        }
        if self.failed() {
            return Err(Abort);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn waiters_see_published_input_and_aborts() {
        let feed = Arc::new(Feed::new(100));
        assert_eq!(feed.avail(), 0);
        let f = Arc::clone(&feed);
        let reader = std::thread::spawn(move || f.wait_for(60).map(|()| f.avail()));
        for n in [10, 30, 70] {
            std::thread::sleep(Duration::from_millis(5));
            feed.publish(n);
        }
        assert!(reader.join().unwrap().unwrap() >= 60);
        // More than the length is capped; waiting past the end returns at the end.
        feed.publish(1000);
        assert_eq!(feed.avail(), 100);
        assert!(feed.wait_for(500).is_ok());
        let f = Arc::clone(&feed);
        let stuck = Arc::new(Feed::new(10));
        let s = Arc::clone(&stuck);
        let waiter = std::thread::spawn(move || s.wait_for(5));
        std::thread::sleep(Duration::from_millis(20));
        stuck.fail();
        assert!(waiter.join().unwrap().is_err());
        assert!(stuck.failed() && !f.failed());
    }

    #[test]
    fn the_filler_waits_for_room_unless_someone_waits_for_input() {
        let feed = Arc::new(Feed::new(1 << 20));
        // Within the window of the low mark: room.
        assert!(feed.wait_room(1000, 4096).is_ok());
        // Past it: the filler waits until the consumers move the low mark.
        let f = Arc::clone(&feed);
        let filler = std::thread::spawn(move || f.wait_room(10_000, 4096));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!filler.is_finished());
        feed.set_low(8_000);
        assert!(filler.join().unwrap().is_ok());
        // A consumer waiting for input lets the filler go whatever the low mark.
        let f = Arc::clone(&feed);
        let consumer = std::thread::spawn(move || f.wait_for(1 << 19));
        std::thread::sleep(Duration::from_millis(20));
        assert!(feed.wait_room(1 << 19, 16).is_ok());
        feed.publish(1 << 20);
        assert!(consumer.join().unwrap().is_ok());
        // An abandoned run releases the filler with Abort.
        feed.fail();
        assert!(feed.wait_room(usize::MAX / 2, 1).is_err());
    }
}
