//! Giving memory back to the operating system after bursts of allocation.
//!
//! Compiling a plugin allocates heavily on several threads; glibc's malloc
//! keeps what those threads freed in per-thread arenas, so the host's RSS
//! would stay at its compile-time peak while it idles. After each batch of
//! loads the plugin manager asks malloc to release free pages.

/// Returns free heap pages to the operating system (glibc's `malloc_trim`);
/// a no-op with other C libraries.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` has no preconditions; it only walks glibc's own
    // allocator state under its locks and madvises free pages away.
    unsafe {
        libc::malloc_trim(0);
    }
}
