//! The provided buffers of a ring (a "buffer ring", kernel 5.19+): the
//! kernel picks one for each receive, the reactor feeds its bytes to the
//! connection and gives it back at once. One group for every connection of
//! the reactor; its memory is mapped untouched and only pages the kernel
//! wrote count in the process's RSS.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group of the receives.
pub(super) const GROUP: u16 = 0;
/// Buffers in the ring (a power of two).
const COUNT: u16 = 256;
/// Bytes of each buffer: a receive takes at most this much.
pub(super) const SIZE: usize = 16 << 10;

/// An anonymous private mapping, unmapped when dropped.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh anonymous mapping; the kernel chooses the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr: ptr.cast(), len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

pub(super) struct Buffers {
    /// The ring of entries the kernel takes buffers from (page-aligned).
    entries: Mapping,
    /// The buffers themselves, `SIZE` bytes each, by buffer id.
    memory: Mapping,
    /// The ring's tail as this side last published it.
    tail: std::cell::Cell<u16>,
}

impl Buffers {
    /// Maps the buffers and registers them with `ring` as group `GROUP`, all
    /// of them available.
    pub(super) fn register(ring: &IoUring) -> io::Result<Buffers> {
        let entries = Mapping::new(COUNT as usize * std::mem::size_of::<BufRingEntry>())?;
        let memory = Mapping::new(COUNT as usize * SIZE)?;
        let buffers = Buffers {
            entries,
            memory,
            tail: std::cell::Cell::new(0),
        };
        // SAFETY: the entries' mapping is page-aligned, COUNT entries long, and
        // lives as long as the registration (the ring is dropped first: see
        // `Driver`'s field order, and `unregister`).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(buffers.entries.ptr as u64, COUNT, GROUP, 0)?;
        }
        for id in 0..COUNT {
            buffers.push(id);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// The `len` bytes the kernel received into buffer `id`.
    ///
    /// # Safety
    /// `id` came from a completion not yet given back, so the kernel does not
    /// write it meanwhile, and no other slice of it is alive.
    #[allow(clippy::mut_from_ref)] // the kernel's memory, lent by the completion
    pub(super) unsafe fn received(&self, id: u16, len: usize) -> &mut [u8] {
        let len = len.min(SIZE);
        // SAFETY: buffer `id` lies within the mapping (id < COUNT) and is
        // ours until given back (the caller's guarantee).
        unsafe { std::slice::from_raw_parts_mut(self.memory.ptr.add(id as usize % COUNT as usize * SIZE), len) }
    }

    /// Gives buffer `id` back to the kernel.
    pub(super) fn give_back(&self, id: u16) {
        self.push(id % COUNT);
        self.publish();
    }

    fn push(&self, id: u16) {
        let tail = self.tail.get();
        let index = (tail & (COUNT - 1)) as usize;
        // SAFETY: `index` < COUNT entries of the mapping; the kernel reads
        // entries only up to the published tail, and this one is past it.
        let entry = unsafe { &mut *self.entries.ptr.cast::<BufRingEntry>().add(index) };
        // SAFETY: within the buffers' mapping.
        entry.set_addr(unsafe { self.memory.ptr.add(id as usize * SIZE) } as u64);
        entry.set_len(SIZE as u32);
        entry.set_bid(id);
        self.tail.set(tail.wrapping_add(1));
    }

    /// Makes the entries pushed so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail field overlays the first entry's reserved field
        // (the kernel's layout); it is only written here, atomically.
        let tail = unsafe { &*BufRingEntry::tail(self.entries.ptr.cast::<BufRingEntry>()).cast::<AtomicU16>() };
        tail.store(self.tail.get(), Ordering::Release);
    }
}
