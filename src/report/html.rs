//! Small helpers for building the pages: escaping, templates, formatting.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Fills `{{name}}` placeholders in one pass, so text inserted for one
/// placeholder is never searched for another. Values are inserted as they
/// are: escape data before passing it. An unknown or unclosed placeholder is
/// an error (a mistake in the template).
pub(crate) fn fill(template: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "template has an unclosed `{{`".to_string())?;
        let name = after[..close].trim();
        let value = vars
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
            .ok_or_else(|| format!("template placeholder `{{{{{name}}}}}` has no value"))?;
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Percent-encodes a relative path for an `href`, keeping `/` between
/// components (backslashes become `/`). The result still needs [`escape`]
/// only for `&`, which it never contains.
pub(crate) fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b'\\' => out.push('/'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The path of `target` relative to the directory `from`, with `/`
/// separators, or `None` when there is none (different drives).
///
/// Both are made absolute first (canonical when they exist), so a run
/// directory given relative to the working directory still links right.
pub(crate) fn relative_path(from: &Path, target: &Path) -> Option<String> {
    let absolute = |p: &Path| -> Option<PathBuf> {
        p.canonicalize()
            .ok()
            .or_else(|| std::path::absolute(p).ok())
    };
    let from = absolute(from)?;
    let target = absolute(target)?;
    let from: Vec<Component> = from.components().collect();
    let target: Vec<Component> = target.components().collect();
    if from.first() != target.first() {
        return None;
    }
    let common = from.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = Vec::new();
    for c in &from[common..] {
        match c {
            Component::Normal(_) => parts.push("..".into()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    for c in &target[common..] {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        return Some(".".into());
    }
    Some(parts.join("/"))
}

/// Quotes a word for a POSIX shell when it needs it.
pub(crate) fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A latency in microseconds, in the unit that reads best.
pub(crate) fn fmt_us(us: u64) -> String {
    fmt_us_f(us as f64)
}

/// A latency in microseconds (fractional), in the unit that reads best.
pub(crate) fn fmt_us_f(us: f64) -> String {
    if !us.is_finite() {
        return "—".into();
    }
    if us < 1_000.0 {
        format!("{} µs", sig(us))
    } else if us < 1_000_000.0 {
        format!("{} ms", sig(us / 1e3))
    } else {
        format!("{} s", sig(us / 1e6))
    }
}

/// A number with about three significant digits, without trailing zeros.
pub(crate) fn sig(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    let decimals = if a == 0.0 || a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a >= 0.1 {
        3
    } else if a >= 0.01 {
        4
    } else {
        5
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// An integer with thin thousands separators (`12 345`).
pub(crate) fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds since the run's start, as seconds with microsecond digits.
pub(crate) fn fmt_ns_as_s(ns: u64) -> String {
    format!("{:.6}", ns as f64 / 1e9)
}

/// A duration in seconds, compactly (`12.5 s`, `3 min 20 s`).
pub(crate) fn fmt_duration_s(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "—".into();
    }
    if s < 120.0 {
        format!("{} s", sig(s))
    } else {
        let total = s.round() as u64;
        let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
        if h > 0 {
            format!("{h} h {m} min {sec} s")
        } else {
            format!("{m} min {sec} s")
        }
    }
}

/// A rate per second.
pub(crate) fn fmt_rate(per_s: f64) -> String {
    if !per_s.is_finite() {
        return "—".into();
    }
    if per_s >= 1000.0 {
        fmt_count(per_s.round() as u64)
    } else {
        sig(per_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn fill_is_one_pass() {
        let out = fill(
            "a {{x}} b {{ y }}",
            &[("x", "{{y}}".into()), ("y", "Y".into())],
        )
        .unwrap();
        assert_eq!(out, "a {{y}} b Y");
        assert!(fill("{{nope}}", &[]).is_err());
        assert!(fill("{{open", &[]).is_err());
    }

    #[test]
    fn hrefs_and_paths() {
        assert_eq!(href("logs/redis 1.log"), "logs/redis%201.log");
        assert_eq!(href("a\"b"), "a%22b");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cmp");
        let run = dir.path().join("runs").join("r1").join("index.html");
        assert_eq!(
            relative_path(&out, &run).as_deref(),
            Some("../runs/r1/index.html")
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_us(850), "850 µs");
        assert_eq!(fmt_us(1_234), "1.23 ms");
        assert_eq!(fmt_us(2_500_000), "2.5 s");
        assert_eq!(fmt_count(1_234_567), "1\u{202f}234\u{202f}567");
        assert_eq!(fmt_duration_s(200.0), "3 min 20 s");
        assert_eq!(shell_quote("scenarios/a.toml"), "scenarios/a.toml");
        assert_eq!(shell_quote("my file"), "'my file'");
    }
}
