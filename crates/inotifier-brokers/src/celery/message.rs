//! Celery's task message, protocol version 2, with a JSON body: what `app.send_task` of
//! Celery 5 sends, byte for byte where it matters to a worker.
//!
//! A message has headers (the task's name and id, and what Celery's own client sets), a body
//! `[args, kwargs, embed]`, and properties. Over AMQP the headers are the message's
//! application headers and the body is the message body; over Redis, kombu wraps all of it in
//! one JSON document pushed onto the queue's list, with the body in base64 and
//! `properties.delivery_info` naming the exchange and routing key (a worker drops the
//! connection on a message without it).

use std::io::Write as _;

use inotifier_core::Event;
use inotifier_core::json::json_string;
use serde_json::{Value, json};

use crate::celery::pyrepr;
use crate::fields::Field;

/// How an event becomes a task call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// The task's registered name, such as `myapp.tasks.on_file`.
    pub task: String,
    pub args: Vec<Field>,
    pub kwargs: Vec<(String, Field)>,
    /// The sender's name (`source`), for the `origin` header and the task id.
    pub source: String,
    /// The instance id of the journal the events come from, for the task id.
    pub journal: Option<u64>,
}

/// One task message, ready for either transport.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    /// The task id: the event's message id ([`crate::identity::message_id`]).
    pub id: String,
    /// In the order Celery writes them.
    pub headers: Vec<(&'static str, Value)>,
    /// `[args, kwargs, embed]` as JSON.
    pub body: Vec<u8>,
}

impl TaskMessage {
    pub fn new(spec: &TaskSpec, event: &Event) -> TaskMessage {
        let id = crate::identity::MessageIds::new(&spec.source, spec.journal).of(event.id);
        let mut args = Vec::with_capacity(512);
        args.push(b'[');
        for (i, field) in spec.args.iter().enumerate() {
            if i > 0 {
                args.push(b',');
            }
            field.write_json(&mut args, event, &spec.source);
        }
        args.push(b']');
        let mut kwargs = Vec::with_capacity(64);
        kwargs.push(b'{');
        for (i, (name, field)) in spec.kwargs.iter().enumerate() {
            if i > 0 {
                kwargs.push(b',');
            }
            json_string(&mut kwargs, name.as_bytes());
            kwargs.push(b':');
            field.write_json(&mut kwargs, event, &spec.source);
        }
        kwargs.push(b'}');
        let mut body = Vec::with_capacity(args.len() + kwargs.len() + 80);
        body.push(b'[');
        body.extend_from_slice(&args);
        body.extend_from_slice(b", ");
        body.extend_from_slice(&kwargs);
        body.extend_from_slice(
            br#", {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#,
        );
        let headers = vec![
            ("lang", json!("py")),
            ("task", json!(spec.task)),
            ("id", json!(id)),
            ("shadow", Value::Null),
            ("eta", Value::Null),
            ("expires", Value::Null),
            ("group", Value::Null),
            ("group_index", Value::Null),
            ("retries", json!(0)),
            ("timelimit", json!([null, null])),
            ("root_id", json!(id)),
            ("parent_id", Value::Null),
            ("argsrepr", json!(pyrepr::repr(&args))),
            ("kwargsrepr", json!(pyrepr::repr(&kwargs))),
            ("origin", json!(format!("inotifier@{}", spec.source))),
            ("ignore_result", Value::Null),
            ("replaced_task_nesting", json!(0)),
            ("stamped_headers", Value::Null),
            ("stamps", json!({})),
        ];
        TaskMessage { id, headers, body }
    }

    /// The document kombu's Redis transport pushes onto the queue's list.
    pub fn redis_envelope(&self, route: &Route, reply_to: &str, delivery_tag: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() * 4 / 3 + 1024);
        out.extend_from_slice(br#"{"body": ""#);
        base64(&mut out, &self.body);
        out.extend_from_slice(
            br#"", "content-encoding": "utf-8", "content-type": "application/json", "headers": {"#,
        );
        for (i, (name, value)) in self.headers.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b", ");
            }
            let _ = write!(out, "\"{name}\": {value}");
        }
        let properties = json!({
            "exchange": route.exchange,
            "routing_key": route.routing_key,
        });
        let _ = write!(
            out,
            "}}, \"properties\": {{\"correlation_id\": {id}, \"reply_to\": {reply_to}, \
             \"delivery_mode\": 2, \"delivery_info\": {properties}, \"priority\": 0, \
             \"body_encoding\": \"base64\", \"delivery_tag\": {delivery_tag}}}}}",
            id = json!(self.id),
            reply_to = json!(reply_to),
            delivery_tag = json!(delivery_tag),
        );
        out
    }

    /// The properties of the AMQP message (its body is [`TaskMessage::body`]).
    pub fn amqp_properties(&self, reply_to: &str) -> crate::amqp::Properties {
        crate::amqp::Properties {
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            headers: Some(
                self.headers
                    .iter()
                    .map(|(name, value)| {
                        (name.to_string(), crate::amqp::FieldValue::from_json(value))
                    })
                    .collect(),
            ),
            delivery_mode: Some(2),
            priority: Some(0),
            correlation_id: Some(self.id.clone()),
            reply_to: Some(reply_to.to_string()),
            message_id: None,
        }
    }
}

/// Where a task message goes: the exchange and routing key it is published with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub queue: String,
    pub exchange: String,
    pub routing_key: String,
}

/// Standard base64 with padding (kombu's `body_encoding: base64`).
fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let n = match *chunk {
            [a, b, c] => u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c),
            [a, b] => u32::from(a) << 16 | u32::from(b) << 8,
            [a] => u32::from(a) << 16,
            _ => unreachable!("chunks of at most 3"),
        };
        let sextets = [n >> 18, n >> 12, n >> 6, n].map(|s| ALPHABET[(s & 63) as usize]);
        let kept = chunk.len() + 1;
        out.extend_from_slice(&sextets[..kept]);
        out.extend(std::iter::repeat_n(b'=', 4 - kept));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_pads_as_python_does() {
        let encode = |bytes: &[u8]| {
            let mut out = Vec::new();
            base64(&mut out, bytes);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(encode(b""), "");
        assert_eq!(encode(b"f"), "Zg==");
        assert_eq!(encode(b"fo"), "Zm8=");
        assert_eq!(encode(b"foo"), "Zm9v");
        assert_eq!(encode(b"foob\xff\xfe"), "Zm9vYv/+");
    }
}
