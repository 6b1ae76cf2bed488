//! The definition-file model and parser.
//!
//! Rules (from Apptainer's `pkg/build/types/parser/deffile.go` unless noted):
//!
//! * A file holds one or more build stages. A stage starts at every line that
//!   begins (column 0, any case) with `bootstrap:` (`All()` splits on
//!   `(?mi)^bootstrap:`). The last stage is the image that is built.
//! * A line whose first whitespace-separated word starts with `%` opens a
//!   section; everything before the first section is the stage's header.
//!   Section names are case-insensitive. Apptainer rejects an indented
//!   section line (it yields the invalid section `""`); Vessel says why.
//! * Header: `Key: value` lines, keys case-insensitive (lower-cased), values
//!   trimmed, `#` starts a comment anywhere on a header line, blank and
//!   comment lines are skipped, a trailing `\` continues the value on the
//!   next line (a `\n` just before it becomes a newline). Unknown keys and
//!   lines without `:` are errors. A repeated key keeps the last value.
//! * Section bodies are kept verbatim: every line after the section line up
//!   to the next section, each ending in `\n` (a `\r` before it is dropped),
//!   leading whitespace and trailing blank lines included. A section given
//!   twice is concatenated; for script sections the last non-empty argument
//!   string wins.
//! * `%labels`: `KEY VALUE` split on the first whitespace, both trimmed,
//!   blank lines and lines starting with `#` skipped, quotes kept as written
//!   (Apptainer's inspect e2e test expects `MAINTAINER` to be
//!   `"WestleyK <westley@sylabs.io>"` with the quotes). A repeated key keeps
//!   the last value.
//! * `%files [from STAGE]`: `SRC [DST]` per line, double-quoted names may hold
//!   spaces, blank lines and lines starting with `#` skipped, extra words
//!   ignored. Blocks with the same source stage are merged.
//! * `%post -c /bin/bash`: the section arguments, with `#` comments cut off;
//!   `-c` makes the rest the shell command (`internal/pkg/build/util.go`).
//! * SCIF app sections take the app name as their first argument; apps are
//!   kept in the order they first appear (their `%appinstall` runs in that
//!   order).

mod render;

use std::collections::BTreeMap;

use crate::error::{DefError, ErrorKind};

/// A parsed definition file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Definition {
    /// The build stages in file order; the last one is the output image.
    pub stages: Vec<Stage>,
    /// The original text, exactly as given (what `inspect --deffile` shows).
    pub raw: String,
    /// Non-fatal problems, each naming file and line (Apptainer prints these
    /// as warnings).
    pub warnings: Vec<String>,
}

/// One build stage: a header and its sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stage {
    /// The `Stage:` header, if any (and not empty).
    pub name: Option<String>,
    /// Header keys, lower-cased, with trimmed values, in first-seen order.
    pub header: Vec<(String, String)>,
    /// The `Bootstrap:` value (empty only when parsed with
    /// [`ParseOptions::require_bootstrap`] off).
    pub bootstrap: String,
    /// The standard sections.
    pub sections: Sections,
    /// SCIF apps by name.
    pub apps: BTreeMap<String, App>,
    /// App names in the order they first appear (the `%appinstall` order).
    pub app_order: Vec<String>,
    /// This stage's original text. The first stage also holds any comment
    /// lines before the first `Bootstrap:` line, so the stages' `raw`
    /// concatenate to [`Definition::raw`].
    pub raw: String,
}

impl Stage {
    /// A header value; `key` is matched case-insensitively.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.header
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// The `From:` header.
    pub fn from(&self) -> Option<&str> {
        self.get("from")
    }
}

/// A script section: its body and the arguments on its section line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// The body, verbatim (every line ends in `\n`).
    pub body: String,
    /// Everything after the section name on the section line, trimmed
    /// (e.g. `-c /bin/bash`), comments included as written.
    pub args: String,
    /// The shell command given with `-c` (`%post -c /bin/busybox sh` gives
    /// `/bin/busybox sh`). For `%setup`, `%pre`, `%post` and `%test` the
    /// script then runs as `/bin/sh -ex [args before -c] -c "<command> <script>"`;
    /// for `%runscript`/`%startscript` Apptainer appends [`Script::args`] to
    /// the shebang instead.
    pub interpreter: Option<String>,
}

