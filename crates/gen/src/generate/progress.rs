//! Progress of the generator's stages (parse, analyse, diff, verify), reported to a [`Display`].
//!
//! The library draws nothing itself and depends on no terminal crate: whoever runs the generator
//! installs a display with [`set_display`] — the `adudiff` binary installs indicatif bars when
//! stderr is a terminal and nothing otherwise, so logs stay free of bar redraws. Without an
//! installed display, and whenever a run is `quiet`, every stage is silent; the counters still
//! count, so the code that reports progress does not depend on who (if anyone) watches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Draws the stages of a run (implemented by the front end, e.g. with progress bars).
pub trait Display: Send + Sync {
    /// A stage named `name` of `total` units starts (0 = size unknown); the returned view
    /// receives its progress until it ends.
    fn stage(&self, name: &str, total: u64) -> Arc<dyn StageView>;
}

/// One running stage as a [`Display`] shows it. Called from any worker thread.
pub trait StageView: Send + Sync {
    /// `n` more units of the stage are done.
    fn advance(&self, n: u64);

    /// The stage is over after `elapsed`: `finished` when it completed ([`Stage::finish`]),
    /// false when it was dropped unfinished (the run failed part-way).
    fn end(&self, elapsed: Duration, finished: bool);
}

/// The process-wide display that [`Progress::new`] reports to.
static DISPLAY: RwLock<Option<Arc<dyn Display>>> = RwLock::new(None);

/// Installs (or, with `None`, removes) the display that every later [`Progress::new`] that is not
/// quiet reports to. Runs already started keep the display they began with.
pub fn set_display(display: Option<Arc<dyn Display>>) {
    *DISPLAY.write().unwrap_or_else(PoisonError::into_inner) = display;
}

/// Shared counter of work done in the current stage; clones count into the same total.
#[derive(Clone, Default)]
pub struct Counter {
    done: Arc<AtomicU64>,
    view: Option<Arc<dyn StageView>>,
}

impl Counter {
    /// Adds `n` units of work done.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        if let Some(v) = &self.view {
            v.advance(n);
        }
    }

    /// Units done so far.
    pub fn get(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

/// A running stage: advance its [`counter`](Stage::counter), then [`finish`](Stage::finish) it.
pub struct Stage {
    /// Work counter to advance.
    pub counter: Counter,
    start: Instant,
    ended: bool,
}

/// Progress reporting for one tool run.
#[derive(Clone)]
pub struct Progress {
    display: Option<Arc<dyn Display>>,
}

impl Progress {
    /// Reports to the display installed with [`set_display`], or to none when `quiet` is true
    /// or nothing is installed.
    pub fn new(quiet: bool) -> Self {
        if quiet {
            return Progress::silent();
        }
        let installed = DISPLAY.read().unwrap_or_else(PoisonError::into_inner);
        Progress {
            display: installed.clone(),
        }
    }

    /// A progress reporter that never shows anything.
    pub fn silent() -> Self {
        Progress { display: None }
    }

    /// Reports to `display`, whatever is installed process-wide.
    pub fn with_display(display: Arc<dyn Display>) -> Self {
        Progress {
            display: Some(display),
        }
    }

    /// Starts a stage of `total` units (0 = unknown).
    pub fn stage(&self, name: &str, total: u64) -> Stage {
        Stage {
            counter: Counter {
                done: Arc::default(),
                view: self.display.as_ref().map(|d| d.stage(name, total)),
            },
            start: Instant::now(),
            ended: false,
        }
    }
}

impl Stage {
    /// Ends the stage (its view shows it as done) and returns how long it took.
    pub fn finish(mut self) -> Duration {
        self.end(true)
    }

    fn end(&mut self, finished: bool) -> Duration {
        let elapsed = self.start.elapsed();
        self.ended = true;
        if let Some(v) = &self.counter.view {
            v.end(elapsed, finished);
        }
        elapsed
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if !self.ended {
            self.end(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records every call, one line each.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    struct View(Arc<Recorder>, String);

    impl Display for Arc<Recorder> {
        fn stage(&self, name: &str, total: u64) -> Arc<dyn StageView> {
            self.0.lock().unwrap().push(format!("start {name} {total}"));
            Arc::new(View(Arc::clone(self), name.to_string()))
        }
    }

    impl StageView for View {
        fn advance(&self, n: u64) {
            self.0 .0.lock().unwrap().push(format!("{} +{n}", self.1));
        }
        fn end(&self, _: Duration, finished: bool) {
            self.0
                 .0
                .lock()
                .unwrap()
                .push(format!("{} end {finished}", self.1));
        }
    }

    fn events(r: &Recorder) -> Vec<String> {
        r.0.lock().unwrap().clone()
    }

    #[test]
    fn stages_report_start_progress_and_end_to_the_display() {
        let rec = Arc::new(Recorder::default());
        let p = Progress::with_display(Arc::new(Arc::clone(&rec)));
        let s = p.stage("diff", 100);
        let c = s.counter.clone();
        std::thread::scope(|t| {
            t.spawn(|| c.add(30));
        });
        s.counter.add(12);
        assert_eq!(s.counter.get(), 42);
        s.finish();
        assert_eq!(
            events(&rec),
            ["start diff 100", "diff +30", "diff +12", "diff end true"]
        );
    }

    #[test]
    fn a_dropped_stage_ends_unfinished_exactly_once() {
        let rec = Arc::new(Recorder::default());
        let p = Progress::with_display(Arc::new(Arc::clone(&rec)));
        drop(p.stage("parse", 0));
        p.stage("verify", 0).finish();
        assert_eq!(
            events(&rec),
            [
                "start parse 0",
                "parse end false",
                "start verify 0",
                "verify end true"
            ]
        );
    }

    #[test]
    fn silent_and_quiet_runs_still_count() {
        let rec = Arc::new(Recorder::default());
        set_display(Some(Arc::new(Arc::clone(&rec))));
        for p in [Progress::silent(), Progress::new(true)] {
            let s = p.stage("quiet-stage", 10);
            s.counter.add(7);
            assert_eq!(s.counter.get(), 7);
            s.finish();
        }
        // Not quiet: the installed display sees the stage (other tests may add their own).
        Progress::new(false).stage("loud-stage", 5).finish();
        set_display(None);
        Progress::new(false).stage("after-removal", 1).finish();
        let seen = events(&rec);
        assert!(seen.iter().all(|e| !e.contains("quiet-stage")), "{seen:?}");
        assert!(seen.contains(&"start loud-stage 5".to_string()), "{seen:?}");
        assert!(
            seen.contains(&"loud-stage end true".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.iter().all(|e| !e.contains("after-removal")),
            "{seen:?}"
        );
    }
}
