//! The JNI side of tcp-keepalive's JVM door: it finds a Java socket's file descriptor and hands
//! it to the core crate, and turns `tcp_keepalive::Error` into the documented Java exceptions.
//!
//! The Java API lives in `src/main/java/tcpkeepalive`; its package-private class
//! `tcpkeepalive.Native` declares the `native` methods exported here. Every entry point catches
//! panics and reports them as a Java exception: nothing unwinds into the JVM.
//!
//! How a descriptor is found (private JDK fields; JNI reads them without `--add-opens`):
//! - `java.net.Socket` / `java.net.ServerSocket`: field `impl`; a `java.net.DelegatingSocketImpl`
//!   (JDK 13+: `SocksSocketImpl`, `HttpConnectSocketImpl`) is followed through `delegate`; then
//!   `SocketImpl.fd` (a `java.io.FileDescriptor`) and its int field `fd`.
//! - `sun.nio.ch.SocketChannelImpl` / `ServerSocketChannelImpl`: their `FileDescriptor fd`.
//! - `sun.nio.ch.SocketAdaptor` (`channel.socket()`): field `sc`, the channel;
//!   `ServerSocketAdaptor`: field `ssc`.
//! - JSSE `sun.security.ssl.BaseSSLSocketImpl`: field `self`, the plain socket underneath when the
//!   TLS socket is layered over one, else the TLS socket itself (then its own `impl`).
//!
//! The JDK keeps the old number in these `FileDescriptor`s after close (JDK 17 closes by the int),
//! so a number read from a closed socket may belong to another socket by now. Before using it the
//! socket's own closed state is asked: `Native.kind` sends only the JDK's exact classes (whose
//! `isClosed()`, already called by the Java side, cannot be overridden) to the fast path, and the
//! general walk calls `java.net.Socket.isClosed()` / `ServerSocket.isClosed()` non-virtually, so a
//! subclass that overrides `isClosed()` is not believed.
#![warn(missing_docs)]

