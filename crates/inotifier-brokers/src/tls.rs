//! TLS for the broker processors: the options `ca_file`, `cert_file` and `key_file`, read and
//! checked when the processor is built, and the reasons a handshake failed put in words an
//! operator can act on.
//!
//! Server certificates are always verified: against the Mozilla root certificates by default
//! (the same roots as the `webhook` processor), or against the CAs of `ca_file` instead. There is
//! no option to turn verification off. Each client library is handed the same certificates: the
//! `redis` crate as PEM, `lapin` and `async-nats` as a [`rustls::ClientConfig`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inotifier_sinks::{BuildError, options};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS options as written in a processor's options, before they are read.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct TlsOptions {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// Certificates read from the TLS options: what a connection trusts and what it shows.
#[derive(Clone, Default)]
pub struct TlsFiles {
    /// PEM of the CAs to trust instead of the Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the client certificate chain and of its key, for mutual TLS.
    pub client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca", &self.ca_pem.is_some())
            .field("client_certificate", &self.client_pem.is_some())
            .finish()
    }
}

impl TlsOptions {
    /// Whether any TLS option is given.
    pub fn any(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// The certificates of a connection to `url`, which is TLS or not (`tls`): read from the
    /// options when it is; when it is not, TLS options are a mistake, refused with the scheme
    /// that would use them (`tls_scheme`, such as `rediss://`).
    pub fn for_url(
        &self,
        processor: &'static str,
        url: &crate::url::BrokerUrl,
        tls: bool,
        tls_scheme: &str,
        base_dir: &Path,
    ) -> Result<TlsFiles, BuildError> {
        if tls {
            return self.load(processor, base_dir);
        }
        if self.any() {
            let option = if self.ca_file.is_some() {
                "ca_file"
            } else if self.cert_file.is_some() {
                "cert_file"
            } else {
                "key_file"
            };
            return Err(BuildError::invalid(
                processor,
                option,
                format!(
                    "is given, but the URL {url} is not TLS: use {tls_scheme} (or leave out \
                     ca_file, cert_file and key_file)"
                ),
            ));
        }
        Ok(TlsFiles::default())
    }

    /// Reads and checks the files, relative to `base_dir` (the configuration file's directory,
    /// or a Django project's `PROJECT_PATH`). An unreadable file, a file that holds no
    /// certificate or key, or a certificate without its key (or the other way round) is an
    /// error naming the option.
    pub fn load(&self, processor: &'static str, base_dir: &Path) -> Result<TlsFiles, BuildError> {
        let read = |option: &str, path: &Path| {
            let path = options::resolve(base_dir, path);
            std::fs::read(&path)
                .map_err(|error| BuildError::unreadable(processor, option, &path, &error))
        };
        let ca_pem = match &self.ca_file {
            None => None,
            Some(path) => {
                let pem = read("ca_file", path)?;
                let certificates = certificates(&pem).map_err(|error| {
                    BuildError::invalid(
                        processor,
                        "ca_file",
                        format!("{}: {error}", path.display()),
                    )
                })?;
                let mut roots = rustls::RootCertStore::empty();
                let (_, unusable) = roots.add_parsable_certificates(certificates);
                if roots.is_empty() {
                    return Err(BuildError::invalid(
                        processor,
                        "ca_file",
                        format!(
                            "{}: none of its {unusable} certificate(s) can be a trust anchor",
                            path.display()
                        ),
                    ));
                }
                Some(pem)
            }
        };
        let client_pem = match (&self.cert_file, &self.key_file) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(BuildError::invalid(
                    processor,
                    "key_file",
                    "cert_file is given without key_file: a client certificate needs its \
                     private key (a PEM file)",
                ));
            }
            (None, Some(_)) => {
                return Err(BuildError::invalid(
                    processor,
                    "cert_file",
                    "key_file is given without cert_file: give the client certificate (a \
                     PEM file) with its key",
                ));
            }
            (Some(cert_path), Some(key_path)) => {
                let cert = read("cert_file", cert_path)?;
                certificates(&cert).map_err(|error| {
                    BuildError::invalid(
                        processor,
                        "cert_file",
                        format!("{}: {error}", cert_path.display()),
                    )
                })?;
                let key = read("key_file", key_path)?;
                PrivateKeyDer::from_pem_slice(&key).map_err(|error| {
                    BuildError::invalid(
                        processor,
                        "key_file",
                        format!(
                            "{}: no private key in PEM (PKCS#8, PKCS#1 or SEC1): {error}",
                            key_path.display()
                        ),
                    )
                })?;
                Some((cert, key))
            }
        };
        let files = TlsFiles { ca_pem, client_pem };
        // A key that does not match its certificate, found now rather than at each connection.
        files
            .client_config()
            .map_err(|error| BuildError::invalid(processor, "key_file", error))?;
        Ok(files)
    }
}

