//! Typed reading of one TOML table: every key checked against the keys the table accepts, every
//! value against the type it must have, each problem located and collected rather than stopping
//! at the first.

use std::ops::Range;
use std::time::Duration;

use inotifier_core::duration::parse_duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{Locator, Problem, ProblemKind};

/// A key a table accepts: its name, what it holds and a line to copy, for error messages (and
/// a reader of the source, the reference).
pub(super) struct KeySpec {
    pub name: &'static str,
    /// What the value must be, after "must be": "a boolean", "a duration (a string)".
    pub expects: &'static str,
    /// A valid line, shown by type and missing-key errors.
    pub example: &'static str,
}

/// The problems found so far, with the byte offset of each so they can be put in file order.
pub(super) struct Report<'t> {
    locator: Locator<'t>,
    problems: Vec<(usize, Problem)>,
}

impl<'t> Report<'t> {
    pub(super) fn new(locator: Locator<'t>) -> Report<'t> {
        Report {
            locator,
            problems: Vec::new(),
        }
    }

    pub(super) fn add(&mut self, offset: usize, kind: ProblemKind) {
        self.problems
            .push((offset, self.locator.problem(offset, kind)));
    }

    /// The text of the file at `span`, as written (quotes and escapes included).
    pub(super) fn source(&self, span: Range<usize>) -> &'t str {
        self.locator.source(span)
    }

    /// How many problems were found so far.
    pub(super) fn len(&self) -> usize {
        self.problems.len()
    }

    /// The problems found after the first `from`.
    pub(super) fn since(&self, from: usize) -> Vec<Problem> {
        self.problems[from..]
            .iter()
            .map(|(_, problem)| problem.clone())
            .collect()
    }

    /// Every problem, in the order they appear in the file.
    pub(super) fn into_problems(mut self) -> Vec<Problem> {
        // Stable: problems at the same place keep the order they were found in.
        self.problems.sort_by_key(|(offset, _)| *offset);
        self.problems
            .into_iter()
            .map(|(_, problem)| problem)
            .collect()
    }
}

/// A value with where it is in the file.
pub(super) type Located<T> = (T, Range<usize>);

/// One table of the document being read.
pub(super) struct TableReader<'a, 'i> {
    /// How messages name the table: `[daemon]`, `[[watch]] #2`, `[watch.ready] of [[watch]] #2`.
    pub name: String,
    /// Where the table starts (its header): missing keys are reported there.
    pub span: Range<usize>,
    entries: &'a DeTable<'i>,
    keys: &'static [KeySpec],
}

impl<'a, 'i> TableReader<'a, 'i> {
    /// Starts reading `entries`, reporting at once every key not in `keys`.
    pub(super) fn new(
        name: String,
        span: Range<usize>,
        entries: &'a DeTable<'i>,
        keys: &'static [KeySpec],
        report: &mut Report<'_>,
    ) -> TableReader<'a, 'i> {
        let reader = TableReader {
            name,
            span,
            entries,
            keys,
        };
        for key in entries.keys() {
            if reader.spec(key.get_ref()).is_none() {
                report.add(
                    key.span().start,
                    ProblemKind::UnknownKey {
                        key: key.get_ref().to_string(),
                        table: reader.name.clone(),
                        valid: keys.iter().map(|spec| spec.name).collect(),
                        suggestion: closest(key.get_ref(), keys.iter().map(|spec| spec.name)),
                    },
                );
            }
        }
        reader
    }

