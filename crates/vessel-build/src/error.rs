//! Errors for definition-file parsing and build-argument templating.

use std::fmt;

/// An error in a definition file (or a build-argument file), with the file
/// name and the 1-based line it concerns.
///
/// Displayed as `FILE:LINE: problem`, `FILE: problem` when no single line is
/// at fault, and `line LINE: problem` when the caller gave no file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefError {
    /// File name as given by the caller (may be empty).
    pub file: String,
    /// 1-based line number, when one line is at fault.
    pub line: Option<usize>,
    /// What went wrong.
    pub kind: ErrorKind,
}

impl DefError {
    pub(crate) fn new(file: &str, line: Option<usize>, kind: ErrorKind) -> Self {
        DefError {
            file: file.to_string(),
            line,
            kind,
        }
    }

    /// The same error, attributed to `file` (used when a caller learns the
    /// file name only after the fact).
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = file.to_string();
        self
    }
}

impl fmt::Display for DefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file.is_empty(), self.line) {
            (false, Some(l)) => write!(f, "{}:{}: {}", self.file, l, self.kind),
            (false, None) => write!(f, "{}: {}", self.file, self.kind),
            (true, Some(l)) => write!(f, "line {}: {}", l, self.kind),
            (true, None) => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for DefError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// The problem behind a [`DefError`], in user terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("empty definition file: a definition file must start with a header such as \"Bootstrap: docker\"")]
    Empty,
    #[error("no Bootstrap header: a definition file must start with a header such as \"Bootstrap: docker\"")]
    NoBootstrap,
    #[error("this line comes before the first \"Bootstrap:\" line; each build stage must start with a header such as \"Bootstrap: docker\"")]
    ContentBeforeBootstrap,
    #[error("Bootstrap has no value (write for example \"Bootstrap: docker\")")]
    EmptyBootstrap,
    #[error(
        "header line \"{text}\" is not of the form \"Key: value\"{}",
        section_hint(text)
    )]
    HeaderWithoutValue { text: String },
    #[error("unknown header keyword \"{key}\"{} (valid keywords: Bootstrap, From, Stage, Registry, Namespace, Library, IncludeCmd, MirrorURL, UpdateURL, OSVersion, Include, Fingerprints, ConfURL, Setopt, Product, User, Regcode, ProductPGP, RegisterURL, Modules, OtherURL<N>, Target, Frontend, Filename, BuildArgs)", suggestion.as_ref().map(|s| format!("; did you mean \"{s}\"?")).unwrap_or_default())]
    UnknownHeaderKey {
        key: String,
        suggestion: Option<String>,
    },
    #[error("unknown section %{name}{} (sections are %setup, %files, %post, %test, %environment, %runscript, %startscript, %labels, %help, %arguments, %pre, and the app sections %appinstall, %apprun, %appenv, %applabels, %appfiles, %apphelp, %apptest, %appstart)", suggestion.as_ref().map(|s| format!("; did you mean %{s}?")).unwrap_or_default())]
    UnknownSection {
        name: String,
        suggestion: Option<String>,
    },
    #[error(
        "section %{name} must start at the beginning of the line (remove the leading whitespace)"
    )]
    IndentedSection { name: String },
    #[error("%{section} needs an app name, for example \"%{section} myapp\"")]
    MissingAppName { section: String },
    #[error(
        "%{section} -c needs a shell command after it, for example \"%{section} -c /bin/bash\""
    )]
    MissingInterpreter { section: String },
    #[error("%files takes either no argument or \"from STAGE\", not \"{args}\"")]
    BadFilesArgs { args: String },
    #[error("unterminated quote in %files line \"{text}\"")]
    UnterminatedQuote { text: String },
    #[error("%files from {name}: no earlier build stage is named \"{name}\" (name one with a \"Stage: {name}\" header before this stage)")]
    UnknownStage { name: String },
    #[error("unterminated {{{{ (close it with }}}})")]
    UnterminatedTemplate,
    #[error("build argument {name} is not defined: pass --build-arg {name}=VALUE (or put it in a --build-arg-file), or give it a default in this stage's %arguments section")]
    UndefinedBuildArg { name: String },
    #[error("unused build args: {} (use --warn-unused-build-args to only warn)", names.join(" "))]
    UnusedBuildArgs { names: Vec<String> },
    #[error("\"{text}\" is not a KEY=VALUE pair")]
    NotKeyValue { text: String },
    #[error("missing key in \"{text}\" (expected KEY=VALUE)")]
    MissingKey { text: String },
}

fn section_hint(text: &str) -> &'static str {
    if text.trim_start().starts_with('%') {
        ""
    } else {
        " (section names start with %, for example %post)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let e = DefError::new("app.def", Some(3), ErrorKind::UnterminatedTemplate);
        assert_eq!(
            e.to_string(),
            "app.def:3: unterminated {{ (close it with }})"
        );
        let e = DefError::new("app.def", None, ErrorKind::NoBootstrap);
        assert!(e.to_string().starts_with("app.def: no Bootstrap header: "));
        let e = DefError::new("", Some(2), ErrorKind::UnterminatedTemplate);
        assert_eq!(e.to_string(), "line 2: unterminated {{ (close it with }})");
        let e = DefError::new("", None, ErrorKind::EmptyBootstrap).in_file("x.def");
        assert!(e.to_string().starts_with("x.def: Bootstrap has no value"));
    }

    #[test]
    fn suggestions_are_shown() {
        let k = ErrorKind::UnknownSection {
            name: "postt".into(),
            suggestion: Some("post".into()),
        };
        let s = k.to_string();
        assert!(s.starts_with("unknown section %postt; did you mean %post? (sections are %setup"));
        let k = ErrorKind::UnknownHeaderKey {
            key: "form".into(),
            suggestion: Some("From".into()),
        };
        assert!(k.to_string().contains("did you mean \"From\"?"));
    }
}
