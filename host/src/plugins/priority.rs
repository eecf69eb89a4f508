//! Background work yields the CPU to scrapes and live plugins: backtests and
//! component compiles run on threads with a lower scheduling priority.

/// The nice value of background threads (0 is the default, 19 the lowest).
const BACKGROUND_NICE: libc::c_int = 10;

/// Lowers the calling thread's scheduling priority to [`BACKGROUND_NICE`].
/// One way: an unprivileged thread cannot raise it back, so call it only on
/// threads that do background work for their whole life.
#[cfg(target_os = "linux")]
pub(crate) fn lower_this_thread() {
    // SAFETY: plain syscalls without pointers; with `PRIO_PROCESS` and a
    // thread id, `setpriority` changes only that thread's nice value.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::id_t::try_from(tid).unwrap_or_default(),
            BACKGROUND_NICE,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn lower_this_thread() {}

/// Builds the thread pool wasmtime compiles on (rayon's global pool: its
/// parallel compilation splits a component's functions over it) with
/// lower-priority threads, so compiling a 15 MB component in a running host
/// takes the CPU only when scrapes and calls leave it idle. Call once, before
/// the first compile; later calls do nothing.
pub fn lower_compile_priority() {
    let built = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("wasmon-compile-{i}"))
        .start_handler(|_| lower_this_thread())
        .build_global();
    if let Err(error) = built {
        tracing::debug!(%error, "the compile thread pool was already built");
    }
}
