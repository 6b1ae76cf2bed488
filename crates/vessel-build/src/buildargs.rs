//! Build arguments: `{{ VAR }}` templating (`--build-arg`, `--build-arg-file`,
//! `%arguments`).
//!
//! Rules (Apptainer `internal/pkg/build/args/` and `internal/pkg/build/build.go:
//! MakeAllDefs`):
//!
//! * Templating runs on the raw text, before sections are parsed, one build
//!   stage at a time. Each stage sees the given arguments over the defaults
//!   of *its own* `%arguments` section (read from the untemplated text), so
//!   a default in one stage does not reach another.
//! * A reference is `{{`, optional whitespace (newlines included), a name of
//!   `[A-Za-z0-9_]`, optional whitespace, `}}`. Anything else between braces
//!   (`{{.Id}}`, `{{ a b }}`) is left alone.
//! * A reference is left alone when, on its line before it (or after the
//!   previous replaced reference), there is a `#` followed by a character
//!   other than `!`: comments are not templated, shebangs (`#!/bin/{{ SH }}`)
//!   are.
//! * A default may itself contain references; they are replaced once from
//!   the arguments, then the defaults, and left as written otherwise.
//! * `%arguments` can use references too (the whole stage text is templated).
//! * A reference with neither an argument nor a default is an error; a given
//!   argument that no stage used is an error unless unused arguments only
//!   warn.
//!
//! Vessel addition: a `{{` with no `}}` after it on its line (outside
//! comments) is an error, where Apptainer leaves it in the text.

use std::collections::{BTreeMap, BTreeSet};

use crate::def::{section_word, split_key_value, split_lines, Line};
use crate::error::{DefError, ErrorKind};

/// Replace `{{ VAR }}` references in a definition text; see the module docs.
/// Returns the templated text and warnings (unused arguments when
/// `warn_unused`, and skipped `%arguments` lines). Errors carry line numbers
/// but no file name; see [`apply_build_args_in`].
pub fn apply_build_args(
    text: &str,
    args: &BTreeMap<String, String>,
    warn_unused: bool,
) -> Result<(String, Vec<String>), DefError> {
    apply_build_args_in("", text, args, warn_unused)
}

/// [`apply_build_args`] with a file name for errors and warnings.
pub fn apply_build_args_in(
    file: &str,
    text: &str,
    args: &BTreeMap<String, String>,
    warn_unused: bool,
) -> Result<(String, Vec<String>), DefError> {
    let lines = split_lines(text);
    let mut warnings = Vec::new();
    let mut used: BTreeSet<String> = BTreeSet::new();
    let mut out = String::with_capacity(text.len());

    // Stage chunks as byte ranges; text before the first Bootstrap line goes
    // with the first stage.
    let mut starts: Vec<usize> = lines
        .iter()
        .filter(|l| crate::def::is_stage_start(l.text))
        .map(|l| l.start)
        .collect();
    if starts.first() != Some(&0) {
        if starts.is_empty() {
            starts.push(0);
        } else {
            starts[0] = 0;
        }
    }
    for (n, &s) in starts.iter().enumerate() {
        let e = starts.get(n + 1).copied().unwrap_or(text.len());
        let chunk_lines: Vec<Line<'_>> = lines
            .iter()
            .copied()
            .filter(|l| l.start >= s && l.start < e)
            .collect();
        let defaults = read_defaults(file, &chunk_lines, &mut warnings);
        let replaced = template(file, text, s, e, args, &defaults, &mut used)?;
        out.push_str(&replaced);
    }

    let unused: Vec<String> = args
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    if !unused.is_empty() {
        if warn_unused {
            warnings.push(format!("unused build args: {}", unused.join(" ")));
        } else {
            return Err(DefError::new(
                file,
                None,
                ErrorKind::UnusedBuildArgs { names: unused },
            ));
        }
    }
    Ok((out, warnings))
}

/// Parse a `--build-arg-file`: `KEY=VALUE` lines (split on the first `=`,
/// both sides trimmed); blank lines and lines starting with `#` are skipped.
/// Later lines override earlier ones.
///
/// Apptainer warns about and skips malformed lines (and would take
/// `# K=V` as the key `# K`); Vessel skips comments and rejects malformed
/// lines, naming the line.
pub fn parse_build_arg_file(text: &str) -> Result<BTreeMap<String, String>, DefError> {
    let mut map = BTreeMap::new();
    for line in split_lines(text) {
        let t = line.text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (k, v) = split_key_value(t).map_err(|kind| DefError::new("", Some(line.no), kind))?;
        map.insert(k, v);
    }
    Ok(map)
}

/// Parse one `--build-arg KEY=VALUE`.
pub fn parse_build_arg(arg: &str) -> Result<(String, String), DefError> {
    split_key_value(arg).map_err(|kind| DefError::new("", None, kind))
}

