package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** The loader, each way, in a fresh JVM (the library loads once per JVM). */
@Timeout(180)
class LoaderTest {
    private static final String CONFIGURED = "jdk=true,301,51,41";

    private static String run(String... jvmArgs) throws Exception {
        String out = TestSupport.runJava(Collections.<String, String>emptyMap(), Arrays.asList(jvmArgs), LoaderProbe.class);
        System.out.println(Arrays.toString(jvmArgs) + " ->\n" + out);
        return out;
    }

    private static void assertLine(String out, String line) {
        assertTrue(Arrays.asList(out.split("\\R")).contains(line), () -> "expected line \"" + line + "\" in:\n" + out);
    }

    @Test
    void bundledLibraryIsExtractedAndLoaded() throws Exception {
        String out = run();
        assertLine(out, "native=true");
        assertLine(out, "error=none");
        assertLine(out, CONFIGURED);
        assertLine(out, "userTimeout=PT5S");
    }

    @Test
    void propertyNamesAnExtractionDirectory() throws Exception {
        Path dir = Files.createTempDirectory("tcp-keepalive-extract");
        try {
            String out = run("-Dtcpkeepalive.library=" + dir);
            assertLine(out, "native=true");
            assertLine(out, CONFIGURED);
            // Deleted once loaded, not at exit: a SIGKILLed JVM leaves no copy behind.
            assertLine(out, "left=0");
        } finally {
            try (Stream<Path> files = Files.list(dir)) {
                files.forEach(f -> f.toFile().delete());
            }
            Files.delete(dir);
        }
    }

    @Test
    void propertyNamesALibraryFile() throws Exception {
        String lib = Native.class.getResource("/native/" + Native.platform() + "/libtcp_keepalive_jni.so").getPath();
        String out = run("-Dtcpkeepalive.library=" + lib);
        assertLine(out, "native=true");
        assertLine(out, CONFIGURED);
    }

    @Test
    void failureListsEverythingTriedAndTheFallbackWorks() throws Exception {
        String out = run("-Dtcpkeepalive.library=/nonexistent/libnothing.so", "-Djava.io.tmpdir=/nonexistent-tmp",
                "-Djava.library.path=/nonexistent-lib");
        assertLine(out, "native=false");
        String error = Arrays.stream(out.split("\\R")).filter(l -> l.startsWith("error=")).findFirst().orElse("");
        for (String tried : new String[] {"-Dtcpkeepalive.library=/nonexistent/libnothing.so",
            "bundled /native/linux-x86_64/libtcp_keepalive_jni.so: cannot extract into /nonexistent-tmp",
            "System.loadLibrary(\"tcp_keepalive_jni\") with java.library.path=/nonexistent-lib"}) {
            assertTrue(error.contains(tried), "should list " + tried + ": " + error);
        }
        // jdk.net.ExtendedSocketOptions did the work, and a user timeout says why it cannot.
        assertLine(out, CONFIGURED);
        assertLine(out, "inspect=keep-alive on, idle 301s, interval 51s, count 41, user timeout unset");
        String ut = Arrays.stream(out.split("\\R")).filter(l -> l.startsWith("userTimeout=")).findFirst().orElse("");
        assertTrue(ut.contains("UnsupportedOperationException") && ut.contains("TCP_USER_TIMEOUT")
                && ut.contains("not loaded"), ut);
    }

    @Test
    void offSkipsLoading() throws Exception {
        String out = run("-Dtcpkeepalive.library=off");
        assertLine(out, "native=false");
        assertLine(out, "error=not loaded: -Dtcpkeepalive.library=off");
        assertLine(out, CONFIGURED);
    }

    @Test
    void platformName() {
        List<String> known = Arrays.asList("linux-x86_64", "linux-aarch64", "macos-aarch64", "macos-x86_64");
        assertTrue(known.contains(Native.platform()) || !new File("/proc").exists(), Native.platform());
        assertEquals(System.getProperty("os.arch").equals("amd64"), Native.platform().endsWith("x86_64"));
    }
}