use std::os::fd::{BorrowedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use jni::objects::{GlobalRef, JClass, JFieldID, JMethodID, JObject, JString};
use jni::signature::{Primitive, ReturnType};
use jni::sys::{jboolean, jint, jintArray, jlong};
use jni::JNIEnv;
use tcp_keepalive::{
    check_count, check_idle, check_interval, check_user_timeout, EnvConfig, Error, FieldText,
    KeepAlive, Raw, TextFields,
};

/// Why a native call failed; each variant becomes one Java exception in [`throw`].
enum Failure {
    /// From the core: mapped per docs/design.md ("Errors").
    Core(Error),
    /// A null argument (`NullPointerException`).
    Null(&'static str),
    /// An object whose class this adapter does not know (`IllegalArgumentException`).
    Unknown(String),
    /// A socket without an open descriptor (`java.net.SocketException`).
    NoDescriptor(String),
    /// A JNI call failed; a Java exception may already be pending.
    Jni(jni::errors::Error),
    /// A Rust panic, caught at the boundary.
    Panic(String),
    /// A JDK without the private fields this adapter reads (`UnsupportedOperationException`).
    JdkLayout(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl From<jni::errors::Error> for Failure {
    fn from(e: jni::errors::Error) -> Self {
        Failure::Jni(e)
    }
}

type Result<T> = std::result::Result<T, Failure>;

/// A class and one of its instance fields.
struct Field {
    class: GlobalRef,
    id: JFieldID,
}

/// The JDK classes and fields on the way to a descriptor, looked up once per JVM.
struct Jdk {
    socket_impl: Field,
    server_socket_impl: Field,
    /// `java.net.Socket.isClosed()`, called non-virtually (a subclass may override it).
    socket_is_closed: JMethodID,
    /// `java.net.ServerSocket.isClosed()`, likewise.
    server_socket_is_closed: JMethodID,
    impl_fd: Field,
    fd_int: Field,
    delegating: Option<Field>,
    channel: Option<Field>,
    server_channel: Option<Field>,
    adaptor: Option<Field>,
    server_adaptor: Option<Field>,
    ssl_self: Option<Field>,
}

static JDK: OnceLock<Jdk> = OnceLock::new();

fn field(env: &mut JNIEnv, class: &str, name: &str, sig: &str) -> jni::errors::Result<Field> {
    let cls = env.find_class(class)?;
    let id = env.get_field_id(&cls, name, sig)?;
    let class = env.new_global_ref(&cls)?;
    env.delete_local_ref(cls)?;
    Ok(Field { class, id })
}

/// A field of a class that only some JDKs have (or that a JDK may rename): `None` when missing.
fn optional_field(env: &mut JNIEnv, class: &str, name: &str, sig: &str) -> Option<Field> {
    match field(env, class, name, sig) {
        Ok(f) => Some(f),
        Err(_) => {
            let _ = env.exception_clear();
            None
        }
    }
}

/// A method every supported JDK has, as [`required`] for fields.
fn required_method(env: &mut JNIEnv, class: &str, name: &str, sig: &str) -> Result<JMethodID> {
    let found = (|| {
        let cls = env.find_class(class)?;
        let id = env.get_method_id(&cls, name, sig)?;
        env.delete_local_ref(cls)?;
        Ok::<_, jni::errors::Error>(id)
    })();
    found.map_err(|_| {
        let _ = env.exception_clear();
        Failure::JdkLayout(format!(
            "tcp-keepalive cannot find {}.{name}{sig} in this JDK",
            class.replace('/', ".")
        ))
    })
}

/// A field every supported JDK has; missing means a JDK whose internals this version does not
/// know, reported as `UnsupportedOperationException` naming it (not a `NoSuchFieldError`).
fn required(env: &mut JNIEnv, class: &str, name: &str, sig: &str) -> Result<Field> {
    field(env, class, name, sig).map_err(|_| {
        let _ = env.exception_clear();
        Failure::JdkLayout(format!(
            "tcp-keepalive cannot read this JDK's socket internals: {}.{name} ({sig}) is missing; \
             run without the native library (-Dtcpkeepalive.library=off) to use \
             jdk.net.ExtendedSocketOptions",
            class.replace('/', ".")
        ))
    })
}

fn jdk(env: &mut JNIEnv) -> Result<&'static Jdk> {
    if let Some(jdk) = JDK.get() {
        return Ok(jdk);
    }
    let fd = "Ljava/io/FileDescriptor;";
    let jdk = Jdk {
        socket_impl: required(env, "java/net/Socket", "impl", "Ljava/net/SocketImpl;")?,
        server_socket_impl: required(
            env,
            "java/net/ServerSocket",
            "impl",
            "Ljava/net/SocketImpl;",
        )?,
        socket_is_closed: required_method(env, "java/net/Socket", "isClosed", "()Z")?,
        server_socket_is_closed: required_method(env, "java/net/ServerSocket", "isClosed", "()Z")?,
        impl_fd: required(env, "java/net/SocketImpl", "fd", fd)?,
        fd_int: required(env, "java/io/FileDescriptor", "fd", "I")?,
        delegating: optional_field(
            env,
            "java/net/DelegatingSocketImpl",
            "delegate",
            "Ljava/net/SocketImpl;",
        ),
        channel: optional_field(env, "sun/nio/ch/SocketChannelImpl", "fd", fd),
        server_channel: optional_field(env, "sun/nio/ch/ServerSocketChannelImpl", "fd", fd),
        adaptor: optional_field(
            env,
            "sun/nio/ch/SocketAdaptor",
            "sc",
            "Lsun/nio/ch/SocketChannelImpl;",
        ),
        server_adaptor: optional_field(
            env,
            "sun/nio/ch/ServerSocketAdaptor",
            "ssc",
            "Lsun/nio/ch/ServerSocketChannelImpl;",
        ),
        ssl_self: optional_field(
            env,
            "sun/security/ssl/BaseSSLSocketImpl",
            "self",
            "Ljava/net/Socket;",
        ),
    };
    // Another thread may have won the race; either value is the same.
    let _ = JDK.set(jdk);
    Ok(JDK.get().expect("set just above"))
}

fn is(env: &mut JNIEnv, obj: &JObject, field: &Option<Field>) -> Result<bool> {
    match field {
        Some(f) => Ok(env.is_instance_of(obj, &f.class)?),
        None => Ok(false),
    }
}

fn is_a(env: &mut JNIEnv, obj: &JObject, field: &Field) -> Result<bool> {
    Ok(env.is_instance_of(obj, &field.class)?)
}

fn get_object<'l>(env: &mut JNIEnv<'l>, obj: &JObject, field: &Field) -> Result<JObject<'l>> {
    // `field.id` was looked up on `field.class` with an object signature, and every caller
    // checked that `obj` is an instance of that class.
    let value = env.get_field_unchecked(obj, field.id, ReturnType::Object)?;
    Ok(value.l()?)
}

fn get_int(env: &mut JNIEnv, obj: &JObject, field: &Field) -> Result<i32> {
    // As in `get_object`, with an `int` field.
    let value = env.get_field_unchecked(obj, field.id, ReturnType::Primitive(Primitive::Int))?;
    Ok(value.i()?)
}

/// `obj.getClass().getName()`, for error messages; never fails.
fn class_name(env: &mut JNIEnv, obj: &JObject) -> String {
    let name = (|| -> jni::errors::Result<String> {
        let class = env.get_object_class(obj)?;
        let name = env
            .call_method(&class, "getName", "()Ljava/lang/String;", &[])?
            .l()?;
        let name = JString::from(name);
        let text: String = env.get_string(&name)?.into();
        Ok(text)
    })();
    name.unwrap_or_else(|_| {
        let _ = env.exception_clear();
        "an unknown class".to_string()
    })
}

/// Calls the boolean method `method` of `class` on `obj` without virtual dispatch: the JDK's own
/// answer even when a subclass overrides the method.
fn nonvirtual_bool(
    env: &mut JNIEnv,
    obj: &JObject,
    class: &GlobalRef,
    method: JMethodID,
) -> Result<bool> {
    let raw = env.get_raw();
    // SAFETY: `raw` is this thread's valid JNIEnv; `obj` is a live reference to an instance of
    // `class` (the caller's IsInstanceOf check) and `method` a `()Z` method of `class` looked up
    // on it; the argument array is empty, as the signature says.
    let answer = unsafe {
        let call = (**raw)
            .CallNonvirtualBooleanMethodA
            .expect("JNI 1.1 function");
        call(
            raw,
            obj.as_raw(),
            class.as_obj().as_raw(),
            method.into_raw(),
            std::ptr::null(),
        )
    };
    if env.exception_check()? {
        return Err(Failure::Jni(jni::errors::Error::JavaException));
    }
    Ok(answer == jni::sys::JNI_TRUE)
}

/// Fails when `socket` (a `java.net.Socket` or `ServerSocket`, per `server`) is closed by the
/// JDK's own account, whatever an override of `isClosed()` says: after close the JDK keeps the old
/// number in its `FileDescriptor`, and another socket may have it now.
fn ensure_open(env: &mut JNIEnv, jdk: &Jdk, socket: &JObject, server: bool) -> Result<()> {
    let (class, method) = if server {
        (&jdk.server_socket_impl.class, jdk.server_socket_is_closed)
    } else {
        (&jdk.socket_impl.class, jdk.socket_is_closed)
    };
    if nonvirtual_bool(env, socket, class, method)? {
        let name = class_name(env, socket);
        return Err(Failure::NoDescriptor(format!("the {name} is closed")));
    }
    Ok(())
}

/// The `int fd` of a `java.io.FileDescriptor`; a missing or closed one is an error naming `owner`.
fn descriptor_of(env: &mut JNIEnv, jdk: &Jdk, fd: &JObject, owner: &JObject) -> Result<RawFd> {
    let n = if fd.is_null() {
        -1
    } else {
        get_int(env, fd, &jdk.fd_int)?
    };
    if n < 0 {
        let name = class_name(env, owner);
        return Err(Failure::NoDescriptor(format!(
            "the {name} has no open file descriptor (closed, or never created)"
        )));
    }
    Ok(n)
}

/// Follows a `SocketImpl` (through `DelegatingSocketImpl`s) to its descriptor.
fn impl_descriptor(
    env: &mut JNIEnv,
    jdk: &Jdk,
    socket: &JObject,
    socket_impl: JObject,
) -> Result<RawFd> {
    let mut current = socket_impl;
    for _ in 0..4 {
        if current.is_null() {
            let name = class_name(env, socket);
            return Err(Failure::NoDescriptor(format!(
                "the {name} has no SocketImpl, so no file descriptor"
            )));
        }
        if is(env, &current, &jdk.delegating)? {
            let delegate = get_object(env, &current, jdk.delegating.as_ref().expect("checked"))?;
            env.delete_local_ref(current)?;
            current = delegate;
            continue;
        }
        let fd = get_object(env, &current, &jdk.impl_fd)?;
        if fd.is_null() {
            let name = class_name(env, socket);
            let impl_name = class_name(env, &current);
            if impl_name.starts_with("java.") || impl_name.starts_with("sun.") {
                return Err(Failure::NoDescriptor(format!(
                    "the {name} has no file descriptor in its {impl_name} (not created yet, or \
                     closed; a socket that wraps another one is not seen through)"
                )));
            }
            return Err(Failure::Unknown(format!(
                "tcp-keepalive cannot find the file descriptor of this {name}: its SocketImpl \
                 {impl_name} is not the JDK's and keeps no descriptor in SocketImpl.fd"
            )));
        }
        return descriptor_of(env, jdk, &fd, socket);
    }
    let name = class_name(env, socket);
    Err(Failure::Unknown(format!(
        "tcp-keepalive cannot find the file descriptor of this {name}: its SocketImpl delegates too deeply"
    )))
}

/// The descriptor behind a `Socket`, `ServerSocket`, `SocketChannel`, `ServerSocketChannel`, an
/// NIO socket adaptor or a JSSE `SSLSocket`.
fn find_fd<'l>(env: &mut JNIEnv<'l>, obj: &JObject<'l>) -> Result<RawFd> {
    if obj.is_null() {
        return Err(Failure::Null("socket"));
    }
    let jdk = jdk(env)?;
    let mut current = env.new_local_ref(obj)?;
    // Bounded: adaptor -> channel, or TLS socket -> plain socket -> impl, a few steps at most.
    for _ in 0..6 {
        // First: IsInstanceOf answers true for null.
        if current.is_null() {
            return Err(Failure::NoDescriptor(
                "the socket has nothing underneath it (a TLS or NIO socket without its channel)"
                    .to_string(),
            ));
        }
        if is(env, &current, &jdk.adaptor)? {
            let next = get_object(env, &current, jdk.adaptor.as_ref().expect("checked"))?;
            current = next;
            continue;
        }
        if is(env, &current, &jdk.server_adaptor)? {
            let next = get_object(env, &current, jdk.server_adaptor.as_ref().expect("checked"))?;
            current = next;
            continue;
        }
        for channel in [&jdk.channel, &jdk.server_channel] {
            if is(env, &current, channel)? {
                // isOpen() is final (AbstractInterruptibleChannel): the channel's own state.
                if !env.call_method(&current, "isOpen", "()Z", &[])?.z()? {
                    let name = class_name(env, &current);
                    return Err(Failure::NoDescriptor(format!("the {name} is closed")));
                }
                let fd = get_object(env, &current, channel.as_ref().expect("checked"))?;
                return descriptor_of(env, jdk, &fd, &current);
            }
        }
        if is(env, &current, &jdk.ssl_self)? {
            let inner = get_object(env, &current, jdk.ssl_self.as_ref().expect("checked"))?;
            if !inner.is_null() && !env.is_same_object(&inner, &current)? {
                current = inner;
                continue;
            }
        }
        if is_a(env, &current, &jdk.socket_impl)? {
            ensure_open(env, jdk, &current, false)?;
            let socket_impl = get_object(env, &current, &jdk.socket_impl)?;
            return impl_descriptor(env, jdk, &current, socket_impl);
        }
        if is_a(env, &current, &jdk.server_socket_impl)? {
            ensure_open(env, jdk, &current, true)?;
            let socket_impl = get_object(env, &current, &jdk.server_socket_impl)?;
            return impl_descriptor(env, jdk, &current, socket_impl);
        }
        let name = class_name(env, &current);
        return Err(Failure::Unknown(format!(
            "tcp-keepalive cannot find the file descriptor of a {name}: it knows java.net.Socket, \
             java.net.ServerSocket, SocketChannel, ServerSocketChannel, their socket() adaptors \
             and JSSE SSLSocket"
        )));
    }
    let name = class_name(env, obj);
    Err(Failure::Unknown(format!(
        "tcp-keepalive cannot find the file descriptor of this {name}: too many wrapping layers"
    )))
}

