//! A tiny work pool over `std::thread::scope`: runs closures on up to N threads, biggest first.

use std::sync::Mutex;

/// A job: a closure run once on some worker thread.
pub type Job<'a, T> = Box<dyn FnOnce() -> T + Send + 'a>;

/// Number of worker threads to use (all cores, at least one).
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs every job (`weight`, closure) on `threads` threads, heaviest first; returns the results
/// in job order.
pub fn run<'a, T: Send>(threads: usize, mut jobs: Vec<(u64, Job<'a, T>)>) -> Vec<T> {
    let n = jobs.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].0));
    let mut slots: Vec<Option<Job<'a, T>>> = jobs.drain(..).map(|(_, f)| Some(f)).collect();
    let queue: Mutex<Vec<(usize, Job<'a, T>)>> = Mutex::new(
        order
            .into_iter()
            .rev()
            .map(|i| (i, slots[i].take().expect("job present")))
            .collect(),
    );
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(n.max(1)) {
            s.spawn(|| loop {
                let job = queue.lock().expect("queue").pop();
                let Some((i, f)) = job else { break };
                let r = f();
                results.lock().expect("results")[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .expect("results")
        .into_iter()
        .map(|r| r.expect("every job ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn runs_all_jobs_in_order() {
        let jobs: Vec<(u64, super::Job<'static, usize>)> = (0..10usize)
            .map(|i| {
                (
                    i as u64 % 3,
                    Box::new(move || i * 2) as Box<dyn FnOnce() -> usize + Send>,
                )
            })
            .collect();
        assert_eq!(
            super::run(2, jobs),
            (0..10).map(|i| i * 2).collect::<Vec<_>>()
        );
    }
}
