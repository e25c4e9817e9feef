//! Python binding of `tcp-keepalive`: the extension module `tcp_keepalive._native`.
//!
//! A thin adapter, as every door is: it turns a Python socket (or anything with `fileno()`, or an
//! int) into a descriptor, Python numbers and `datetime.timedelta` into [`tcp_keepalive::KeepAlive`],
//! and [`tcp_keepalive::Error`] into `ValueError` or `KeepAliveError` (an `OSError`). Validation,
//! defaults, the environment's syntax, the option numbers and every message come from the core.
//!
//! Nothing here panics (no `unwrap`, no indexing); pyo3 would turn a panic into an exception
//! rather than let it unwind into the interpreter anyway.
#![warn(missing_docs)]

use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use pyo3::exceptions::{PyAttributeError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDelta, PyDeltaAccess, PyFloat, PyInt};
use pyo3::{intern, BoundObject};

use tcp_keepalive::{
    check_count, check_idle, check_interval, check_user_timeout, EnvConfig, Error,
    KeepAlive as CoreKeepAlive, Raw, Settings as CoreSettings,
};

pyo3::create_exception!(
    tcp_keepalive,
    KeepAliveError,
    PyOSError,
    "A socket error from tcp-keepalive: not a TCP socket, not a socket, a closed descriptor, an \
     option this system lacks, or a failed system call. `errno` is the kernel's error code; the \
     message says which descriptor and option."
);

/// Turns a core error into the Python exception docs/design.md ("Errors") assigns it, with the core's message.
pub fn to_py_err(err: Error) -> PyErr {
    match err {
        Error::InvalidArgument { .. } => PyValueError::new_err(err.to_string()),
        other => match other.raw_os_error() {
            Some(code) => KeepAliveError::new_err((code, other.to_string())),
            None => KeepAliveError::new_err(other.to_string()),
        },
    }
}

/// A duration argument as the caller gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Span {
    /// A duration the core can check (any non-negative finite value).
    Given(Duration),
    /// A value no `Duration` holds (negative, NaN, infinite, too large), as Python's `repr`
    /// shows it: core refuses it ([`Raw::Shown`]) with its range.
    Invalid(String),
    /// Not a duration at all: what was given, for the `TypeError` naming the parameter.
    Wrong(String),
}

impl Span {
    fn secs(s: u64) -> Span {
        Span::Given(Duration::from_secs(s))
    }

    /// Core's raw value (types already checked: a wrong type never gets here).
    fn raw(&self) -> Raw<'_> {
        match self {
            Span::Given(d) => Raw::Duration(*d),
            Span::Invalid(shown) | Span::Wrong(shown) => Raw::Shown(shown),
        }
    }

    fn wrong_type(&self, name: &str) -> PyResult<()> {
        match self {
            Span::Wrong(got) => Err(PyTypeError::new_err(format!(
                "{name} must be int or float seconds or a datetime.timedelta, not {got}"
            ))),
            _ => Ok(()),
        }
    }

    /// Seconds as a float, as Python code reads a duration back.
    fn from_float(value: f64, shown: impl FnOnce() -> String) -> Span {
        if !value.is_finite() || value < 0.0 {
            return Span::Invalid(shown());
        }
        match Duration::try_from_secs_f64(value) {
            // A positive value below a nanosecond must not become zero: the core rounds up.
            Ok(d) if d.is_zero() && value > 0.0 => Span::Given(Duration::from_nanos(1)),
            Ok(d) => Span::Given(d),
            Err(_) => Span::Invalid(shown()),
        }
    }

    /// Microseconds, possibly negative or beyond `Duration` (a `timedelta` or a huge int).
    fn from_micros(micros: i128, shown: impl FnOnce() -> String) -> Span {
        if micros < 0 {
            return Span::Invalid(shown());
        }
        let secs = micros / 1_000_000;
        let sub = (micros % 1_000_000) as u32;
        match u64::try_from(secs) {
            Ok(secs) => Span::Given(Duration::new(secs, sub * 1000)),
            Err(_) => Span::Invalid(shown()),
        }
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("<{}>", type_name(obj)))
}

