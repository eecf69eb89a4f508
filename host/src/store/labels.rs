//! A series' label pairs, kept compactly: one text buffer and one span table.

/// Label pairs sorted by name, stored as one `Box<str>` of names and values
/// back to back plus the end offset of each name and value.
///
/// Two heap blocks per series whatever the number of labels, instead of two
/// per label; `(&str, &str)` pairs are sliced out on demand.
#[derive(Debug)]
pub(crate) struct LabelSet {
    text: Box<str>,
    /// `(end of name, end of value)` offsets into `text`, one per label.
    ends: Box<[(u32, u32)]>,
}

impl LabelSet {
    /// Builds a set from pairs already validated, deduplicated and sorted by name.
    pub(crate) fn from_sorted(pairs: &[(&str, &str)]) -> LabelSet {
        let len: usize = pairs.iter().map(|(n, v)| n.len() + v.len()).sum();
        let mut text = String::with_capacity(len);
        let mut ends = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            text.push_str(name);
            let name_end = offset(text.len());
            text.push_str(value);
            ends.push((name_end, offset(text.len())));
        }
        LabelSet {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    /// How many labels there are.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The pairs, sorted by name.
    pub(crate) fn iter(&self) -> LabelIter<'_> {
        LabelIter {
            set: self,
            index: 0,
            start: 0,
        }
    }

    /// The value of label `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Heap bytes this set holds.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.len() + self.ends.len() * std::mem::size_of::<(u32, u32)>()
    }
}

/// Offsets are bounded by validation (at most 32 labels of 100 + 1024 bytes for
/// plugins); host labels are short. Saturate rather than wrap if that ever changes.
fn offset(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Iterator over a [`LabelSet`]'s pairs.
pub(crate) struct LabelIter<'a> {
    set: &'a LabelSet,
    index: usize,
    start: usize,
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (name_end, value_end) = *self.set.ends.get(self.index)?;
        let (name_end, value_end) = (name_end as usize, value_end as usize);
        let name = self.set.text.get(self.start..name_end)?;
        let value = self.set.text.get(name_end..value_end)?;
        self.index += 1;
        self.start = value_end;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.set.ends.len() - self.index;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_pairs() {
        let set = LabelSet::from_sorted(&[("a", ""), ("bb", "héllo"), ("c", "x\"y")]);
        let pairs: Vec<_> = set.iter().collect();
        assert_eq!(pairs, [("a", ""), ("bb", "héllo"), ("c", "x\"y")]);
        assert_eq!(set.len(), 3);
        assert_eq!(set.get("bb"), Some("héllo"));
        assert_eq!(set.get("d"), None);
    }

    #[test]
    fn empty_set() {
        let set = LabelSet::from_sorted(&[]);
        assert_eq!(set.iter().count(), 0);
        assert_eq!(set.heap_bytes(), 0);
    }
}
