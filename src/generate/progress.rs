//! Per-stage progress bars on a terminal (stderr); silent when stderr is not a TTY.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared counter of work done in the current stage.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n` units of work done.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Units done so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A running stage: renders `[stage] label ▕███  ▏ 42%` until finished.
pub struct Stage {
    done: Arc<AtomicBool>,
    ticker: Option<std::thread::JoinHandle<()>>,
    /// Work counter to advance.
    pub counter: Counter,
    name: String,
    start: Instant,
    enabled: bool,
    lines: Arc<Mutex<()>>,
}

/// Progress reporting for a tool run.
#[derive(Clone)]
pub struct Progress {
    enabled: bool,
    lines: Arc<Mutex<()>>,
}

impl Progress {
    /// Bars when stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool) -> Self {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
            lines: Arc::new(Mutex::new(())),
        }
    }

    /// A progress reporter that never prints.
    pub fn silent() -> Self {
        Progress {
            enabled: false,
            lines: Arc::new(Mutex::new(())),
        }
    }

    /// Starts a stage of `total` units (0 = unknown: a spinner with elapsed time).
    pub fn stage(&self, name: &str, total: u64) -> Stage {
        let done = Arc::new(AtomicBool::new(false));
        let counter = Counter::default();
        let start = Instant::now();
        let ticker = self.enabled.then(|| {
            let (done, counter, name, lines) = (
                Arc::clone(&done),
                counter.clone(),
                name.to_string(),
                Arc::clone(&self.lines),
            );
            std::thread::spawn(move || {
                let spin = ['|', '/', '-', '\\'];
                let mut i = 0;
                while !done.load(Ordering::Relaxed) {
                    let secs = start.elapsed().as_secs_f64();
                    let line = if total > 0 {
                        let frac = (counter.get() as f64 / total as f64).min(1.0);
                        let filled = (frac * 30.0) as usize;
                        format!(
                            "\r{name:<10} ▕{}{}▏ {:>3.0}% {secs:>6.1}s",
                            "█".repeat(filled),
                            " ".repeat(30 - filled),
                            frac * 100.0
                        )
                    } else {
                        format!("\r{name:<10} {} {secs:>6.1}s", spin[i % 4])
                    };
                    if let Ok(_g) = lines.lock() {
                        let mut e = std::io::stderr();
                        let _ = e.write_all(line.as_bytes());
                        let _ = e.flush();
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(150));
                }
            })
        });
        Stage {
            done,
            ticker,
            counter,
            name: name.to_string(),
            start,
            enabled: self.enabled,
            lines: Arc::clone(&self.lines),
        }
    }
}

impl Stage {
    /// Ends the stage, leaving a `name  done in N s` line on a terminal; returns the duration.
    pub fn finish(mut self) -> Duration {
        self.stop()
    }

    fn stop(&mut self) -> Duration {
        let elapsed = self.start.elapsed();
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
            if let Ok(_g) = self.lines.lock() {
                eprintln!(
                    "\r{:<10} done in {:.1}s{}",
                    self.name,
                    elapsed.as_secs_f64(),
                    " ".repeat(40)
                );
            }
        }
        let _ = self.enabled;
        elapsed
    }
}

impl Drop for Stage {
    fn drop(&mut self) {
        if self.ticker.is_some() {
            self.stop();
        }
    }
}