impl<'a, 'py> FromPyObject<'a, 'py> for Span {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Span> {
        let obj = obj.into_bound();
        let shown = || repr(&obj);
        if obj.is_instance_of::<PyBool>() {
            // bool is an int in Python; `idle=True` is a mistake, not one second.
            return Ok(Span::Wrong(format!("bool {}", shown())));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(match obj.extract::<i64>() {
                Ok(secs) => Span::from_micros(i128::from(secs) * 1_000_000, shown),
                // Beyond i64 in either direction.
                Err(_) => {
                    let negative = obj.lt(0i32).unwrap_or(false);
                    Span::from_micros(if negative { -1 } else { i128::MAX }, shown)
                }
            });
        }
        if obj.is_instance_of::<PyFloat>() {
            return Ok(Span::from_float(obj.extract::<f64>()?, shown));
        }
        if obj.is_instance_of::<PyDelta>() {
            let delta = obj.cast::<PyDelta>()?;
            let micros = i128::from(delta.get_days()) * 86_400_000_000
                + i128::from(delta.get_seconds()) * 1_000_000
                + i128::from(delta.get_microseconds());
            return Ok(Span::from_micros(micros, shown));
        }
        // Reported by `check_types`, which knows the parameter's name.
        Ok(Span::Wrong(format!("{} {}", type_name(&obj), shown())))
    }
}

/// The `count` argument as the caller gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    /// A count the core can check.
    Given(u32),
    /// Negative or beyond `u32`, as Python's `repr` shows it: refused by core like
    /// [`Span::Invalid`].
    Invalid(String),
    /// Not an int: what was given.
    Wrong(String),
}

impl<'a, 'py> FromPyObject<'a, 'py> for Count {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Count> {
        let obj = obj.into_bound();
        if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
            return Ok(Count::Wrong(format!("{} {}", type_name(&obj), repr(&obj))));
        }
        Ok(match obj.extract::<u32>() {
            Ok(n) => Count::Given(n),
            Err(_) => Count::Invalid(repr(&obj)),
        })
    }
}

/// Raises `TypeError` naming the first parameter of the wrong type.
pub fn check_types(
    idle: &Span,
    interval: &Span,
    count: &Count,
    user_timeout: Option<&Span>,
) -> PyResult<()> {
    idle.wrong_type("idle")?;
    interval.wrong_type("interval")?;
    if let Count::Wrong(got) = count {
        return Err(PyTypeError::new_err(format!(
            "count must be an int number of probes, not {got}"
        )));
    }
    user_timeout.map_or(Ok(()), |t| t.wrong_type("user_timeout"))
}

/// Checks the types, then builds a [`CoreKeepAlive`].
fn keepalive(
    idle: &Span,
    interval: &Span,
    count: &Count,
    user_timeout: Option<&Span>,
) -> PyResult<CoreKeepAlive> {
    check_types(idle, interval, count, user_timeout)?;
    build(idle, interval, count, user_timeout).map_err(to_py_err)
}

/// Builds a [`CoreKeepAlive`] through core's per-field checks (types already checked); an
/// out-of-range value raises core's `ValueError`, naming the caller's own value.
pub fn build(
    idle: &Span,
    interval: &Span,
    count: &Count,
    user_timeout: Option<&Span>,
) -> Result<CoreKeepAlive, Error> {
    let idle = check_idle("idle", idle.raw())?;
    let interval = check_interval("interval", interval.raw())?;
    let count = check_count(
        "count",
        match count {
            Count::Given(n) => Raw::Int((*n).into()),
            Count::Invalid(shown) | Count::Wrong(shown) => Raw::Shown(shown),
        },
    )?;
    let k = CoreKeepAlive::new(idle, interval, count)?;
    match user_timeout {
        None => Ok(k),
        Some(t) => k.with_user_timeout(check_user_timeout("user_timeout", t.raw())?),
    }
}

