//! The provided buffers of a ring (a "buffer ring", kernel 5.19+): the
//! kernel picks one for each receive, the reactor feeds its bytes to the
//! connection and gives it back at once. One group for every connection of
//! the reactor; its memory is mapped untouched and only pages the kernel
//! wrote count in the process's RSS.
//!
//! Where the kernel can (6.12+, IOU_PBUF_RING_INC), buffers are consumed
//! incrementally: receives fill a buffer one after another, each from where
//! the last one ended, and it comes back once full. Small receives then
//! cost their bytes, not a buffer each, so buffers can be large (a 1 MiB
//! message arrives in 64 KiB pieces) and the memory touched stays what was
//! received.

use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

/// The buffer group of the receives.
pub(super) const GROUP: u16 = 0;
/// Buffers in the ring (a power of two), and their size (a receive takes at
/// most this much): consumed incrementally, and one a receive each where
/// the kernel cannot (as many, smaller: the same memory).
const COUNT: u16 = 16;
const SIZE_INCREMENTAL: usize = 64 << 10;
const COUNT_WHOLE: u16 = 64;
const SIZE_WHOLE: usize = 16 << 10;
/// The most a receive may take (the larger of the two sizes).
pub(super) const SIZE: usize = SIZE_INCREMENTAL;
/// IOU_PBUF_RING_INC: buffers consumed incrementally (kernel 6.12).
const RING_INCREMENTAL: u16 = 2;
/// IORING_CQE_F_BUF_MORE: the kernel goes on filling this buffer.
const CQE_BUF_MORE: u32 = 1 << 4;

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
    /// The buffers themselves, `size` bytes each, by buffer id.
    memory: Mapping,
    count: u16,
    size: usize,
    /// Consumed incrementally: where the next receive into each buffer
    /// starts (else unused).
    incremental: Option<Vec<std::cell::Cell<u32>>>,
    /// The ring's tail as this side last published it.
    tail: std::cell::Cell<u16>,
}

impl Buffers {
    /// Maps the buffers and registers them with `ring` as group `GROUP`, all
    /// of them available.
    pub(super) fn register(ring: &IoUring) -> io::Result<Buffers> {
        Self::register_as(ring, true).or_else(|_| Self::register_as(ring, false))
    }

    fn register_as(ring: &IoUring, incremental: bool) -> io::Result<Buffers> {
        let (count, size) = match incremental {
            true => (COUNT, SIZE_INCREMENTAL),
            false => (COUNT_WHOLE, SIZE_WHOLE),
        };
        let entries = Mapping::new(count as usize * std::mem::size_of::<BufRingEntry>())?;
        let memory = Mapping::new(count as usize * size)?;
        let buffers = Buffers {
            entries,
            memory,
            count,
            size,
            incremental: incremental.then(|| (0..count).map(|_| std::cell::Cell::new(0)).collect()),
            tail: std::cell::Cell::new(0),
        };
        let flags = if incremental { RING_INCREMENTAL } else { 0 };
        // SAFETY: the entries' mapping is page-aligned, `count` entries long,
        // and lives as long as the registration (unregistered before it is
        // unmapped: see `Driver::drop`).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(buffers.entries.ptr as u64, count, GROUP, flags)?;
        }
        for id in 0..count {
            buffers.push(id);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// The `len` bytes a completion received into buffer `id` (consumed
    /// incrementally: from where the last receive into it ended).
    ///
    /// # Safety
    /// `id` came from that completion, whose bytes are not handed back
    /// (`done`) while the slice lives; no other slice of them is alive.
    #[allow(clippy::mut_from_ref)] // the kernel's memory, lent by the completion
    pub(super) unsafe fn received(&self, id: u16, len: usize) -> &mut [u8] {
        let id = id % self.count;
        let start = self.incremental.as_ref().map_or(0, |o| o[id as usize].get() as usize);
        let len = len.min(self.size - start.min(self.size));
        // SAFETY: these bytes lie within buffer `id` of the mapping, which the
        // kernel wrote and does not write again until given back (the
        // caller's guarantee).
        unsafe { std::slice::from_raw_parts_mut(self.memory.ptr.add(id as usize * self.size + start), len) }
    }

    /// The `len` bytes of a completion (flags `flags`) into buffer `id` were
    /// handled: the buffer goes back to the kernel, unless it goes on
    /// filling it (incremental consumption).
    pub(super) fn done(&self, id: u16, len: usize, flags: u32) {
        let id = id % self.count;
        if let Some(offsets) = &self.incremental {
            if flags & CQE_BUF_MORE != 0 {
                let offset = &offsets[id as usize];
                offset.set(offset.get() + len as u32);
                return;
            }
            offsets[id as usize].set(0);
        }
        self.push(id);
        self.publish();
    }

    fn push(&self, id: u16) {
        let tail = self.tail.get();
        let index = (tail & (self.count - 1)) as usize;
        // SAFETY: `index` < count entries of the mapping; the kernel reads
        // entries only up to the published tail, and this one is past it.
        let entry = unsafe { &mut *self.entries.ptr.cast::<BufRingEntry>().add(index) };
        // SAFETY: within the buffers' mapping.
        entry.set_addr(unsafe { self.memory.ptr.add(id as usize * self.size) } as u64);
        entry.set_len(self.size as u32);
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
