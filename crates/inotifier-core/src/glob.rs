//! Include/exclude globs, matched on the raw bytes of a path so that names which are not UTF-8
//! can be filtered too.
//!
//! A pattern without `/` matches an entry's name at any depth (`*.tmp`, `node_modules`). A pattern
//! with `/` matches the path relative to the watched root, anchored at both ends (`build/*.o`,
//! `logs/**`). `*` matches within one path component, `**` across components, `?` one byte,
//! `[abc]`, `[a-z]` and `[!abc]` one byte of a set, and `\` escapes the next byte.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    anchored: bool,
}

/// Why a glob was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("empty glob pattern")]
    Empty,
    #[error("glob {0:?} has a '[' without its closing ']'")]
    UnclosedClass(String),
    #[error("glob {0:?} ends with a lone '\\'")]
    TrailingEscape(String),
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        validate(pattern.as_bytes()).map_err(|problem| match problem {
            Problem::UnclosedClass => GlobError::UnclosedClass(pattern.into()),
            Problem::TrailingEscape => GlobError::TrailingEscape(pattern.into()),
        })?;
        let trimmed = pattern.trim_start_matches("./");
        Ok(Glob {
            anchored: trimmed.trim_end_matches('/').contains('/'),
            source: trimmed.trim_end_matches('/').to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the entry at `relative` (its path below the watched root, no leading `/`) matches.
    pub fn matches(&self, relative: &[u8]) -> bool {
        let pattern = self.source.as_bytes();
        if self.anchored {
            matches_from(pattern, relative)
        } else {
            let name = match relative.iter().rposition(|&b| b == b'/') {
                Some(slash) => &relative[slash + 1..],
                None => relative,
            };
            matches_from(pattern, name)
        }
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

enum Problem {
    UnclosedClass,
    TrailingEscape,
}

fn validate(pattern: &[u8]) -> Result<(), Problem> {
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 == pattern.len() => return Err(Problem::TrailingEscape),
            b'\\' => i += 2,
            b'[' => match class_end(pattern, i) {
                Some(end) => i = end + 1,
                None => return Err(Problem::UnclosedClass),
            },
            _ => i += 1,
        }
    }
    Ok(())
}

/// Index of the `]` closing the class opened at `open`; a `]` right after `[` or `[!` is literal.
fn class_end(pattern: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if pattern.get(i) == Some(&b'!') || pattern.get(i) == Some(&b'^') {
        i += 1;
    }
    if pattern.get(i) == Some(&b']') {
        i += 1;
    }
    while i < pattern.len() {
        match pattern[i] {
            b']' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

fn class_matches(class: &[u8], byte: u8) -> bool {
    let (negated, body) = match class.first() {
        Some(b'!') | Some(b'^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut found = false;
    let mut i = 0;
    while i < body.len() {
        let mut low = body[i];
        if low == b'\\' && i + 1 < body.len() {
            i += 1;
            low = body[i];
        }
        if i + 2 < body.len() && body[i + 1] == b'-' {
            let high = body[i + 2];
            found |= (low..=high).contains(&byte);
            i += 3;
        } else {
            found |= low == byte;
            i += 1;
        }
    }
    found != negated
}

/// Backtracking matcher; patterns are short, so the worst case does not matter in practice.
fn matches_from(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after a failed attempt past the last `*` (or `**`).
    let mut star: Option<(usize, usize, bool)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    let double = pattern.get(p + 1) == Some(&b'*');
                    p += if double { 2 } else { 1 };
                    // `a/**/b` also matches `a/b`.
                    if double
                        && pattern.get(p) == Some(&b'/')
                        && matches_from(&pattern[p + 1..], &text[t..])
                    {
                        return true;
                    }
                    star = Some((p, t, double));
                    continue;
                }
                b'?' if text[t] != b'/' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    let end = class_end(pattern, p).unwrap_or(pattern.len() - 1);
                    if text[t] != b'/' && class_matches(&pattern[p + 1..end], text[t]) {
                        p = end + 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if pattern.get(p + 1) == Some(&text[t]) => {
                    p += 2;
                    t += 1;
                    continue;
                }
                literal if literal != b'\\' && literal == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((star_p, star_t, double)) if double || text[star_t] != b'/' => {
                star = Some((star_p, star_t + 1, double));
                p = star_p;
                t = star_t + 1;
            }
            _ => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

/// The filters of one watch: an entry is excluded when any exclude glob matches it; when include
/// globs are given, a non-directory entry is reported only if one of them matches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub include: Vec<Glob>,
    pub exclude: Vec<Glob>,
}

impl Filters {
    pub fn is_excluded(&self, relative: &[u8]) -> bool {
        self.exclude.iter().any(|glob| glob.matches(relative))
    }

    /// Whether an event about `relative` is reported. Directories are always traversed unless
    /// excluded, so a `*.txt` include still sees files in subdirectories.
    pub fn reports(&self, relative: &[u8], is_dir: bool) -> bool {
        if self.is_excluded(relative) {
            return false;
        }
        is_dir || self.include.is_empty() || self.include.iter().any(|glob| glob.matches(relative))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> Glob {
        Glob::new(pattern).unwrap()
    }

    #[test]
    fn unanchored_patterns_match_the_name_at_any_depth() {
        assert!(glob("*.tmp").matches(b"a.tmp"));
        assert!(glob("*.tmp").matches(b"deep/down/a.tmp"));
        assert!(!glob("*.tmp").matches(b"a.tmp/inside"));
        assert!(glob("node_modules").matches(b"web/node_modules"));
        assert!(!glob("node_modules").matches(b"web/node_modules2"));
        assert!(glob("f?.txt").matches(b"f1.txt"));
        assert!(!glob("f?.txt").matches(b"f12.txt"));
        assert!(glob(".*.swp").matches(b"dir/.file.swp"));
    }

    #[test]
    fn anchored_patterns_match_the_relative_path() {
        assert!(glob("build/*.o").matches(b"build/x.o"));
        assert!(!glob("build/*.o").matches(b"src/build/x.o"));
        assert!(!glob("build/*.o").matches(b"build/sub/x.o"));
        assert!(glob("build/**").matches(b"build/sub/x.o"));
        assert!(glob("**/cache").matches(b"a/b/cache"));
        assert!(glob("**/cache").matches(b"cache"));
        assert!(glob("a/**/z").matches(b"a/z"));
        assert!(glob("a/**/z").matches(b"a/b/c/z"));
        assert!(glob("./logs/").matches(b"logs"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(glob("[abc].txt").matches(b"b.txt"));
        assert!(!glob("[abc].txt").matches(b"d.txt"));
        assert!(glob("[!abc].txt").matches(b"d.txt"));
        assert!(glob("[a-c]x").matches(b"cx"));
        assert!(!glob("[a-c]x").matches(b"dx"));
        assert!(glob("[]]").matches(b"]"));
        assert!(glob("\\*").matches(b"*"));
        assert!(!glob("\\*").matches(b"a"));
        assert!(glob("\\[x]").matches(b"[x]"));
    }

    #[test]
    fn non_utf8_names_are_matched_as_bytes() {
        assert!(glob("*.bin").matches(b"caf\xe9.bin"));
        assert!(glob("caf?.bin").matches(b"caf\xe9.bin"));
        assert!(glob("[\u{7f}-\u{7f}]").matches(b"\x7f"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(Glob::new(""), Err(GlobError::Empty));
        assert!(matches!(
            Glob::new("[abc"),
            Err(GlobError::UnclosedClass(_))
        ));
        assert!(matches!(
            Glob::new("abc\\"),
            Err(GlobError::TrailingEscape(_))
        ));
    }

    #[test]
    fn filters_report_directories_unless_excluded() {
        let filters = Filters {
            include: vec![glob("*.txt")],
            exclude: vec![glob("skip")],
        };
        assert!(filters.reports(b"a/b.txt", false));
        assert!(!filters.reports(b"a/b.bin", false));
        assert!(filters.reports(b"a", true));
        assert!(!filters.reports(b"skip", true));
        assert!(!filters.reports(b"x/skip", false));
        assert!(filters.is_excluded(b"skip"));
    }
}