// The signatures below write core's defaults as literals (60, 10, 6), which is what Python's
// text signatures and the .pyi show; they cannot drift from core's: checked when compiling.
const _: () = assert!(
    tcp_keepalive::DEFAULT_IDLE.as_secs() == 60
        && tcp_keepalive::DEFAULT_INTERVAL.as_secs() == 10
        && tcp_keepalive::DEFAULT_COUNT == 6
);

/// A descriptor number given by Python code. Negative numbers are kept: the core reports them as
/// a bad descriptor, which is what they are.
fn fd_of(sock: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let py = sock.py();
    let number = if sock.is_instance_of::<PyInt>() {
        if sock.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err(format!(
                "sock must be a socket, an object with fileno() or an int file descriptor, not bool {}",
                repr(sock)
            )));
        }
        sock.clone()
    } else {
        match sock.call_method0(intern!(py, "fileno")) {
            Ok(n) => {
                if n.is_instance_of::<PyBool>() || !n.is_instance_of::<PyInt>() {
                    return Err(PyTypeError::new_err(format!(
                        "{}.fileno() returned {} {}, not an int",
                        type_name(sock),
                        type_name(&n),
                        repr(&n)
                    )));
                }
                n
            }
            Err(e) if e.is_instance_of::<PyAttributeError>(py) && !sock.hasattr("fileno")? => {
                return Err(PyTypeError::new_err(format!(
                    "sock must be a socket, an object with fileno() or an int file descriptor, not {} {}",
                    type_name(sock),
                    repr(sock)
                )));
            }
            Err(e) => return Err(e),
        }
    };
    number.extract::<RawFd>().map_err(|_| {
        PyValueError::new_err(format!(
            "invalid file descriptor: {} (allowed: 0 to {})",
            repr(&number),
            RawFd::MAX
        ))
    })
}

