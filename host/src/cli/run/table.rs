//! Plain-text output for people: aligned tables, sizes and durations.

use std::time::Duration;

/// `1.2 MiB`, `3.0 KiB`, `512 B`.
pub(in crate::cli) fn human_bytes(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let n = bytes as f64;
    if n >= KIB * KIB * KIB {
        format!("{:.1} GiB", n / (KIB * KIB * KIB))
    } else if n >= KIB * KIB {
        format!("{:.1} MiB", n / (KIB * KIB))
    } else if n >= KIB {
        format!("{:.1} KiB", n / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// `0.42 ms`, `85.3 ms`, `4.21 s`.
pub(in crate::cli) fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// Rows under headers, each column as wide as its widest cell; the last
/// column is not padded. Cells are cut to one line.
pub(in crate::cli) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let one_line = |cell: &str| cell.replace(['\n', '\r'], " ");
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(i) {
                *width = (*width).max(one_line(cell).chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let width = widths.get(i).copied().unwrap_or(0);
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row.iter().map(|c| one_line(c)).collect());
    }
    out
}

/// `{a="1", b="2"}` (Prometheus style), or empty for no labels.
pub(in crate::cli) fn labels(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_the_last_is_not_padded() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string(), "x".to_string()],
            vec![
                "long_name".to_string(),
                "22".to_string(),
                "multi\nline".to_string(),
            ],
        ];
        let text = table(&["NAME", "V", "HELP"], &rows);
        assert_eq!(
            text,
            "NAME       V   HELP\na          1   x\nlong_name  22  multi line\n"
        );
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(32 * 1024 * 1024), "32.0 MiB");
        assert_eq!(millis(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(millis(Duration::from_millis(4210)), "4.21 s");
        assert_eq!(
            labels(&[("a".into(), "1".into()), ("b".into(), "x y".into())]),
            r#"{a="1", b="x y"}"#
        );
    }
}
