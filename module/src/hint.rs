//! CPU prefetch hints. A fan-out is bound by memory latency (10,000 users' data does not fit in
//! cache); asking for a whole batch of users' data before serving them lets the memory system
//! fetch it in parallel instead of one miss after another. Hints never change results.

#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
