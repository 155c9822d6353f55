//! A private certificate authority for one test, made with the `openssl` command line (no
//! crypto crate in the test helpers): a CA, server certificates for `localhost`, and client
//! certificates, all as PEM files in the test's own directory.
//!
//! The certificates are made for the strictest verifier the brokers' clients use, rustls with
//! webpki, which accepts only what RFC 5280 asks for and what browsers have settled on: v3
//! certificates; a CA with `basicConstraints` critical `CA:TRUE` and `keyUsage` `keyCertSign`;
//! a leaf with `CA:FALSE`, `keyUsage` `digitalSignature` and the right `extendedKeyUsage`
//! (`serverAuth` or `clientAuth`: OpenSSL and Go check it too, for client certificates also);
//! and, for a server, its names in `subjectAltName` (webpki ignores the common name). Keys are
//! EC P-256, fast to make and read by rustls, OpenSSL (Redis), Go (NATS) and Erlang (RabbitMQ),
//! written as PKCS#8 (`-----BEGIN PRIVATE KEY-----`), the one PEM form every one of them reads.
//!
//! Every certificate is valid from a day ago, so that a clock a little behind on either side of
//! the connection does not make it "not yet valid", for 30 days. `openssl x509` and `openssl
//! req` of OpenSSL 3.0 cannot set a start date, so the certificates are signed with `openssl
//! ca`, whose database lives in the directory too.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A certificate and its private key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// A certificate authority whose files live in one test's directory.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    name: String,
    config: PathBuf,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    // `openssl ca` rewrites its database (index.txt) at every signature: one at a time.
    signing: Mutex<()>,
}

/// The extensions of every kind of certificate, and what `openssl ca` needs to sign.
const CONFIG: &str = "\
[ca]
default_ca = test_ca

[test_ca]
database = index.txt
new_certs_dir = issued
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
rand_serial = yes

[policy_any]
commonName = supplied

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused

[ca_cert]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_cert]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[client_cert]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
";

impl TestCa {
    /// Makes a CA named `name` (its common name is "`name` test CA") in `dir` (created if missing):
    /// `name-ca.key`, `name-ca.pem`, and `name-ca/` for the signing configuration and database.
    /// Every file of the CA starts with `name-`: a second CA in the same directory needs
    /// another name.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        check_file_name(name);
        let dir = dir.to_path_buf();
        let ca_dir = dir.join(format!("{name}-ca"));
        std::fs::create_dir_all(ca_dir.join("issued"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", ca_dir.display()));
        let config = ca_dir.join("openssl.cnf");
        std::fs::write(&config, CONFIG)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        std::fs::write(ca_dir.join("index.txt"), "").unwrap_or_else(|e| {
            panic!("cannot write the CA database in {}: {e}", ca_dir.display())
        });
        let ca = TestCa {
            ca_cert: dir.join(format!("{name}-ca.pem")),
            ca_key: dir.join(format!("{name}-ca.key")),
            dir,
            name: name.to_string(),
            config,
            signing: Mutex::new(()),
        };
        ca.make_key(&ca.ca_key);
        let csr = ca.request(&ca.ca_key, &format!("{name} test CA"));
        ca.sign(&csr, "ca_cert", &ca.ca_cert, true);
        ca
    }

    /// The CA's certificate (PEM): what a client or server trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.ca_cert.clone()
    }

    /// The CA's private key (PEM, PKCS#8), for a test that signs something itself.
    pub fn ca_key_file(&self) -> PathBuf {
        self.ca_key.clone()
    }

    /// A server certificate for `localhost`, `127.0.0.1` and `::1`, signed by this CA, in
    /// `<CA name>-<name>.pem` and `.key` (the common name is `localhost`: no verifier reads
    /// it).
    pub fn server_cert(&self, name: &str) -> CertPair {
        self.leaf(name, "localhost", "server_cert")
    }

    /// A client certificate with the common name `common_name` (what RabbitMQ's EXTERNAL
    /// mechanism and NATS's `verify_and_map` can map to a user), signed by this CA, in
    /// `<CA name>-<common_name>.pem` and `.key` (so the name is limited to what a file name
    /// can hold: letters, digits and `- _ . @`).
    pub fn client_cert(&self, common_name: &str) -> CertPair {
        self.leaf(common_name, common_name, "client_cert")
    }

    fn leaf(&self, file_name: &str, common_name: &str, extensions: &str) -> CertPair {
        check_file_name(file_name);
        assert_ne!(file_name, "ca", "\"ca\" would overwrite the CA's own files");
        // Prefixed with the CA's name: two CAs of one test may both make a "server".
        let stem = format!("{}-{file_name}", self.name);
        let pair = CertPair {
            cert_file: self.dir.join(format!("{stem}.pem")),
            key_file: self.dir.join(format!("{stem}.key")),
        };
        self.make_key(&pair.key_file);
        let csr = self.request(&pair.key_file, common_name);
        self.sign(&csr, extensions, &pair.cert_file, false);
        pair
    }

