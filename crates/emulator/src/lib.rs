//! The local AWS emulator: moto in server mode, installed into a virtualenv under the
//! cargo target directory and run on 127.0.0.1.
//!
//! Used by `cargo xtask emulator`, by `--emulator`, and by the integration tests, which
//! start it themselves when it is not running. Its pid and port are recorded in
//! `target/emulator/state.json`, so every process finds the same server.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The pinned moto version, installed from this file.
pub const REQUIREMENTS: &str = include_str!("../requirements.txt");

/// The strict launcher: moto with the AWS rules and time this stack meets (see the file).
pub const STRICT_LAUNCHER: &str = include_str!("../strict_moto.py");

/// The data plane the strict launcher starts: real servers behind the control plane.
pub const DATA_PLANE: &str = include_str!("../dataplane.py");

/// The programs that stand, in a Run Command sandbox, for what exists only on an EC2
/// instance: (path under the launcher's directory, text).
pub const STAND_INS: [(&str, &str); 3] = [
    ("stand-ins/instance/docker", include_str!("../stand-ins/instance/docker")),
    ("stand-ins/instance/curl", include_str!("../stand-ins/instance/curl")),
    ("stand-ins/container/apt-get", include_str!("../stand-ins/container/apt-get")),
];

/// The Debian packages of the data plane's servers, with a command of each that answers
/// `-V`: what `cargo xtask ci` and `--emulator` install when missing.
pub const DATA_PLANE_PACKAGES: [(&str, &str); 3] =
    [("nginx", "nginx-light"), ("mariadbd", "mariadb-server-core"), ("mariadb", "mariadb-client-core")];

/// AWS's typical durations (seconds) that the strict emulator's clock follows: the same
/// file the plans' predictions read (`three_tier_core::graph::Durations`).
pub const DURATIONS: &str = include_str!("../../three-tier-core/durations.json");

/// How the emulator runs: strict (the default) or plain moto, for comparison
/// (`THREE_TIER_EMULATOR=plain`); with strict, `THREE_TIER_TIME_SCALE` scales AWS's
/// typical durations (default 0.01).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mode {
    pub strict: bool,
    pub time_scale: String,
    /// A fingerprint of the launcher, so an edited launcher restarts the server.
    pub launcher: u64,
}

impl Mode {
    pub fn from_env() -> Mode {
        let strict = std::env::var("THREE_TIER_EMULATOR").map_or(true, |v| v != "plain");
        let time_scale = std::env::var("THREE_TIER_TIME_SCALE").unwrap_or_else(|_| "0.01".into());
        let launcher = STRICT_LAUNCHER
            .bytes()
            .chain(DURATIONS.bytes())
            .chain(DATA_PLANE.bytes())
            .chain(STAND_INS.iter().flat_map(|(_, text)| text.bytes()))
            .fold(0xcbf29ce484222325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
        Mode { strict, time_scale, launcher }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action}: {source}\n  fix: {fix}")]
    Io {
        action: String,
        fix: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}); its output is in {}\n  fix: {fix}", log.display())]
    Failed { what: String, status: String, log: PathBuf, fix: &'static str },
    #[error("the emulator did not answer within {}s; its log is {}:\n{tail}\n  fix: check the log; `cargo xtask emulator start` tries again (delete {} to reinstall it)", after.as_secs(), log.display(), log.parent().map(|p| p.join("venv").display().to_string()).unwrap_or_default())]
    NotReady { after: Duration, log: PathBuf, tail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running emulator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub pid: u32,
    pub port: u16,
    /// Absent in the state of an older version: such a server is replaced.
    #[serde(default)]
    pub mode: Mode,
}

impl Running {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where the request log ends now: a mark for [`Running::requests_since`].
    pub fn request_mark(&self) -> Result<usize> {
        self.read_log("/three-tier/requests/count")
    }

    /// The requests to `region` since `mark`: a test's own, though every test shares the
    /// emulator.
    pub fn requests_since(&self, mark: usize, region: &str) -> Result<Vec<LoggedRequest>> {
        self.read_log(&format!("/three-tier/requests?since={mark}&region={region}"))
    }

    fn read_log<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let body = http(self.port, "GET", path)?;
        serde_json::from_str(&body).map_err(|err| Error::Io {
            action: "read the emulator's request log".into(),
            fix: "is the emulator strict? (unset THREE_TIER_EMULATOR)",
            source: std::io::Error::other(err),
        })
    }

    /// Sets a region's fault injection (see `strict_moto.py`): a JSON object such as
    /// `{"region": "us-east-1", "throttle_every": 3}`; `{"region": "us-east-1"}` alone
    /// turns that region's off, `{}` every region's.
    pub fn set_faults(&self, faults: &serde_json::Value) -> Result<()> {
        http_with_body(self.port, "POST", "/three-tier/faults", &faults.to_string()).map(|_| ())
    }

    /// Raises a quota of a region, as Service Quotas then reports it (its applied value).
    pub fn raise_quota(&self, region: &str, service_code: &str, quota_code: &str, value: f64) -> Result<()> {
        let quota = serde_json::json!({"region": region, "service_code": service_code, "quota_code": quota_code, "value": value});
        http_with_body(self.port, "POST", "/three-tier/quota", &quota.to_string()).map(|_| ())
    }

    /// Sets a region's clock: AWS's time there, which the strict emulator's states follow.
    pub fn set_clock(&self, region: &str, change: Clock) -> Result<()> {
        let change = match change {
            Clock::Freeze => serde_json::json!({"region": region, "freeze": true}),
            Clock::Advance(seconds) => serde_json::json!({"region": region, "advance": seconds.as_secs_f64()}),
            Clock::Rate(rate) => serde_json::json!({"region": region, "rate": rate}),
        };
        http_with_body(self.port, "POST", "/three-tier/clock", &change.to_string()).map(|_| ())
    }
}

/// A change to a region's clock in the strict emulator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clock {
    /// Stops it: every state holds until it is advanced or runs again.
    Freeze,
    /// Moves it on by this much AWS time (the emulator's time scale applies).
    Advance(Duration),
    /// Runs it, from where it stands, at this multiple of real time: 1 is real time
    /// again, 10 ten times faster.
    Rate(f64),
}

