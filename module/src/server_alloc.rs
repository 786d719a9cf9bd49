//! The module's global allocator: every Rust allocation goes through the server's allocator (so
//! it counts toward `used_memory` and `maxmemory`), with the alignment Rust asked for.
//!
//! The valkey-module crate's allocator only rounds the size up to the alignment and relies on
//! jemalloc's size classes to align the block. Servers built with libc malloc (the PyPI builds of
//! 8.1 and 9.x) return 16-byte aligned blocks, and tract's AVX-512 kernels, which allocate their
//! buffers 64- or 128-byte aligned and load them with aligned instructions, crashed with SIGSEGV
//! there. Jemalloc does not align every size class to its size either (160, 192, 224 ... are only
//! 32-byte aligned). So alignments above what malloc guarantees are honoured here explicitly.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;

use valkey_module::raw;

/// What every malloc here returns at least (x86-64 and aarch64 glibc, jemalloc for sizes >= 16).
const MALLOC_ALIGN: usize = 16;

pub struct ServerAlloc;

fn system_alloc() -> bool {
    cfg!(feature = "enable-system-alloc")
}

/// Aborts without allocating: the allocator must never panic.
fn no_server_allocator() -> ! {
    const MSG: &[u8] = b"agentic: the server's allocator is not available\n";
    // SAFETY: write(2) to stderr of a static buffer, then abort(3); neither allocates.
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::abort()
    }
}

unsafe fn server_malloc(size: usize) -> *mut u8 {
    match raw::RedisModule_Alloc {
        Some(f) => f(size).cast(),
        None => no_server_allocator(),
    }
}

unsafe fn server_calloc(size: usize) -> *mut u8 {
    match raw::RedisModule_Calloc {
        Some(f) => f(1, size).cast(),
        None => no_server_allocator(),
    }
}

unsafe fn server_realloc(ptr: *mut u8, size: usize) -> *mut u8 {
    match raw::RedisModule_Realloc {
        Some(f) => f(ptr.cast(), size).cast(),
        None => no_server_allocator(),
    }
}

unsafe fn server_free(ptr: *mut u8) {
    match raw::RedisModule_Free {
        Some(f) => f(ptr as *mut c_void),
        None => no_server_allocator(),
    }
}

/// Small alignments: the block as malloc returns it (sizes are multiples of the alignment, so
/// an 8-byte request is 8-aligned and anything >= 16 bytes is 16-aligned).
fn plain(layout: Layout) -> bool {
    layout.align() <= MALLOC_ALIGN
}

/// Over-aligned blocks: `align` extra bytes, the pointer rounded up past at least one word, and
/// the block's own address stored in the word just below the pointer handed out.
unsafe fn aligned_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    let align = layout.align();
    let Some(total) = layout.size().checked_add(align) else { return std::ptr::null_mut() };
    let block = if zeroed { server_calloc(total) } else { server_malloc(total) };
    if block.is_null() {
        return block;
    }
    // `block` is at least 8-aligned, so `user - 8` is inside the block and word-aligned.
    let user = ((block as usize + align) & !(align - 1)) as *mut u8;
    (user as *mut *mut u8).sub(1).write(block);
    user
}

unsafe fn aligned_free(ptr: *mut u8) {
    server_free((ptr as *mut *mut u8).sub(1).read());
}

unsafe impl GlobalAlloc for ServerAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if system_alloc() {
            return System.alloc(layout);
        }
        if plain(layout) {
            server_malloc(layout.size())
        } else {
            aligned_alloc(layout, false)
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if system_alloc() {
            return System.alloc_zeroed(layout);
        }
        if plain(layout) {
            server_calloc(layout.size())
        } else {
            aligned_alloc(layout, true)
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if system_alloc() {
            return System.dealloc(ptr, layout);
        }
        if plain(layout) {
            server_free(ptr)
        } else {
            aligned_free(ptr)
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if system_alloc() {
            return System.realloc(ptr, layout, new_size);
        }
        if plain(layout) {
            return server_realloc(ptr, new_size);
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else { return std::ptr::null_mut() };
        let new = aligned_alloc(new_layout, false);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            aligned_free(ptr);
        }
        new
    }
}