/// Runs `f` on the descriptor, or reports a negative one as the core's bad-descriptor error.
fn with_fd<T>(fd: RawFd, f: impl FnOnce(BorrowedFd<'_>) -> Result<T, Error>) -> PyResult<T> {
    if fd < 0 {
        return Err(to_py_err(Error::BadDescriptor {
            fd,
            source: std::io::Error::from_raw_os_error(libc::EBADF),
        }));
    }
    // SAFETY: `fd` is not -1 and is only used for the duration of `f`, for getsockopt/setsockopt,
    // which the kernel checks; a descriptor Python code closed meanwhile fails with EBADF, the same
    // as Python's own `socket.setsockopt` on it would.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    f(borrowed).map_err(to_py_err)
}

fn seconds_or_none(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

/// Keep-alive settings of a socket, read from the kernel by `inspect()`.
///
/// `idle` and `interval` are whole seconds, `count` a number of probes, `user_timeout` seconds
/// (float, millisecond precision) or None when unset. Immutable, comparable and hashable.
#[pyclass(frozen, eq, hash, module = "tcp_keepalive")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Settings {
    inner: CoreSettings,
}

#[pymethods]
impl Settings {
    /// SO_KEEPALIVE: whether the kernel probes at all; the timings apply only when True.
    #[getter]
    fn enabled(&self) -> bool {
        self.inner.enabled
    }

    /// TCP_KEEPIDLE, seconds of silence before the first probe (the system default when never set).
    #[getter]
    fn idle(&self) -> u64 {
        self.inner.idle.as_secs()
    }

    /// TCP_KEEPINTVL, seconds between unanswered probes.
    #[getter]
    fn interval(&self) -> u64 {
        self.inner.interval.as_secs()
    }

    /// TCP_KEEPCNT, unanswered probes before the connection is dropped.
    #[getter]
    fn count(&self) -> u32 {
        self.inner.count
    }

    /// TCP_USER_TIMEOUT in seconds, or None when unset.
    #[getter]
    fn user_timeout(&self) -> Option<f64> {
        seconds_or_none(self.inner.user_timeout)
    }

    fn __repr__(&self) -> String {
        format!(
            "Settings(enabled={}, idle={}, interval={}, count={}, user_timeout={})",
            if self.inner.enabled { "True" } else { "False" },
            self.inner.idle.as_secs(),
            self.inner.interval.as_secs(),
            self.inner.count,
            py_seconds(self.inner.user_timeout)
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// A Python literal for an optional duration: `None`, `30` or `1.5`.
fn py_seconds(d: Option<Duration>) -> String {
    match d {
        None => "None".to_owned(),
        Some(d) if d.subsec_nanos() == 0 => d.as_secs().to_string(),
        Some(d) => format!("{}", d.as_secs_f64()),
    }
}

/// Validated keep-alive settings: `KeepAlive(idle=60, interval=10, count=6, user_timeout=None)`.
///
/// Durations are int or float seconds or `datetime.timedelta`; finer than a second rounds up.
/// Allowed: idle and interval 1 to 32767 s, count 1 to 127, user_timeout 1 ms to 2147483647 ms.
/// Out-of-range values raise ValueError, wrong types TypeError. Immutable and hashable.
#[pyclass(frozen, eq, hash, module = "tcp_keepalive")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeepAlive {
    inner: CoreKeepAlive,
}

#[pymethods]
impl KeepAlive {
    #[new]
    #[pyo3(
        signature = (idle = Span::secs(60), interval = Span::secs(10), count = Count::Given(6), user_timeout = None),
        text_signature = "(idle=60, interval=10, count=6, user_timeout=None)"
    )]
    fn new(idle: Span, interval: Span, count: Count, user_timeout: Option<Span>) -> PyResult<Self> {
        let inner = keepalive(&idle, &interval, &count, user_timeout.as_ref())?;
        Ok(KeepAlive { inner })
    }

    /// Seconds of silence before the first probe.
    #[getter]
    fn idle(&self) -> u64 {
        self.inner.idle().as_secs()
    }

    /// Seconds between unanswered probes.
    #[getter]
    fn interval(&self) -> u64 {
        self.inner.interval().as_secs()
    }

    /// Unanswered probes before the connection is dropped.
    #[getter]
    fn count(&self) -> u32 {
        self.inner.count()
    }

    /// TCP_USER_TIMEOUT in seconds, or None.
    #[getter]
    fn user_timeout(&self) -> Option<f64> {
        seconds_or_none(self.inner.user_timeout())
    }

    /// `idle + interval * count` seconds: the longest a silent dead peer goes unnoticed.
    #[getter]
    fn detection_bound(&self) -> u64 {
        self.inner.detection_bound().as_secs()
    }

    /// Applies these settings to a TCP socket, all or nothing: the old values are read first and
    /// written back if a write fails.
    fn apply(&self, sock: &Bound<'_, PyAny>) -> PyResult<()> {
        with_fd(fd_of(sock)?, |fd| self.inner.apply(fd))
    }

    /// Applies these settings to a socket just created and not yet shared, without reading the old
    /// values first (half the system calls): for socket factories.
    fn apply_to_new_socket(&self, sock: &Bound<'_, PyAny>) -> PyResult<()> {
        with_fd(fd_of(sock)?, |fd| self.inner.apply_to_new_socket(fd))
    }

    /// The `(level, option, value)` tuples `apply` writes, for `socket_options=` of urllib3,
    /// requests and httpx.
    fn socket_options(&self) -> PyResult<Vec<(i32, i32, i32)>> {
        self.inner.socket_options().map_err(to_py_err)
    }

    fn __repr__(&self) -> String {
        format!(
            "KeepAlive(idle={}, interval={}, count={}, user_timeout={})",
            self.idle(),
            self.interval(),
            self.count(),
            py_seconds(self.inner.user_timeout())
        )
    }

    fn __str__(&self) -> String {
        self.inner.to_string()
    }
}

/// Turns keep-alive on for a TCP socket with these timings, all or nothing.
///
/// `sock` is a socket.socket, anything with fileno(), or an int descriptor. Raises ValueError
/// for out-of-range values, TypeError for wrong types, KeepAliveError (an OSError with errno)
/// when the descriptor is not an open TCP socket or a system call fails.
#[pyfunction]
#[pyo3(
    signature = (sock, idle = Span::secs(60), interval = Span::secs(10), count = Count::Given(6), user_timeout = None),
    text_signature = "(sock, idle=60, interval=10, count=6, user_timeout=None)"
)]
fn configure(
    sock: &Bound<'_, PyAny>,
    idle: Span,
    interval: Span,
    count: Count,
    user_timeout: Option<Span>,
) -> PyResult<()> {
    let k = keepalive(&idle, &interval, &count, user_timeout.as_ref())?;
    with_fd(fd_of(sock)?, |fd| k.apply(fd))
}