/// What `Native.kind` (Java) found the object's exact class to be, so that the common cases read
/// their few fields directly instead of walking the `IsInstanceOf` chain (each JNI call costs a
/// VM transition). The kind is checked against the object's class before any field is read (a
/// wrong one is an `IllegalArgumentException`); anything unusual on the fast path falls back to
/// [`find_fd`], which also explains failures.
const KIND_GENERAL: jint = 0; // anything: the general walk
const KIND_PLAIN_SOCKET: jint = 1; // exactly java.net.Socket
const KIND_SOCKET_CHANNEL: jint = 2; // exactly sun.nio.ch.SocketChannelImpl
const KIND_SOCKET_ADAPTOR: jint = 3; // exactly sun.nio.ch.SocketAdaptor

/// `GetObjectField` without the exception check: reading an object field by a valid ID of the
/// object's own class cannot throw. Null when `obj` is null.
fn raw_object_field<'l>(env: &JNIEnv<'l>, obj: &JObject, field: &Field) -> JObject<'l> {
    if obj.is_null() {
        return JObject::null();
    }
    let raw = env.get_raw();
    // SAFETY: `raw` is this thread's valid JNIEnv; `field.id` belongs to a class `obj` is an
    // instance of (the caller's kind or IsInstanceOf check), so the JNI contract holds.
    unsafe {
        let get = (**raw).GetObjectField.expect("JNI 1.1 function");
        JObject::from_raw(get(raw, obj.as_raw(), field.id.into_raw()))
    }
}