    fn spec(&self, key: &str) -> Option<&'static KeySpec> {
        self.keys.iter().find(|spec| spec.name == key)
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        debug_assert!(
            self.spec(key).is_some(),
            "{key} is not a key of {}",
            self.name
        );
        self.entries.get(key)
    }

    /// Where the key `key` itself (not its value) is written.
    pub(super) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries
            .get_key_value(key)
            .map(|(written, _)| written.span())
    }

    /// Reports that `value`, found under `key`, has the wrong type.
    pub(super) fn wrong_type(
        &self,
        report: &mut Report<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) {
        self.wrong_type_found(
            report,
            key,
            value.span(),
            type_with_article(value.get_ref()),
        );
    }

    fn wrong_type_found(
        &self,
        report: &mut Report<'_>,
        key: &str,
        span: Range<usize>,
        found: &'static str,
    ) {
        let spec = self.spec(key).expect("a key of this table");
        report.add(
            span.start,
            ProblemKind::WrongType {
                key: key.to_string(),
                table: self.name.clone(),
                expected: spec.expects,
                found,
                example: spec.example,
            },
        );
    }

    /// Reports `key` missing, at the table's header.
    pub(super) fn missing(&self, report: &mut Report<'_>, key: &'static str) {
        let spec = self.spec(key).expect("a key of this table");
        report.add(
            self.span.start,
            ProblemKind::MissingKey {
                key: spec.name,
                table: self.name.clone(),
                example: spec.example,
            },
        );
    }

    /// The value of a required key; reports it missing when it is not there.
    pub(super) fn required(
        &self,
        report: &mut Report<'_>,
        key: &'static str,
    ) -> Option<&'a Spanned<DeValue<'i>>> {
        let value = self.get(key);
        if value.is_none() {
            self.missing(report, key);
        }
        value
    }

    /// A string; `None` when absent or (reported) of another type.
    pub(super) fn string(&self, report: &mut Report<'_>, key: &str) -> Option<Located<&'a str>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(text) => Some((text.as_ref(), value.span())),
            _ => {
                self.wrong_type(report, key, value);
                None
            }
        }
    }

    /// A string that must not be empty.
    pub(super) fn non_empty_string(
        &self,
        report: &mut Report<'_>,
        key: &str,
        hint: &'static str,
    ) -> Option<Located<&'a str>> {
        let (text, span) = self.string(report, key)?;
        if text.trim().is_empty() {
            report.add(
                span.start,
                ProblemKind::EmptyString {
                    key: key.to_string(),
                    table: self.name.clone(),
                    hint,
                },
            );
            return None;
        }
        Some((text, span))
    }

    /// A required non-empty string; reports it missing when it is not there.
    pub(super) fn required_string(
        &self,
        report: &mut Report<'_>,
        key: &'static str,
        hint: &'static str,
    ) -> Option<Located<&'a str>> {
        self.required(report, key)?;
        self.non_empty_string(report, key, hint)
    }

    pub(super) fn bool(&self, report: &mut Report<'_>, key: &str) -> Option<bool> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(flag) => Some(*flag),
            _ => {
                self.wrong_type(report, key, value);
                None
            }
        }
    }

    /// An integer within `range`; `valid` says what the range is in words.
    pub(super) fn integer(
        &self,
        report: &mut Report<'_>,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
        valid: &'static str,
    ) -> Option<u64> {
        let value = self.get(key)?;
        let DeValue::Integer(integer) = value.get_ref() else {
            self.wrong_type(report, key, value);
            return None;
        };
        let parsed = i128::from_str_radix(integer.as_str(), integer.radix()).ok();
        match parsed.and_then(|n| u64::try_from(n).ok()) {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                report.add(
                    value.span().start,
                    ProblemKind::OutOfRange {
                        key: key.to_string(),
                        table: self.name.clone(),
                        value: integer.to_string(),
                        valid,
                    },
                );
                None
            }
        }
    }

    /// A number written as a float or an integer, finite and at least `min`.
    pub(super) fn number(
        &self,
        report: &mut Report<'_>,
        key: &str,
        min: f64,
        valid: &'static str,
    ) -> Option<f64> {
        let value = self.get(key)?;
        let (text, parsed) = match value.get_ref() {
            DeValue::Float(float) => (float.to_string(), float.as_str().parse::<f64>().ok()),
            DeValue::Integer(integer) => (
                integer.to_string(),
                i64::from_str_radix(integer.as_str(), integer.radix())
                    .ok()
                    .map(|n| n as f64),
            ),
            _ => {
                self.wrong_type(report, key, value);
                return None;
            }
        };
        match parsed {
            Some(number) if number.is_finite() && number >= min => Some(number),
            _ => {
                report.add(
                    value.span().start,
                    ProblemKind::OutOfRange {
                        key: key.to_string(),
                        table: self.name.clone(),
                        value: text,
                        valid,
                    },
                );
                None
            }
        }
    }

    /// A duration written as a string: `"200ms"`, `"10s"`, `"2m"`.
    pub(super) fn duration(&self, report: &mut Report<'_>, key: &str) -> Option<Duration> {
        let (text, span) = self.string(report, key)?;
        match parse_duration(text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                report.add(
                    span.start,
                    ProblemKind::Duration {
                        key: key.to_string(),
                        table: self.name.clone(),
                        message,
                    },
                );
                None
            }
        }
    }

    /// The strings of an array of strings. An element of another type is reported where it
    /// is, and left out so that the strings can still be checked.
    pub(super) fn strings(
        &self,
        report: &mut Report<'_>,
        key: &str,
    ) -> Option<Vec<Located<&'a str>>> {
        let value = self.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(report, key, value);
            return None;
        };
        let mut strings = Vec::with_capacity(items.len());
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(text) => strings.push((text.as_ref(), item.span())),
                other => self.wrong_type_found(report, key, item.span(), element_type(other)),
            }
        }
        Some(strings)
    }

    /// A sub-table (`[watch.ready]` or `ready = { ... }`), read with its own keys.
    pub(super) fn table(
        &self,
        report: &mut Report<'_>,
        key: &str,
        name: String,
        keys: &'static [KeySpec],
    ) -> Option<TableReader<'a, 'i>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Table(entries) => {
                Some(TableReader::new(name, value.span(), entries, keys, report))
            }
            _ => {
                self.wrong_type(report, key, value);
                None
            }
        }
    }
}

/// A value's type as messages say it: "a string", "an array".
pub(super) fn type_with_article(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// What an array holds when one of its elements has the wrong type.
fn element_type(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "an array holding a string",
        DeValue::Integer(_) => "an array holding an integer",
        DeValue::Float(_) => "an array holding a float",
        DeValue::Boolean(_) => "an array holding a boolean",
        DeValue::Datetime(_) => "an array holding a datetime",
        DeValue::Array(_) => "an array holding an array",
        DeValue::Table(_) => "an array holding a table",
    }
}

/// The valid name closest to a misspelt `word`, when one is close enough to be a likely typo.
fn closest(word: &str, valid: impl Iterator<Item = &'static str>) -> Option<&'static str> {
    let word = word.to_ascii_lowercase();
    valid
        .map(|name| (edit_distance(&word, name), name))
        .filter(|(distance, name)| *distance <= 2.max(name.len() / 4))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_names_only() {
        let names = ["path", "events", "processor", "auto_add"];
        assert_eq!(closest("evnts", names.into_iter()), Some("events"));
        assert_eq!(closest("Events", names.into_iter()), Some("events"));
        assert_eq!(closest("autoadd", names.into_iter()), Some("auto_add"));
        assert_eq!(closest("processer", names.into_iter()), Some("processor"));
        assert_eq!(closest("colour", names.into_iter()), None);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
