//! A processor's TOML options as the JSON map every processor takes, whichever config format
//! they came from.

use std::ops::Range;

use serde_json::{Map, Number, Value};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A TOML value that JSON cannot hold, where it is and why.
#[derive(Debug, PartialEq)]
pub(super) struct NotJson {
    /// The dotted path of the value below the options table, such as `headers.x` or `argv[2]`.
    pub path: String,
    pub span: Range<usize>,
    pub reason: &'static str,
}

/// Converts a table: integers, floats, strings and booleans to their JSON kind, arrays and tables
/// recursively, datetimes to their RFC 3339 text. Reports every value that cannot be converted.
pub(super) fn table_to_json(
    table: &DeTable<'_>,
    problems: &mut Vec<NotJson>,
) -> Map<String, Value> {
    convert_table(table, "", problems)
}

fn convert_table(
    table: &DeTable<'_>,
    prefix: &str,
    problems: &mut Vec<NotJson>,
) -> Map<String, Value> {
    table
        .iter()
        .map(|(key, value)| {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            let converted = convert(value, &path, problems);
            (key.get_ref().to_string(), converted)
        })
        .collect()
}

fn convert(value: &Spanned<DeValue<'_>>, path: &str, problems: &mut Vec<NotJson>) -> Value {
    let mut fail = |reason| {
        problems.push(NotJson {
            path: path.to_string(),
            span: value.span(),
            reason,
        });
        Value::Null
    };
    match value.get_ref() {
        DeValue::String(text) => Value::String(text.to_string()),
        DeValue::Boolean(flag) => Value::Bool(*flag),
        DeValue::Integer(integer) => match i64::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(n) => Value::Number(n.into()),
            Err(_) => fail("integers must fit in 64 bits"),
        },
        DeValue::Float(float) => match float
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
        {
            Some(number) => Value::Number(number),
            None => fail("JSON has no inf or nan: write a finite number"),
        },
        DeValue::Datetime(datetime) => Value::String(datetime.to_string()),
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| convert(item, &format!("{path}[{index}]"), problems))
                .collect(),
        ),
        DeValue::Table(table) => Value::Object(convert_table(table, path, problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert_text(text: &str) -> (Value, Vec<NotJson>) {
        let document = DeTable::parse(text).expect("valid TOML");
        let mut problems = Vec::new();
        let map = table_to_json(document.get_ref(), &mut problems);
        (Value::Object(map), problems)
    }

    #[test]
    fn every_toml_type_converts() {
        let (value, problems) = convert_text(
            r#"
            text = "a \"quoted\" é"
            literal = 'C:\path'
            negative = -17
            big = 9_223_372_036_854_775_807
            hex = 0xff
            octal = 0o17
            binary = 0b101
            float = 2.5
            exponent = -1e3
            flag = true
            when = 1979-05-27T07:32:00Z
            day = 1979-05-27
            list = [1, "two", [3.0], { four = 4 }]
            empty = []
            [nested]
            deep = { deeper = { x = false } }
            "#,
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            value,
            json!({
                "text": "a \"quoted\" é",
                "literal": "C:\\path",
                "negative": -17,
                "big": 9_223_372_036_854_775_807_i64,
                "hex": 255,
                "octal": 15,
                "binary": 5,
                "float": 2.5,
                "exponent": -1000.0,
                "flag": true,
                "when": "1979-05-27T07:32:00Z",
                "day": "1979-05-27",
                "list": [1, "two", [3.0], {"four": 4}],
                "empty": [],
                "nested": {"deep": {"deeper": {"x": false}}},
            })
        );
    }

    #[test]
    fn values_json_cannot_hold_are_reported_where_they_are() {
        let text = "ok = 1\nlimits = { top = inf, list = [1.0, nan] }\n";
        let (value, problems) = convert_text(text);
        assert_eq!(value["ok"], json!(1));
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["limits.list[1]", "limits.top"]);
        assert_eq!(&text[problems[1].span.clone()], "inf");
        assert!(problems[0].reason.contains("finite"));
    }
}
