package tcpkeepalive;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The native library: loaded once per JVM, and the {@code native} methods it exports.
 *
 * <p>Where it is looked for, in order:
 * <ol>
 *   <li>the system property {@value #PROPERTY}: a library file to load, or a directory to extract
 *       the bundled library into (for read-only roots and noexec /tmp, e.g. an emptyDir volume);</li>
 *   <li>the library bundled in this jar ({@value #RESOURCE_DIR}&lt;os&gt;-&lt;arch&gt;/), extracted
 *       once into a new directory under {@code java.io.tmpdir}, and deleted (with that directory)
 *       as soon as it is loaded;</li>
 *   <li>{@code System.loadLibrary("tcp_keepalive_jni")}, i.e. {@code java.library.path}.</li>
 * </ol>
 * Setting {@value #PROPERTY} to {@code off} skips loading (the {@code jdk.net} fallback is used).
 */
final class Native {
    static final String PROPERTY = "tcpkeepalive.library";
    static final String LIBRARY = "tcp_keepalive_jni";
    static final String RESOURCE_DIR = "/native/";

    private static final String LOAD_ERROR = load();

    private Native() {}

    /** True when the native library is loaded. */
    static boolean loaded() {
        return LOAD_ERROR == null;
    }

    /** Why the library did not load (every place tried), or null when it did. */
    static String loadError() {
        return LOAD_ERROR;
    }

    static String platform() {
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "").toLowerCase(Locale.ROOT);
        if (os.startsWith("linux")) os = "linux";
        else if (os.startsWith("mac") || os.startsWith("darwin")) os = "macos";
        else if (os.startsWith("windows")) os = "windows";
        if (arch.equals("amd64") || arch.equals("x86_64")) arch = "x86_64";
        else if (arch.equals("arm64")) arch = "aarch64";
        return os + "-" + arch;
    }

    private static String load() {
        List<String> tried = new ArrayList<String>();
        String setting = System.getProperty(PROPERTY);
        if (setting != null && setting.trim().equalsIgnoreCase("off")) {
            return "not loaded: -D" + PROPERTY + "=off";
        }
        File extractDir = null;
        if (setting != null && !setting.trim().isEmpty()) {
            File f = new File(setting.trim());
            if (f.isDirectory()) {
                extractDir = f;
            } else {
                try {
                    System.load(f.getAbsolutePath());
                    return null;
                } catch (Throwable t) {
                    tried.add("-D" + PROPERTY + "=" + f + ": " + t);
                }
            }
        }
        String resource = RESOURCE_DIR + platform() + "/" + System.mapLibraryName(LIBRARY);
        try {
            Path path = extract(resource, extractDir);
            if (path == null) {
                tried.add("bundled " + resource + ": not in this jar (no build for " + platform() + ")");
            } else {
                try {
                    System.load(path.toString());
                    return null;
                } catch (Throwable t) {
                    tried.add("bundled " + resource + " extracted to " + path + ": " + t);
                } finally {
                    // Loaded (the mapping outlives the file) or not: the copy is not needed any more,
                    // so a JVM that is killed leaves none behind (deleteOnExit runs only at a normal exit).
                    removeExtracted(path, extractDir == null);
                }
            }
        } catch (IOException | RuntimeException e) {
            tried.add("bundled " + resource + ": cannot extract into "
                    + (extractDir != null ? extractDir : System.getProperty("java.io.tmpdir"))
                    + " (" + e + "); set -D" + PROPERTY + "=<writable, exec-mounted directory>");
        }
        try {
            System.loadLibrary(LIBRARY);
            return null;
        } catch (Throwable t) {
            tried.add("System.loadLibrary(\"" + LIBRARY + "\") with java.library.path="
                    + System.getProperty("java.library.path") + ": " + t);
        }
        StringBuilder b = new StringBuilder("tcp-keepalive native library not loaded; tried:");
        for (String s : tried) b.append("\n  - ").append(s);
        return b.toString();
    }

    /** Deletes an extracted copy, and the directory made for it; failures are ignored. */
    private static void removeExtracted(Path path, boolean ownDirectory) {
        try {
            Files.deleteIfExists(path);
            if (ownDirectory) Files.deleteIfExists(path.getParent());
        } catch (IOException | RuntimeException ignored) {
            // deleteOnExit stays as the fallback.
        }
    }

    /** Copies the bundled library into a fresh file; null when the jar has none for this platform. */
    private static Path extract(String resource, File dir) throws IOException {
        InputStream in = Native.class.getResourceAsStream(resource);
        if (in == null) return null;
        try {
            Path target;
            if (dir != null) {
                target = Files.createTempFile(dir.toPath(), "libtcp_keepalive_jni-", ".so");
            } else {
                Path tmp = Files.createTempDirectory("tcp-keepalive-");
                tmp.toFile().deleteOnExit();
                target = tmp.resolve(System.mapLibraryName(LIBRARY));
            }
            target.toFile().deleteOnExit();
            Files.copy(in, target, StandardCopyOption.REPLACE_EXISTING);
            return target;
        } finally {
            in.close();
        }
    }

    // The exports of jni-binding/src/lib.rs.

    /** The core's checks; returns {idle s, interval s, count, user timeout ms or 0}. */
    static native int[] validate(long idleSeconds, int idleNanos, long intervalSeconds, int intervalNanos,
            int count, boolean hasUserTimeout, long userTimeoutSeconds, int userTimeoutNanos);

    /** Applies the settings all or nothing ({@code fresh}: a socket just created, not shared). */
    static void apply(Object socket, int idle, int interval, int count, int userTimeoutMillis, boolean fresh)
            throws java.net.SocketException {
        apply0(socket, kind(socket), idle, interval, count, userTimeoutMillis, fresh);
    }

    /** {enabled 0/1, idle s, interval s, count, user timeout ms or 0}, from the kernel. */
    static int[] inspect(Object socket) throws java.net.SocketException {
        return inspect0(socket, kind(socket));
    }

    /** The file descriptor found behind a socket object. */
    static int descriptor(Object socket) throws java.net.SocketException {
        return descriptor0(socket, kind(socket));
    }

    /** The descriptor found by the general walk only (tests compare it with the fast paths). */
    static int descriptorGeneral(Object socket) throws java.net.SocketException {
        return descriptor0(socket, 0);
    }

    private static final Class<?> SOCKET_CHANNEL_IMPL = jdkClass("sun.nio.ch.SocketChannelImpl");
    private static final Class<?> SOCKET_ADAPTOR = jdkClass("sun.nio.ch.SocketAdaptor");

    private static Class<?> jdkClass(String name) {
        try {
            return Class.forName(name, false, null);
        } catch (Throwable t) {
            return null;
        }
    }

    /**
     * The exact class, for the native side's fast paths (1 plain Socket, 2 SocketChannel, 3 its
     * socket() adaptor; 0 anything else, found by the general walk). The native side checks the
     * kind against the object's class before reading any field, and throws
     * {@code IllegalArgumentException} when they differ. Only the JDK's own exact classes get a
     * kind: their {@code isClosed()}, which {@code KeepAlive} calls first, cannot be overridden.
     */
    static int kind(Object socket) {
        if (socket == null) return 0;
        Class<?> c = socket.getClass();
        if (c == java.net.Socket.class) return 1;
        if (c == SOCKET_CHANNEL_IMPL) return 2;
        if (c == SOCKET_ADAPTOR) return 3;
        return 0;
    }

    private static native void apply0(Object socket, int kind, int idle, int interval, int count,
            int userTimeoutMillis, boolean fresh) throws java.net.SocketException;

    private static native int[] inspect0(Object socket, int kind) throws java.net.SocketException;

    private static native int descriptor0(Object socket, int kind) throws java.net.SocketException;

    /** {state (0 unset, 1 off, 2 on), idle, interval, count, user timeout ms}. */
    static native int[] fromEnv();

    /** A settings string ({@code idle=60,interval=10,...}) as {@link #fromEnv()} reports. */
    static native int[] parseSettings(String settings);
}