/// `GetIntField`, as [`raw_object_field`].
fn raw_int_field(env: &JNIEnv, obj: &JObject, field: &Field) -> i32 {
    let raw = env.get_raw();
    // SAFETY: as in `raw_object_field`; `obj` is a non-null java.io.FileDescriptor.
    unsafe {
        let get = (**raw).GetIntField.expect("JNI 1.1 function");
        get(raw, obj.as_raw(), field.id.into_raw())
    }
}

fn raw_is(env: &JNIEnv, obj: &JObject, field: &Option<Field>) -> bool {
    let Some(f) = field else { return false };
    let raw = env.get_raw();
    // SAFETY: valid env, a live local reference and a global class reference.
    unsafe {
        let is = (**raw).IsInstanceOf.expect("JNI 1.1 function");
        is(raw, obj.as_raw(), f.class.as_obj().as_raw()) == jni::sys::JNI_TRUE
    }
}

/// True when `obj`'s class is exactly `class` (not a subclass).
fn raw_exact_class(env: &JNIEnv, obj: &JObject, class: &GlobalRef) -> bool {
    let raw = env.get_raw();
    // SAFETY: valid env and a live, non-null local reference (the caller checked); the class
    // reference GetObjectClass returns is a new local one, deleted before returning.
    unsafe {
        let get_class = (**raw).GetObjectClass.expect("JNI 1.1 function");
        let same = (**raw).IsSameObject.expect("JNI 1.1 function");
        let delete = (**raw).DeleteLocalRef.expect("JNI 1.1 function");
        let actual = get_class(raw, obj.as_raw());
        let exact = same(raw, actual, class.as_obj().as_raw()) == jni::sys::JNI_TRUE;
        delete(raw, actual);
        exact
    }
}

