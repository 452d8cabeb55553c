//! Locking that survives a panic elsewhere.
//!
//! A panic while a lock is held poisons the `Mutex`. Everywhere in this crate the data behind a
//! lock stays consistent across such a panic (each critical section either completes its update
//! or leaves a state the next user resets), and the panic itself is reported where it is caught
//! (the C boundary, a worker's join). So a poisoned lock is simply taken over.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking it over if an earlier holder panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_over_with_its_data() {
        let mutex = Mutex::new(vec![1]);
        let result = std::panic::catch_unwind(|| {
            let mut guard = mutex.lock().unwrap();
            guard.push(2);
            panic!("while holding the lock");
        });
        assert!(result.is_err());
        assert!(mutex.is_poisoned());
        let mut guard = lock(&mutex);
        assert_eq!(*guard, [1, 2]);
        guard.push(3);
        drop(guard);
        assert_eq!(*lock(&mutex), [1, 2, 3]);
    }
}
