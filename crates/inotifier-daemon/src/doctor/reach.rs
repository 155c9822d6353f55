//! The processors: their options as the daemon would build them, and each broker or webhook
//! they send to, reached (TCP, then the TLS handshake with the processor's certificates).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use inotifier_brokers::reach::{Endpoint, Handshake};
use inotifier_brokers::tls::TlsOptions;
use inotifier_brokers::url::BrokerUrl;
use inotifier_sinks::BuildError;
use inotifier_sinks::webhook::{self, WebhookProcessor};
use serde_json::{Map, Value};

use super::Finding;
use crate::Config;
use crate::processors;

pub(super) fn check_processors(
    config: &Config,
    base_dir: &Path,
    timeout: Duration,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut reached = HashSet::new();
    for watch in &config.watches {
        let kind = watch.processor.kind.as_str();
        let options = &watch.processor.options;
        let of = format!("`{kind}` of {}", watch.path.display());
        if !processors::native_processors().contains(&kind) {
            findings.push(Finding::ok(
                "processor",
                format!("{of}: run by the host application, checked by it (Django's checks)"),
            ));
            continue;
        }
        if let Err(error) = processors::validate(kind, options, base_dir) {
            findings.push(build_problem(&of, &error));
            continue;
        }
        let endpoints = match endpoints(kind, options, base_dir) {
            Ok(endpoints) => endpoints,
            Err(error) => {
                findings.push(build_problem(&of, &error));
                continue;
            }
        };
        findings.push(Finding::ok(
            "processor",
            format!("{of}: its options are valid"),
        ));
        for endpoint in endpoints {
            // Two watches sending to one broker: one connection says it all.
            if !reached.insert((endpoint.what.clone(), endpoint.handshake)) {
                continue;
            }
            findings.push(probe(&endpoint, timeout));
        }
    }
    findings
}

fn build_problem(of: &str, error: &BuildError) -> Finding {
    let hint = if error.is_unavailable() {
        "give the daemon what the option names (the environment variable, the file), or \
         correct the option"
    } else {
        "correct the processor's options (`inotifier check` says the same, with the line)"
    };
    Finding::problem("processor", format!("{of}: {error}"), hint)
}

/// The servers a processor of `kind` connects to; none for the local ones.
fn endpoints(
    kind: &str,
    options: &Map<String, Value>,
    base_dir: &Path,
) -> Result<Vec<Endpoint>, BuildError> {
    if let Some(endpoints) = inotifier_brokers::endpoints(kind, options, base_dir) {
        return endpoints;
    }
    if kind != webhook::NAME {
        return Ok(Vec::new());
    }
    let (url, ca_file) = WebhookProcessor::destination(options, base_dir)?;
    // The webhook's URL was checked by building it; this only splits it into its parts.
    let parsed = BrokerUrl::parse(&url, &[("http", 80), ("https", 443)])
        .map_err(|error| BuildError::invalid(webhook::NAME, "url", error))?;
    let handshake = if parsed.scheme == "https" {
        Handshake::Tls
    } else {
        Handshake::Plain
    };
    // The same trust as the webhook's agent: the Mozilla roots, or the CAs of ca_file.
    let tls = TlsOptions {
        ca_file,
        ..TlsOptions::default()
    }
    .load(webhook::NAME, base_dir)?;
    Ok(Endpoint::of_url(&parsed, handshake, &tls))
}

fn probe(endpoint: &Endpoint, timeout: Duration) -> Finding {
    match endpoint.probe(timeout) {
        Ok(reached) => Finding::ok(
            "reach",
            format!(
                "{}: connected to {}{}",
                endpoint.what,
                reached.address,
                if reached.tls {
                    ", TLS handshake made, certificate verified"
                } else {
                    ""
                }
            ),
        ),
        Err(unreachable) => Finding::problem(
            "reach",
            format!("{}: {}", endpoint.what, unreachable.message),
            unreachable.advice.unwrap_or(
                "start the server, or correct the URL; a firewall or a wrong port shows the same",
            ),
        ),
    }
}
