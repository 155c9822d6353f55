//! `inotifier doctor -c FILE` run as a real process against real directories, journals, inotify
//! limits and broker servers: each problem the issue lists is found, and a sound config has
//! none. Tests that lower a limit in `/proc/sys/fs/inotify` hold the machine-wide exclusive
//! test lock and change it through a [`Sysctl`] guard, which restores it when dropped (on
//! panic too); the others hold the shared lock, so that nobody lowers a limit under them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Finished, run_inotifier};
use inotifier_journal::{Journal, JournalOptions};
use inotifier_test_support::hook_server::HookServer;
use inotifier_test_support::privileges::root_available;
use inotifier_test_support::servers::{
    NatsAuth, NatsOptions, NatsServer, RedisServer, TlsServerOptions, free_port,
};
use inotifier_test_support::tls::TestCa;
use inotifier_test_support::{Sysctl, inotify_exclusive, inotify_shared, inotify_usage};

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("inotifier-doctor-")
            .tempdir()
            .expect("temporary directory");
        std::fs::create_dir(dir.path().join("up")).unwrap();
        Setup { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `config` as `inotifier.toml` and runs `inotifier doctor -c` on it.
    fn doctor(&self, config: &str) -> Finished {
        let file = self.path("inotifier.toml");
        std::fs::write(&file, config).unwrap();
        run_inotifier(&["doctor", "-c", s(&file), "--timeout", "5"])
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// `path` as a TOML string.
fn toml(path: &Path) -> String {
    format!("{:?}", s(path))
}

/// The lines of `level` about `check`.
fn lines<'a>(finished: &'a Finished, level: &str, check: &str) -> Vec<&'a str> {
    let prefix = format!("{level:<8} {check}: ");
    finished
        .stdout
        .lines()
        .filter(|line| line.starts_with(&prefix))
        .collect()
}

fn assert_exit(finished: &Finished, code: i32) {
    assert_eq!(
        finished.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        finished.stdout,
        finished.stderr
    );
}

fn log_watch(path: &Path, recursive: bool) -> String {
    format!(
        "[[watch]]\npath = {}\nevents = \"IN_CLOSE_WRITE\"\nprocessor = \"log\"\nrecursive = {recursive}\n",
        toml(path)
    )
}

#[test]
fn a_sound_config_has_no_problem_and_every_check_says_ok() {
    let _shared = inotify_shared();
    let setup = Setup::new();
    for sub in ["a/b", "c"] {
        std::fs::create_dir_all(setup.path("up").join(sub)).unwrap();
    }
    // A journal the daemon made before: opened read-only and checked.
    let journal = setup.path("inotifier.journal");
    drop(Journal::open(&JournalOptions::new(&journal)).unwrap());
    let before = std::fs::read(&journal).unwrap();
    let finished = setup.doctor(&log_watch(&setup.path("up"), true));
    assert_exit(&finished, 0);
    assert!(
        !finished
            .stdout
            .lines()
            .any(|line| line.starts_with("problem ")),
        "{}",
        finished.stdout
    );
    let ok = |check| lines(&finished, "ok", check);
    assert_eq!(ok("path").len(), 1, "{}", finished.stdout);
    let watches = ok("watches");
    assert!(
        watches.len() == 1 && watches[0].contains(": 4 watches needed"),
        "the root and its three directories: {}",
        finished.stdout
    );
    assert_eq!(ok("queue").len(), 1, "{}", finished.stdout);
    assert!(
        ok("filesystem")
            .iter()
            .any(|line| line.contains("backend inotify")),
        "{}",
        finished.stdout
    );
    assert!(
        ok("journal")
            .iter()
            .any(|line| line.contains("passes the integrity check")),
        "{}",
        finished.stdout
    );
    assert!(
        ok("journal").iter().any(|line| line.contains("free on")),
        "{}",
        finished.stdout
    );
    assert_eq!(ok("pid file").len(), 1, "{}", finished.stdout);
    assert_eq!(ok("processor").len(), 1, "{}", finished.stdout);
    assert!(
        finished
            .stdout
            .lines()
            .last()
            .unwrap()
            .ends_with(", 0 problems"),
        "{}",
        finished.stdout
    );
    assert_eq!(std::fs::read(&journal).unwrap(), before, "nothing written");
    assert!(!setup.path("inotifier.pid").exists(), "nothing created");
}