/// What the strict emulator's data plane runs: its servers and the names that resolve
/// to them (GET /three-tier/dataplane).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataPlane {
    /// False when the machine lacks a package of its servers ([`DataPlane::missing`]).
    pub enabled: bool,
    /// The Debian packages to install for it.
    pub missing: Vec<String>,
    pub servers: Vec<Server>,
    /// AWS names (the ALB's DNS name, RDS endpoints) and the local address of each.
    pub names: std::collections::BTreeMap<String, String>,
}

/// A server of the data plane: `nginx` (an instance's app), `mariadb` (an RDS instance)
/// or `listener` (an ALB listener, a thread of the emulator's own, without a pid).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Server {
    pub kind: String,
    pub region: String,
    pub resource: String,
    pub address: String,
    pub port: u16,
    pub pid: Option<u32>,
}

/// The data plane of the emulator at `endpoint` (an `AWS_ENDPOINT_URL`), when it is the
/// strict emulator on this machine; `None` for any other endpoint (plain moto, LocalStack).
pub fn data_plane(endpoint: &str) -> Option<DataPlane> {
    let body = http(local_port(endpoint)?, "GET", "/three-tier/dataplane").ok()?;
    serde_json::from_str(&body).ok()
}

/// Where `host`:`port` (an AWS name the data plane serves) is on this machine: the
/// emulator's name map, which stands for AWS's DNS. `None` while no server has the name.
pub fn resolve(endpoint: &str, host: &str, port: u16) -> Option<SocketAddr> {
    #[derive(Deserialize)]
    struct Found {
        address: Ipv4Addr,
        port: u16,
    }
    let query = format!("/three-tier/dataplane/resolve?host={host}&port={port}");
    let found: Found = serde_json::from_str(&http(local_port(endpoint)?, "GET", &query).ok()?).ok()?;
    Some(SocketAddr::from((found.address, found.port)))
}

/// The port of an endpoint URL on this machine (`http://127.0.0.1:PORT`).
fn local_port(endpoint: &str) -> Option<u16> {
    let authority = endpoint.strip_prefix("http://")?.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    matches!(host, "127.0.0.1" | "localhost").then_some(())?;
    port.parse().ok()
}

/// One request as the strict emulator logged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub service: String,
    pub action: String,
    /// The region the request was signed for.
    #[serde(default)]
    pub region: String,
    pub status: u16,
    /// The error code of an injected fault (`RequestLimitExceeded`, `InternalError`, ...):
    /// answered by the emulator before moto saw the request, or, for `apply_then_500`,
    /// after moto did it.
    #[serde(default)]
    pub injected: Option<String>,
}

impl LoggedRequest {
    /// Whether the call changes something: what `fail_nth_mutating` counts (the strict
    /// emulator's `READS` are the reads).
    pub fn is_mutating(&self) -> bool {
        !["Describe", "List", "Get"].iter().any(|read| self.action.starts_with(read))
    }
}