/// Combine `--build-arg-file` contents and `--build-arg` values (the latter
/// win), as Apptainer's `ReadBuildArgs` does.
pub fn collect_build_args(
    cli_args: &[&str],
    arg_file: Option<(&str, &str)>,
) -> Result<BTreeMap<String, String>, DefError> {
    let mut map = match arg_file {
        Some((name, text)) => parse_build_arg_file(text).map_err(|e| e.in_file(name))?,
        None => BTreeMap::new(),
    };
    for a in cli_args {
        let (k, v) = parse_build_arg(a)?;
        map.insert(k, v);
    }
    Ok(map)
}

/// The `%arguments` defaults of one stage (untemplated).
fn read_defaults(
    file: &str,
    lines: &[Line<'_>],
    warnings: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut in_args = false;
    for line in lines {
        if let Some((word, _)) = section_word(line.text) {
            in_args = word
                .trim_start_matches('%')
                .eq_ignore_ascii_case("arguments");
            continue;
        }
        if !in_args {
            continue;
        }
        let t = line.text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match split_key_value(t) {
            Ok((k, v)) => {
                map.insert(k, v);
            }
            Err(kind) => {
                let w = if file.is_empty() {
                    format!("line {}: skipping line in %arguments: {kind}", line.no)
                } else {
                    format!("{file}:{}: skipping line in %arguments: {kind}", line.no)
                };
                warnings.push(w);
            }
        }
    }
    map
}

/// A `{{ NAME }}` reference: byte range and the name's byte range.
#[derive(Debug, Clone, Copy)]
struct Ref {
    start: usize,
    end: usize,
    name: (usize, usize),
}

fn is_re_space(c: u8) -> bool {
    // Go's `\s`: [\t\n\f\r ]
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn ref_at(b: &[u8], p: usize) -> Option<Ref> {
    if !b[p..].starts_with(b"{{") {
        return None;
    }
    let mut i = p + 2;
    while i < b.len() && is_re_space(b[i]) {
        i += 1;
    }
    let ns = i;
    while i < b.len() && is_word(b[i]) {
        i += 1;
    }
    if i == ns {
        return None;
    }
    let ne = i;
    while i < b.len() && is_re_space(b[i]) {
        i += 1;
    }
    if b[i..].starts_with(b"}}") {
        Some(Ref {
            start: p,
            end: i + 2,
            name: (ns, ne),
        })
    } else {
        None
    }
}

/// All non-overlapping references in `s`, leftmost first.
fn find_refs(s: &str) -> Vec<Ref> {
    let b = s.as_bytes();
    let mut refs = Vec::new();
    let mut p = 0;
    while p + 1 < b.len() {
        match ref_at(b, p) {
            Some(r) => {
                p = r.end;
                refs.push(r);
            }
            None => p += 1,
        }
    }
    refs
}

/// Apptainer's comment test on the text between the line start (or the
/// previous replacement) and a reference: a `#` followed by a non-`!`.
fn is_comment_span(span: &[u8]) -> bool {
    span.windows(2).any(|w| w[0] == b'#' && w[1] != b'!')
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&c| c == b'\n')
        .count()
        + 1
}

/// Template `text[s..e]`; line numbers are counted in the whole `text`.
fn template(
    file: &str,
    text: &str,
    s: usize,
    e: usize,
    args: &BTreeMap<String, String>,
    defaults: &BTreeMap<String, String>,
    used: &mut BTreeSet<String>,
) -> Result<String, DefError> {
    let chunk = &text[s..e];
    let b = chunk.as_bytes();
    let refs = find_refs(chunk);

    // Unterminated `{{`: not part of a reference, not in a comment, and no
    // `}}` later on its line.
    let mut p = 0;
    while let Some(off) = chunk[p..].find("{{") {
        let q = p + off;
        p = q + 2;
        if refs.iter().any(|r| q >= r.start && q < r.end) {
            continue;
        }
        let line_start = chunk[..q].rfind('\n').map_or(0, |i| i + 1);
        let line_end = chunk[q..].find('\n').map_or(chunk.len(), |i| q + i);
        if is_comment_span(&b[line_start..q]) || chunk[q + 2..line_end].contains("}}") {
            continue;
        }
        return Err(DefError::new(
            file,
            Some(line_of(text, s + q)),
            ErrorKind::UnterminatedTemplate,
        ));
    }

    let mut out = String::with_capacity(chunk.len());
    let mut i = 0;
    for r in &refs {
        let span_start = chunk[i..r.start].rfind('\n').map_or(i, |n| i + n);
        if is_comment_span(&b[span_start..r.start]) {
            continue;
        }
        out.push_str(&chunk[i..r.start]);
        let name = &chunk[r.name.0..r.name.1];
        let Some(val) = args.get(name).or_else(|| defaults.get(name)) else {
            return Err(DefError::new(
                file,
                Some(line_of(text, s + r.start)),
                ErrorKind::UndefinedBuildArg {
                    name: name.to_string(),
                },
            ));
        };
        // References inside a value are replaced once, if known.
        let mut new_val = val.clone();
        for nr in find_refs(val) {
            let k = &val[nr.name.0..nr.name.1];
            if let Some(v) = args.get(k).or_else(|| defaults.get(k)) {
                new_val = new_val.replace(&val[nr.start..nr.end], v);
            }
        }
        out.push_str(&new_val);
        used.insert(name.to_string());
        i = r.end;
    }
    out.push_str(&chunk[i..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn apply(text: &str, args: &[(&str, &str)]) -> Result<String, DefError> {
        apply_build_args(text, &m(args), false).map(|(t, _)| t)
    }

    // Cases from Apptainer's TestReader.
    #[test]
    fn replaces_references() {
        let a = [("OS_VER", "1"), ("APP_VER", "1.0")];
        assert_eq!(
            apply("/script-{{ APP_VER }}", &a[1..]).unwrap(),
            "/script-1.0"
        );
        assert_eq!(
            apply("/script-{{ OS_VER }}.sh {{ APP_VER }}", &a).unwrap(),
            "/script-1.sh 1.0"
        );
        assert_eq!(apply("/script-1.sh 1.0", &[]).unwrap(), "/script-1.sh 1.0");
        assert_eq!(
            apply("/script-{{OS_VER}}.sh {{APP_VER  }}", &a).unwrap(),
            "/script-1.sh 1.0"
        );
    }

    #[test]
    fn reference_may_span_lines() {
        assert_eq!(
            apply("/script-{{ \nAPP_VER        }}", &[("APP_VER", "1.0")]).unwrap(),
            "/script-1.0"
        );
    }

    #[test]
    fn args_win_over_defaults() {
        let text = "Bootstrap: docker\nFrom: alpine:{{ V }}\n%arguments\n    V=3.17\n";
        let (out, w) = apply_build_args(text, &m(&[("V", "3.20")]), false).unwrap();
        assert!(out.contains("From: alpine:3.20"));
        assert!(w.is_empty());
        let (out, _) = apply_build_args(text, &BTreeMap::new(), false).unwrap();
        assert!(out.contains("From: alpine:3.17"));
    }

    #[test]
    fn comments_are_not_templated() {
        let input = "\n%arguments\n\tOS_VER=1 #  comment line {{ OS_VER }}\n%post\n    \t# comment\n\t#an\n\t#!/bin/{{ BASH }}\n\tapt install {{ OS_VER }}#comment {{ OS_VER }}\n\t#some other comment {{ OS_VER }}\n\t#should not be replaced as well \n";
        let want = "\n%arguments\n\tOS_VER=1 #  comment line {{ OS_VER }}\n%post\n    \t# comment\n\t#an\n\t#!/bin/csh\n\tapt install 1#comment {{ OS_VER }}\n\t#some other comment {{ OS_VER }}\n\t#should not be replaced as well \n";
        assert_eq!(
            apply(input, &[("OS_VER", "1"), ("BASH", "csh")]).unwrap(),
            want
        );
    }

    #[test]
    fn hash_right_before_reference_still_templates() {
        // Apptainer's comment regex needs a character after the `#`.
        assert_eq!(apply("echo #{{ A }}", &[("A", "x")]).unwrap(), "echo #x");
        assert_eq!(apply("echo # {{ A }}", &[]).unwrap(), "echo # {{ A }}");
    }

    #[test]
    fn undefined_reference_names_line() {
        let e = apply(
            "Bootstrap: docker\nFrom: x\n%post\n  echo {{ NOPE }}\n",
            &[],
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4));
        assert_eq!(
            e.kind,
            ErrorKind::UndefinedBuildArg {
                name: "NOPE".into()
            }
        );
        assert!(e
            .to_string()
            .starts_with("line 4: build argument NOPE is not defined"));
        let e = apply_build_args_in("app.def", "{{ X }}", &BTreeMap::new(), false).unwrap_err();
        assert!(e.to_string().starts_with("app.def:1: build argument X"));
    }

    #[test]
    fn unterminated_reference_names_line() {
        let e = apply("Bootstrap: docker\nFrom: {{ IMG\n", &[("IMG", "x")]).unwrap_err();
        assert_eq!(e.kind, ErrorKind::UnterminatedTemplate);
        assert_eq!(e.line, Some(2));
        // Not in comments, and `{{` closed later on the line is literal.
        assert_eq!(apply("# {{ oops\n", &[]).unwrap(), "# {{ oops\n");
        let t = "docker inspect --format '{{.Id}}' x\n";
        assert_eq!(apply(t, &[]).unwrap(), t);
        let t = "echo {{ a b }}\n";
        assert_eq!(apply(t, &[]).unwrap(), t);
    }

    #[test]
    fn unused_args_error_or_warn() {
        let text = "Bootstrap: docker\nFrom: {{ IMG }}\n";
        let a = m(&[("IMG", "alpine"), ("ADDITION", "1"), ("B", "2")]);
        let e = apply_build_args(text, &a, false).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::UnusedBuildArgs {
                names: vec!["ADDITION".into(), "B".into()]
            }
        );
        assert_eq!(e.line, None);
        assert!(e.to_string().starts_with("unused build args: ADDITION B"));
        let (out, w) = apply_build_args(text, &a, true).unwrap();
        assert_eq!(out, "Bootstrap: docker\nFrom: alpine\n");
        assert_eq!(w, vec!["unused build args: ADDITION B".to_string()]);
    }

    #[test]
    fn arg_used_only_in_comment_is_unused() {
        let text = "Bootstrap: docker\n# {{ A }}\n";
        assert!(apply_build_args(text, &m(&[("A", "1")]), false).is_err());
    }

    #[test]
    fn defaults_are_per_stage() {
        let text = "Bootstrap: docker\nFrom: a\n%arguments\n  HOME=/root\n%post\n  cd {{ HOME }}\n\nBootstrap: docker\nFrom: b\n%files from x\n  {{ HOME }}/f /f\n";
        let e = apply(text, &[]).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::UndefinedBuildArg {
                name: "HOME".into()
            }
        );
        assert_eq!(e.line, Some(11));
        let out = apply(text, &[("HOME", "/home")]).unwrap();
        assert!(out.contains("cd /home\n"));
        assert!(out.contains("  /home/f /f\n"));
    }

    #[test]
    fn defaults_may_reference_other_args() {
        let text = "Bootstrap: docker\nFrom: {{ IMG }}\n%arguments\n  REG=docker.io\n  IMG={{ REG }}/alpine:{{ TAG }}\n  TAG=3\n";
        let out = apply(text, &[]).unwrap();
        assert!(out.contains("From: docker.io/alpine:3\n"), "{out}");
        // The %arguments section itself is templated too.
        assert!(out.contains("  IMG=docker.io/alpine:3\n"), "{out}");
    }

    #[test]
    fn bad_arguments_lines_warn() {
        let text = "Bootstrap: docker\nFrom: x\n%arguments\n  oops\n  =v\n";
        let (_, w) = apply_build_args_in("a.def", text, &BTreeMap::new(), false).unwrap();
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with("a.def:4: skipping line in %arguments"));
        assert!(w[1].starts_with("a.def:5: skipping line in %arguments: missing key"));
    }

    #[test]
    fn crlf_text_is_templated() {
        let text = "Bootstrap: docker\r\nFrom: {{ IMG }}\r\n";
        assert_eq!(
            apply(text, &[("IMG", "alpine")]).unwrap(),
            "Bootstrap: docker\r\nFrom: alpine\r\n"
        );
    }

    #[test]
    fn build_arg_file() {
        let map = parse_build_arg_file(
            "HOME=/root\r\n# comment\n\nDEMO=demo=with===equals==signs\n k = v \n",
        )
        .unwrap();
        assert_eq!(
            map,
            m(&[
                ("HOME", "/root"),
                ("DEMO", "demo=with===equals==signs"),
                ("k", "v")
            ])
        );
        let e = parse_build_arg_file("A=1\nnot a pair\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(matches!(e.kind, ErrorKind::NotKeyValue { .. }));
        let e = parse_build_arg_file("=v\n").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::MissingKey { .. }));
    }

    // Cases from Apptainer's TestGetKeyVal.
    #[test]
    fn key_value_splitting() {
        for (input, k, v) in [
            ("  k1= v1\n", "k1", "v1"),
            ("k1=1.0", "k1", "1.0"),
            ("k1= a whitespace  ", "k1", "a whitespace"),
            ("\n  k1 =\n", "k1", ""),
            ("\n  k1 =''\n", "k1", "''"),
            ("\n  k1 =\"   \"\n", "k1", "\"   \""),
        ] {
            assert_eq!(
                parse_build_arg(input).unwrap(),
                (k.to_string(), v.to_string())
            );
        }
        assert!(parse_build_arg("k1 v1").is_err());
        assert!(parse_build_arg("=v1").is_err());
    }

    #[test]
    fn cli_args_override_file() {
        let map = collect_build_args(&["A=cli"], Some(("args.txt", "A=file\nB=file\n"))).unwrap();
        assert_eq!(map, m(&[("A", "cli"), ("B", "file")]));
        let e = collect_build_args(&[], Some(("args.txt", "bad\n"))).unwrap_err();
        assert!(e.to_string().starts_with("args.txt:1: "));
    }
}
