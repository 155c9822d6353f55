//! Reading a processor's options from the map the configuration gives: serde structs with
//! `deny_unknown_fields`, and errors that name the option at fault and what is valid.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

use crate::error::BuildError;

/// Deserializes `options` into `T`, a struct with `deny_unknown_fields`.
pub fn parse<T: DeserializeOwned>(
    processor: &'static str,
    options: &Map<String, Value>,
) -> Result<T, BuildError> {
    let expected = struct_fields::<T>();
    // Checked here rather than left to serde, so that the message lists the valid options
    // plainly and names the processor.
    if let Some(option) = options.keys().find(|key| !expected.contains(&key.as_str())) {
        return Err(BuildError::UnknownOption {
            processor,
            option: option.clone(),
            expected: expected.to_vec(),
        });
    }
    let value = Value::Object(options.clone());
    serde_path_to_error::deserialize(&value).map_err(|error| {
        let option = error
            .path()
            .iter()
            .next()
            .map(|segment| segment.to_string())
            .unwrap_or_default();
        let message = error.into_inner().to_string();
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            return BuildError::MissingOption {
                processor,
                option: missing.to_string(),
            };
        }
        BuildError::InvalidOption {
            processor,
            option,
            message,
        }
    })
}

/// The field names of a struct deriving `Deserialize`, as serde's derive hands them to
/// `deserialize_struct`.
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields.unwrap_or(&[])
}

struct FieldProbe<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// `path` as given if absolute, else under `base_dir`.
pub fn resolve(base_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    }
}

/// A duration more than zero: a string such as `"30s"` or `"200ms"` (see
/// [`inotifier_core::duration::parse_duration`]), or a number of seconds.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as \"30s\" or \"200ms\", or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
            let duration = inotifier_core::duration::parse_duration(text).map_err(E::custom)?;
            positive(duration)
        }

        fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
            let duration = Duration::try_from_secs_f64(seconds).map_err(|_| {
                E::custom(format!(
                    "{seconds} is not a duration: write a positive number of seconds, or a \
                     string such as \"30s\""
                ))
            })?;
            positive(duration)
        }

        fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
            positive(Duration::from_secs(seconds))
        }

        fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
            match u64::try_from(seconds) {
                Ok(seconds) => self.visit_u64(seconds),
                Err(_) => Err(E::custom(format!(
                    "{seconds} is not a duration: it must be more than 0"
                ))),
            }
        }
    }

    fn positive<E: de::Error>(duration: Duration) -> Result<Duration, E> {
        if duration.is_zero() {
            Err(E::custom("the duration must be more than 0"))
        } else {
            Ok(duration)
        }
    }

    deserializer.deserialize_any(DurationVisitor)
}

/// A table of names to values, where a value may be a string, a number or a boolean (written
/// as TOML or JSON would); every value is kept as a string.
pub fn string_table<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let table: BTreeMap<String, Scalar> = serde::Deserialize::deserialize(deserializer)?;
    Ok(table.into_iter().map(|(k, Scalar(v))| (k, v)).collect())
}

struct Scalar(String);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        #[serde(default, deserialize_with = "duration")]
        wait: Duration,
        #[serde(default, deserialize_with = "string_table")]
        table: BTreeMap<String, String>,
    }

    fn sample(value: Value) -> Result<Sample, BuildError> {
        parse("sample", value.as_object().unwrap())
    }

    #[test]
    fn fields_are_found_from_the_derive() {
        assert_eq!(struct_fields::<Sample>(), ["name", "wait", "table"]);
    }

    #[test]
    fn errors_name_the_option_and_what_is_valid() {
        let error = sample(json!({"name": "x", "nmae": 1})).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown option `nmae` for processor sample: expected one of name, wait, table"
        );
        let error = sample(json!({})).unwrap_err();
        assert_eq!(
            error,
            BuildError::MissingOption {
                processor: "sample",
                option: "name".into()
            }
        );
        let error = sample(json!({"name": 3})).unwrap_err();
        assert_eq!(error.option(), Some("name"), "{error}");
        let error = sample(json!({"name": "x", "wait": "3 days"})).unwrap_err();
        assert_eq!(error.option(), Some("wait"));
        assert!(error.to_string().contains("use ms, s, m or h"), "{error}");
        let error = sample(json!({"name": "x", "wait": 0})).unwrap_err();
        assert!(error.to_string().contains("more than 0"), "{error}");
        let error = sample(json!({"name": "x", "wait": -1})).unwrap_err();
        assert_eq!(error.option(), Some("wait"), "{error}");
        let error = sample(json!({"name": "x", "table": {"A": [1]}})).unwrap_err();
        assert_eq!(error.option(), Some("table"), "{error}");
    }

    #[test]
    fn durations_are_strings_or_seconds_and_tables_take_scalars() {
        let parsed = sample(json!({"name": "x", "wait": "200ms"})).unwrap();
        assert_eq!(parsed.wait, Duration::from_millis(200));
        let parsed = sample(json!({"name": "x", "wait": 2})).unwrap();
        assert_eq!(parsed.wait, Duration::from_secs(2));
        let parsed = sample(json!({"name": "x", "wait": 0.5})).unwrap();
        assert_eq!(parsed.wait, Duration::from_millis(500));
        let parsed =
            sample(json!({"name": "x", "table": {"A": "a", "B": 8080, "C": true}})).unwrap();
        assert_eq!(parsed.table["A"], "a");
        assert_eq!(parsed.table["B"], "8080");
        assert_eq!(parsed.table["C"], "true");
    }

    #[test]
    fn relative_paths_resolve_against_the_base() {
        assert_eq!(
            resolve(Path::new("/etc/inotifier"), Path::new("out/a.jsonl")),
            Path::new("/etc/inotifier/out/a.jsonl")
        );
        assert_eq!(
            resolve(Path::new("/etc/inotifier"), Path::new("/var/a.jsonl")),
            Path::new("/var/a.jsonl")
        );
    }
}
