//! The process's allocator: mimalloc for the many small, short-lived allocations of a
//! request, the system allocator for large blocks.
//!
//! Under glibc's allocator alone, a token request's few dozen small allocations cost an
//! eighth of the request threads' time (`malloc_consolidate`, `unlink_chunk` in the
//! profile). mimalloc keeps freed memory for reuse, though, and an idle server would go
//! on holding the 19 MiB that each Argon2id password check works in. Blocks from
//! `LARGE` up go to the system allocator, told by `init` to map them and unmap them on
//! free (normally: glibc may still cut one from free space in its heap, and then keeps
//! that space), so idle memory stays where it was.
//!
//! Built on Linux with glibc only (`mallopt` is glibc's); main.rs leaves every other
//! target on Rust's default allocator.

use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks from this size up go to the system allocator, which maps and unmaps them.
const LARGE: usize = 1 << 20;

/// Fixes glibc's mmap threshold at `LARGE`. Left alone, glibc raises it after freeing a
/// mapped block of that size, and keeps the next such block in its heap.
pub fn init() {
    // SAFETY: mallopt only sets a tunable; called first thing in main, before any
    // other thread exists.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE as libc::c_int) };
    debug_assert_eq!(set, 1, "glibc refused the mmap threshold");
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

    fn fill(p: *mut u8, n: usize) {
        for i in 0..n {
            unsafe { *p.add(i) = (i % 251) as u8 };
        }
    }

    fn holds(p: *const u8, n: usize) -> bool {
        (0..n).all(|i| unsafe { *p.add(i) } == (i % 251) as u8)
    }

    #[test]
    fn blocks_keep_their_contents_on_both_sides_of_the_line_and_across_it() {
        init();
        let a = Allocator;
        for align in [8, 64, 4096] {
            let at = |size| Layout::from_size_align(size, align).unwrap();
            unsafe {
                let p = a.alloc(at(1000));
                assert!(!p.is_null());
                fill(p, 1000);
                let p = a.realloc(p, at(1000), 2000); // small to small
                assert!(!p.is_null() && holds(p, 1000) && p as usize % align == 0);
                let p = a.realloc(p, at(2000), 3 * LARGE); // small to large
                assert!(!p.is_null() && holds(p, 1000) && p as usize % align == 0);
                fill(p, 3 * LARGE);
                let p = a.realloc(p, at(3 * LARGE), 4 * LARGE); // large to large
                assert!(!p.is_null() && holds(p, 3 * LARGE) && p as usize % align == 0);
                let p = a.realloc(p, at(4 * LARGE), 500); // large to small
                assert!(!p.is_null() && holds(p, 500) && p as usize % align == 0);
                a.dealloc(p, at(500));
                let z = a.alloc_zeroed(at(2 * LARGE));
                assert!(!z.is_null() && z as usize % align == 0);
                assert!(std::slice::from_raw_parts(z, 2 * LARGE).iter().all(|&b| b == 0));
                a.dealloc(z, at(2 * LARGE));
            }
        }
    }
}