/// The class `kind` stands for, or `None` for [`KIND_GENERAL`]; an unknown kind or one the JDK
/// lacks is an error.
fn kind_class(jdk: &Jdk, kind: jint) -> Result<Option<&GlobalRef>> {
    let class = match kind {
        KIND_GENERAL => return Ok(None),
        KIND_PLAIN_SOCKET => Some(&jdk.socket_impl.class),
        KIND_SOCKET_CHANNEL => jdk.channel.as_ref().map(|f| &f.class),
        KIND_SOCKET_ADAPTOR => jdk.adaptor.as_ref().map(|f| &f.class),
        _ => None,
    };
    class.map(Some).ok_or_else(|| {
        Failure::Unknown(format!(
            "tcp-keepalive internal error: socket kind {kind} is not one of 0 to 3 known on this JDK"
        ))
    })
}

/// The descriptor of a `FileDescriptor` object, or `None` when null or closed (-1).
fn fd_value(env: &JNIEnv, jdk: &Jdk, fd: &JObject) -> Option<RawFd> {
    if fd.is_null() {
        return None;
    }
    let n = raw_int_field(env, fd, &jdk.fd_int);
    (n >= 0).then_some(n)
}

/// The fast path for the classes `Native.kind` recognises; `None` sends the caller to
/// [`find_fd`]. The caller has checked that `obj`'s class is exactly the one `kind` stands for,
/// so each field below belongs to the class of the object it is read from.
fn find_fd_fast(env: &JNIEnv, jdk: &Jdk, obj: &JObject, kind: jint) -> Option<RawFd> {
    match kind {
        KIND_PLAIN_SOCKET => {
            let mut socket_impl = raw_object_field(env, obj, &jdk.socket_impl);
            // JDK 13+: Socket -> SocksSocketImpl (delegating) -> NioSocketImpl.
            for _ in 0..4 {
                if socket_impl.is_null() {
                    return None;
                }
                if !raw_is(env, &socket_impl, &jdk.delegating) {
                    let fd = raw_object_field(env, &socket_impl, &jdk.impl_fd);
                    return fd_value(env, jdk, &fd);
                }
                socket_impl = raw_object_field(env, &socket_impl, jdk.delegating.as_ref()?);
            }
            None
        }
        KIND_SOCKET_CHANNEL => {
            let fd = raw_object_field(env, obj, jdk.channel.as_ref()?);
            fd_value(env, jdk, &fd)
        }
        KIND_SOCKET_ADAPTOR => {
            let channel = raw_object_field(env, obj, jdk.adaptor.as_ref()?);
            let fd = raw_object_field(env, &channel, jdk.channel.as_ref()?);
            fd_value(env, jdk, &fd)
        }
        _ => None,
    }
}

/// [`find_fd_fast`] when it knows the object, else [`find_fd`].
fn descriptor<'l>(env: &mut JNIEnv<'l>, obj: &JObject<'l>, kind: jint) -> Result<RawFd> {
    if obj.is_null() {
        return Err(Failure::Null("socket"));
    }
    let jdk = jdk(env)?;
    let Some(class) = kind_class(jdk, kind)? else {
        return find_fd(env, obj);
    };
    if !raw_exact_class(env, obj, class) {
        let name = class_name(env, obj);
        return Err(Failure::Unknown(format!(
            "tcp-keepalive internal error: socket kind {kind} does not match a {name}"
        )));
    }
    match find_fd_fast(env, jdk, obj, kind) {
        Some(fd) => Ok(fd),
        None => find_fd(env, obj),
    }
}

