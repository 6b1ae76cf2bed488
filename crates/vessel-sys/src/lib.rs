#![deny(clippy::undocumented_unsafe_blocks)]
//! Vessel's only door to the kernel. Every raw system call and every
//! `unsafe` block of the project lives here, each with a `// SAFETY:` line;
//! the rest of the workspace forbids `unsafe` and goes through these typed
//! wrappers.
//!
//! Most calls go through `rustix`, which is safe; `libc` fills its gaps
//! (fork, signal masks, user database look-ups).

pub mod caps;
pub mod fs;
pub mod fuse;
pub mod fuse_ring;
pub mod hint;
pub mod join;
pub mod loopdev;
pub mod mount;
pub mod ns;
pub mod path;
pub mod private_dir;
pub mod probe;
pub mod process;
pub mod shadow_lock;
pub mod signal;
pub mod syscall;
pub mod tree;
pub mod user;

pub use hint::{hints, Hint, Hinted};
pub use rustix::io::Errno;

/// An errno with the operation that failed, for error messages.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {errno}")]
pub struct SysError {
    pub op: String,
    #[source]
    pub errno: std::io::Error,
}

impl SysError {
    pub fn new(op: impl Into<String>, errno: impl Into<std::io::Error>) -> Self {
        SysError {
            op: op.into(),
            errno: errno.into(),
        }
    }

    pub fn raw_os_error(&self) -> Option<i32> {
        self.errno.raw_os_error()
    }

    /// The error number, by name (`Errno::ACCESS`), for matching.
    pub fn errno(&self) -> Option<Errno> {
        self.raw_os_error().map(Errno::from_raw_os_error)
    }
}

pub type Result<T, E = SysError> = std::result::Result<T, E>;

/// An error and its causes on one line, as Apptainer's `FATAL:` line is one
/// line that tools match on: each cause after a `: `, except one whose text
/// the line already holds (many errors name their cause themselves).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(error);
    while let Some(e) = cause {
        let text = e.to_string();
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        cause = e.source();
    }
    line
}

/// Adds the operation's description to a failing call.
pub(crate) trait Context<T> {
    fn op(self, op: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: Into<std::io::Error>> Context<T> for std::result::Result<T, E> {
    fn op(self, op: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| SysError::new(op(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_printed_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading {0}: {1}")]
        struct Named(&'static str, #[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("could not open image")]
        struct Outer(#[source] Named);
        let e = Outer(Named("a.sif", std::io::Error::other("gone")));
        assert_eq!(error_chain(&e), "could not open image: reading a.sif: gone");
    }
}
