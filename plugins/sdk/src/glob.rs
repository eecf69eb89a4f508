//! Glob patterns as manifests and plugin configs write them: `*` matches any
//! run of characters (including none), everything else matches itself.
//!
//! ```ignore
//! use wasmon_sdk::glob;
//! assert!(glob::matches("alert.*", "alert.firing"));
//! assert!(glob::matches("/mnt/*/data", "/mnt/disk1/data"));
//! assert!(!glob::matches("probe_*", "wasmon_cpu_usage_ratio"));
//! ```

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and where in `text` its match currently ends.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            // Let the last `*` swallow one more character and retry.
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether `text` matches any of `patterns`.
pub fn matches_any<S: AsRef<str>>(patterns: &[S], text: &str) -> bool {
    patterns.iter().any(|p| matches(p.as_ref(), text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(pattern: &str, text: &str, expect: bool) {
        assert_eq!(matches(pattern, text), expect, "{pattern:?} vs {text:?}");
    }

    #[test]
    fn globs() {
        check("", "", true);
        check("", "a", false);
        check("*", "", true);
        check("*", "anything", true);
        check("probe_success", "probe_success", true);
        check("probe_success", "probe_success_x", false);
        check("probe_*", "probe_success", true);
        check("probe_*", "probe_", true);
        check("probe_*", "prob", false);
        check("*.example.org", "api.example.org", true);
        check("*.example.org", "example.org", false);
        check("alert.*", "alert.firing", true);
        check("alert.*", "service.down", false);
        check("a*b*c", "aXbYc", true);
        check("a*b*c", "aXbYcZ", false);
        check("a*bc", "abcbc", true);
        check("**", "x", true);
        check("/mnt/*/data", "/mnt/disk1/data", true);
    }
}