/// The certificates of a PEM file; an error when it holds none.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("not a PEM file of certificates: {error}"))?;
    if certificates.is_empty() {
        return Err("holds no certificate (a PEM file with -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certificates)
}

impl TlsFiles {
    /// The client configuration: the trusted roots, and the client certificate when given.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                roots.add_parsable_certificates(certificates(pem)?);
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match &self.client_pem {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates(cert)?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|error| format!("no private key in PEM: {error}"))?;
                builder.with_client_auth_cert(chain, key).map_err(|error| {
                    format!("the client certificate and key do not go together: {error}")
                })?
            }
        };
        Ok(Arc::new(config))
    }

    /// The certificates as the `redis` crate takes them.
    pub fn redis_certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client_pem
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.ca_pem.clone(),
        }
    }
}

/// What to do about a failed connection whose error reads `error`, when it is a TLS failure:
/// the server's certificate did not verify, the server wanted a client certificate, or it
/// speaks no TLS. None for other errors.
pub fn advice(error: &str) -> Option<&'static str> {
    let error = error.to_ascii_lowercase();
    if error.contains("unknownissuer") || error.contains("unknown issuer") {
        Some(
            "the server's certificate is not signed by a trusted CA: set the option ca_file \
             to the PEM of the CA that signed it",
        )
    } else if error.contains("notvalidforname") || error.contains("not valid for name") {
        Some(
            "the server's certificate does not name the host of the URL: connect by a name \
             the certificate holds",
        )
    } else if error.contains("expired") || error.contains("notvalidyet") {
        Some("the server's certificate is outside its validity period (or this clock is wrong)")
    } else if error.contains("certificaterequired")
        || error.contains("certificate required")
        || error.contains("handshakefailure")
        || error.contains("bad certificate")
        || error.contains("badcertificate")
        || error.contains("unknownca")
    {
        Some(
            "the server refused the TLS handshake, most likely for the client certificate: \
             set cert_file and key_file to a certificate the server trusts",
        )
    } else if error.contains("corrupt message") || error.contains("invalidcontenttype") {
        Some("the server does not speak TLS on this port: use the TLS port, or a plain URL")
    } else if error.contains("certificate") || error.contains("tls") {
        Some("the TLS handshake failed: check ca_file, cert_file and key_file")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_halves_and_unreadable_files_name_the_option() {
        let dir = tempfile::tempdir().unwrap();
        let only_cert = TlsOptions {
            cert_file: Some("client.pem".into()),
            ..TlsOptions::default()
        };
        let error = only_cert
            .load("jetstream", dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("option `key_file` of processor jetstream"),
            "{error}"
        );
        let only_key = TlsOptions {
            key_file: Some("client.key".into()),
            ..TlsOptions::default()
        };
        let error = only_key
            .load("jetstream", dir.path())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("option `cert_file`"), "{error}");
        let missing = TlsOptions {
            ca_file: Some("ca.pem".into()),
            ..TlsOptions::default()
        };
        let error = missing.load("celery", dir.path()).unwrap_err().to_string();
        assert!(error.contains("cannot read"), "{error}");
        assert!(
            error.contains(&dir.path().join("ca.pem").display().to_string()),
            "{error}"
        );
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let error = missing.load("celery", dir.path()).unwrap_err().to_string();
        assert!(error.contains("holds no certificate"), "{error}");
    }

    #[test]
    fn handshake_failures_come_with_advice() {
        let unknown = advice("invalid peer certificate: UnknownIssuer").unwrap();
        assert!(unknown.contains("ca_file"), "{unknown}");
        let name = advice("invalid peer certificate: NotValidForName").unwrap();
        assert!(name.contains("name"), "{name}");
        let client = advice("received fatal alert: CertificateRequired").unwrap();
        assert!(client.contains("cert_file"), "{client}");
        assert_eq!(advice("Connection refused (os error 111)"), None);
    }
}
