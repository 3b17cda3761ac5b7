//! The house's limits, kept true: no function in `src/` is longer than
//! [`MAX_LINES`] lines (issue 30: a function that long has more than one
//! job; split it where its parts have names).

mod common;

use std::path::Path;

/// The longest a function may be, from its `fn` line to its closing brace.
const MAX_LINES: usize = 120;

/// The text with every comment, string and character literal blanked
/// (newlines kept), so that only code's braces and words are left.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == b'/' && next == Some(b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && next == Some(b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r'
            && (next == Some(b'"') || next == Some(b'#'))
            && !b
                .get(i.wrapping_sub(1))
                .is_some_and(|p| p.is_ascii_alphanumeric() || *p == b'_')
        {
            // A raw string: r"..." or r#"..."#, as many hashes as opened.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            out.resize(out.len() + (j + 1 - i), b' ');
            i = j + 1;
            while i < b.len() && !b[i..].starts_with(&close) {
                blank(&mut out, b[i]);
                i += 1;
            }
            out.resize(out.len() + close.len(), b' ');
            i += close.len();
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A character literal ('x', '\n', '\u{7f}'), or a lifetime.
            let len = match (next, b.get(i + 2)) {
                (Some(b'\\'), _) => b[i + 2..].iter().position(|&x| x == b'\'').map(|p| p + 3),
                (Some(_), Some(b'\'')) => Some(3),
                _ => None,
            };
            match len {
                Some(n) => {
                    out.resize(out.len() + n, b' ');
                    i += n;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every function with a body in `code`: (its name, its first line, its
/// length in lines).
fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let words: Vec<&str> = line
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else {
            continue;
        };
        let Some(name) = words[at + 1..].iter().find(|w| !w.is_empty()) else {
            continue;
        };
        // From the `fn` on: a `;` before any `{` is a declaration.
        let mut depth = 0i64;
        let mut opened = false;
        let mut end = None;
        'scan: for (m, l) in lines.iter().enumerate().skip(n) {
            let from = if m == n {
                line.find("fn").unwrap_or(0)
            } else {
                0
            };
            for ch in l[from..].chars() {
                match ch {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth -= 1;
                        if opened && depth == 0 {
                            end = Some(m);
                            break 'scan;
                        }
                    }
                    ';' if !opened => break 'scan,
                    _ => {}
                }
            }
        }
        if let Some(end) = end {
            out.push((name.to_string(), n + 1, end - n + 1));
        }
    }
    out
}

#[test]
fn no_function_in_src_is_longer_than_the_limit() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    common::rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut long = Vec::new();
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (name, line, len) in functions(&code_only(&text)) {
            seen += 1;
            if len > MAX_LINES {
                long.push(format!(
                    "{}:{line}: fn {name} is {len} lines",
                    f.strip_prefix(&src).unwrap_or(f).display()
                ));
            }
        }
    }
    assert!(
        seen > 1000,
        "found only {seen} functions: is the scan broken?"
    );
    assert!(
        long.is_empty(),
        "longer than {MAX_LINES} lines (split them where their parts have names):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_scan_sees_through_strings_comments_and_lifetimes() {
    let text = "fn a<'x>(s: &'x str) -> char {\n    let _ = \"}\";\n    // }\n    let _ = r#\"{\"#;\n    '}'\n}\nfn b();\nfn c() {\n    /* { */\n}\n";
    let fns = functions(&code_only(text));
    assert_eq!(
        fns,
        vec![("a".to_string(), 1, 6), ("c".to_string(), 8, 3)],
        "{}",
        code_only(text)
    );
    // A function over the limit is found.
    let body = "    let _ = 1;\n".repeat(MAX_LINES);
    let fns = functions(&code_only(&format!("fn long() {{\n{body}}}\n")));
    assert_eq!(fns, vec![("long".to_string(), 1, MAX_LINES + 2)]);
}