impl Script {
    /// Whether the section is absent or empty.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty() && self.args.is_empty()
    }

    /// The section arguments split on whitespace, with a trailing `#`
    /// comment removed (as Apptainer does before using them).
    pub fn arg_words(&self) -> Vec<&str> {
        strip_comment(&self.args).split_whitespace().collect()
    }
}

/// One `%files` block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilesBlock {
    /// `Some(stage)` for `%files from STAGE`, `None` for files from the host.
    pub from: Option<String>,
    /// `(source, destination)`; no destination means "same path".
    pub entries: Vec<(String, Option<String>)>,
}

/// The standard sections of a stage.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sections {
    /// `%pre` (undocumented, runs on the host before bootstrap).
    pub pre: Script,
    pub setup: Script,
    pub post: Script,
    pub test: Script,
    pub runscript: Script,
    pub startscript: Script,
    /// `%environment` body, verbatim.
    pub environment: String,
    /// `%help` body, verbatim.
    pub help: String,
    /// `%labels` as `(key, value)` in first-seen order (a repeated key keeps
    /// the last value).
    pub labels: Vec<(String, String)>,
    /// `%files` blocks, one per source (host or stage), in first-seen order.
    pub files: Vec<FilesBlock>,
    /// `%arguments` defaults as `(key, value)`.
    pub arguments: Vec<(String, String)>,
}

/// A SCIF app (`%appinstall NAME`, `%apprun NAME`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct App {
    /// `%appinstall` body (run in `/scif/apps/NAME` after `%post`).
    pub install: String,
    /// `%apprun` body.
    pub run: String,
    /// `%appenv` body.
    pub env: String,
    /// `%applabels`, parsed like `%labels`.
    pub labels: Vec<(String, String)>,
    /// `%appfiles`: `SRC [DST]` split on the first space after cutting `#`
    /// comments (as Apptainer's apps plugin does); DST is relative to the
    /// app directory.
    pub files: Vec<(String, Option<String>)>,
    /// `%apphelp` body.
    pub help: String,
    /// `%apptest` body.
    pub test: String,
    /// `%appstart` body.
    pub start: String,
}

/// Parser settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Every stage must have a non-empty `Bootstrap:` header (default).
    /// Apptainer itself parses header-less files and only fails when the
    /// build needs a bootstrap agent, which `build --update` does not; turn
    /// this off for that case.
    pub require_bootstrap: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            require_bootstrap: true,
        }
    }
}

/// The bootstrap agents Apptainer knows (`internal/pkg/build/conveyorPacker.go`).
/// Apptainer compares them case-sensitively, at build time.
pub const BOOTSTRAP_AGENTS: &[&str] = &[
    "library",
    "oras",
    "shub",
    "docker",
    "docker-archive",
    "docker-daemon",
    "oci",
    "oci-archive",
    "busybox",
    "debootstrap",
    "arch",
    "localimage",
    "yum",
    "dnf",
    "zypper",
    "scratch",
    "buildkit",
    "dockerfile",
];

/// Standard section names.
pub const SECTIONS: &[&str] = &[
    "help",
    "setup",
    "files",
    "labels",
    "environment",
    "pre",
    "post",
    "runscript",
    "test",
    "startscript",
    "arguments",
];

/// SCIF app section names.
pub const APP_SECTIONS: &[&str] = &[
    "appinstall",
    "applabels",
    "appfiles",
    "appenv",
    "apptest",
    "apphelp",
    "apprun",
    "appstart",
];

/// Header keywords (lower-case); `otherurl` takes a numeric suffix.
pub const HEADER_KEYS: &[&str] = &[
    "bootstrap",
    "from",
    "includecmd",
    "mirrorurl",
    "updateurl",
    "osversion",
    "include",
    "library",
    "registry",
    "namespace",
    "stage",
    "product",
    "user",
    "regcode",
    "productpgp",
    "registerurl",
    "modules",
    "fingerprints",
    "confurl",
    "setopt",
    "target",
    "frontend",
    "filename",
    "buildargs",
];