/// Throws the Java exception for `failure`, unless one is already pending.
fn throw(env: &mut JNIEnv, failure: Failure) {
    if env.exception_check().unwrap_or(true) {
        return;
    }
    let (class, message) = match failure {
        Failure::Core(e) => {
            let class = match e {
                Error::InvalidArgument { .. } => "java/lang/IllegalArgumentException",
                Error::Unsupported { .. } => "java/lang/UnsupportedOperationException",
                _ => "java/net/SocketException",
            };
            (class, e.to_string())
        }
        Failure::Null(what) => ("java/lang/NullPointerException", format!("{what} is null")),
        Failure::Unknown(msg) => ("java/lang/IllegalArgumentException", msg),
        Failure::NoDescriptor(msg) => ("java/net/SocketException", msg),
        Failure::Jni(jni::errors::Error::JavaException) => return,
        Failure::Jni(e) => (
            "java/lang/IllegalStateException",
            format!("tcp-keepalive: JNI call failed: {e}"),
        ),
        Failure::JdkLayout(msg) => ("java/lang/UnsupportedOperationException", msg),
        Failure::Panic(msg) => (
            "java/lang/IllegalStateException",
            format!("tcp-keepalive native code panicked (please report): {msg}"),
        ),
    };
    // If even this fails (out of memory), the JVM has an exception pending already.
    let _ = env.throw_new(class, message);
}

/// Runs a native method's body: a failure or a panic becomes a Java exception and `default` the
/// (ignored) return value.
fn guard<'l, T>(
    env: &mut JNIEnv<'l>,
    default: T,
    body: impl FnOnce(&mut JNIEnv<'l>) -> Result<T>,
) -> T {
    let outcome = catch_unwind(AssertUnwindSafe(|| body(env)));
    let failure = match outcome {
        Ok(Ok(value)) => return value,
        Ok(Err(failure)) => failure,
        Err(panic) => Failure::Panic(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string()),
        ),
    };
    // Throwing must not unwind either.
    let _ = catch_unwind(AssertUnwindSafe(|| throw(env, failure)));
    default
}

/// A Java `Duration` (seconds, nanos) as core's raw value: signed nanoseconds, so a negative one
/// is refused by core and shown exactly (`-5s`, `-500ms`, `-1ns`).
fn nanos(secs: jlong, nanos: jint) -> Raw<'static> {
    Raw::SignedNanos(i128::from(secs) * 1_000_000_000 + i128::from(nanos))
}

/// Builds a `KeepAlive` through core's per-field checks, in core's order (idle, interval, count,
/// user timeout), each named as the builder names it.
fn build(
    idle: (jlong, jint),
    interval: (jlong, jint),
    count: jint,
    user_timeout: Option<(jlong, jint)>,
) -> std::result::Result<KeepAlive, Error> {
    let idle = check_idle("idle", nanos(idle.0, idle.1))?;
    let interval = check_interval("interval", nanos(interval.0, interval.1))?;
    let count = check_count("count", Raw::Int(count.into()))?;
    let keepalive = KeepAlive::new(idle, interval, count)?;
    match user_timeout {
        None => Ok(keepalive),
        Some((secs, n)) => {
            keepalive.with_user_timeout(check_user_timeout("user_timeout", nanos(secs, n))?)
        }
    }
}

/// `[idle s, interval s, count, user timeout ms or 0]`, the form the Java side stores.
fn to_ints(k: &KeepAlive) -> [jint; 4] {
    [
        k.idle().as_secs() as jint,
        k.interval().as_secs() as jint,
        k.count() as jint,
        k.user_timeout().map_or(0, |t| t.as_millis() as jint),
    ]
}

fn int_array(env: &mut JNIEnv, values: &[jint]) -> Result<jintArray> {
    let array = env.new_int_array(values.len() as i32)?;
    env.set_int_array_region(&array, 0, values)?;
    Ok(array.into_raw())
}

/// `Native.validate(idleSeconds, idleNanos, intervalSeconds, intervalNanos, count,
/// hasUserTimeout, userTimeoutSeconds, userTimeoutNanos)`: the core's checks for the builder;
/// returns `[idle s, interval s, count, user timeout ms or 0]` or throws
/// `IllegalArgumentException`.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "system" fn Java_tcpkeepalive_Native_validate<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    idle_secs: jlong,
    idle_nanos: jint,
    interval_secs: jlong,
    interval_nanos: jint,
    count: jint,
    has_user_timeout: jboolean,
    user_timeout_secs: jlong,
    user_timeout_nanos: jint,
) -> jintArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let user_timeout =
            (has_user_timeout != 0).then_some((user_timeout_secs, user_timeout_nanos));
        let k = build(
            (idle_secs, idle_nanos),
            (interval_secs, interval_nanos),
            count,
            user_timeout,
        )?;
        int_array(env, &to_ints(&k))
    })
}

