//! Messages on stderr in Apptainer's style: `FATAL:   …`, `WARNING: …`,
//! `INFO:    …`, colored on a terminal. Libraries report through `tracing`;
//! this module renders their events and decides what the level lets through.

use std::fmt;
use std::io::{IsTerminal, Write};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Apptainer's message levels, from `-s` (errors only) to `-d` (debug).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageLevel {
    Silent,
    Quiet,
    Normal,
    Verbose,
    Debug,
}

impl MessageLevel {
    /// From Apptainer's numeric `MESSAGELEVEL` (-3 errors, -1 quiet, 1 info, 2–4 verbose, 5 debug).
    pub fn from_number(n: i32) -> MessageLevel {
        match n {
            i32::MIN..=-2 => MessageLevel::Silent,
            -1..=0 => MessageLevel::Quiet,
            1 => MessageLevel::Normal,
            2..=4 => MessageLevel::Verbose,
            _ => MessageLevel::Debug,
        }
    }

    fn max_tracing_level(self) -> Level {
        match self {
            MessageLevel::Silent => Level::ERROR,
            MessageLevel::Quiet => Level::WARN,
            MessageLevel::Normal => Level::INFO,
            MessageLevel::Verbose => Level::DEBUG,
            MessageLevel::Debug => Level::TRACE,
        }
    }
}

/// How messages look: whether to color them.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Color only on a terminal, and never when asked not to.
    pub fn detect(nocolor: bool) -> Style {
        Style {
            color: !nocolor && std::io::stderr().is_terminal(),
        }
    }

    fn prefix(self, label: &str, color: &str) -> String {
        let label = format!("{:<8}", format!("{label}:"));
        if self.color && !color.is_empty() {
            format!("{color}{label}\x1b[0m ")
        } else {
            format!("{label} ")
        }
    }
}

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const BLUE: &str = "\x1b[34m";
const CYAN: &str = "\x1b[36m";

static PROGRESS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Whether to draw progress bars: on a terminal, unless messages are quieted.
pub fn show_progress() -> bool {
    *PROGRESS.get().unwrap_or(&false)
}

/// Installs the renderer for library and CLI messages.
pub fn init(level: MessageLevel, style: Style) {
    let _ = PROGRESS.set(level >= MessageLevel::Normal && std::io::stderr().is_terminal());
    let _ = tracing_subscriber::fmt()
        .with_max_level(level.max_tracing_level())
        .with_writer(std::io::stderr)
        .event_format(ApptainerFormat { style })
        .try_init();
}

/// Prints the one line that ends a failed command.
pub fn fatal(style: Style, message: &str) {
    let _ = writeln!(std::io::stderr(), "{}{message}", style.prefix("FATAL", RED));
}

/// Prints a failed command's error: its chain of causes on the one
/// `FATAL:` line tools match on, then each piece of advice the chain
/// carries (`vessel_sys::Hint`) on a `HINT:` line of its own.
pub fn fatal_error(style: Style, error: &(dyn std::error::Error + 'static)) {
    fatal(style, &error_chain(error));
    for hint in vessel_sys::hints(error) {
        let _ = writeln!(std::io::stderr(), "{}{hint}", style.prefix("HINT", CYAN));
    }
}

pub use vessel_sys::error_chain;

struct ApptainerFormat {
    style: Style,
}

impl<S, N> FormatEvent<S, N> for ApptainerFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        let prefix = match level {
            Level::ERROR => self.style.prefix("ERROR", RED),
            Level::WARN => self.style.prefix("WARNING", YELLOW),
            Level::INFO => self.style.prefix("INFO", BLUE),
            Level::DEBUG => self.style.prefix("VERBOSE", ""),
            Level::TRACE => format!(
                "{:<8}{:<19}{:<30}",
                "DEBUG",
                format!("[U={},P={}]", uid(), std::process::id()),
                event.metadata().target()
            ),
        };
        write!(writer, "{prefix}")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

fn uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_padded_like_apptainer() {
        let plain = Style { color: false };
        assert_eq!(plain.prefix("FATAL", RED), "FATAL:   ");
        assert_eq!(plain.prefix("WARNING", YELLOW), "WARNING: ");
        assert_eq!(plain.prefix("INFO", BLUE), "INFO:    ");
        let color = Style { color: true };
        assert_eq!(color.prefix("ERROR", RED), "\x1b[31mERROR:  \x1b[0m ");
    }

    #[test]
    fn numeric_levels() {
        assert_eq!(MessageLevel::from_number(-3), MessageLevel::Silent);
        assert_eq!(MessageLevel::from_number(-1), MessageLevel::Quiet);
        assert_eq!(MessageLevel::from_number(1), MessageLevel::Normal);
        assert_eq!(MessageLevel::from_number(5), MessageLevel::Debug);
    }
}