/// Reads a socket's keep-alive settings from the kernel.
#[pyfunction]
fn inspect(sock: &Bound<'_, PyAny>) -> PyResult<Settings> {
    let inner = with_fd(fd_of(sock)?, |fd| tcp_keepalive::inspect(fd))?;
    Ok(Settings { inner })
}

/// The settings the environment asks for (TCP_KEEPALIVE, TCP_KEEPALIVE_IDLE, ...): a KeepAlive,
/// None when TCP_KEEPALIVE=off, and `default` when none of the variables is set. An invalid value
/// raises ValueError naming the variable; it is never replaced by a default.
#[pyfunction]
#[pyo3(signature = (default = None))]
fn from_env<'py>(
    py: Python<'py>,
    default: Option<Bound<'py, KeepAlive>>,
) -> PyResult<Option<Bound<'py, KeepAlive>>> {
    match CoreKeepAlive::from_env().map_err(to_py_err)? {
        EnvConfig::Unset => Ok(default),
        EnvConfig::Off => Ok(None),
        EnvConfig::On(inner) => Bound::new(py, KeepAlive { inner }).map(Some),
    }
}

/// `(level, option, value)` tuples that turn keep-alive on with these timings, checked by the core:
/// for `socket_options=` of urllib3/requests and `httpx.HTTPTransport`.
#[pyfunction]
#[pyo3(
    signature = (idle = Span::secs(60), interval = Span::secs(10), count = Count::Given(6), user_timeout = None),
    text_signature = "(idle=60, interval=10, count=6, user_timeout=None)"
)]
fn socket_options(
    idle: Span,
    interval: Span,
    count: Count,
    user_timeout: Option<Span>,
) -> PyResult<Vec<(i32, i32, i32)>> {
    keepalive(&idle, &interval, &count, user_timeout.as_ref())?
        .socket_options()
        .map_err(to_py_err)
}

