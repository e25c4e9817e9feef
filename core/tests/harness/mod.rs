//! The one runner of the hand-written test binaries (`harness = false`: core's
//! `all_or_nothing`, the command's `processes` and `cgroup`), shared by path as `env_table.rs` is.
//! They cannot use libtest (a seccomp filter binds the whole process; the cases need root, a
//! child mode of the same binary, or one order), but they report the same way: one line per case,
//! `test result: ...` at the end, exit 1 on any failure.
//!
//! A case returns `Ok(())`, panics (fails), or returns `Err(reason)` when it cannot run here: that
//! skips with the reason, and fails under `CI=true` (`.ci/run` sets it), as `skip_or_fail` in
//! scripts/lib.sh does. A reason starting with [`NOT_APPLICABLE`] names no missing tool but a part
//! that does not exist on this platform or build: skipped even under CI.
#![allow(dead_code)]

/// One named case.
pub type Case = (&'static str, fn() -> Result<(), String>);

/// The prefix of a reason that skips even under `CI=true`.
pub const NOT_APPLICABLE: &str = "not applicable: ";

/// Whether `CI=true`.
pub fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// The whole binary cannot run here (no root, no cgroup v2, ...): fails under `CI=true`, else
/// skips with the reason. Exits either way.
pub fn skip_all(reason: &str) -> ! {
    if ci() {
        eprintln!("FAIL (CI=true, cannot run): {reason}");
        std::process::exit(1);
    }
    eprintln!("SKIP: {reason}");
    println!("test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out");
    std::process::exit(0);
}

/// Runs the cases whose names contain one of the command line's words (all without any), in
/// order; prints one line each and the summary; exits 1 when one failed.
pub fn run(cases: &[Case]) {
    let ci = ci();
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (name, case) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(case) {
            Ok(Ok(())) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Ok(Err(reason)) if !ci || reason.starts_with(NOT_APPLICABLE) => {
                println!("test {name} ... skipped: {reason}");
                skipped += 1;
            }
            Ok(Err(reason)) => {
                println!("test {name} ... FAILED (CI=true, cannot run: {reason})");
                failed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; {skipped} ignored; 0 measured; 0 filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    if failed > 0 {
        std::process::exit(1);
    }
}
