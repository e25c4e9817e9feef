//! `tcp-keepalive install-preload DIR`: the command, copied into a bin/ directory with a library in
//! ../lib/ as in the image, installs that library into DIR; each failure has its exit code and
//! leaves DIR as it was.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::RwLock;

/// Tests run in threads: a child forked while another thread still holds the copied command open
/// for writing keeps that descriptor until its exec, and exec of the copy then fails with "Text
/// file busy". Copies take this lock for writing, every spawn for reading.
static EXEC: RwLock<()> = RwLock::new(());

fn spawn(cmd: &mut Command) -> Child {
    let _shared = EXEC.read().unwrap_or_else(|e| e.into_inner());
    cmd.spawn().unwrap()
}

fn output(cmd: &mut Command) -> Output {
    spawn(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()))
        .wait_with_output()
        .unwrap()
}

/// A fresh directory tree for one test, removed when dropped.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str) -> Tree {
        let root = std::env::temp_dir().join(format!(
            "tcp-keepalive-install-test-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::create_dir_all(root.join("shared")).unwrap();
        // The command beside its library, laid out as in the image (/usr/local/{bin,lib}).
        let _alone = EXEC.write().unwrap_or_else(|e| e.into_inner());
        fs::copy(
            env!("CARGO_BIN_EXE_tcp-keepalive"),
            root.join("bin/tcp-keepalive"),
        )
        .unwrap();
        Tree(root)
    }

    fn with_library(self, bytes: &[u8]) -> Tree {
        fs::create_dir_all(self.0.join("lib")).unwrap();
        fs::write(self.0.join("lib/libkeepalive.so"), bytes).unwrap();
        self
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    /// Runs the copied command with a umask that would hide the library from other users.
    fn run(&self, args: &[&str]) -> Output {
        output(
            Command::new("sh")
                .arg("-c")
                .arg("umask 077; exec \"$0\" \"$@\"")
                .arg(self.path("bin/tcp-keepalive"))
                .args(args),
        )
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A shared object this machine can load that exports `socket` and the preload's marker symbol
/// (what the command checks before it copies), built here with the C compiler, followed by bytes no
/// other file has: the copy is proven to be of this file, whole.
fn payload(seed: u8) -> Vec<u8> {
    let dir = std::env::temp_dir().join(format!(
        "tcp-keepalive-install-test-so-{seed}-{}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).unwrap();
    let source = dir.join("fake.c");
    fs::write(
        &source,
        "int socket(int d, int t, int p) { return -1; }\nconst unsigned TCP_KEEPALIVE_PRELOAD = 1;\n",
    )
    .unwrap();
    let object = dir.join("fake.so");
    let out = output(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&object)
            .arg(&source),
    );
    assert!(out.status.success(), "cc: {}", stderr(&out));
    let mut bytes = fs::read(&object).unwrap();
    let _ = fs::remove_dir_all(&dir);
    bytes.extend((0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed));
    bytes
}

/// The C library this test runs with: it exports `socket` but is not ours.
fn libc_path() -> String {
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .expect("this test runs against glibc")
        .to_string()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn copies_the_library_beside_the_command_with_mode_0644() {
    let lib = payload(1);
    let t = Tree::new("copy").with_library(&lib);
    let shared = t.path("shared");
    let out = t.run(&["install-preload", shared.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let installed = shared.join("libkeepalive.so");
    assert_eq!(fs::read(&installed).unwrap(), lib);
    let mode = fs::metadata(&installed).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o644, "despite umask 077");
    assert_eq!(
        names(&shared),
        ["libkeepalive.so"],
        "no temporary file left"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(installed.to_str().unwrap()), "{said}");
}

#[test]
fn replaces_an_existing_library_by_rename() {
    let lib = payload(2);
    let t = Tree::new("replace").with_library(&lib);
    let installed = t.path("shared/libkeepalive.so");
    fs::write(&installed, b"an older library").unwrap();
    fs::set_permissions(&installed, fs::Permissions::from_mode(0o400)).unwrap();
    let old_inode = fs::metadata(&installed).unwrap().ino();
    let out = t.run(&["install-preload", t.path("shared").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(&installed).unwrap(), lib);
    let meta = fs::metadata(&installed).unwrap();
    assert_ne!(meta.ino(), old_inode, "a new file renamed over the old one");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    assert_eq!(names(&t.path("shared")), ["libkeepalive.so"]);
}

#[test]
fn preload_option_names_the_library() {
    let lib = payload(3);
    let t = Tree::new("explicit");
    let source = t.path("custom.so");
    fs::write(&source, &lib).unwrap();
    let out = t.run(&[
        "install-preload",
        "--preload",
        source.to_str().unwrap(),
        t.path("shared").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(t.path("shared/libkeepalive.so")).unwrap(), lib);
}

#[test]
fn a_missing_directory_is_a_usage_error_naming_it() {
    let t = Tree::new("nodir").with_library(&payload(4));
    let missing = t.path("no-such-volume");
    let out = t.run(&["install-preload", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.starts_with("tcp-keepalive: install-preload: directory "),
        "{err}"
    );
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert!(err.contains("must be an existing directory"), "{err}");
    assert!(!missing.exists(), "nothing created");
}

#[test]
fn a_file_instead_of_a_directory_is_a_usage_error() {
    let t = Tree::new("file").with_library(&payload(5));
    let file = t.path("shared/plain-file");
    fs::write(&file, b"keep me").unwrap();
    let out = t.run(&["install-preload", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a directory"),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn no_library_beside_the_command_exits_6_and_changes_nothing() {
    let t = Tree::new("nolib");
    let out = t.run(&["install-preload", t.path("shared").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("libkeepalive.so not found (looked in "),
        "{err}"
    );
    assert!(
        err.contains(t.path("bin/libkeepalive.so").to_str().unwrap()),
        "{err}"
    );
    assert!(names(&t.path("shared")).is_empty());
}

#[test]
fn a_failed_rename_exits_1_and_leaves_the_directory_as_it_was() {
    let t = Tree::new("blocked").with_library(&payload(6));
    // A non-empty directory where the library should go: rename() cannot replace it.
    let blocker = t.path("shared/libkeepalive.so");
    fs::create_dir_all(blocker.join("inside")).unwrap();
    let out = t.run(&["install-preload", t.path("shared").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot install"), "{err}");
    assert!(err.contains("nothing changed"), "{err}");
    assert_eq!(
        names(&t.path("shared")),
        ["libkeepalive.so"],
        "temporary file removed"
    );
    assert_eq!(names(&blocker), ["inside"]);
}

#[test]
fn a_file_that_is_no_preload_library_exits_6_and_changes_nothing() {
    let t = Tree::new("notlib").with_library(b"#!/bin/sh\necho not a library\n");
    let out = t.run(&["install-preload", t.path("shared").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a loadable preload library: not an ELF file"),
        "{}",
        stderr(&out)
    );
    assert!(names(&t.path("shared")).is_empty());
}

#[test]
fn libc_exports_socket_but_is_refused_with_exit_6() {
    let libc = libc_path();
    let t = Tree::new("libc").with_library(&fs::read(&libc).unwrap());
    let out = t.run(&["install-preload", t.path("shared").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("exports socket() but is not tcp-keepalive's libkeepalive.so"),
        "{err}"
    );
    assert!(err.contains("TCP_KEEPALIVE_PRELOAD"), "{err}");
    assert!(names(&t.path("shared")).is_empty());
    // The same through --preload.
    let out = t.run(&[
        "install-preload",
        "--preload",
        &libc,
        t.path("shared").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(names(&t.path("shared")).is_empty());
}

/// The real libkeepalive.so: `TCPKA_PRELOAD` (the 60-cli stage sets it), else what cargo built
/// with this test's command (`cargo test --workspace` leaves the cdylib in `deps/`, fresher than
/// any release build lying around). Under CI=true a missing library fails the test.
#[test]
fn the_real_preload_library_is_accepted() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_tcp-keepalive"));
    let found = match std::env::var_os("TCPKA_PRELOAD") {
        Some(p) => Some(PathBuf::from(p)),
        None => [
            exe.with_file_name("libkeepalive.so"),
            exe.parent().unwrap().join("deps/libkeepalive.so"),
            exe.parent().unwrap().join("../release/libkeepalive.so"),
        ]
        .into_iter()
        .find(|p| p.is_file()),
    };
    let Some(lib) = found else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "libkeepalive.so is not built (TCPKA_PRELOAD unset)"
        );
        eprintln!(
            "SKIP: libkeepalive.so is not built here (scripts/test.sh 60-cli runs this with it)"
        );
        return;
    };
    let bytes = fs::read(&lib).unwrap();
    let t = Tree::new("real").with_library(&bytes);
    let out = t.run(&["install-preload", t.path("shared").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(t.path("shared/libkeepalive.so")).unwrap(), bytes);
}

/// How to start a process as pid 1 of a new PID namespace, as an init container runs: `unshare`
/// as root, or inside a user namespace otherwise. None where neither works here.
fn as_pid_1() -> Option<Vec<&'static str>> {
    let ways: [&[&'static str]; 2] = [
        &["unshare", "--pid", "--fork", "--kill-child"],
        &[
            "unshare",
            "--user",
            "--map-root-user",
            "--pid",
            "--fork",
            "--kill-child",
        ],
    ];
    ways.into_iter()
        .find(|way| {
            let o = output(
                Command::new(way[0])
                    .args(&way[1..])
                    .args(["sh", "-c", "echo $$"]),
            );
            o.status.success() && o.stdout == b"1\n"
        })
        .map(|way| way.to_vec())
}

/// Init containers of several pods (each pid 1 in its own PID namespace) may install into one
/// shared volume at once: every installer succeeds, the file is one of them whole, and no
/// temporary file is left. Two libraries, eight installers per round, ten rounds, each installer
/// pid 1 of its own PID namespace where this machine allows it (under CI=true it must).
#[test]
fn concurrent_installers_into_one_directory_all_succeed() {
    let prefix = as_pid_1();
    if prefix.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "cannot start a process in its own PID namespace (unshare)"
        );
        eprintln!("note: no PID namespace here: the installers run with distinct pids");
    }
    let prefix = prefix.unwrap_or_default();
    let a = payload(11);
    let b = payload(12);
    let ta = Tree::new("concurrent-a").with_library(&a);
    let tb = Tree::new("concurrent-b").with_library(&b);
    let shared = ta.path("shared");
    // Writable by whoever the installers are inside a user namespace.
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let dir = shared.to_str().unwrap();
    for round in 0..10 {
        let children: Vec<_> = (0..8)
            .map(|i| {
                let t = if i % 2 == 0 { &ta } else { &tb };
                let exe = t.path("bin/tcp-keepalive");
                let mut argv: Vec<&str> = prefix.clone();
                argv.extend([exe.to_str().unwrap(), "install-preload", dir]);
                spawn(
                    Command::new(argv[0])
                        .args(&argv[1..])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped()),
                )
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "round {round}: {}",
                stderr(&out)
            );
        }
        let got = fs::read(shared.join("libkeepalive.so")).unwrap();
        assert!(
            got == a || got == b,
            "round {round}: a mix of the two files"
        );
        assert_eq!(names(&shared), ["libkeepalive.so"], "round {round}");
    }
}

/// A file in DIR under the name the command used to choose (`.libkeepalive.so.PID.tmp`, and an
/// init container is pid 1) belongs to someone else: it is left alone, on success and on failure.
#[test]
fn a_file_the_command_did_not_make_is_never_removed() {
    let t = Tree::new("decoy").with_library(&payload(13));
    let shared = t.path("shared");
    // The shell creates the decoy under its own pid, then becomes the command (same pid).
    let install = |dir: &Path| {
        output(Command::new("sh")
            .arg("-c")
            .arg("echo theirs > \"$1/.libkeepalive.so.$$.tmp\"; echo $$; exec \"$0\" install-preload \"$1\"")
            .arg(t.path("bin/tcp-keepalive"))
            .arg(dir))
    };
    let out = install(&shared);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let decoy = shared.join(format!(".libkeepalive.so.{pid}.tmp"));
    assert_eq!(fs::read(&decoy).unwrap(), b"theirs\n", "success");
    fs::remove_file(&decoy).unwrap();
    // A failed rename (a directory in the way) removes only the command's own temporary file.
    fs::remove_file(shared.join("libkeepalive.so")).unwrap();
    fs::create_dir_all(shared.join("libkeepalive.so/inside")).unwrap();
    let out = install(&shared);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing changed"), "{}", stderr(&out));
    let pid = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    let decoy = format!(".libkeepalive.so.{pid}.tmp");
    assert_eq!(names(&shared), [decoy.as_str(), "libkeepalive.so"]);
    assert_eq!(
        fs::read(shared.join(&decoy)).unwrap(),
        b"theirs\n",
        "failure"
    );
}
