//! The checks every payload passes before it is parsed, the same on every
//! route: UTF-8 (RFC 8259), nesting at most `ingest.max_json_depth` deep,
//! and no duplicate key in any object at any depth (whether the host reads
//! the key or keeps it as an attribute). Each failure is a 400.
//!
//! One pass over the bytes, before any parser recurses into them. It only
//! tells structure from strings; whether the text is JSON is the parser's
//! business afterwards, so on malformed input it may report nothing, or a
//! duplicate the parser would have refused anyway.

use super::IngestError;
use std::borrow::Cow;
use std::collections::HashSet;

/// Keys an object may have before they are tracked in a hash set rather
/// than compared one by one.
const LINEAR_KEYS: usize = 16;

/// Checks `body` (see the module docs) and returns it as text.
pub fn check_json(body: &[u8], max_depth: usize) -> Result<&str, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| IngestError::Malformed(format!("malformed JSON: not UTF-8: {e}")))?;
    Scan::default().run(text, max_depth)?;
    Ok(text)
}

/// One open array or object.
struct Level {
    object: bool,
    /// In an object: the next string is a key.
    expect_key: bool,
    /// Where this object's keys start in [`Scan::keys`].
    first_key: usize,
    /// This object's keys, once it has more than [`LINEAR_KEYS`].
    set: Option<HashSet<Cow<'static, str>>>,
}

#[derive(Default)]
struct Scan<'a> {
    levels: Vec<Level>,
    /// The keys of every open object, innermost last.
    keys: Vec<Cow<'a, str>>,
}

impl<'a> Scan<'a> {
    fn run(mut self, text: &'a str, max_depth: usize) -> Result<(), IngestError> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    let end = string_end(bytes, i + 1);
                    let is_key = self
                        .levels
                        .last()
                        .is_some_and(|level| level.object && level.expect_key);
                    if is_key {
                        self.key(text, i, end)?;
                    }
                    i = end;
                }
                open @ (b'[' | b'{') => {
                    if self.levels.len() >= max_depth {
                        return Err(IngestError::Malformed(format!(
                            "JSON nested deeper than {max_depth} levels"
                        )));
                    }
                    self.levels.push(Level {
                        object: open == b'{',
                        expect_key: open == b'{',
                        first_key: self.keys.len(),
                        set: None,
                    });
                }
                b']' | b'}' => {
                    if let Some(level) = self.levels.pop() {
                        self.keys.truncate(level.first_key);
                    }
                }
                b',' => {
                    if let Some(level) = self.levels.last_mut()
                        && level.object
                    {
                        level.expect_key = true;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Ok(())
    }

    /// Records the key whose quotes are at `start` and `end`; refuses a
    /// duplicate of the innermost object.
    fn key(&mut self, text: &'a str, start: usize, end: usize) -> Result<(), IngestError> {
        let Some(level) = self.levels.last_mut() else {
            return Ok(());
        };
        level.expect_key = false;
        let raw = text.get(start + 1..end).unwrap_or_default();
        let key: Cow<'a, str> = if raw.contains('\\') {
            // `"a"` and `"\u0061"` are the same key; a bad escape is the
            // parser's to report.
            match text
                .get(start..=end)
                .and_then(|quoted| serde_json::from_str::<String>(quoted).ok())
            {
                Some(unescaped) => Cow::Owned(unescaped),
                None => return Ok(()),
            }
        } else {
            Cow::Borrowed(raw)
        };
        let duplicate = match &mut level.set {
            Some(set) => !set.insert(Cow::Owned(key.into_owned())),
            None => {
                let seen = &self.keys[level.first_key..];
                if seen.contains(&key) {
                    true
                } else if seen.len() < LINEAR_KEYS {
                    self.keys.push(key);
                    false
                } else {
                    let mut set: HashSet<Cow<'static, str>> =
                        seen.iter().map(|k| Cow::Owned(k.to_string())).collect();
                    set.insert(Cow::Owned(key.into_owned()));
                    level.set = Some(set);
                    false
                }
            }
        };
        if duplicate {
            let (line, column) = position(text, start);
            let shown: String = text
                .get(start..=end)
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect();
            return Err(IngestError::Malformed(format!(
                "malformed JSON: duplicate key {shown} at line {line} column {column}"
            )));
        }
        Ok(())
    }
}

/// The index of the quote closing the string whose content starts at `from`
/// (or the end of the input).
fn string_end(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// 1-based line and column (in characters) of byte `offset`, as serde_json
/// reports positions.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn malformed(body: &str, max_depth: usize, detail: &str) {
        let err = check_json(body.as_bytes(), max_depth).unwrap_err();
        assert_eq!(err.reason(), "malformed", "{err}");
        assert!(err.to_string().contains(detail), "{err} lacks {detail:?}");
    }

    #[test]
    fn depth_is_bounded_and_strings_are_skipped() {
        assert!(check_json(br#"{"a": "[[[[[[[[[[[[[[[[[[[[[[\"[[["}"#, 2).is_ok());
        assert!(check_json(b"[[[]]]", 3).is_ok());
        malformed("[[[[]]]]", 3, "nested deeper than 3 levels");
        assert!(check_json(br#"{"a": {"b": {"c": 1}}, "d": [[{}]]}"#, 4).is_ok());
        malformed(r#"{"a": {"b": {"c": 1}}, "d": [[{}]]}"#, 3, "deeper than 3");
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        malformed(
            r#"{"a": 1, "a": 2}"#,
            8,
            r#"duplicate key "a" at line 1 column 10"#,
        );
        malformed(
            "{\"x\": {\"b\": 1,\n \"c\": [{\"d\": 1, \"d\": 1}]}}",
            8,
            r#"duplicate key "d" at line 2 column 17"#,
        );
        malformed(r#"{"a": 1, "\u0061": 2}"#, 8, "duplicate key");
        malformed(r#"[{"k": 1}, {"k": 1, "k": 2}]"#, 8, r#"duplicate key "k""#);
        // Values equal to keys, keys in sibling objects, and keys reused
        // after an object closes are not duplicates.
        assert!(
            check_json(
                br#"{"a": "a", "b": {"a": 1}, "c": {"a": 2}, "d": ["a", "a"]}"#,
                8
            )
            .is_ok()
        );
        assert!(check_json(br#"{"a\"b": 1, "a": 2, "b\\": {"\\": 1}}"#, 8).is_ok());
    }

    #[test]
    fn large_objects_switch_to_a_set() {
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\": {i}")).collect();
        let ok = format!("{{{}}}", keys.join(", "));
        assert!(check_json(ok.as_bytes(), 8).is_ok());
        let dup = format!("{{{}, \"k3\": 0}}", keys.join(", "));
        malformed(&dup, 8, r#"duplicate key "k3""#);
        let late = format!("{{{}, \"k99\": 0}}", keys.join(", "));
        malformed(&late, 8, r#"duplicate key "k99""#);
    }

    #[test]
    fn invalid_utf8_is_refused_wherever_it_sits() {
        let err = check_json(b"{\"service\": \"a\", \"junk\": \"\xff\"}", 8).unwrap_err();
        assert_eq!(err.reason(), "malformed");
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    #[test]
    fn broken_input_does_not_trip_the_scan() {
        for body in ["{", "}", "]]]", "\"", "{\"a", "{\"a\\", "{\"a\": }", ""] {
            let _ = check_json(body.as_bytes(), 4);
        }
    }
}
