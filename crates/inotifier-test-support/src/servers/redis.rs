//! `redis-server`, standalone ([`RedisServer`]) or as a Sentinel topology for failover tests
//! ([`RedisSentinelSet`]), and `redis-cli` to ask it how it is doing.
//!
//! Paths given to Redis are absolute: `--dir` makes Redis change its working directory while
//! it reads its configuration, so a relative `--logfile` given after it would be looked up
//! from there and not found. A user made with [`RedisServer::acl_user`] gets `&*` (all Pub/Sub
//! channels) explicitly: Redis 7 gives new users `resetchannels` (`acl-pubsub-default`), so
//! `~* +@all` alone would fail every PUBLISH with NOPERM.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{ServerProcess, TlsServerOptions, create_dir, free_port, poll_until, quoted};
use crate::tls::CertPair;

/// How long Sentinel may take to fail over: 1 s to see the master down, an election, the
/// promotion, and every sentinel hearing of it; one failed election is retried only after
/// twice `failover-timeout` (10 s).
pub const FAILOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the sentinels may take to find the replica and each other (hello messages go
/// every 2 s).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// The TLS settings of a Redis server, kept so that a restart uses them again.
#[derive(Debug, Clone)]
struct Tls {
    ca_file: PathBuf,
    cert: CertPair,
    require_client_cert: bool,
}

/// A `redis-server` to start, configured with builder methods.
#[derive(Debug, Clone)]
#[must_use = "a RedisServer is only a configuration: call start()"]
pub struct RedisServer {
    dir: PathBuf,
    tls: Option<Tls>,
    extra: Vec<OsString>,
}

impl RedisServer {
    /// A server without TLS, on `--port P`, keeping its files in `dir` (created if missing).
    pub fn plain(dir: &Path) -> RedisServer {
        RedisServer {
            dir: absolute_dir(dir),
            tls: None,
            extra: Vec::new(),
        }
    }

    /// A server with TLS only (`--port 0 --tls-port P`), presenting `options.cert` and, when
    /// `options.require_client_cert`, refusing clients without a certificate of `options.ca`.
    pub fn tls(dir: &Path, options: &TlsServerOptions) -> RedisServer {
        RedisServer {
            dir: absolute_dir(dir),
            tls: Some(Tls {
                ca_file: options.ca.ca_file(),
                cert: options.cert.clone(),
                require_client_cert: options.require_client_cert,
            }),
            extra: Vec::new(),
        }
    }

    /// Clients must `AUTH password` (the `default` user's password).
    pub fn requirepass(self, password: &str) -> RedisServer {
        self.args(["--requirepass", password])
    }

    /// An ACL user `user` with `password`, allowed every key, channel and command
    /// (`~* &* +@all`).
    pub fn acl_user(self, user: &str, password: &str) -> RedisServer {
        let password = format!(">{password}");
        self.args(["--user", user, "on", &password, "~*", "&*", "+@all"])
    }

    /// The certificate Redis presents when it connects to another server itself (a replica
    /// to its master), and TLS for replication: what a replica of a server that requires
    /// client certificates needs (`extendedKeyUsage` `clientAuth`, which a server
    /// certificate lacks).
    pub fn tls_client_cert(self, client: &CertPair) -> RedisServer {
        self.args([
            OsString::from("--tls-replication"),
            "yes".into(),
            "--tls-client-cert-file".into(),
            client.cert_file.clone().into(),
            "--tls-client-key-file".into(),
            client.key_file.clone().into(),
        ])
    }

    /// More configuration, as `redis-server` command-line arguments (`--maxmemory`, `1mb`).
    pub fn args<I, S>(mut self, args: I) -> RedisServer
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.extra.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts the server on a free port; returns once it accepts connections.
    pub fn start(self) -> ServerProcess {
        let port = free_port();
        let log = self.dir.join("redis.log");
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |values: &[&dyn AsRef<std::ffi::OsStr>]| {
            args.extend(values.iter().map(|v| v.as_ref().to_os_string()));
        };
        match &self.tls {
            None => push(&[&"--port", &port.to_string()]),
            Some(tls) => push(&[
                &"--port",
                &"0",
                &"--tls-port",
                &port.to_string(),
                &"--tls-cert-file",
                &tls.cert.cert_file,
                &"--tls-key-file",
                &tls.cert.key_file,
                &"--tls-ca-cert-file",
                &tls.ca_file,
                &"--tls-auth-clients",
                &if tls.require_client_cert { "yes" } else { "no" },
            ]),
        }
        push(&[
            &"--bind",
            &"127.0.0.1",
            &"--daemonize",
            &"no",
            &"--save",
            &"",
            &"--appendonly",
            &"no",
            &"--dir",
            &self.dir,
            &"--logfile",
            &log,
        ]);
        args.extend(self.extra);
        ServerProcess::start("redis-server", args, port, &log)
    }
}

/// `dir`, created, as an absolute path (see the module's documentation).
fn absolute_dir(dir: &Path) -> PathBuf {
    create_dir(dir);
    std::fs::canonicalize(dir).unwrap_or_else(|e| panic!("cannot resolve {}: {e}", dir.display()))
}

/// `redis-cli` for the servers of one topology: the TLS options every call needs.
#[derive(Debug, Clone)]
struct Cli {
    // The CA to trust and the client certificate to present.
    tls: Option<(PathBuf, CertPair)>,
    /// The password of the sentinels (`requirepass` in their configuration), if they have one.
    sentinel_password: Option<String>,
}

impl Cli {
    /// The reply of `redis-cli -p port args` in raw form (one line per element of an array,
    /// nested arrays flattened), or None when redis-cli fails or Redis answers an error.
    fn run(&self, port: u16, args: &[&str]) -> Option<Vec<String>> {
        self.run_as(port, None, args)
    }

    /// [`Cli::run`] on a sentinel: with the sentinels' password.
    fn run_sentinel(&self, port: u16, args: &[&str]) -> Option<Vec<String>> {
        self.run_as(port, self.sentinel_password.as_deref(), args)
    }

    fn run_as(&self, port: u16, password: Option<&str>, args: &[&str]) -> Option<Vec<String>> {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(password) = password {
            // Through the environment: not on a command line others can read.
            command.env("REDISCLI_AUTH", password);
        }
        if let Some((ca, client)) = &self.tls {
            command
                .arg("--tls")
                .arg("--cacert")
                .arg(ca)
                .arg("--cert")
                .arg(&client.cert_file)
                .arg("--key")
                .arg(&client.key_file);
        }
        let output = command
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli (install it): {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        (output.status.success() && !stdout.starts_with("ERR") && !stdout.starts_with("NOAUTH"))
            .then(|| stdout.lines().map(str::to_string).collect())
    }
}

/// A Redis master, one replica and three sentinels monitoring them (quorum 2), all on
/// 127.0.0.1, for tests of failover. Every process is ended by its PID when dropped.
#[derive(Debug)]
pub struct RedisSentinelSet {
    service: String,
    cli: Cli,
    // Dropped first: sentinels that outlive the data nodes would only log their failure.
    sentinels: Vec<ServerProcess>,
    // The master as started, then its replica.
    data: Vec<ServerProcess>,
}

impl RedisSentinelSet {
    /// Starts the topology in plain text under `dir` (`master/`, `replica/`, `sentinel-N/`),
    /// the sentinels monitoring it as `service_name`; returns once every sentinel knows the
    /// master, the replica and the two other sentinels, so that a failover can be elected.
    pub fn start(dir: &Path, service_name: &str) -> RedisSentinelSet {
        launch(dir, service_name, None, None)
    }

    /// [`RedisSentinelSet::start`] with sentinels that require `password` (`requirepass`),
    /// of clients and of each other (`sentinel sentinel-pass`); the data nodes require none.
    pub fn start_with_sentinel_password(
        dir: &Path,
        service_name: &str,
        password: &str,
    ) -> RedisSentinelSet {
        launch(dir, service_name, None, Some(password))
    }

    /// The same over TLS: every data node and sentinel listens with TLS only (with
    /// `options.cert`), replicates and talks to the others with TLS, presenting a client
    /// certificate of `options.ca` (made here, `<service_name>-redis-client.pem`).
    pub fn start_tls(
        dir: &Path,
        service_name: &str,
        options: &TlsServerOptions,
    ) -> RedisSentinelSet {
        launch(dir, service_name, Some(options), None)
    }

    /// The name the sentinels monitor the master as.
    pub fn service_name(&self) -> &str {
        &self.service
    }

    /// `127.0.0.1:PORT` of each sentinel.
    pub fn sentinel_addresses(&self) -> Vec<String> {
        self.sentinels.iter().map(ServerProcess::address).collect()
    }

    /// The port of the master as started (which, after [`kill_master`](Self::kill_master),
    /// is dead or a replica).
    pub fn master_port(&self) -> u16 {
        self.data[0].port()
    }

    /// The port of the replica as started.
    pub fn replica_port(&self) -> u16 {
        self.data[1].port()
    }

    /// The master's port as the first sentinel that answers reports it
    /// (`SENTINEL get-master-addr-by-name`).
    pub fn current_master_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|sentinel| self.reported_master(sentinel.port()))
            .unwrap_or_else(|| panic!("no sentinel reports a master:\n{}", self.logs()))
    }

    /// Kills the current master with SIGKILL and waits until every sentinel reports another
    /// one (a replica they promoted); returns its port.
    pub fn kill_master(&mut self) -> u16 {
        let old = self.current_master_port();
        let master = self
            .data
            .iter_mut()
            .find(|server| server.port() == old)
            .unwrap_or_else(|| panic!("the sentinels report a master on {old}, not one of ours"));
        master.kill();
        let ports: Vec<u16> = self.sentinels.iter().map(ServerProcess::port).collect();
        poll_until(FAILOVER_TIMEOUT, || {
            let reported: Option<Vec<u16>> = ports
                .iter()
                .map(|port| self.reported_master(*port))
                .collect();
            let reported = reported?;
            (reported
                .iter()
                .all(|port| *port != old && *port == reported[0]))
            .then_some(reported[0])
        })
        .unwrap_or_else(|| {
            panic!(
                "the sentinels did not all report a new master within {FAILOVER_TIMEOUT:?} after \
                 the master on {old} was killed:\n{}",
                self.logs()
            )
        })
    }

    /// The master and the replica, as started (to restart one, say).
    pub fn data_nodes(&mut self) -> &mut [ServerProcess] {
        &mut self.data
    }

    /// The three sentinels.
    pub fn sentinels(&mut self) -> &mut [ServerProcess] {
        &mut self.sentinels
    }

    /// The PIDs of the processes that run.
    pub fn pids(&self) -> Vec<u32> {
        self.data
            .iter()
            .chain(&self.sentinels)
            .filter_map(ServerProcess::pid)
            .collect()
    }

    /// The logs of every process, for a failure's message.
    pub fn logs(&self) -> String {
        self.data
            .iter()
            .chain(&self.sentinels)
            .map(|server| format!("=== {} ===\n{}", server.log_path().display(), server.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn reported_master(&self, sentinel_port: u16) -> Option<u16> {
        let reply = self.cli.run_sentinel(
            sentinel_port,
            &["SENTINEL", "get-master-addr-by-name", &self.service],
        )?;
        match reply.as_slice() {
            [_host, port] => port.parse().ok(),
            _ => None,
        }
    }
}

fn launch(
    dir: &Path,
    service: &str,
    tls: Option<&TlsServerOptions>,
    sentinel_password: Option<&str>,
) -> RedisSentinelSet {
    assert!(
        !service.is_empty()
            && service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
        "{service:?}: a Sentinel service name of letters, digits and - _ ."
    );
    let dir = absolute_dir(dir);
    let client = tls.map(|options| options.ca.client_cert(&format!("{service}-redis-client")));
    let cli = Cli {
        tls: tls.zip(client.clone()).map(|(o, c)| (o.ca.ca_file(), c)),
        sentinel_password: sentinel_password.map(str::to_string),
    };
    // A master waits 5 s (`repl-diskless-sync-delay`) for more replicas before it sends its
    // data to the first one: no need here, where there is only one.
    let node = |name: &str| {
        match (tls, &client) {
            (Some(options), Some(client)) => {
                RedisServer::tls(&dir.join(name), options).tls_client_cert(client)
            }
            _ => RedisServer::plain(&dir.join(name)),
        }
        .args(["--repl-diskless-sync-delay", "0"])
        // A node restarted without its data may be promoted by a second failover (a
        // sentinel under load misjudges the new master as down) and empty its replicas: every
        // node keeps what it confirmed, as Redis's replication guide asks of nodes that restart.
        .args(["--appendonly", "yes", "--appendfsync", "always"])
    };
    let master = node("master").start();
    let replica = node("replica")
        .args(["--replicaof", "127.0.0.1", &master.port().to_string()])
        .start();
    let mut set = RedisSentinelSet {
        service: service.to_string(),
        cli,
        sentinels: Vec::new(),
        data: vec![master, replica],
    };
    // The sentinels find replicas in the master's INFO, which they read at once and then only
    // every 10 s: the replica is to be in it when they start.
    let replica_port = set.replica_port();
    let linked = poll_until(DISCOVERY_TIMEOUT, || {
        let info = set.cli.run(replica_port, &["INFO", "replication"])?;
        info.iter()
            .any(|line| line.trim() == "master_link_status:up")
            .then_some(())
    });
    if linked.is_none() {
        panic!("the replica did not sync with the master:\n{}", set.logs());
    }
    for index in 0..3 {
        let sentinel_dir = dir.join(format!("sentinel-{index}"));
        create_dir(&sentinel_dir);
        let port = free_port();
        let config = sentinel_dir.join("sentinel.conf");
        let log = sentinel_dir.join("sentinel.log");
        std::fs::write(
            &config,
            sentinel_config(
                service,
                port,
                set.master_port(),
                &sentinel_dir,
                &log,
                tls,
                client.as_ref(),
            ) + &sentinel_password
                .map(|password| {
                    format!("requirepass \"{password}\"\nsentinel sentinel-pass \"{password}\"\n")
                })
                .unwrap_or_default(),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let args = vec![config.into_os_string(), "--sentinel".into()];
        set.sentinels
            .push(ServerProcess::start("redis-server", args, port, &log));
    }
    let ports: Vec<u16> = set.sentinels.iter().map(ServerProcess::port).collect();
    let replica = replica_port.to_string();
    let ready = poll_until(DISCOVERY_TIMEOUT, || {
        ports
            .iter()
            .all(|port| {
                let knows_replica = set
                    .cli
                    .run_sentinel(*port, &["SENTINEL", "replicas", service])
                    .is_some_and(|reply| {
                        reply.windows(2).any(|w| w[0] == "port" && w[1] == replica)
                    });
                let others = set
                    .cli
                    .run_sentinel(*port, &["SENTINEL", "sentinels", service])
                    .map_or(0, |reply| {
                        reply.iter().filter(|line| *line == "runid").count()
                    });
                knows_replica && others == 2
            })
            .then_some(())
    });
    if ready.is_none() {
        panic!(
            "the sentinels did not find the replica and each other within {DISCOVERY_TIMEOUT:?}:\n{}",
            set.logs()
        );
    }
    set
}

/// A sentinel's configuration file, which it rewrites (it records what it learns there).
fn sentinel_config(
    service: &str,
    port: u16,
    master_port: u16,
    dir: &Path,
    log: &Path,
    tls: Option<&TlsServerOptions>,
    client: Option<&CertPair>,
) -> String {
    let mut config = String::new();
    match (tls, client) {
        (Some(options), Some(client)) => {
            config.push_str(&format!(
                "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                 tls-ca-cert-file {}\ntls-client-cert-file {}\ntls-client-key-file {}\n\
                 tls-auth-clients {}\ntls-replication yes\n",
                quoted(&options.cert.cert_file),
                quoted(&options.cert.key_file),
                quoted(&options.ca.ca_file()),
                quoted(&client.cert_file),
                quoted(&client.key_file),
                if options.require_client_cert {
                    "yes"
                } else {
                    "no"
                },
            ));
        }
        _ => config.push_str(&format!("port {port}\n")),
    }
    config.push_str(&format!(
        "bind 127.0.0.1\ndaemonize no\ndir {}\nlogfile {}\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {service} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {service} 1000\n\
         sentinel failover-timeout {service} 5000\n\
         sentinel parallel-syncs {service} 1\n",
        quoted(dir),
        quoted(log),
    ));
    config
}