/// Configure and inspect TCP keep-alive on Python sockets (the Rust core of `tcp_keepalive`).
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(from_env, m)?)?;
    m.add_function(wrap_pyfunction!(socket_options, m)?)?;
    m.add_class::<KeepAlive>()?;
    m.add_class::<Settings>()?;
    m.add("KeepAliveError", py.get_type::<KeepAliveError>())?;
    // The distribution's version (maturin takes it from Cargo.toml).
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_IDLE", tcp_keepalive::DEFAULT_IDLE.as_secs())?;
    m.add(
        "DEFAULT_INTERVAL",
        tcp_keepalive::DEFAULT_INTERVAL.as_secs(),
    )?;
    m.add("DEFAULT_COUNT", tcp_keepalive::DEFAULT_COUNT)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn invalid(name: &str, value: &str) -> Span {
        let _ = name;
        Span::Invalid(value.to_owned())
    }

    #[test]
    fn floats_become_durations_and_impossible_ones_are_kept_to_be_reported() {
        let shown = || "x".to_owned();
        assert_eq!(
            Span::from_float(1.5, shown),
            Span::Given(Duration::from_millis(1500))
        );
        assert_eq!(
            Span::from_float(1e-12, shown),
            Span::Given(Duration::from_nanos(1))
        );
        assert_eq!(Span::from_float(0.0, shown), Span::Given(Duration::ZERO));
        for v in [-0.5, f64::NAN, f64::INFINITY, 1e300] {
            assert_eq!(Span::from_float(v, shown), Span::Invalid("x".into()), "{v}");
        }
        assert_eq!(
            Span::from_micros(90_000_001, shown),
            Span::Given(Duration::new(90, 1000))
        );
        assert!(matches!(Span::from_micros(-1, shown), Span::Invalid(_)));
        assert!(matches!(
            Span::from_micros(i128::MAX, shown),
            Span::Invalid(_)
        ));
    }

    #[test]
    fn out_of_range_errors_come_from_core_with_the_callers_value() {
        let ok = build(
            &Span::Given(S(61)),
            &Span::Given(S(7)),
            &Count::Given(3),
            None,
        )
        .unwrap();
        assert_eq!(ok, CoreKeepAlive::new(S(61), S(7), 3).unwrap());

        let err = build(
            &Span::Given(S(61)),
            &invalid("interval", "-5"),
            &Count::Given(3),
            None,
        )
        .unwrap_err();
        let core = CoreKeepAlive::new(S(1), Duration::ZERO, 3).unwrap_err();
        let Error::InvalidArgument { allowed, .. } = core else {
            panic!("{core:?}")
        };
        assert_eq!(
            err.to_string(),
            format!("invalid interval: \"-5\" (allowed: {allowed})")
        );

        let err = build(
            &Span::Given(S(1)),
            &Span::Given(S(1)),
            &Count::Invalid("-3".into()),
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid count: \"-3\""),
            "{err}"
        );

        // A value the core can judge keeps the core's own rendering.
        let err = build(
            &Span::Given(S(40000)),
            &Span::Given(S(1)),
            &Count::Given(1),
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid idle: \"40000s\""),
            "{err}"
        );

        let err = build(
            &Span::Given(S(1)),
            &Span::Given(S(1)),
            &Count::Given(1),
            Some(&invalid("user_timeout", "inf")),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid user_timeout: \"inf\""),
            "{err}"
        );
    }

    #[test]
    fn every_core_error_maps_to_the_designed_python_exception() {
        Python::initialize();
        Python::attach(|py| {
            let os = |code| std::io::Error::from_raw_os_error(code);
            let cases = [
                (
                    Error::NotTcp {
                        fd: 5,
                        kind: "AF_INET SOCK_DGRAM (UDP)".into(),
                        source: os(libc::ENOPROTOOPT),
                    },
                    Some(libc::ENOPROTOOPT),
                ),
                (
                    Error::NotASocket {
                        fd: 6,
                        source: os(libc::ENOTSOCK),
                    },
                    Some(libc::ENOTSOCK),
                ),
                (
                    Error::BadDescriptor {
                        fd: 7,
                        source: os(libc::EBADF),
                    },
                    Some(libc::EBADF),
                ),
                (
                    Error::Unsupported {
                        option: tcp_keepalive::SocketOption::UserTimeout,
                        source: os(libc::ENOPROTOOPT),
                    },
                    Some(libc::ENOPROTOOPT),
                ),
                (
                    Error::Os {
                        fd: 8,
                        option: tcp_keepalive::SocketOption::KeepIdle,
                        source: os(libc::EPERM),
                    },
                    Some(libc::EPERM),
                ),
                (
                    Error::Unsupported {
                        option: tcp_keepalive::SocketOption::UserTimeout,
                        source: std::io::Error::other("no such option here"),
                    },
                    None,
                ),
            ];
            for (err, errno) in cases {
                let message = err.to_string();
                let e = to_py_err(err);
                assert!(e.is_instance_of::<KeepAliveError>(py), "{message}");
                assert!(e.is_instance_of::<PyOSError>(py), "{message}");
                let value = e.value(py);
                let got: Option<i32> = value.getattr("errno").unwrap().extract().unwrap();
                assert_eq!(got, errno, "{message}");
                let text = value.str().unwrap().to_string();
                assert!(text.ends_with(&message), "{text} / {message}");
            }
            let e = to_py_err(CoreKeepAlive::new(S(0), S(1), 1).unwrap_err());
            assert!(e.is_instance_of::<PyValueError>(py));
        });
    }
}