/// Parse a definition file. `path_for_errors` only names the file in errors
/// and warnings. Build arguments (`{{ VAR }}`) must already be applied with
/// [`crate::apply_build_args`] if the file uses them.
pub fn parse(path_for_errors: &str, text: &str) -> Result<Definition, DefError> {
    parse_with(path_for_errors, text, &ParseOptions::default())
}

/// [`parse`] with explicit [`ParseOptions`].
pub fn parse_with(
    path_for_errors: &str,
    text: &str,
    opts: &ParseOptions,
) -> Result<Definition, DefError> {
    let file = path_for_errors;
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = split_lines(body);
    let mut warnings = Vec::new();

    if lines.iter().all(|l| is_blank_or_comment(l.text)) {
        return Err(DefError::new(file, None, ErrorKind::Empty));
    }

    // Chunks of lines, one per stage (plus a possible preamble).
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| is_stage_start(l.text))
        .map(|(i, _)| i)
        .collect();

    let mut chunks: Vec<(usize, usize)> = Vec::new(); // [start, end) line indices
    let mut preamble_in_first = false;
    match starts.first() {
        None => {
            if opts.require_bootstrap {
                return Err(DefError::new(file, None, ErrorKind::NoBootstrap));
            }
            chunks.push((0, lines.len()));
        }
        Some(&first) => {
            if let Some(l) = lines[..first].iter().find(|l| !is_blank_or_comment(l.text)) {
                if opts.require_bootstrap {
                    return Err(DefError::new(
                        file,
                        Some(l.no),
                        ErrorKind::ContentBeforeBootstrap,
                    ));
                }
                // Apptainer makes the part before the first Bootstrap its own
                // (header-less) stage.
                chunks.push((0, first));
            } else {
                preamble_in_first = first > 0;
            }
            for (n, &s) in starts.iter().enumerate() {
                let e = starts.get(n + 1).copied().unwrap_or(lines.len());
                chunks.push((s, e));
            }
        }
    }

    let mut stages: Vec<Stage> = Vec::new();
    for (ci, &(s, e)) in chunks.iter().enumerate() {
        let (mut stage, from_refs) = parse_stage(file, &lines[s..e], &mut warnings)?;
        let raw_start = if ci == 0 && preamble_in_first {
            0
        } else {
            lines[s].start
        };
        let raw_end = if e < lines.len() {
            lines[e].start
        } else {
            body.len()
        };
        stage.raw = body[raw_start..raw_end].to_string();

        if opts.require_bootstrap && stage.bootstrap.is_empty() {
            return Err(DefError::new(
                file,
                Some(lines[s].no),
                ErrorKind::EmptyBootstrap,
            ));
        }
        for (name, line) in from_refs {
            if !stages.iter().any(|st| st.name.as_deref() == Some(&name)) {
                return Err(DefError::new(
                    file,
                    Some(line),
                    ErrorKind::UnknownStage { name },
                ));
            }
        }
        if let Some(name) = &stage.name {
            if stages.iter().any(|st| st.name.as_ref() == Some(name)) {
                warnings.push(format!(
                    "{file}:{}: stage name \"{name}\" is used twice; \"%files from {name}\" copies from the first one",
                    lines[s].no
                ));
            }
        }
        stages.push(stage);
    }

    Ok(Definition {
        stages,
        raw: text.to_string(),
        warnings,
    })
}

