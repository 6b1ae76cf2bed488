//! Apptainer's argument grammar (Go's pflag) put into a form clap reads the
//! same way, before clap sees the command line.
//!
//! clap and pflag agree on most forms (`--flag value`, `--flag=value`,
//! `-Fvalue`, `-F value`, combined boolean short flags). Where they differ,
//! the command line is rewritten here, using clap's own description of each
//! command (which flags take a value, which are booleans), so that no list
//! of flags is kept twice:
//!
//! - `--flag=BOOL` and `-f=BOOL` on a boolean flag: pflag reads the value as
//!   Go's `strconv.ParseBool` does, so `--contain=false` is as if the flag
//!   were not given and `--nv=1` is `--nv`; any other value is an error.
//! - A flag that takes a value takes the next argument whatever it looks
//!   like (`--bind -x` binds `-x`); clap would read `-x` as a flag.
//! - A value flag at the end of the line is pflag's `flag needs an argument`.
//!
//! Only the flags of the command are rewritten: for the commands whose
//! first positional argument starts the command to run (`exec IMAGE CMD
//! ARGS…`), everything from that argument on is left as typed.

use std::ffi::{OsStr, OsString};

/// A command line pflag refuses, with pflag's words (printed as one
/// `FATAL:` line, exit 255, as Apptainer does).
#[derive(Debug, PartialEq, Eq)]
pub struct GrammarError(pub String);

impl std::fmt::Display for GrammarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(value: &str) -> Option<bool> {
    vessel_config::lookup_bool(value)
}

/// How a flag of the command is written in pflag's messages:
/// `-c, --contain`, or `--nv` when it has no short form.
fn pflag_name(arg: &clap::Arg) -> String {
    match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("-{s}, --{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => arg.get_id().to_string(),
    }
}

fn invalid_bool(arg: &clap::Arg, value: &str) -> GrammarError {
    GrammarError(format!(
        "invalid argument {value:?} for {:?} flag: strconv.ParseBool: parsing {value:?}: invalid syntax",
        pflag_name(arg)
    ))
}

/// A boolean flag: clap sets it without a value.
fn is_bool(arg: &clap::Arg) -> bool {
    matches!(
        arg.get_action(),
        clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
    )
}

/// The subcommand being read, and the commands above it, nearest last.
struct Chain {
    here: clap::Command,
    above: Vec<clap::Command>,
}

impl Chain {
    /// The flags the subcommand takes: its own, then its ancestors'
    /// global ones, nearest first (what `Command::build` would copy in).
    fn arguments(&self) -> impl Iterator<Item = &clap::Arg> + '_ {
        let inherited = self
            .above
            .iter()
            .rev()
            .flat_map(|c| c.get_arguments().filter(|a| a.is_global_set()));
        self.here.get_arguments().chain(inherited)
    }

    /// Into the subcommand called `name`, if there is one. Its flags are
    /// deferred (`#[command(defer = true)]`: made only for the subcommand
    /// that runs): a copy of it is built here, as clap builds it to parse.
    fn descend(&mut self, name: &OsStr) -> bool {
        let Some(sub) = self.here.find_subcommand(name) else {
            return false;
        };
        let mut sub = sub.clone();
        sub.build();
        let parent = std::mem::replace(&mut self.here, sub);
        self.above.push(parent);
        true
    }
}

fn find_long<'a>(cmd: &'a Chain, name: &str) -> Option<&'a clap::Arg> {
    cmd.arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

fn find_short(cmd: &Chain, c: char) -> Option<&clap::Arg> {
    cmd.arguments().find(|a| {
        a.get_short() == Some(c) || a.get_all_short_aliases().is_some_and(|al| al.contains(&c))
    })
}

/// Whether the command's first positional argument starts what belongs to
/// the command it runs (`exec IMAGE CMD…`): no flag is read after it.
fn stops_at_first_positional(cmd: &Chain) -> bool {
    cmd.here
        .get_arguments()
        .any(|a| a.is_positional() && a.is_trailing_var_arg_set())
}

/// The flag with its value, in the one form clap cannot misread.
fn with_value(arg: &clap::Arg, value: &OsStr) -> OsString {
    let mut out = match (arg.get_long(), arg.get_short()) {
        (Some(l), _) => OsString::from(format!("--{l}=")),
        (None, Some(s)) => OsString::from(format!("-{s}=")),
        (None, None) => OsString::new(),
    };
    out.push(value);
    out
}

/// The flag set (a boolean given as true), as clap reads it.
fn set(arg: &clap::Arg) -> OsString {
    match (arg.get_long(), arg.get_short()) {
        (Some(l), _) => format!("--{l}").into(),
        (_, Some(s)) => format!("-{s}").into(),
        (None, None) => OsString::new(),
    }
}

