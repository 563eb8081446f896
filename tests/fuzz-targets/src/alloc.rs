//! A counting allocator, so a target can assert that a decoder's memory is
//! bounded by its input and its documented caps, not only that it returned.
//!
//! Counts are per thread (a `cargo test` binary runs tests side by side);
//! the binary that runs the targets declares [`CountingAlloc`] as its
//! global allocator, and [`check_active`] fails loudly if it did not.

// A global allocator is unsafe by its trait's contract; this is the one
// place in the workspace that needs it, and it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static NOW: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let _ = NOW.try_with(|now| {
        let v = now.get().saturating_add(n);
        now.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn shrank(n: usize) {
    let _ = NOW.try_with(|now| now.set(now.get().saturating_sub(n)));
}

/// The system allocator, counting the bytes each thread holds and its peak.
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// const-initialised thread locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as a copy: the new block before the old is freed.
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}

/// Run `f` and return its result with the most bytes this thread held at
/// once while it ran, above what it held before.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = NOW.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, peak.saturating_sub(base))
}

/// Panic unless the running binary counts allocations: a target's memory
/// bounds would otherwise hold trivially.
pub fn check_active() {
    let (v, peak) = peak_during(|| std::hint::black_box(Vec::<u8>::with_capacity(4096)));
    drop(v);
    assert!(peak >= 4096, "declare `#[global_allocator] static A: CountingAlloc` in this binary");
}
