//! `tcp-keepalive install-preload DIR`: the command, copied into a bin/ directory with a library in
//! ../lib/ as in the image, installs that library into DIR; each failure has its exit code and
//! leaves DIR as it was.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
        Command::new("sh")
            .arg("-c")
            .arg("umask 077; exec \"$0\" \"$@\"")
            .arg(self.path("bin/tcp-keepalive"))
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A shared object this machine can load that exports `socket` (the C library this test runs
/// with), followed by bytes no other file has: it passes the command's library check, and the
/// copy is proven to be of this file, whole.
fn payload(seed: u8) -> Vec<u8> {
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    let libc = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .expect("this test runs against glibc");
    let mut bytes = fs::read(libc).unwrap();
    bytes.extend((0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed));
    bytes
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