/// `Native.apply0(socket, kind, idleSeconds, intervalSeconds, count, userTimeoutMillis, fresh)`: checks
/// the values, finds the descriptor and applies them all or nothing (`fresh`: the socket was just
/// created by a factory and is not yet shared, so the core's cheaper `apply_to_new_socket`).
/// `userTimeoutMillis` 0 leaves the user timeout alone.
#[no_mangle]
pub extern "system" fn Java_tcpkeepalive_Native_apply0<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    socket: JObject<'l>,
    kind: jint,
    idle: jint,
    interval: jint,
    count: jint,
    user_timeout_ms: jint,
    fresh: jboolean,
) {
    guard(&mut env, (), |env| {
        let user_timeout = (user_timeout_ms != 0).then(|| {
            let ms = i64::from(user_timeout_ms);
            (
                ms.div_euclid(1000),
                (ms.rem_euclid(1000) * 1_000_000) as jint,
            )
        });
        let k = build(
            (jlong::from(idle), 0),
            (jlong::from(interval), 0),
            count,
            user_timeout,
        )?;
        let fd = descriptor(env, &socket, kind)?;
        // SAFETY: `fd` is non-negative and was the socket's descriptor while its JDK state said
        // open. Nothing here closes it or keeps it past this call; the core only passes the
        // number to setsockopt/getsockopt. Holding the Java socket does not stop another thread's
        // close(): then these calls fail with EBADF or reach whatever reused the number, as any
        // descriptor-level code would (the JDK's own setOption takes a lock JNI cannot).
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        if fresh != 0 {
            k.apply_to_new_socket(fd)?;
        } else {
            k.apply(fd)?;
        }
        Ok(())
    })
}

/// `Native.inspect0(socket, kind)`: `[enabled 0/1, idle s, interval s, count, user timeout ms or 0]`,
/// read from the kernel.
#[no_mangle]
pub extern "system" fn Java_tcpkeepalive_Native_inspect0<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    socket: JObject<'l>,
    kind: jint,
) -> jintArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let fd = descriptor(env, &socket, kind)?;
        // SAFETY: as in `apply0`.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let s = tcp_keepalive::inspect(fd)?;
        let clamp = |v: u128| v.min(i32::MAX as u128) as jint;
        int_array(
            env,
            &[
                jint::from(s.enabled),
                clamp(u128::from(s.idle.as_secs())),
                clamp(u128::from(s.interval.as_secs())),
                clamp(u128::from(s.count)),
                s.user_timeout.map_or(0, |t| clamp(t.as_millis())),
            ],
        )
    })
}

/// `Native.descriptor0(socket, kind)`: the file descriptor found behind a socket object (diagnostics
/// and tests).
#[no_mangle]
pub extern "system" fn Java_tcpkeepalive_Native_descriptor0<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    socket: JObject<'l>,
    kind: jint,
) -> jint {
    guard(&mut env, -1, |env| descriptor(env, &socket, kind))
}

/// `Native.fromEnv()`: `[state, idle s, interval s, count, user timeout ms or 0]` with state 0 =
/// no variable set, 1 = `TCP_KEEPALIVE=off`, 2 = on; an invalid variable throws
/// `IllegalArgumentException` naming it.
#[no_mangle]
pub extern "system" fn Java_tcpkeepalive_Native_fromEnv<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
) -> jintArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        let values = env_ints(KeepAlive::from_env()?);
        int_array(env, &values)
    })
}

/// The keys of a settings string, in the order of [`TextFields`].
const SETTING_KEYS: [&str; 5] = ["keepalive", "idle", "interval", "count", "user_timeout"];

const SETTINGS_FORM: &str = "key=value items separated by commas, keys keepalive (on/off), idle, \
     interval, count, user_timeout, each at most once, e.g. idle=60,interval=10,count=6,user_timeout=30s";