impl Running {
    fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists() && http(self.port, "GET", "/moto-api/").is_ok()
    }
}

/// The emulator's files: its virtualenv, state and log, under `<target>/emulator`.
#[derive(Debug, Clone)]
pub struct Emulator {
    /// The server's state, log, lock and launcher.
    dir: PathBuf,
    /// The virtualenv and what was installed into it, shared by [`Emulator::private`] servers.
    home: PathBuf,
}

impl Default for Emulator {
    fn default() -> Self {
        Emulator::new(&target_dir())
    }
}

impl Emulator {
    pub fn new(target_dir: &Path) -> Emulator {
        let dir = target_dir.join("emulator");
        Emulator { home: dir.clone(), dir }
    }

    /// A server of its own, with its own state and port, on the same virtualenv: the
    /// benchmark runs on one so that its time scale does not restart the shared server
    /// (and lose what is deployed on it).
    pub fn private(&self, name: &str) -> Emulator {
        Emulator { dir: self.dir.join(name), home: self.home.clone() }
    }

    fn venv(&self) -> PathBuf {
        self.home.join("venv")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.join("moto.log")
    }

    /// The running emulator, if the recorded one still answers.
    pub fn status(&self) -> Option<Running> {
        let text = fs::read_to_string(self.state_file()).ok()?;
        let running: Running = serde_json::from_str(&text).ok()?;
        running.alive().then_some(running)
    }

    /// The running emulator, installed and started first when needed. Safe to call from
    /// several processes at once: they take turns on a lock file and share one server.
    pub fn ensure_running(&self) -> Result<Running> {
        self.ensure_running_as(&Mode::from_env())
    }

    /// As [`Emulator::ensure_running`], in the given mode rather than the environment's.
    pub fn ensure_running_as(&self, wanted: &Mode) -> Result<Running> {
        fs::create_dir_all(&self.dir).map_err(io("create the emulator directory", FIX_DISK))?;
        let lock = File::create(self.dir.join("lock")).map_err(io("create the emulator lock", FIX_DISK))?;
        lock.lock().map_err(io("lock the emulator directory", FIX_DISK))?;
        let result = match self.status() {
            Some(running) if running.mode == *wanted => Ok(running),
            // Another mode, or an older launcher: replace it.
            Some(_) => self.stop().and_then(|_| self.install()).and_then(|()| self.start(wanted)),
            None => self.install().and_then(|()| self.start(wanted)),
        };
        drop(lock);
        result
    }

    /// Creates the virtualenv and installs the pinned moto, unless already done for this
    /// requirements file.
    pub fn install(&self) -> Result<()> {
        let stamp = self.home.join("installed-requirements.txt");
        if fs::read_to_string(&stamp).is_ok_and(|installed| installed == REQUIREMENTS) {
            return Ok(());
        }
        fs::create_dir_all(&self.home).map_err(io("create the emulator directory", FIX_DISK))?;
        let log = self.home.join("install.log");
        // Once per target directory, and silent otherwise: say what the wait is for.
        let started = std::time::Instant::now();
        eprintln!(
            "installing the local AWS emulator (moto, from PyPI) into {}: about 30 s and 300 MB, once",
            self.venv().display()
        );
        let venv = self.venv();
        if !venv.join("bin/pip").exists() {
            run_logged(
                Command::new("python3").arg("-m").arg("venv").arg(&venv),
                "python3 -m venv",
                &log,
                "install Python 3 with its venv module (Debian: apt-get install python3-venv)",
            )?;
        }
        let requirements = self.home.join("requirements.txt");
        fs::write(&requirements, REQUIREMENTS).map_err(io("write the requirements file", FIX_DISK))?;
        run_logged(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--disable-pip-version-check", "--quiet", "-r"])
                .arg(&requirements),
            "pip install moto",
            &log,
            "check that PyPI is reachable (pip's proxy settings), then run the command again",
        )?;
        fs::write(&stamp, REQUIREMENTS).map_err(io("record the installed version", FIX_DISK))?;
        eprintln!("emulator installed in {}s", started.elapsed().as_secs());
        Ok(())
    }