#[test]
fn a_missing_path_is_a_problem() {
    let _shared = inotify_shared();
    let setup = Setup::new();
    let missing = setup.path("gone");
    let finished =
        setup.doctor(&(log_watch(&setup.path("up"), false) + &log_watch(&missing, true)));
    assert_exit(&finished, 1);
    let problems = lines(&finished, "problem", "path");
    assert_eq!(problems.len(), 1, "{}", finished.stdout);
    assert!(
        problems[0].contains(&format!("{} does not exist", missing.display()))
            && problems[0].contains("(hint: create it"),
        "{}",
        problems[0]
    );
    assert_eq!(lines(&finished, "ok", "path").len(), 1);
}

#[test]
fn a_lowered_max_user_watches_is_a_problem_with_the_sysctl_line() {
    if !root_available(
        "a_lowered_max_user_watches_is_a_problem_with_the_sysctl_line",
        "lowers fs.inotify.max_user_watches",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    let setup = Setup::new();
    for index in 0..60 {
        std::fs::create_dir_all(setup.path("up").join(format!("d{index}/e"))).unwrap();
    }
    let config = log_watch(&setup.path("up"), true);
    {
        let (used, _) = inotify_usage();
        let limit = Sysctl::set("max_user_watches", used + 50, &exclusive);
        let finished = setup.doctor(&config);
        assert_exit(&finished, 1);
        let problems = lines(&finished, "problem", "watches");
        assert_eq!(problems.len(), 1, "{}", finished.stdout);
        assert!(
            problems[0].contains(": 121 watches needed"),
            "{}",
            problems[0]
        );
        assert!(
            problems[0].contains("hint: sysctl fs.inotify.max_user_watches="),
            "{}",
            problems[0]
        );
        // The line's value is enough for the tree.
        let suggested: u64 = problems[0]
            .split("max_user_watches=")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a number after max_user_watches=");
        assert!(suggested >= used + 121, "{suggested}");
        drop(limit);
    }
    // Restored: the same tree fits again.
    let finished = setup.doctor(&config);
    assert_exit(&finished, 0);
    assert_eq!(
        lines(&finished, "ok", "watches").len(),
        1,
        "{}",
        finished.stdout
    );
}

#[test]
fn a_short_kernel_queue_is_a_warning() {
    if !root_available(
        "a_short_kernel_queue_is_a_warning",
        "lowers fs.inotify.max_queued_events",
    ) {
        return;
    }
    let exclusive = inotify_exclusive();
    let setup = Setup::new();
    let _queue = Sysctl::set("max_queued_events", 1000, &exclusive);
    let finished = setup.doctor(&log_watch(&setup.path("up"), false));
    assert_exit(&finished, 0);
    let warnings = lines(&finished, "warning", "queue");
    assert!(
        warnings.len() == 1
            && warnings[0].contains("max_queued_events 1000")
            && warnings[0].contains("hint: sysctl fs.inotify.max_queued_events=16384"),
        "{}",
        finished.stdout
    );
}

#[test]
fn an_unreachable_broker_is_a_problem_and_a_reachable_one_is_not() {
    let _shared = inotify_shared();
    let setup = Setup::new();
    let closed = free_port();
    let running = RedisServer::plain(&setup.path("redis")).start();
    let config = format!(
        "{}options = {{ url = \"redis://127.0.0.1:{closed}/0\" }}\n\n[[watch]]\nname = \"b\"\npath = {}\nevents = \"IN_CLOSE_WRITE\"\nprocessor = \"redis_stream\"\noptions = {{ url = \"redis://127.0.0.1:{}/0\" }}\n",
        log_watch(&setup.path("up"), false).replace("\"log\"", "\"redis_stream\""),
        toml(&setup.path("up")),
        running.port()
    );
    let finished = setup.doctor(&config);
    assert_exit(&finished, 1);
    let problems = lines(&finished, "problem", "reach");
    assert_eq!(problems.len(), 1, "{}", finished.stdout);
    assert!(
        problems[0].contains(&format!("127.0.0.1:{closed}"))
            && problems[0].contains("Connection refused")
            && problems[0].contains("hint: start the server"),
        "{}",
        problems[0]
    );
    let reached = lines(&finished, "ok", "reach");
    assert!(
        reached.len() == 1 && reached[0].contains(&format!("127.0.0.1:{}", running.port())),
        "{}",
        finished.stdout
    );
}

#[test]
fn tls_is_verified_with_the_processors_certificates() {
    let _shared = inotify_shared();
    let setup = Setup::new();
    let ca = TestCa::new(setup.dir.path(), "right");
    let stranger = TestCa::new(setup.dir.path(), "wrong");
    let cert = ca.server_cert("redis");
    let plain_tls = RedisServer::tls(
        &setup.path("redis"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: false,
        },
    )
    .start();
    let mutual = RedisServer::tls(
        &setup.path("redis-mutual"),
        &TlsServerOptions {
            ca: &ca,
            cert: &cert,
            require_client_cert: true,
        },
    )
    .start();
    let watch = |name: &str, port: u16, ca_file: &Path| {
        format!(
            "[[watch]]\nname = \"{name}\"\npath = {}\nevents = \"IN_CLOSE_WRITE\"\nprocessor = \"redis_stream\"\noptions = {{ url = \"rediss://127.0.0.1:{port}/0\", ca_file = {} }}\n\n",
            toml(&setup.path("up")),
            toml(ca_file)
        )
    };
    let good = setup.doctor(&watch("good", plain_tls.port(), &ca.ca_file()));
    assert_exit(&good, 0);
    let reached = lines(&good, "ok", "reach");
    assert!(
        reached.len() == 1 && reached[0].contains("TLS handshake made, certificate verified"),
        "{}",
        good.stdout
    );
    let wrong_ca = setup.doctor(&watch("wrong", plain_tls.port(), &stranger.ca_file()));
    assert_exit(&wrong_ca, 1);
    let problems = lines(&wrong_ca, "problem", "reach");
    assert!(
        problems.len() == 1
            && problems[0].contains("UnknownIssuer")
            && problems[0].contains("set the option ca_file"),
        "{}",
        wrong_ca.stdout
    );
    let no_client_cert = setup.doctor(&watch("mutual", mutual.port(), &ca.ca_file()));
    assert_exit(&no_client_cert, 1);
    let problems = lines(&no_client_cert, "problem", "reach");
    assert!(
        problems.len() == 1 && problems[0].contains("cert_file and key_file"),
        "{}",
        no_client_cert.stdout
    );
}

#[test]
fn a_damaged_journal_and_an_unsafe_pid_file_directory_are_problems() {
    let _shared = inotify_shared();
    let setup = Setup::new();
    let journal = setup.path("inotifier.journal");
    drop(Journal::open(&JournalOptions::new(&journal)).unwrap());
    let page = inotifier_test_support::damage::root_page(&journal, "deliveries");
    inotifier_test_support::damage::damage_page(&journal, page);
    let shared_dir = setup.path("shared");
    std::fs::create_dir(&shared_dir).unwrap();
    std::fs::set_permissions(&shared_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = format!(
        "[daemon]\npid_file = {}\n\n[journal]\npath = {}\n\n{}",
        toml(&shared_dir.join("inotifier.pid")),
        toml(&journal),
        log_watch(&setup.path("up"), false)
    );
    let finished = setup.doctor(&config);
    assert_exit(&finished, 1);
    let journal_problems = lines(&finished, "problem", "journal");
    assert!(
        journal_problems.len() == 1 && journal_problems[0].contains("inotifier journal recover"),
        "{}",
        finished.stdout
    );
    let pid_problems = lines(&finished, "problem", "pid file");
    assert!(
        pid_problems.len() == 1 && pid_problems[0].contains("writable by other users"),
        "{}",
        finished.stdout
    );
}

#[test]
fn a_pseudo_filesystem_is_a_warning_and_an_invalid_config_a_problem() {
    let _shared = inotify_shared();
    let setup = Setup::new();
    let finished = setup.doctor(&log_watch(Path::new("/proc"), false));
    assert_exit(&finished, 0);
    let warnings = lines(&finished, "warning", "filesystem");
    assert!(
        warnings.len() == 1 && warnings[0].contains("/proc is on proc"),
        "{}",
        finished.stdout
    );
    let invalid =
        setup.doctor("[[watch]]\npath = \"up\"\nevents = \"IN_NOPE\"\nprocessor = \"log\"\n");
    assert_exit(&invalid, 1);
    let problems = lines(&invalid, "problem", "config");
    assert!(
        problems.len() == 1 && problems[0].contains("inotifier.toml:3:"),
        "{}",
        invalid.stdout
    );
}

#[test]
fn nats_is_upgraded_to_tls_when_its_info_asks() {
    let _shared = inotify_shared();
    let setup = Setup::new();
    let ca = TestCa::new(setup.dir.path(), "nats-ca");
    let cert = ca.server_cert("nats");
    let server = NatsServer::start(
        &setup.path("nats"),
        &NatsOptions {
            tls: Some(TlsServerOptions {
                ca: &ca,
                cert: &cert,
                require_client_cert: false,
            }),
            jetstream: false,
            authorization: NatsAuth::None,
        },
    );
    let watch = |options: String| {
        format!(
            "[[watch]]\npath = {}\nevents = \"IN_CLOSE_WRITE\"\nprocessor = \"jetstream\"\noptions = {{ {options} }}\n",
            toml(&setup.path("up"))
        )
    };
    let trusted = setup.doctor(&watch(format!(
        "url = \"tls://127.0.0.1:{}\", ca_file = {}",
        server.port(),
        toml(&ca.ca_file())
    )));
    assert_exit(&trusted, 0);
    assert!(
        lines(&trusted, "ok", "reach")
            .iter()
            .any(|line| line.contains("TLS handshake made")),
        "{}",
        trusted.stdout
    );
    // A plain URL, but the server's INFO says tls_required: the Mozilla roots do not know the
    // test CA, as the processor's connection would find.
    let untrusted = setup.doctor(&watch(format!(
        "url = \"nats://127.0.0.1:{}\"",
        server.port()
    )));
    assert_exit(&untrusted, 1);
    let problems = lines(&untrusted, "problem", "reach");
    assert!(
        problems.len() == 1 && problems[0].contains("UnknownIssuer"),
        "{}",
        untrusted.stdout
    );
}

#[test]
fn an_https_webhook_is_reached_with_its_ca_file_and_sent_nothing() {
    let _shared = inotify_shared();
    let setup = Setup::new();
    let ca = TestCa::new(setup.dir.path(), "hooks");
    let cert = ca.server_cert("hook");
    let log = setup.path("requests.jsonl");
    let server = HookServer::start(
        &log,
        &[
            "--tls-cert",
            s(&cert.cert_file),
            "--tls-key",
            s(&cert.key_file),
        ],
        &[],
    );
    let watch = |extra: String| {
        format!(
            "[[watch]]\npath = {}\nevents = \"IN_CLOSE_WRITE\"\nprocessor = \"webhook\"\noptions = {{ url = \"https://127.0.0.1:{}/hook\"{extra} }}\n",
            toml(&setup.path("up")),
            server.port
        )
    };
    let trusted = setup.doctor(&watch(format!(", ca_file = {}", toml(&ca.ca_file()))));
    assert_exit(&trusted, 0);
    assert!(
        lines(&trusted, "ok", "reach")
            .iter()
            .any(|line| line.contains("TLS handshake made, certificate verified")),
        "{}",
        trusted.stdout
    );
    // The Mozilla roots, as the webhook's own agent has without ca_file.
    let untrusted = setup.doctor(&watch(String::new()));
    assert_exit(&untrusted, 1);
    let problems = lines(&untrusted, "problem", "reach");
    assert!(
        problems.len() == 1 && problems[0].contains("UnknownIssuer"),
        "{}",
        untrusted.stdout
    );
    assert_eq!(
        server.request_lines(),
        Vec::<String>::new(),
        "no request sent"
    );
}

#[test]
fn an_amqp_broker_and_redis_sentinels_are_reached_as_the_processors_would_reach_them() {
    let _shared = inotify_shared();
    if !inotifier_test_support::services::RABBITMQ.available(
        "an_amqp_broker_and_redis_sentinels_are_reached_as_the_processors_would_reach_them",
    ) {
        return;
    }
    let setup = Setup::new();
    let closed = free_port();
    let sentinels = inotifier_test_support::servers::RedisSentinelSet::start(
        &setup.path("sentinels"),
        "inotifier",
    );
    let sentinel_hosts = sentinels.sentinel_addresses().join(",");
    let watch = |name: &str, options: &str| {
        format!(
            "[[watch]]\nname = \"{name}\"\npath = {}\nevents = \"IN_CLOSE_WRITE\"\nprocessor = \"celery\"\noptions = {{ task = \"t\", {options} }}\n\n",
            toml(&setup.path("up"))
        )
    };
    let config = [
        watch("rabbit", "broker_url = \"amqp://guest@127.0.0.1:5672//\""),
        watch(
            "gone",
            &format!("broker_url = \"amqp://guest@127.0.0.1:{closed}//\""),
        ),
        watch(
            "sentinel",
            &format!("broker_url = \"redis+sentinel://{sentinel_hosts}/inotifier/0\""),
        ),
    ]
    .concat();
    let finished = setup.doctor(&config);
    assert_exit(&finished, 1);
    let reached = lines(&finished, "ok", "reach");
    assert!(
        reached.iter().any(|line| line.contains("127.0.0.1:5672")),
        "{}",
        finished.stdout
    );
    for sentinel in sentinels.sentinel_addresses() {
        assert!(
            reached.iter().any(|line| line.contains(sentinel.as_str())),
            "{sentinel}: {}",
            finished.stdout
        );
    }
    let problems = lines(&finished, "problem", "reach");
    assert_eq!(problems.len(), 1, "{}", finished.stdout);
    assert!(
        problems[0].contains(&format!("127.0.0.1:{closed}")),
        "{}",
        problems[0]
    );
}

#[test]
fn a_fuse_mount_is_polled_and_a_warning_only_with_backend_inotify() {
    const TEST: &str = "a_fuse_mount_is_polled_and_a_warning_only_with_backend_inotify";
    let _shared = inotify_shared();
    let setup = Setup::new();
    let (source, point) = (setup.path("source"), setup.path("fuse"));
    std::fs::create_dir(&source).unwrap();
    std::fs::create_dir(&point).unwrap();
    let Some(_mounted) = inotifier_test_support::fuse::BindfsMount::mount(TEST, &source, &point)
    else {
        return;
    };
    let on_fuse = format!("{} is on fuse", point.display());
    // backend = "auto" (the default) polls there.
    let finished = setup.doctor(&log_watch(&point, false));
    assert_exit(&finished, 0);
    let polled = lines(&finished, "ok", "filesystem");
    assert!(
        polled.len() == 1 && polled[0].contains(&format!("{on_fuse}: backend poll, every 1s")),
        "{}",
        finished.stdout
    );
    assert!(
        lines(&finished, "warning", "filesystem").is_empty(),
        "{}",
        finished.stdout
    );
    // backend = "inotify" there misses other hosts' changes: a warning naming the fix.
    let finished = setup.doctor(&(log_watch(&point, false) + "backend = \"inotify\"\n"));
    assert_exit(&finished, 0);
    let warnings = lines(&finished, "warning", "filesystem");
    assert!(
        warnings.len() == 1
            && warnings[0].contains(&on_fuse)
            && warnings[0].contains("backend inotify, which misses changes made by other hosts"),
        "{}",
        finished.stdout
    );
    assert!(
        finished.stdout.contains("set backend = \"auto\""),
        "{}",
        finished.stdout
    );
}