/// Parses a settings string such as `idle=60,interval=10,count=6,user_timeout=30s` (what
/// pgjdbc's `socketFactoryArg` passes to a factory's String constructor): the items are split
/// here, and core's [`KeepAlive::from_fields`] checks the values with the environment's
/// vocabulary, each named by its key.
fn parse_settings(text: &str) -> std::result::Result<EnvConfig, Error> {
    // As the core trims values: ASCII whitespace only.
    fn trim(t: &str) -> &str {
        t.trim_matches(|c: char| c.is_ascii_whitespace())
    }
    let mut values: [Option<&str>; 5] = Default::default();
    for item in text.split(',') {
        if trim(text).is_empty() {
            continue;
        }
        let bad = || Error::InvalidArgument {
            name: "setting".to_string(),
            value: item.to_string(),
            allowed: SETTINGS_FORM.to_string(),
        };
        let (key, value) = item.split_once('=').ok_or_else(bad)?;
        let index = SETTING_KEYS
            .iter()
            .position(|k| *k == trim(key))
            .ok_or_else(bad)?;
        if values[index].is_some() || trim(value).is_empty() {
            return Err(bad());
        }
        values[index] = Some(value);
    }
    let field = |index: usize| values[index].map(|text| FieldText::new(SETTING_KEYS[index], text));
    KeepAlive::from_fields(&TextFields {
        keepalive: field(0),
        idle: field(1),
        interval: field(2),
        count: field(3),
        user_timeout: field(4),
    })
}

/// `[state, idle s, interval s, count, user timeout ms or 0]`, state 0 unset, 1 off, 2 on.
fn env_ints(config: EnvConfig) -> [jint; 5] {
    match config {
        EnvConfig::Unset => [0, 0, 0, 0, 0],
        EnvConfig::Off => [1, 0, 0, 0, 0],
        EnvConfig::On(k) => {
            let [a, b, c, d] = to_ints(&k);
            [2, a, b, c, d]
        }
    }
}

/// `Native.parseSettings(text)`: a settings string (see `parse_settings`) as
/// `[state, idle s, interval s, count, user timeout ms or 0]`, like `fromEnv`; an invalid one
/// throws `IllegalArgumentException` naming the key.
#[no_mangle]
pub extern "system" fn Java_tcpkeepalive_Native_parseSettings<'l>(
    mut env: JNIEnv<'l>,
    _class: JClass<'l>,
    text: JString<'l>,
) -> jintArray {
    guard(&mut env, std::ptr::null_mut(), |env| {
        if text.is_null() {
            return Err(Failure::Null("settings"));
        }
        let text: String = env.get_string(&text)?.into();
        let values = env_ints(parse_settings(&text)?);
        int_array(env, &values)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_values_get_the_core_message_with_the_given_value() {
        let err = build((-5, 0), (10, 0), 6, None).unwrap_err().to_string();
        assert!(
            err.contains("idle") && err.contains("\"-5s\"") && err.contains("32767"),
            "{err}"
        );
        let err = build((60, 0), (-1, 500_000_000), 6, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("interval") && err.contains("\"-500ms\""),
            "{err}"
        );
        let err = build((60, 0), (10, 0), -3, None).unwrap_err().to_string();
        assert!(
            err.contains("count") && err.contains("\"-3\"") && err.contains("127"),
            "{err}"
        );
        let err = build((60, 0), (10, 0), 6, Some((-1, 999_999_999)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user_timeout") && err.contains("\"-1ns\""),
            "{err}"
        );
    }

    #[test]
    fn checks_in_the_core_order_and_keeps_valid_values() {
        let err = build((0, 0), (-1, 0), 0, None).unwrap_err().to_string();
        assert!(err.starts_with("invalid idle"), "{err}");
        let k = build((1, 1), (2, 0), 3, Some((0, 1))).unwrap();
        assert_eq!(to_ints(&k), [2, 2, 3, 1]);
    }

    #[test]
    fn settings_strings_use_the_environment_vocabulary() {
        let on = |text: &str| match parse_settings(text).unwrap() {
            EnvConfig::On(k) => to_ints(&k),
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            on("idle=61,interval=7,count=5,user_timeout=30s"),
            [61, 7, 5, 30_000]
        );
        assert_eq!(on(" idle = 2m , count=9"), [120, 10, 9, 0]);
        assert_eq!(on("keepalive=on"), [60, 10, 6, 0]);
        assert_eq!(parse_settings("").unwrap(), EnvConfig::Unset);
        assert_eq!(
            parse_settings("keepalive=off,idle=5").unwrap(),
            EnvConfig::Off
        );
        let err = |text: &str| parse_settings(text).unwrap_err().to_string();
        assert_eq!(
            err("idle=0"),
            "invalid idle: \"0\" (allowed: 1 to 32767 seconds (finer values round up to whole seconds))"
        );
        assert!(err("count=200").starts_with("invalid count: \"200\""));
        assert!(err("idle=60,idle=61").starts_with("invalid setting: \"idle=61\""));
        assert!(err("idle").starts_with("invalid setting: \"idle\""));
        assert!(err("idle=").starts_with("invalid setting: \"idle=\""));
        assert!(err("idle=60,").starts_with("invalid setting: \"\""));
        assert!(err("KEEPIDLE=60").contains("keys keepalive (on/off), idle"));
    }
}
