//! Never harm the host: the preload writes only to the stderr it was given, never into a socket,
//! never raises SIGPIPE, and its hooks work from a signal handler interrupting malloc.
//! Every case runs with TCP_KEEPALIVE_LOG=1, so the preload has something to write.

mod common;

use common::{run, sockets_program, spawn_with_stderr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

const LOG: &[(&str, &str)] = &[("TCP_KEEPALIVE_LOG", "1")];

fn field<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|w| w.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {stdout:?}"))
}

#[test]
fn stderr_closed_before_start_the_first_socket_at_fd_2_gets_nothing() {
    let mut cmd = Command::new(sockets_program());
    cmd.arg("stderr-closed");
    // SAFETY: close(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::close(2);
            Ok(())
        });
    }
    let out =
        spawn_with_stderr(cmd, true, LOG, Some(Stdio::inherit())).finish(Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "no SIGPIPE, no crash: {out:?}");
    assert_eq!(
        field(&out.stdout, "client-fd"),
        "2",
        "the case happened: {out:?}"
    );
    assert_eq!(field(&out.stdout, "peer-received"), "0", "{out:?}");
}

#[test]
fn fd_2_replaced_by_a_connection_gets_nothing_even_with_sigpipe_ignored() {
    let mut cmd = Command::new(sockets_program());
    cmd.arg("fd2-connection");
    let out = run(cmd, true, LOG, Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(field(&out.stdout, "peer-received"), "0", "{out:?}");
    // Before the dup2, the real stderr got its line: the log was on.
    assert!(out.stderr.contains("keep-alive on"), "{out:?}");
}

#[test]
fn stderr_a_socket_at_load_is_never_written() {
    // inetd-style: the program's stderr is a connection to its client.
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut cmd = Command::new(sockets_program());
    cmd.arg("one");
    let out = spawn_with_stderr(cmd, true, LOG, Some(Stdio::from(OwnedFd::from(theirs))))
        .finish(Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "{out:?}");
    ours.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1024];
    let got = std::io::Read::read(&mut &ours, &mut buf);
    assert!(
        matches!(&got, Ok(0))
            || matches!(&got, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the client received {got:?}: {:?}",
        got.as_ref()
            .ok()
            .map(|n| String::from_utf8_lossy(&buf[..*n]))
    );
}

#[test]
fn stderr_a_pipe_without_reader_raises_no_sigpipe_and_loses_none_of_the_programs() {
    let mut fds = [0; 2];
    // SAFETY: a two-int array for pipe(2).
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both just created and owned here.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let mut cmd = Command::new(sockets_program());
    cmd.arg("sigpipe");
    let out =
        spawn_with_stderr(cmd, true, LOG, Some(Stdio::from(write))).finish(Duration::from_secs(60));
    assert_eq!(out.code, Some(0), "killed by our SIGPIPE? {out:?}");
    assert_eq!(field(&out.stdout, "survived"), "1");
    assert_eq!(
        field(&out.stdout, "pending-after-ours"),
        "0",
        "ours taken back"
    );
    assert_eq!(
        field(&out.stdout, "own-still-pending"),
        "1",
        "the program's own kept"
    );
}

#[test]
fn socket_and_setsockopt_from_a_signal_handler_interrupting_malloc() {
    // 2000 signals to a thread that spends its time in malloc/free; the handler creates a socket
    // and turns its keep-alive off. A hook that allocated or locked would deadlock (the harness
    // kills it after 60 s); each socket must still end up with keep-alive on (enforced).
    let mut cmd = Command::new(sockets_program());
    cmd.args(["signals", "2000"]);
    let out = run(
        cmd,
        true,
        &[("TCP_KEEPALIVE_IDLE", "71")],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(field(&out.stdout, "handled"), "2000");
    assert_eq!(field(&out.stdout, "enforced"), "2000");
    // Bare, the same program's sockets keep the handler's SO_KEEPALIVE=0: the check can fail.
    let mut cmd = Command::new(sockets_program());
    cmd.args(["signals", "20"]);
    let bare = run(cmd, false, &[], Duration::from_secs(60));
    assert_eq!(field(&bare.stdout, "enforced"), "0", "{bare:?}");
}

#[test]
fn the_failure_path_from_a_signal_handler_interrupting_malloc() {
    // Every setsockopt denied (seccomp): each socket the handler makes takes the hook's failure
    // path, with logging off, which must neither allocate nor lock either.
    let mut cmd = Command::new(sockets_program());
    cmd.args(["signals", "2000", "denied"]);
    let out = run(
        cmd,
        true,
        &[("TCP_KEEPALIVE_IDLE", "71")],
        Duration::from_secs(60),
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(field(&out.stdout, "handled"), "2000");
    assert_eq!(field(&out.stdout, "enforced"), "0", "nothing could be set");
    assert_eq!(out.stderr, "", "silent without TCP_KEEPALIVE_LOG");
}
