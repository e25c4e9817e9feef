//! Helpers for the preload tests: find libkeepalive.so, build the C test program, run programs
//! under the preload with a clean environment and a time limit.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Every variable the preload reads (core's list, the two operator switches, the debug panic
/// switch) and LD_PRELOAD; removed from each child's environment before a test sets its own, so
/// the developer's shell cannot change a result.
pub fn variables() -> Vec<&'static str> {
    let mut all = tcp_keepalive::ENV_VARIABLES.to_vec();
    all.extend([
        "TCP_KEEPALIVE_LOG",
        "TCP_KEEPALIVE_ENFORCE",
        "TCP_KEEPALIVE_PRELOAD_TEST_PANIC",
        "LD_PRELOAD",
    ]);
    all
}

/// The libkeepalive.so cargo built for this test run: target/<profile>/deps/libkeepalive.so, next
/// to the test binary (`cargo test` builds it there because the crate is also an rlib; it copies
/// it up to target/<profile>/ only on `cargo build`). `PRELOAD_LIBRARY` overrides it, e.g. to
/// test the release build.
pub fn library() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let lib = match std::env::var_os("PRELOAD_LIBRARY") {
            Some(path) => PathBuf::from(path),
            None => std::env::current_exe()
                .expect("test executable path")
                .parent()
                .expect("target/<profile>/deps")
                .join("libkeepalive.so"),
        };
        assert!(
            lib.is_file(),
            "{} is missing: run `cargo test -p tcp-keepalive-preload`, which builds it",
            lib.display()
        );
        lib
    })
    .clone()
}

/// A scratch directory for this test binary (cargo's CARGO_TARGET_TMPDIR).
pub fn scratch() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("preload");
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// tests/programs/sockets.c, compiled once with the system C compiler.
pub fn sockets_program() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/sockets.c");
        let out = scratch().join(format!("sockets.{}.tmp", std::process::id()));
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O1", "-Wall", "-Werror", "-pthread", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run the C compiler (cc): install build-essential");
        assert!(status.success(), "compiling {} failed", src.display());
        // Renamed into place, so test binaries running at once never see a half-written file.
        let done = scratch().join("sockets");
        std::fs::rename(&out, &done).expect("rename");
        done
    })
    .clone()
}

/// tests/programs/early.c, a library whose constructor creates a socket, compiled once.
pub fn early_library() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/early.c");
        let out = scratch().join(format!("early.{}.tmp", std::process::id()));
        let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            .args(["-O1", "-Wall", "-Werror", "-shared", "-fPIC", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run the C compiler (cc): install build-essential");
        assert!(status.success(), "compiling {} failed", src.display());
        let done = scratch().join("early.so");
        std::fs::rename(&out, &done).expect("rename");
        done
    })
    .clone()
}

/// What a finished program printed.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A program started by [`spawn`], its output being collected.
pub struct Running {
    pub child: Child,
    what: String,
    out: Option<thread::JoinHandle<String>>,
    err: Option<thread::JoinHandle<String>>,
}

/// Starts `cmd` with the preload variables removed, then `env` added (`LD_PRELOAD` only when
/// `preload`).
pub fn spawn(cmd: Command, preload: bool, env: &[(&str, &str)]) -> Running {
    spawn_with_stderr(cmd, preload, env, None)
}

/// [`spawn`] with the program's stderr given (`None`: a pipe this side reads).
pub fn spawn_with_stderr(
    mut cmd: Command,
    preload: bool,
    env: &[(&str, &str)],
    stderr: Option<Stdio>,
) -> Running {
    // A variable the test set on `cmd` itself (e.g. a non-UTF-8 value) stays.
    let own: Vec<_> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
    for v in variables() {
        if !own.iter().any(|k| k == v) {
            cmd.env_remove(v);
        }
    }
    if preload {
        cmd.env("LD_PRELOAD", library());
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let read_stderr = stderr.is_none();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr.unwrap_or_else(Stdio::piped));
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let err = child.stderr.take();
    let out = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = err.filter(|_| read_stderr).map(|mut err| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        })
    });
    Running {
        child,
        what,
        out: Some(out),
        err,
    }
}

impl Running {
    /// Waits for the program, killing it (and failing the test) after `limit`.
    pub fn finish(mut self, limit: Duration) -> Output {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{} did not finish within {limit:?}", self.what);
            }
            thread::sleep(Duration::from_millis(10));
        };
        Output {
            code: status.code(),
            stdout: self.out.take().unwrap().join().unwrap(),
            stderr: self
                .err
                .take()
                .map(|err| err.join().unwrap())
                .unwrap_or_default(),
        }
    }
}

impl Drop for Running {
    /// A test that fails half-way never leaves its program behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` (see [`spawn`]) to its end, killing it after `limit`.
pub fn run(cmd: Command, preload: bool, env: &[(&str, &str)], limit: Duration) -> Output {
    spawn(cmd, preload, env).finish(limit)
}

/// Runs the C program with `args`.
pub fn sockets(args: &[&str], preload: bool, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(sockets_program());
    cmd.args(args);
    let out = run(cmd, preload, env, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "sockets {args:?} failed: {out:?}");
    out
}

/// One socket line: `NAME key=value ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketLine {
    pub name: String,
    pub fields: BTreeMap<String, String>,
}

impl SocketLine {
    pub fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("{} has no {key}: {self:?}", self.name))
    }

    /// The keep-alive values as (ka, idle, intvl, cnt, ut).
    pub fn keepalive(&self) -> (&str, &str, &str, &str, &str) {
        (
            self.get("ka"),
            self.get("idle"),
            self.get("intvl"),
            self.get("cnt"),
            self.get("ut"),
        )
    }
}

/// Parses every `NAME k=v ...` line of a program's output.
pub fn parse(stdout: &str) -> Vec<SocketLine> {
    stdout
        .lines()
        .filter(|l| l.contains('='))
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap().to_string();
            let fields = words
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            SocketLine { name, fields }
        })
        .collect()
}

/// Looks a line up by name.
pub fn line<'a>(lines: &'a [SocketLine], name: &str) -> &'a SocketLine {
    lines
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no line {name} in {lines:?}"))
}