/// Everything done with an untrusted definition file, in one call: the
/// `def_parse` fuzz target and its regression test share it. Parses `text`
/// with and without a required `Bootstrap:`, renders what parses, and
/// panics if a strictly parsed definition does not read back the same from
/// its rendering. Returns whether the text parsed strictly.
#[doc(hidden)]
pub fn exercise_untrusted(text: &str) -> bool {
    let lenient = ParseOptions {
        require_bootstrap: false,
    };
    if let Ok(def) = parse_with("fuzz.def", text, &lenient) {
        let _ = def.render();
    }
    let def = match parse("fuzz.def", text) {
        Ok(def) => def,
        Err(e) => {
            let _ = e.to_string();
            return false;
        }
    };
    let rendered = def.render();
    let again = parse("rendered.def", &rendered)
        .unwrap_or_else(|e| panic!("the rendering does not parse: {e}\n{rendered}"));
    let comparable = |d: &Definition| {
        let mut d = d.clone();
        d.raw.clear();
        d.warnings.clear();
        for s in &mut d.stages {
            s.raw.clear();
        }
        d
    };
    assert_eq!(
        comparable(&def),
        comparable(&again),
        "the rendering reads back differently:\n{rendered}"
    );
    assert_eq!(again.render(), rendered, "rendering is not stable");
    true
}

impl Definition {
    /// The stage that produces the image (the last one).
    pub fn final_stage(&self) -> &Stage {
        self.stages.last().expect("a parsed definition has a stage")
    }

    /// The first stage named `name` (`Stage: name`).
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name.as_deref() == Some(name))
    }
}

// ---------------------------------------------------------------------------
// Lines

/// One line of input: its text without the line ending, its byte range in
/// the input and its 1-based number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub no: usize,
    pub text: &'a str,
    pub start: usize,
}

/// Split like Go's `bufio.ScanLines`: on `\n`, dropping one `\r` before it;
/// a last line without a newline still counts.
pub(crate) fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut no = 1;
    while start < text.len() {
        let (end, next) = match text[start..].find('\n') {
            Some(i) => (start + i, start + i + 1),
            None => (text.len(), text.len()),
        };
        let mut t = &text[start..end];
        if let Some(s) = t.strip_suffix('\r') {
            t = s;
        }
        out.push(Line { no, text: t, start });
        no += 1;
        start = next;
    }
    out
}

/// Whether a line starts a build stage (`(?mi)^bootstrap:`).
pub(crate) fn is_stage_start(line: &str) -> bool {
    line.as_bytes()
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"bootstrap:"))
}

