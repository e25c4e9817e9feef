//! The reader of `env-cases.tsv` (contract C3), shared by core's and the preload's tests
//! (`#[path]`-included: it lives beside the table, not as a test target of its own).

/// One row: its line number, the variables it sets (values as bytes, escapes undone) and the
/// expected result in the table's notation.
pub struct Case {
    pub line: usize,
    pub vars: Vec<(String, Vec<u8>)>,
    pub expected: String,
}

/// Undoes the table's escapes: `\s \t \n \r \\`, `\u{HEX}`, `\xHH`.
pub fn unescape(line: usize, text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('s') => out.push(b' '),
            Some('t') => out.push(b'\t'),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('\\') => out.push(b'\\'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(
                    u8::from_str_radix(&hex, 16)
                        .unwrap_or_else(|_| panic!("line {line}: bad \\x escape in {text:?}")),
                );
            }
            Some('u') => {
                let rest = chars.as_str();
                let end = rest.find('}').expect("\\u{ without }");
                assert!(rest.starts_with('{'), "line {line}: \\u without {{");
                let code = u32::from_str_radix(&rest[1..end], 16).expect("hex in \\u{}");
                let c = char::from_u32(code).expect("a Unicode scalar value");
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                chars = rest[end + 1..].chars();
            }
            other => panic!("line {line}: unknown escape \\{other:?} in {text:?}"),
        }
    }
    out
}

/// Every row of `text` (the table), comments and blank lines skipped.
pub fn cases(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (vars, expected) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("line {number}: two fields expected: {line:?}"));
        assert!(!expected.contains('\t'), "line {number}: one TAB only");
        let vars = if vars == "-" {
            Vec::new()
        } else {
            vars.split(' ')
                .map(|assignment| {
                    let (name, value) = assignment
                        .split_once('=')
                        .unwrap_or_else(|| panic!("line {number}: NAME=VALUE: {assignment:?}"));
                    (name.to_string(), unescape(number, value))
                })
                .collect()
        };
        cases.push(Case {
            line: number,
            vars,
            expected: expected.to_string(),
        });
    }
    cases
}