/// Rewrites `args` (with the program name first) from pflag's grammar into
/// clap's, for the command tree `root`. The tree need not be built
/// (`Command::build`, which prepares every subcommand of Vessel's, a third
/// of a start-up's own time), and the subcommands' flags may be deferred:
/// a subcommand's flags are its own and its ancestors' global ones, looked
/// up here as clap would propagate them.
/// What clap reads the same way, and what it should report (unknown flags,
/// `--help`, bad values of non-boolean flags), is passed through untouched.
pub fn normalize(root: &clap::Command, args: Vec<OsString>) -> Result<Vec<OsString>, GrammarError> {
    let mut cmd = Chain {
        here: root.clone(),
        above: Vec::new(),
    };
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    out.extend(it.next());
    while let Some(a) = it.next() {
        let Some(text) = a.to_str() else {
            // Not UTF-8: not a flag pflag knows; a path.
            if stops_at_first_positional(&cmd) {
                out.push(a);
                break;
            }
            out.push(a);
            continue;
        };
        if text == "--" {
            out.push(a);
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, value) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let Some(arg) = find_long(&cmd, name) else {
                // clap names the unknown flag.
                out.push(a);
                break;
            };
            if is_bool(arg) {
                match value {
                    None => out.push(a),
                    Some(v) => match parse_bool(v) {
                        Some(true) => out.push(set(arg)),
                        Some(false) => {}
                        None => return Err(invalid_bool(arg, v)),
                    },
                }
            } else if !arg.get_action().takes_values() {
                // --help, --version.
                out.push(a);
            } else if let Some(v) = value {
                out.push(with_value(arg, OsStr::new(v)));
            } else {
                match it.next() {
                    Some(v) => out.push(with_value(arg, &v)),
                    None => {
                        return Err(GrammarError(format!("flag needs an argument: {text}")));
                    }
                }
            }
            continue;
        }
        if let Some(shorts) = text.strip_prefix('-').filter(|s| !s.is_empty()) {
            if !shorts.starts_with(|c: char| find_short(&cmd, c).is_some()) {
                // An unknown shorthand: clap names it.
                out.push(a);
                break;
            }
            let mut rewritten = Vec::new();
            let mut rest = shorts;
            while let Some(c) = rest.chars().next() {
                let after = &rest[c.len_utf8()..];
                let Some(arg) = find_short(&cmd, c) else {
                    // clap reports the unknown letter, in the cluster as typed.
                    out.push(a.clone());
                    return Ok(finish(out, it));
                };
                if is_bool(arg) || !arg.get_action().takes_values() {
                    if let Some(v) = after.strip_prefix('=') {
                        if !is_bool(arg) {
                            out.push(a.clone());
                            return Ok(finish(out, it));
                        }
                        match parse_bool(v) {
                            Some(true) => rewritten.push(set(arg)),
                            Some(false) => {}
                            None => return Err(invalid_bool(arg, v)),
                        }
                        rest = "";
                    } else {
                        rewritten.push(if is_bool(arg) {
                            set(arg)
                        } else {
                            format!("-{c}").into()
                        });
                        rest = after;
                    }
                    continue;
                }
                // A value flag takes the rest of the cluster (after an
                // optional `=`), else the next argument.
                if !after.is_empty() {
                    let v = after.strip_prefix('=').unwrap_or(after);
                    rewritten.push(with_value(arg, OsStr::new(v)));
                } else {
                    match it.next() {
                        Some(v) => rewritten.push(with_value(arg, &v)),
                        None => {
                            return Err(GrammarError(format!(
                                "flag needs an argument: '{c}' in {text}"
                            )));
                        }
                    }
                }
                rest = "";
            }
            out.extend(rewritten);
            continue;
        }
        // A positional argument: a subcommand, or the command's own.
        if cmd.descend(&a) {
            out.push(a);
            continue;
        }
        out.push(a);
        if stops_at_first_positional(&cmd) {
            break;
        }
    }
    Ok(finish(out, it))
}