/// If the line's first word starts with `%`, that word and whether the line
/// is indented.
pub(crate) fn section_word(line: &str) -> Option<(&str, bool)> {
    let t = line.trim_start();
    if !t.starts_with('%') {
        return None;
    }
    let word = t.split_whitespace().next().unwrap_or(t);
    Some((word, t.len() != line.len()))
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// The part of `s` before the first `#`.
pub(crate) fn strip_comment(s: &str) -> &str {
    s.split('#').next().unwrap_or("")
}

// ---------------------------------------------------------------------------
// Stage parsing

#[derive(Default)]
struct AppRaw {
    labels: String,
    files: String,
}

fn parse_stage(
    file: &str,
    lines: &[Line<'_>],
    warnings: &mut Vec<String>,
) -> Result<(Stage, Vec<(String, usize)>), DefError> {
    let first_sec = lines
        .iter()
        .position(|l| section_word(l.text).is_some())
        .unwrap_or(lines.len());

    let mut stage = Stage {
        header: parse_header(file, &lines[..first_sec])?,
        ..Stage::default()
    };
    stage.bootstrap = stage.get("bootstrap").unwrap_or("").to_string();
    stage.name = stage
        .get("stage")
        .filter(|s| !s.is_empty())
        .map(str::to_string);

    let mut labels_raw = String::new();
    let mut app_raw: BTreeMap<String, AppRaw> = BTreeMap::new();
    let mut from_refs: Vec<(String, usize)> = Vec::new();
    // Line of the section line whose args each script section got.
    let mut args_line: BTreeMap<&'static str, usize> = BTreeMap::new();

    let mut i = first_sec;
    while i < lines.len() {
        let line = lines[i];
        let (word, indented) = section_word(line.text).expect("section start");
        let name = word.trim_start_matches('%');
        if indented {
            return Err(DefError::new(
                file,
                Some(line.no),
                ErrorKind::IndentedSection {
                    name: name.to_string(),
                },
            ));
        }
        let lname = name.to_ascii_lowercase();
        let rest = line.text.trim_start()[word.len()..].trim();

        let mut j = i + 1;
        while j < lines.len() && section_word(lines[j].text).is_none() {
            j += 1;
        }
        let body_lines = &lines[i + 1..j];
        let body: String = body_lines.iter().fold(String::new(), |mut acc, l| {
            acc.push_str(l.text);
            acc.push('\n');
            acc
        });

        let sec = &mut stage.sections;
        match lname.as_str() {
            "pre" | "setup" | "post" | "test" | "runscript" | "startscript" => {
                let (key, script) = match lname.as_str() {
                    "pre" => ("pre", &mut sec.pre),
                    "setup" => ("setup", &mut sec.setup),
                    "post" => ("post", &mut sec.post),
                    "test" => ("test", &mut sec.test),
                    "runscript" => ("runscript", &mut sec.runscript),
                    _ => ("startscript", &mut sec.startscript),
                };
                script.body.push_str(&body);
                if !rest.is_empty() {
                    script.args = rest.to_string();
                    args_line.insert(key, line.no);
                }
            }
            "environment" => sec.environment.push_str(&body),
            "help" => sec.help.push_str(&body),
            "labels" => labels_raw.push_str(&body),
            "arguments" => parse_arguments(file, body_lines, &mut sec.arguments, warnings),
            "files" => {
                let from = parse_files_args(file, line.no, rest)?;
                if let Some(f) = &from {
                    from_refs.push((f.clone(), line.no));
                }
                let entries = parse_files_body(file, body_lines)?;
                match sec.files.iter_mut().find(|b| b.from == from) {
                    Some(b) => b.entries.extend(entries),
                    None => sec.files.push(FilesBlock { from, entries }),
                }
            }
            s if APP_SECTIONS.contains(&s) => {
                let Some(app_name) = rest.split_whitespace().next() else {
                    return Err(DefError::new(
                        file,
                        Some(line.no),
                        ErrorKind::MissingAppName {
                            section: s.to_string(),
                        },
                    ));
                };
                if !stage.apps.contains_key(app_name) {
                    stage.app_order.push(app_name.to_string());
                }
                let app = stage.apps.entry(app_name.to_string()).or_default();
                let raw = app_raw.entry(app_name.to_string()).or_default();
                match s {
                    "appinstall" => app.install.push_str(&body),
                    "apprun" => app.run.push_str(&body),
                    "appenv" => app.env.push_str(&body),
                    "apphelp" => app.help.push_str(&body),
                    "apptest" => app.test.push_str(&body),
                    "appstart" => app.start.push_str(&body),
                    "applabels" => raw.labels.push_str(&body),
                    _ => raw.files.push_str(&body),
                }
            }
            _ => {
                return Err(DefError::new(
                    file,
                    Some(line.no),
                    ErrorKind::UnknownSection {
                        name: name.to_string(),
                        suggestion: suggest(&lname, SECTIONS.iter().chain(APP_SECTIONS))
                            .map(str::to_string),
                    },
                ));
            }
        }
        i = j;
    }

    stage.sections.labels = parse_labels(&labels_raw);
    for (name, raw) in app_raw {
        let app = stage.apps.get_mut(&name).expect("app recorded");
        app.labels = parse_labels(&raw.labels);
        app.files = parse_app_files(&raw.files);
    }

    // Interpreters (`-c`) for the script sections.
    let sec = &mut stage.sections;
    for (key, script) in [
        ("pre", &mut sec.pre),
        ("setup", &mut sec.setup),
        ("post", &mut sec.post),
        ("test", &mut sec.test),
        ("runscript", &mut sec.runscript),
        ("startscript", &mut sec.startscript),
    ] {
        let words: Vec<&str> = strip_comment(&script.args).split_whitespace().collect();
        if let Some(pos) = words.iter().position(|w| *w == "-c") {
            if pos + 1 == words.len() {
                if matches!(key, "pre" | "setup" | "post" | "test") {
                    return Err(DefError::new(
                        file,
                        args_line.get(key).copied(),
                        ErrorKind::MissingInterpreter {
                            section: key.to_string(),
                        },
                    ));
                }
            } else {
                script.interpreter = Some(words[pos + 1..].join(" "));
            }
        }
    }

    Ok((stage, from_refs))
}

/// Parse the header lines of a stage (Apptainer's `doHeader`).
fn parse_header(file: &str, lines: &[Line<'_>]) -> Result<Vec<(String, String)>, DefError> {
    let mut header: Vec<(String, String)> = Vec::new();
    // Pending continuation: (key, value so far, line of the key).
    let mut cont: Option<(String, String, usize)> = None;

    fn set(header: &mut Vec<(String, String)>, key: String, val: String) {
        match header.iter_mut().find(|(k, _)| *k == key) {
            Some(e) => e.1 = val,
            None => header.push((key, val)),
        }
    }

    for line in lines {
        let t = line.text.trim();
        if t.is_empty() || t.starts_with('#') {
            if let Some((k, v, l)) = cont.take() {
                check_header_key(file, l, &k)?;
                set(&mut header, k, v);
            }
            continue;
        }
        let content = strip_comment(t);
        let (key, val, key_line) = match cont.take() {
            Some((k, v, l)) => (k, format!("{v}{}", content.trim()), l),
            None => {
                let Some((k, v)) = content.split_once(':') else {
                    return Err(DefError::new(
                        file,
                        Some(line.no),
                        ErrorKind::HeaderWithoutValue {
                            text: t.to_string(),
                        },
                    ));
                };
                (k.trim().to_ascii_lowercase(), v.trim().to_string(), line.no)
            }
        };
        if let Some(v) = val.strip_suffix('\\') {
            let v = match v.strip_suffix("\\n") {
                Some(v) => format!("{v}\n"),
                None => v.to_string(),
            };
            cont = Some((key, v, key_line));
            continue;
        }
        check_header_key(file, key_line, &key)?;
        set(&mut header, key, val);
    }
    if let Some((k, v, l)) = cont {
        check_header_key(file, l, &k)?;
        set(&mut header, k, v);
    }
    Ok(header)
}

fn check_header_key(file: &str, line: usize, key: &str) -> Result<(), DefError> {
    if is_valid_header_key(key) {
        return Ok(());
    }
    Err(DefError::new(
        file,
        Some(line),
        ErrorKind::UnknownHeaderKey {
            key: key.to_string(),
            suggestion: suggest(key, HEADER_KEYS).map(header_display_name),
        },
    ))
}

/// Whether `key` (lower-case) is a header keyword Apptainer accepts.
pub fn is_valid_header_key(key: &str) -> bool {
    if HEADER_KEYS.contains(&key) {
        return true;
    }
    key.strip_prefix("otherurl")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The conventional spelling of a (lower-case) header keyword.
pub fn header_display_name(key: &str) -> String {
    let known = match key {
        "bootstrap" => "Bootstrap",
        "from" => "From",
        "includecmd" => "IncludeCmd",
        "mirrorurl" => "MirrorURL",
        "updateurl" => "UpdateURL",
        "osversion" => "OSVersion",
        "include" => "Include",
        "library" => "Library",
        "registry" => "Registry",
        "namespace" => "Namespace",
        "stage" => "Stage",
        "product" => "Product",
        "user" => "User",
        "regcode" => "Regcode",
        "productpgp" => "ProductPGP",
        "registerurl" => "RegisterURL",
        "modules" => "Modules",
        "fingerprints" => "Fingerprints",
        "confurl" => "ConfURL",
        "setopt" => "Setopt",
        "target" => "Target",
        "frontend" => "Frontend",
        "filename" => "Filename",
        "buildargs" => "BuildArgs",
        other => {
            if let Some(n) = other.strip_prefix("otherurl") {
                return format!("OtherURL{n}");
            }
            return other.to_string();
        }
    };
    known.to_string()
}

/// `%labels` / `%applabels` (Apptainer's `GetLabels`, split on the first
/// space or tab).
fn parse_labels(body: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (k, v) = match t.find([' ', '\t']) {
            Some(i) => (t[..i].trim(), t[i..].trim()),
            None => (t, ""),
        };
        match out.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.to_string(),
            None => out.push((k.to_string(), v.to_string())),
        }
    }
    out
}

/// `%appfiles` (Apptainer's apps plugin): comments cut, split on the first
/// space.
fn parse_app_files(body: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in body.lines() {
        let t = strip_comment(line.trim()).trim();
        if t.is_empty() {
            continue;
        }
        match t.find([' ', '\t']) {
            Some(i) => out.push((t[..i].to_string(), Some(t[i..].trim().to_string()))),
            None => out.push((t.to_string(), None)),
        }
    }
    out
}

/// `%arguments` lines: `KEY=VALUE`, key and value trimmed; other lines are
/// skipped with a warning (as Apptainer's `ReadDefaults` does).
fn parse_arguments(
    file: &str,
    lines: &[Line<'_>],
    out: &mut Vec<(String, String)>,
    warnings: &mut Vec<String>,
) {
    for line in lines {
        let t = line.text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match split_key_value(t) {
            Ok((k, v)) => match out.iter_mut().find(|(ek, _)| *ek == k) {
                Some(e) => e.1 = v,
                None => out.push((k, v)),
            },
            Err(kind) => warnings.push(format!(
                "{file}:{}: skipping line in %arguments: {kind}",
                line.no
            )),
        }
    }
}

/// Apptainer's `getKeyVal`: split on the first `=`, trim both sides, the key
/// must not be empty.
pub(crate) fn split_key_value(text: &str) -> Result<(String, String), ErrorKind> {
    let Some((k, v)) = text.split_once('=') else {
        return Err(ErrorKind::NotKeyValue {
            text: text.trim().to_string(),
        });
    };
    let k = k.trim();
    if k.is_empty() {
        return Err(ErrorKind::MissingKey {
            text: text.trim().to_string(),
        });
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// The arguments of a `%files` line: nothing, or `from STAGE`.
///
/// Apptainer silently ignores a block whose arguments are neither; Vessel
/// reports it.
fn parse_files_args(file: &str, line: usize, args: &str) -> Result<Option<String>, DefError> {
    let words: Vec<&str> = strip_comment(args).split_whitespace().collect();
    match words.as_slice() {
        [] => Ok(None),
        [kw, stage] if kw.eq_ignore_ascii_case("from") => Ok(Some((*stage).to_string())),
        _ => Err(DefError::new(
            file,
            Some(line),
            ErrorKind::BadFilesArgs {
                args: args.to_string(),
            },
        )),
    }
}

/// `%files` body lines: `SRC [DST]`.
fn parse_files_body(
    file: &str,
    lines: &[Line<'_>],
) -> Result<Vec<(String, Option<String>)>, DefError> {
    let mut out = Vec::new();
    for line in lines {
        let t = line.text.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let words = split_files_line(t).ok_or_else(|| {
            DefError::new(
                file,
                Some(line.no),
                ErrorKind::UnterminatedQuote {
                    text: t.to_string(),
                },
            )
        })?;
        let mut it = words.into_iter();
        let src = it.next().unwrap_or_default();
        out.push((src, it.next()));
    }
    Ok(out)
}

/// Split a `%files` line into words like Apptainer's `fileSplitter`: runs of
/// non-space characters, `"..."` (without the quotes) and, as a Vessel
/// extension, `'...'`; a `{{ VAR }}` template stays one word. An unquoted
/// word starting with `#` begins a comment. `None` on an unterminated quote.
pub(crate) fn split_files_line(line: &str) -> Option<Vec<String>> {
    let b = line.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'"' || c == b'\'' {
            let end = line[i + 1..].find(c as char)? + i + 1;
            words.push(line[i + 1..end].to_string());
            i = end + 1;
            continue;
        }
        if c == b'#' {
            break;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'"' && b[i] != b'\'' {
            if b[i..].starts_with(b"{{") {
                if let Some(e) = line[i..].find("}}") {
                    i += e + 2;
                    continue;
                }
            }
            i += 1;
        }
        words.push(line[start..i].to_string());
    }
    Some(words)
}

/// The closest candidate to `word` within edit distance 2, if any.
fn suggest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a &'a str>,
{
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
