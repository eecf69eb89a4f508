//! This process's CPU time and peak memory, as `getrusage` reports them.

/// CPU seconds in user and system mode, and the peak resident set in MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Usage {
    pub user_s: f64,
    pub system_s: f64,
    pub max_rss_mb: f64,
}

#[cfg(unix)]
pub(crate) fn now() -> Usage {
    // SAFETY: `getrusage` writes one `rusage` into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer; on error the struct stays zeroed.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Usage::default();
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    // Linux reports ru_maxrss in KiB, macOS in bytes.
    let max_rss_bytes = if cfg!(target_os = "macos") {
        usage.ru_maxrss as f64
    } else {
        usage.ru_maxrss as f64 * 1024.0
    };
    Usage {
        user_s: seconds(usage.ru_utime),
        system_s: seconds(usage.ru_stime),
        max_rss_mb: max_rss_bytes / (1024.0 * 1024.0),
    }
}

#[cfg(not(unix))]
pub(crate) fn now() -> Usage {
    Usage::default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn usage_grows_with_work() {
        let before = super::now();
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let after = super::now();
        assert!(after.user_s + after.system_s > before.user_s + before.system_s);
        assert!(after.max_rss_mb > 1.0, "{after:?}");
    }
}
