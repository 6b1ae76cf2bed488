//! Canonical rendering of a parsed definition.
//!
//! The output parses back to an equal [`Definition`] (apart from `raw` and
//! `warnings`): header lines first (`Bootstrap` leading), then each section.
//! Script bodies are written verbatim, so their blank lines survive.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use super::{header_display_name, split_files_line, App, Definition, Script, Stage};

impl fmt::Display for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No separator between stages: a blank line would become part of
        // the previous stage's last section body.
        for stage in &self.stages {
            write!(f, "{stage}")?;
        }
        Ok(())
    }
}

impl Definition {
    /// The canonical text of the definition (same as `to_string()`).
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let mut header: Vec<&(String, String)> = self.header.iter().collect();
        header.sort_by_key(|(k, _)| k != "bootstrap");
        for (k, v) in header {
            let mut v = v.split('\n').collect::<Vec<_>>().join("\\n\\\n");
            if v.ends_with(|c: char| c == '\\' || (c.is_whitespace() && c != '\n')) {
                // The parser trims a line and takes one trailing `\` as a
                // continuation: one more keeps both.
                v.push('\\');
            }
            writeln!(out, "{}: {}", header_display_name(k), v)?;
            if v.ends_with('\\') {
                // A continued value ends at a blank line, not at the next key.
                out.push('\n');
            }
        }
        out.push('\n');

        let s = &self.sections;
        if !s.arguments.is_empty() {
            out.push_str("%arguments\n");
            for (k, v) in &s.arguments {
                writeln!(out, "    {k}={v}")?;
            }
            out.push('\n');
        }
        for block in &s.files {
            match &block.from {
                Some(stage) => writeln!(out, "%files from {stage}")?,
                None => out.push_str("%files\n"),
            }
            for (src, dst) in &block.entries {
                out.push_str("    ");
                out.push_str(&quote_file_word(src));
                if let Some(d) = dst {
                    out.push(' ');
                    out.push_str(&quote_file_word(d));
                }
                out.push('\n');
            }
            out.push('\n');
        }
        script(&mut out, "pre", &s.pre);
        script(&mut out, "setup", &s.setup);
        script(&mut out, "post", &s.post);
        body(&mut out, "%environment", &s.environment);
        script(&mut out, "runscript", &s.runscript);
        script(&mut out, "startscript", &s.startscript);
        script(&mut out, "test", &s.test);
        labels(&mut out, "%labels", &s.labels);
        body(&mut out, "%help", &s.help);

        for name in &self.app_order {
            if let Some(app) = self.apps.get(name) {
                render_app(&mut out, name, app);
            }
        }
        f.write_str(&out)
    }
}

fn render_app(out: &mut String, name: &str, app: &App) {
    let before = out.len();
    body(out, &format!("%appinstall {name}"), &app.install);
    body(out, &format!("%apprun {name}"), &app.run);
    body(out, &format!("%appenv {name}"), &app.env);
    labels(out, &format!("%applabels {name}"), &app.labels);
    if !app.files.is_empty() {
        out.push_str(&format!("%appfiles {name}\n"));
        for (src, dst) in &app.files {
            match dst {
                Some(d) => out.push_str(&format!("    {src} {d}\n")),
                None => out.push_str(&format!("    {src}\n")),
            }
        }
        out.push('\n');
    }
    body(out, &format!("%apphelp {name}"), &app.help);
    body(out, &format!("%apptest {name}"), &app.test);
    body(out, &format!("%appstart {name}"), &app.start);
    if out.len() == before {
        // An app with only empty sections still exists.
        out.push_str(&format!("%appinstall {name}\n"));
    }
}

fn script(out: &mut String, name: &str, s: &Script) {
    if s.is_empty() {
        return;
    }
    out.push('%');
    out.push_str(name);
    if !s.args.is_empty() {
        out.push(' ');
        out.push_str(&s.args);
    }
    out.push('\n');
    out.push_str(&verbatim(&s.body));
}

fn body(out: &mut String, head: &str, text: &str) {
    if text.is_empty() {
        return;
    }
    out.push_str(head);
    out.push('\n');
    out.push_str(&verbatim(text));
    if !text.ends_with('\n') {
        out.push('\n');
    }
}

fn labels(out: &mut String, head: &str, labels: &[(String, String)]) {
    if labels.is_empty() {
        return;
    }
    out.push_str(head);
    out.push('\n');
    for (k, v) in labels {
        if v.is_empty() {
            out.push_str(&format!("    {k}\n"));
        } else {
            out.push_str(&format!("    {k} {v}\n"));
        }
    }
    out.push('\n');
}

/// A section body as written: the parser drops one `\r` before each `\n`, so
/// a body line that still ends in `\r` gets one more.
fn verbatim(body: &str) -> Cow<'_, str> {
    if body.contains("\r\n") {
        Cow::Owned(body.replace("\r\n", "\r\r\n"))
    } else {
        Cow::Borrowed(body)
    }
}

/// A `%files` word as written: plain if it reads back as itself, else the
/// first quoting that does. (A word no quoting can hold, with both quote
/// characters and outside a `{{ }}` template, cannot come from the parser.)
fn quote_file_word(w: &str) -> String {
    [w.to_string(), format!("\"{w}\""), format!("'{w}'")]
        .into_iter()
        .find(|c| {
            // Lines are trimmed, and one starting with `#` or `%` is a
            // comment or a section.
            c.trim() == c
                && !c.starts_with(['#', '%'])
                && split_files_line(c).is_some_and(|words| words == [w])
        })
        .unwrap_or_else(|| format!("\"{w}\""))
}