    /// Starts a new server on a free port and waits until it answers.
    pub fn start(&self, mode: &Mode) -> Result<Running> {
        let port = free_port()?;
        let mode = mode.clone();
        let log_path = self.log_file();
        let log = File::create(&log_path).map_err(io("create the emulator log", FIX_DISK))?;
        let mut command = if mode.strict {
            let launcher = self.dir.join("strict_moto.py");
            fs::write(&launcher, STRICT_LAUNCHER).map_err(io("write the strict launcher", FIX_DISK))?;
            fs::write(self.dir.join("durations.json"), DURATIONS).map_err(io("write the durations", FIX_DISK))?;
            fs::write(self.dir.join("dataplane.py"), DATA_PLANE).map_err(io("write the data plane", FIX_DISK))?;
            for (path, text) in STAND_INS {
                let path = self.dir.join(path);
                fs::create_dir_all(path.parent().expect("a file in a folder"))
                    .map_err(io("create the stand-ins' folder", FIX_DISK))?;
                fs::write(&path, text).map_err(io("write a stand-in", FIX_DISK))?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                    .map_err(io("make a stand-in executable", FIX_DISK))?;
            }
            let mut command = Command::new(self.venv().join("bin/python"));
            command.arg(launcher).env("THREE_TIER_TIME_SCALE", &mode.time_scale);
            command
        } else {
            Command::new(self.venv().join("bin/moto_server"))
        };
        let child = command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // AttachRolePolicy of an AWS managed policy (AmazonSSMManagedInstanceCore)
            // fails with NoSuchEntity unless moto loads them.
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("open the emulator log", FIX_DISK))?)
            .stderr(log)
            // Its own process group: a Ctrl-C meant for a command that started it does not
            // stop a server other commands share.
            .process_group(0)
            .spawn()
            .map_err(io("start moto_server", "run `cargo xtask emulator start` to reinstall it"))?;
        let running = Running { pid: child.id(), port, mode };
        let started = Instant::now();
        let limit = Duration::from_secs(60);
        while http(port, "GET", "/moto-api/").is_err() {
            if started.elapsed() > limit || !Path::new(&format!("/proc/{}", running.pid)).exists() {
                let _ = Command::new("kill").args(["-KILL", &running.pid.to_string()]).status();
                let tail = fs::read_to_string(&log_path).unwrap_or_default();
                let tail = tail.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>();
                return Err(Error::NotReady { after: limit, log: log_path, tail: tail.join("\n") });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let state = serde_json::to_string(&running).expect("plain struct");
        fs::write(self.state_file(), state).map_err(io("record the emulator's pid and port", FIX_DISK))?;
        Ok(running)
    }

    /// Stops the recorded server; returns whether one was running.
    pub fn stop(&self) -> Result<bool> {
        let Some(running) = self.status() else {
            let _ = fs::remove_file(self.state_file());
            return Ok(false);
        };
        let proc_dir = format!("/proc/{}", running.pid);
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill").args([signal, &running.pid.to_string()]).status();
            // moto takes 2-10 s to stop on SIGTERM.
            let deadline = Instant::now() + Duration::from_secs(15);
            while Path::new(&proc_dir).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if !Path::new(&proc_dir).exists() {
                break;
            }
        }
        let _ = fs::remove_file(self.state_file());
        Ok(true)
    }
}

const FIX_DISK: &str = "check that the cargo target directory is writable and the disk has room";

/// The cargo target directory: `CARGO_TARGET_DIR`, or `target/` in the workspace.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

fn io(action: &str, fix: &'static str) -> impl FnOnce(std::io::Error) -> Error + use<> {
    let action = action.to_owned();
    move |source| Error::Io { action, fix, source }
}

fn run_logged(command: &mut Command, what: &str, log: &Path, fix: &'static str) -> Result<()> {
    let mut file =
        OpenOptions::new().create(true).append(true).open(log).map_err(io("open the install log", FIX_DISK))?;
    let _ = writeln!(file, "$ {what}");
    let status = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(io("open the install log", FIX_DISK))?)
        .stderr(file)
        .status()
        .map_err(io(what, fix))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Failed { what: what.to_owned(), status: status.to_string(), log: log.to_owned(), fix })
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("find a free port", "free a local port"))?;
    Ok(listener.local_addr().map_err(io("find a free port", "free a local port"))?.port())
}

/// A minimal HTTP/1.0 request to the emulator's control API; returns the body.
fn http(port: u16, method: &str, path: &str) -> Result<String> {
    http_with_body(port, method, path, "")
}

fn http_with_body(port: u16, method: &str, path: &str, body: &str) -> Result<String> {
    let fail = io(&format!("{method} {path}"), "start the emulator: `cargo xtask emulator start`");
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let attempt = || -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(stream, "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}", body.len())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.lines().next().unwrap_or_default().to_owned();
        if status.split_whitespace().nth(1).is_some_and(|code| code.starts_with('2')) {
            Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
        } else {
            Err(std::io::Error::other(format!("answered {status:?}")))
        }
    };
    attempt().map_err(fail)
}
