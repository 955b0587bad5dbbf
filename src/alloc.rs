//! The process's allocator: mimalloc for the many small, short-lived allocations of a
//! request, the system allocator for large blocks.
//!
//! Under glibc's allocator alone, a token request's few dozen small allocations cost an
//! eighth of the request threads' time (`malloc_consolidate`, `unlink_chunk` in the
//! profile). mimalloc keeps freed memory for reuse, though, and an idle server would go
//! on holding the 19 MiB that each Argon2id password check works in. Blocks from
//! `LARGE` up go to the system allocator, which maps them for the call and unmaps them
//! on free, so idle memory stays where it was.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks this big are mapped and unmapped by the system allocator, never kept.
const LARGE: usize = 1 << 20;

/// Fixes glibc's mmap threshold at `LARGE`. Left alone, glibc raises it after freeing a
/// mapped block of that size, and keeps the next such block in its heap.
pub fn init() {
    // SAFETY: mallopt only sets a tunable; called first thing in main, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int);
    }
}

pub struct Allocator;

fn large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every block is freed by the allocator that made it: the choice depends only on
// the block's size, which `dealloc` and `realloc` are given as the caller allocated it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if large(layout.size()) { System.alloc(layout) } else { MiMalloc.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if large(layout.size()) { System.alloc_zeroed(layout) } else { MiMalloc.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if large(layout.size()) { System.dealloc(ptr, layout) } else { MiMalloc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        match (large(layout.size()), large(new_size)) {
            (true, true) => System.realloc(ptr, layout, new_size),
            (false, false) => MiMalloc.realloc(ptr, layout, new_size),
            // Crossing the line: a new block from the other allocator, then the old freed.
            _ => {
                let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                let new = self.alloc(new_layout);
                if !new.is_null() {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.dealloc(ptr, layout);
                }
                new
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_move_across_the_line_intact() {
        let a = Allocator;
        unsafe {
            let small = Layout::from_size_align(1000, 8).unwrap();
            let p = a.alloc(small);
            for i in 0..1000 {
                *p.add(i) = (i % 251) as u8;
            }
            // Small to large, then back: the contents survive both moves.
            let big = a.realloc(p, small, 3 * LARGE);
            assert!(!big.is_null());
            assert!((0..1000).all(|i| *big.add(i) == (i % 251) as u8));
            let back = a.realloc(big, Layout::from_size_align(3 * LARGE, 8).unwrap(), 500);
            assert!((0..500).all(|i| *back.add(i) == (i % 251) as u8));
            a.dealloc(back, Layout::from_size_align(500, 8).unwrap());
            let z = a.alloc_zeroed(Layout::from_size_align(2 * LARGE, 64).unwrap());
            assert!((0..2 * LARGE).step_by(4096).all(|i| *z.add(i) == 0));
            assert_eq!(z as usize % 64, 0);
            a.dealloc(z, Layout::from_size_align(2 * LARGE, 64).unwrap());
        }
    }
}