fn finish(mut out: Vec<OsString>, rest: impl Iterator<Item = OsString>) -> Vec<OsString> {
    out.extend(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn norm(line: &[&str]) -> Result<Vec<String>, String> {
        let mut args = vec![OsString::from("vessel")];
        args.extend(line.iter().map(OsString::from));
        // As main reads it: not built.
        let root = crate::cli::Cli::command();
        normalize(&root, args)
            .map(|v| {
                v.into_iter()
                    .skip(1)
                    .map(|s| s.into_string().unwrap())
                    .collect()
            })
            .map_err(|e| e.0)
    }

    /// Each of pflag's forms, and what clap is given for it.
    #[test]
    fn pflag_forms() {
        let table: &[(&str, &[&str], &[&str])] = &[
            (
                "attached short",
                &["exec", "-B/a:/b", "i"],
                &["exec", "--bind=/a:/b", "i"],
            ),
            (
                "short with =",
                &["exec", "-B=/a", "i"],
                &["exec", "--bind=/a", "i"],
            ),
            (
                "separate short",
                &["exec", "-B", "/a", "i"],
                &["exec", "--bind=/a", "i"],
            ),
            (
                "long with =",
                &["exec", "--bind=/a", "i"],
                &["exec", "--bind=/a", "i"],
            ),
            (
                "separate long",
                &["exec", "--bind", "/a", "i"],
                &["exec", "--bind=/a", "i"],
            ),
            (
                "value that looks like a flag",
                &["exec", "--hostname", "-x", "i"],
                &["exec", "--hostname=-x", "i"],
            ),
            (
                "combined shorts",
                &["exec", "-ce", "i"],
                &["exec", "--contain", "--cleanenv", "i"],
            ),
            (
                "combined shorts ending in a value",
                &["exec", "-cB/a", "i"],
                &["exec", "--contain", "--bind=/a", "i"],
            ),
            (
                "combined shorts, value next",
                &["exec", "-cB", "/a", "i"],
                &["exec", "--contain", "--bind=/a", "i"],
            ),
            (
                "=true",
                &["exec", "--contain=true", "i"],
                &["exec", "--contain", "i"],
            ),
            ("=false", &["exec", "--contain=false", "i"], &["exec", "i"]),
            (
                "=1",
                &["exec", "--writable=1", "i"],
                &["exec", "--writable", "i"],
            ),
            ("=0", &["exec", "--writable=0", "i"], &["exec", "i"]),
            ("=t", &["exec", "--pid=t", "i"], &["exec", "--pid", "i"]),
            ("=F", &["exec", "--pid=F", "i"], &["exec", "i"]),
            (
                "=TRUE",
                &["exec", "--ipc=TRUE", "i"],
                &["exec", "--ipc", "i"],
            ),
            ("=False", &["exec", "--ipc=False", "i"], &["exec", "i"]),
            ("short =false", &["exec", "-c=false", "i"], &["exec", "i"]),
            (
                "combined, last =false",
                &["exec", "-ec=false", "i"],
                &["exec", "--cleanenv", "i"],
            ),
            (
                "after the image, nothing is read",
                &["exec", "i", "--contain=false", "-B", "--nv=x"],
                &["exec", "i", "--contain=false", "-B", "--nv=x"],
            ),
            (
                "after --, nothing is read",
                &["exec", "--", "--contain=false"],
                &["exec", "--", "--contain=false"],
            ),
            (
                "build: flags after positionals too",
                &["build", "out.sif", "--force=false", "def"],
                &["build", "out.sif", "def"],
            ),
            (
                "subcommand flags",
                &["cache", "clean", "--force=true", "-n=0"],
                &["cache", "clean", "--force"],
            ),
            (
                "global flags",
                &["--debug=false", "-q=true", "version"],
                &["--quiet", "version"],
            ),
            (
                "unknown flags are left to clap",
                &["exec", "--bnd=/x", "-B", "y"],
                &["exec", "--bnd=/x", "-B", "y"],
            ),
            (
                "key's global flags",
                &["key", "list", "-g=false", "--secret=1"],
                &["key", "list", "--secret"],
            ),
        ];
        for (what, line, want) in table {
            let got = norm(line).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(&got, want, "{what}");
        }
    }

    #[test]
    fn pflags_errors() {
        let table: &[(&[&str], &str)] = &[
            (
                &["exec", "--contain=x", "i"],
                r#"invalid argument "x" for "-c, --contain" flag: strconv.ParseBool: parsing "x": invalid syntax"#,
            ),
            (
                &["exec", "--nv=yes", "i"],
                r#"invalid argument "yes" for "--nv" flag: strconv.ParseBool: parsing "yes": invalid syntax"#,
            ),
            (
                &["exec", "-c=", "i"],
                r#"invalid argument "" for "-c, --contain" flag: strconv.ParseBool: parsing "": invalid syntax"#,
            ),
            (&["exec", "--bind"], "flag needs an argument: --bind"),
            (&["exec", "-B"], "flag needs an argument: 'B' in -B"),
            (&["exec", "-cB"], "flag needs an argument: 'B' in -cB"),
            (&["pull", "--name"], "flag needs an argument: --name"),
        ];
        for (line, want) in table {
            assert_eq!(norm(line).unwrap_err(), *want, "{line:?}");
        }
    }

    /// Every boolean flag of every command takes `=true` and `=false`.
    #[test]
    fn every_boolean_flag_takes_a_value() {
        let mut root = crate::cli::Cli::command();
        root.build();
        fn walk(cmd: &clap::Command, path: &mut Vec<String>, seen: &mut usize) {
            for arg in cmd.get_arguments().filter(|a| is_bool(a)) {
                let Some(long) = arg.get_long() else { continue };
                let mut line: Vec<String> = path.clone();
                line.push(format!("--{long}=false"));
                let got = norm(&line.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
                assert_eq!(got, *path, "--{long}=false");
                line.pop();
                line.push(format!("--{long}=true"));
                let got = norm(&line.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
                assert_eq!(got.last().unwrap(), &format!("--{long}"));
                *seen += 1;
            }
            for sub in cmd.get_subcommands() {
                path.push(sub.get_name().to_string());
                walk(sub, path, seen);
                path.pop();
            }
        }
        let mut seen = 0;
        walk(&root, &mut Vec::new(), &mut seen);
        assert!(seen > 50, "{seen} boolean flags");
    }
}
