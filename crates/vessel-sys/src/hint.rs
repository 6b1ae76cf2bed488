//! Advice that travels with an error: what the user can do about it,
//! printed on its own line after the `FATAL:` line (uv's hints are the
//! model).
//!
//! A hint rides in the error's chain of causes as a link with no text of
//! its own, so any error type of any crate can carry one as data (a
//! `#[source]` field), `anyhow` contexts wrapped around it keep it, and the
//! printer needs to know this one type only: [`error_chain`](crate::error_chain)
//! leaves the empty link out of the `FATAL:` line, and [`hints`] collects
//! the advice for the lines after it.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

type Cause = Box<dyn Error + Send + Sync + 'static>;

/// Advice about an error, with the error's own cause (if any) behind it.
#[derive(Debug)]
pub struct Hint {
    text: Cow<'static, str>,
    cause: Option<Cause>,
}

impl Hint {
    /// Advice for an error that has no cause of its own.
    pub fn new(text: impl Into<Cow<'static, str>>) -> Hint {
        Hint {
            text: text.into(),
            cause: None,
        }
    }

    /// Advice for an error whose cause is `cause`: the chain goes on
    /// through it, so the `FATAL:` line still names the cause.
    pub fn with_cause(text: impl Into<Cow<'static, str>>, cause: impl Into<Cause>) -> Hint {
        Hint {
            text: text.into(),
            cause: Some(cause.into()),
        }
    }

    /// The advice itself.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Hint {
    /// Nothing: the advice is not part of the error's one line.
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl Error for Hint {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn Error + 'static))
    }
}

/// An error made on the spot, with its advice: `Hinted::new("IMG already
/// exists", "use --force to overwrite it")`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Hinted {
    message: String,
    #[source]
    hint: Hint,
}

impl Hinted {
    pub fn new(message: impl Into<String>, hint: impl Into<Cow<'static, str>>) -> Hinted {
        Hinted {
            message: message.into(),
            hint: Hint::new(hint),
        }
    }
}

/// Every hint in the chain of `error`, outermost first, each once.
pub fn hints(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut link = Some(error);
    while let Some(e) = link {
        if let Some(hint) = e.downcast_ref::<Hint>() {
            if !found.iter().any(|h| h == hint.text()) {
                found.push(hint.text().to_string());
            }
        }
        link = e.source();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not open {path}")]
    struct Open {
        path: String,
        #[source]
        hint: Hint,
    }

    #[test]
    fn a_hint_is_left_out_of_the_line_and_found_for_the_next() {
        let cause = std::io::Error::from_raw_os_error(13);
        let e = Open {
            path: "/x".into(),
            hint: Hint::with_cause("check its permissions", cause),
        };
        assert_eq!(
            crate::error_chain(&e),
            "could not open /x: Permission denied (os error 13)"
        );
        assert_eq!(hints(&e), ["check its permissions"]);
    }

    #[test]
    fn hints_are_found_under_other_errors() {
        #[derive(Debug, thiserror::Error)]
        #[error("pull failed")]
        struct Outer(#[source] Hinted);
        let e = Outer(Hinted::new(
            "a.sif already exists",
            "use --force to overwrite it",
        ));
        assert_eq!(crate::error_chain(&e), "pull failed: a.sif already exists");
        assert_eq!(hints(&e), ["use --force to overwrite it"]);
    }

    #[test]
    fn an_error_without_a_hint_has_none() {
        let e = std::io::Error::from_raw_os_error(2);
        assert!(hints(&e).is_empty());
    }
}