    /// An EC P-256 key in PKCS#8 PEM, written by us with mode 0600 from openssl's standard
    /// output: the key is never readable by others, not even for a moment.
    fn make_key(&self, path: &Path) {
        let pem = openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ]);
        let _ = std::fs::remove_file(path);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        file.write_all(&pem)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// A certificate request for `key` with the common name `common_name`; returns its path.
    fn request(&self, key: &Path, common_name: &str) -> PathBuf {
        let csr = self
            .config
            .with_file_name(format!("{}.csr", file_stem(key)));
        openssl_os(&[
            OsStr::new("req"),
            OsStr::new("-new"),
            OsStr::new("-config"),
            self.config.as_os_str(),
            OsStr::new("-key"),
            key.as_os_str(),
            OsStr::new("-subj"),
            OsStr::new(&format!("/CN={}", escape_subject(common_name))),
            OsStr::new("-out"),
            csr.as_os_str(),
        ]);
        csr
    }

    /// Signs `csr` with the extensions of section `extensions` into `out`, valid from a day ago
    /// for 30 days; `self_signed` for the CA's own certificate.
    fn sign(&self, csr: &Path, extensions: &str, out: &Path, self_signed: bool) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970");
        const DAY: u64 = 24 * 60 * 60;
        let start = asn1_time(now - Duration::from_secs(DAY));
        let end = asn1_time(now + Duration::from_secs(30 * DAY));
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("ca"),
            OsStr::new("-batch"),
            OsStr::new("-notext"),
            OsStr::new("-config"),
            self.config.as_os_str(),
            OsStr::new("-extensions"),
            OsStr::new(extensions),
            OsStr::new("-keyfile"),
            self.ca_key.as_os_str(),
            OsStr::new("-startdate"),
            OsStr::new(&start),
            OsStr::new("-enddate"),
            OsStr::new(&end),
            OsStr::new("-in"),
            csr.as_os_str(),
            OsStr::new("-out"),
            out.as_os_str(),
        ];
        if self_signed {
            args.push(OsStr::new("-selfsign"));
        } else {
            args.extend([OsStr::new("-cert"), self.ca_cert.as_os_str()]);
        }
        let _one_at_a_time = self.signing.lock().unwrap_or_else(|e| e.into_inner());
        // The database's paths in the configuration are relative: openssl runs in its folder.
        openssl_in(
            self.config.parent().expect("the config has a folder"),
            &args,
        );
    }

    /// The name given to [`TestCa::new`].
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Runs `openssl args` and returns its standard output; panics with its standard error.
fn openssl(args: &[&str]) -> Vec<u8> {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    openssl_os(&args)
}

fn openssl_os(args: &[&OsStr]) -> Vec<u8> {
    run_openssl(Command::new("openssl").args(args), args)
}

fn openssl_in(dir: &Path, args: &[&OsStr]) -> Vec<u8> {
    run_openssl(Command::new("openssl").args(args).current_dir(dir), args)
}

fn run_openssl(command: &mut Command, args: &[&OsStr]) -> Vec<u8> {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl (install it): {e}"));
    assert!(
        output.status.success(),
        "openssl {:?} failed ({}): {}",
        args,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Names become file names in the test's directory: no separators, nothing hidden.
fn check_file_name(name: &str) {
    assert!(
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c)),
        "{name:?} is not usable as a file name: use letters, digits and - _ . @"
    );
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `-subj` separates attributes with `/` and `+`; a backslash quotes them.
fn escape_subject(value: &str) -> String {
    value
        .chars()
        .flat_map(|c| {
            let quote = matches!(c, '/' | '+' | '\\' | '=' | ',');
            quote.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

/// `since_epoch` as an ASN.1 GeneralizedTime, `YYYYMMDDHHMMSSZ` (what `openssl ca -startdate`
/// accepts besides the two-digit-year UTCTime, which stops at 2049).
fn asn1_time(since_epoch: Duration) -> String {
    let seconds = since_epoch.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_generalized_time_in_utc() {
        assert_eq!(asn1_time(Duration::ZERO), "19700101000000Z");
        // 2000-02-29 (a leap day of a century year) 12:34:56.
        assert_eq!(
            asn1_time(Duration::from_secs(951_827_696)),
            "20000229123456Z"
        );
        // 2024-12-31 23:59:59.
        assert_eq!(
            asn1_time(Duration::from_secs(1_735_689_599)),
            "20241231235959Z"
        );
    }

    #[test]
    fn subject_separators_are_quoted() {
        assert_eq!(escape_subject("a/b+c"), "a\\/b\\+c");
        assert_eq!(escape_subject("alice"), "alice");
    }
}
