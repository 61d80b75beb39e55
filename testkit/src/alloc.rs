//! An allocator that keeps, per thread, the bytes allocated and not yet
//! freed: a test whose server runs on a thread of its own measures what the
//! server holds, without the clients' memory. A test crate installs it with
//! `#[global_allocator] static A: PerThreadAllocator = PerThreadAllocator;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's live bytes.
pub struct PerThreadAllocator;

fn count(delta: isize) {
    let _ = LIVE.try_with(|live| live.set(live.get() + delta));
}

/// Bytes this thread allocated and has not freed (memory freed by another
/// thread counts there), while [`PerThreadAllocator`] is the global allocator.
pub fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counting touches only a const thread-local (no allocation).
unsafe impl GlobalAlloc for PerThreadAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}
