//! How much stack the current thread has left, so recursion over a delta's recipe tree can stop
//! with an error instead of overflowing (a stack overflow is `SIGSEGV`: it would kill the host).
//!
//! Every recursive step of the parser, the resolver and the executor calls [`check`] first. The
//! depth bounds (`MAX_RESOLUTION_DEPTH` and friends) keep the recursion finite; this guard keeps
//! it within whatever stack the thread actually has, which matters when the apply runs on the
//! caller's thread (see [`crate::apply`]) whose stack size we do not choose.

use std::cell::Cell;

use crate::error::{Error, Result};

/// Stack kept free below the deepest check: the work a recursion step does before its next
/// check (codec set-up, hashing, formatting an error) must fit in it.
pub const RED_ZONE: usize = 512 << 10;

thread_local! {
    /// Lowest usable address of this thread's stack (0: not known yet, `usize::MAX`: unknown).
    static STACK_LOW: Cell<usize> = const { Cell::new(0) };
}

/// The lowest address of the current thread's stack, from `pthread_getattr_np`.
fn stack_low() -> Option<usize> {
    let known = STACK_LOW.with(Cell::get);
    if known != 0 {
        return (known != usize::MAX).then_some(known);
    }
    let low = query_stack_low().unwrap_or(usize::MAX);
    STACK_LOW.with(|c| c.set(low));
    (low != usize::MAX).then_some(low)
}

#[cfg(target_os = "linux")]
fn query_stack_low() -> Option<usize> {
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: pthread_getattr_np initializes `attr` on success; it is destroyed once read.
    // pthread_attr_getstack only writes the two out-pointers.
    unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let ok = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        (ok && !addr.is_null()).then_some(addr as usize)
    }
}

#[cfg(not(target_os = "linux"))]
fn query_stack_low() -> Option<usize> {
    None
}

/// Bytes of stack left below the caller's frame, if known.
#[inline(never)]
pub fn remaining() -> Option<usize> {
    let marker = 0u8;
    let here = std::hint::black_box(&marker) as *const u8 as usize;
    stack_low().map(|low| here.saturating_sub(low))
}

/// `Ok` while more than [`RED_ZONE`] bytes of stack are left (or the stack is unknown); else
/// the resolver's "cannot resolve" error naming `what` recursed too deeply.
pub fn check(what: &str) -> Result<()> {
    match remaining() {
        Some(left) if left < RED_ZONE => Err(Error::unresolvable(format!(
            "{what} nests too deeply for the stack left on this thread ({left} bytes)"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recurse(depth: usize) -> Result<usize> {
        check("the test recursion")?;
        let pad = std::hint::black_box([0u8; 4096]);
        Ok(recurse(depth + 1)? + pad[depth % 4096] as usize)
    }

    #[test]
    fn deep_recursion_is_an_error_not_an_overflow() {
        let worker = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let left = remaining().expect("known on Linux");
                assert!(left > RED_ZONE && left <= 2 << 20, "{left}");
                recurse(0).unwrap_err()
            })
            .unwrap();
        let err = worker.join().expect("no stack overflow");
        assert!(err.text().contains("nests too deeply"), "{}", err.text());
    }
}
