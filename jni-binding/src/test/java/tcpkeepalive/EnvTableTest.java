package tcpkeepalive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The shared environment vocabulary (contract C3): every row of core/tests/data/env-cases.tsv
 * through the fallback's parser, which must give the core's result and exact error text. (The
 * native path is the core itself, proven against the same table by core/tests/env_table.rs.)
 */
class EnvTableTest {
    static final Path TABLE = Paths.get(System.getProperty("tcpkeepalive.envCases",
            "../core/tests/data/env-cases.tsv"));

    /** The table's escapes; null for a value with a {@code \xHH} byte (not UTF-8), which a Java environment cannot hold. */
    static String unescape(String text) {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c != '\\') {
                out.append(c);
                continue;
            }
            char e = text.charAt(++i);
            switch (e) {
                case 's': out.append(' '); break;
                case 't': out.append('\t'); break;
                case 'n': out.append('\n'); break;
                case 'r': out.append('\r'); break;
                case '\\': out.append('\\'); break;
                case 'x': return null;
                case 'u': {
                    int end = text.indexOf('}', i);
                    assertEquals('{', text.charAt(i + 1), "\\u{ in " + text);
                    out.appendCodePoint(Integer.parseInt(text.substring(i + 2, end), 16));
                    i = end;
                    break;
                }
                default: throw new AssertionError("unknown escape \\" + e + " in " + text);
            }
        }
        return out.toString();
    }

    /** The fallback's result in the table's words. */
    static String result(Map<String, String> env) {
        try {
            int[] v = Fallback.fromEnv(env);
            if (v[0] == 0) return "unset";
            if (v[0] == 1) return "off";
            return "on " + v[1] + " " + v[2] + " " + v[3] + " " + (v[4] == 0 ? "-" : Integer.toString(v[4]));
        } catch (IllegalArgumentException e) {
            return "error " + e.getMessage();
        }
    }

    @Test
    void theFallbackPassesEveryRow() throws IOException {
        List<String> lines = Files.readAllLines(TABLE, StandardCharsets.UTF_8);
        int checked = 0;
        List<String> skipped = new ArrayList<>();
        List<String> failures = new ArrayList<>();
        for (int n = 0; n < lines.size(); n++) {
            String line = lines.get(n);
            if (line.isEmpty() || line.startsWith("#")) continue;
            String[] fields = line.split("\t", -1);
            assertEquals(2, fields.length, "line " + (n + 1) + ": two fields");
            Map<String, String> env = new LinkedHashMap<>();
            boolean representable = true;
            if (!fields[0].equals("-")) {
                for (String assignment : fields[0].split(" ")) {
                    int eq = assignment.indexOf('=');
                    assertTrue(eq > 0, "line " + (n + 1) + ": NAME=VALUE");
                    String value = unescape(assignment.substring(eq + 1));
                    if (value == null) representable = false;
                    env.put(assignment.substring(0, eq), value);
                }
            }
            if (!representable) {
                skipped.add("line " + (n + 1));
                continue;
            }
            String got = result(env);
            if (!got.equals(fields[1])) failures.add("line " + (n + 1) + " " + env + ":\n  core:     " + fields[1] + "\n  fallback: " + got);
            checked++;
        }
        assertTrue(failures.isEmpty(), failures.size() + " rows differ:\n" + String.join("\n", failures));
        assertTrue(checked >= 100, "the table has its rows: " + checked);
        // A Java environment holds only strings: rows with bytes that are not UTF-8 cannot be built.
        System.out.println("env-cases.tsv: " + checked + " rows passed, " + skipped.size()
                + " skipped (a value that is not UTF-8: " + skipped + ")");
    }
}
