//! Confirmed publishes per second to RabbitMQ: 20,000 small messages in batches of 500, to a
//! transient queue (delivery mode 1), then to a durable one with persistent messages (delivery
//! mode 2, as Celery publishes). `AMQP_URL` names the broker (the local one by default).
//!
//! `cargo run --release -p inotifier-brokers --example amqp_publish`

use std::time::{Duration, Instant};

use inotifier_brokers::amqp::{AmqpConnection, FieldValue, Properties, Publish};
use inotifier_brokers::url::BrokerUrl;

const MESSAGES: usize = 20_000;
const BATCH: usize = 500;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/".to_string());
    let url = BrokerUrl::parse(&text, &[("amqp", 5672)])?;
    let mut connection = AmqpConnection::connect(&url, Duration::from_secs(10))?;
    let queue = format!("inotifier-bench-{}", std::process::id());
    let bodies: Vec<String> = (0..MESSAGES)
        .map(|i| format!(r#"[["/srv/in/file-{i}"], {{}}, {{}}]"#))
        .collect();
    for (durable, delivery_mode) in [(false, 1), (true, 2)] {
        connection.declare_queue(&queue, durable)?;
        let properties = Properties {
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            headers: Some(vec![(
                "task".into(),
                FieldValue::LongString(b"tasks.on_file".to_vec()),
            )]),
            delivery_mode: Some(delivery_mode),
            ..Properties::default()
        };
        let started = Instant::now();
        for batch in bodies.chunks(BATCH) {
            let messages: Vec<Publish<'_>> = batch
                .iter()
                .map(|body| Publish {
                    exchange: "",
                    routing_key: &queue,
                    properties: &properties,
                    body: body.as_bytes(),
                })
                .collect();
            let outcome = connection.publish_confirmed(&messages);
            if let Some(failure) = outcome.failure {
                return Err(failure.into());
            }
        }
        let elapsed = started.elapsed();
        println!(
            "{MESSAGES} messages in batches of {BATCH}, delivery mode {delivery_mode} to a {} \
             queue: {:.2} s, {:.0} confirmed publishes/s",
            if durable { "durable" } else { "transient" },
            elapsed.as_secs_f64(),
            MESSAGES as f64 / elapsed.as_secs_f64()
        );
        connection.delete_queue(&queue)?;
    }
    Ok(())
}
