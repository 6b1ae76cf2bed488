//! The image's environment scripts (`/.singularity.d/env/*.sh`) evaluated
//! by Vessel itself, for the scripts that use only a small, well-defined
//! part of the shell language: assignments, `export`, `unset`, `test`/`[`,
//! `if`/`elif`/`else`, `&&`/`||`, quoting and `$NAME`/`${NAME}` with the
//! `-`/`+` operators. Every run otherwise execs the image's `/bin/sh` just to
//! read them: on a VM that is a millisecond of CPU per rank with a dynamic
//! `dash` (issue 19), which Apptainer, whose embedded interpreter reads
//! them, does not spend either.
//!
//! The rule is "the same result or no result": anything outside that part
//! ([`Refused`], with the reason for `--debug`) leaves the work to the
//! image's shell, as before. That includes what shells do differently from
//! each other: an unquoted expansion that a shell would split into fields
//! or match as a file pattern, tilde and brace forms, `==` in `test`.
//! Evaluation has no side effect but reading files, so it can stop at any
//! point.
//!
//! Written by hand: the Rust shells on crates.io (brush, yash) are whole
//! shells that run commands; nothing offers "evaluate or refuse".

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// Why the image's shell has to read the scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

type Res<T> = Result<T, Refused>;

fn refuse<T>(why: impl Into<String>) -> Res<T> {
    Err(Refused(why.into()))
}

#[derive(Debug, Clone)]
enum Part {
    Lit { text: Vec<u8>, quoted: bool },
    Param(Param),
}

#[derive(Debug, Clone)]
struct Param {
    name: String,
    op: Op,
    word: Word,
    quoted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `$NAME`, `${NAME}`
    Plain,
    /// `${NAME-word}`, `${NAME:-word}` (colon: empty counts as unset)
    Default { colon: bool },
    /// `${NAME+word}`, `${NAME:+word}`
    Alternative { colon: bool },
}

type Word = Vec<Part>;

#[derive(Debug)]
enum Token {
    Word(Word),
    Newline,
    Semicolon,
    And,
    Or,
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A variable name, as the shell accepts one.
pub fn is_identifier(name: &[u8]) -> bool {
    name.first().is_some_and(|c| is_name_start(*c)) && name.iter().all(|c| is_name(*c))
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn peek2(&self) -> Option<u8> {
        self.s.get(self.i + 1).copied()
    }

    fn next_token(&mut self) -> Res<Option<Token>> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t') => self.i += 1,
                Some(b'\\') if self.peek2() == Some(b'\n') => self.i += 2,
                Some(b'#') => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let two = self.peek2();
        let token = match c {
            b'\n' => Token::Newline,
            b';' if two == Some(b';') => return refuse("`case`"),
            b';' => Token::Semicolon,
            b'&' if two == Some(b'&') => {
                self.i += 1;
                Token::And
            }
            b'|' if two == Some(b'|') => {
                self.i += 1;
                Token::Or
            }
            b'&' => return refuse("a background command"),
            b'|' => return refuse("a pipeline"),
            b'(' | b')' => return refuse("a subshell or function"),
            b'<' | b'>' => return refuse("a redirection"),
            _ => return Ok(Some(Token::Word(self.word(false)?))),
        };
        self.i += 1;
        Ok(Some(token))
    }

    /// A word; in `${…}` (`braced`) it ends at the closing brace and
    /// blanks and operators are part of it.
    fn word(&mut self, braced: bool) -> Res<Word> {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let flush = |lit: &mut Vec<u8>, parts: &mut Word| {
            if !lit.is_empty() {
                parts.push(Part::Lit {
                    text: std::mem::take(lit),
                    quoted: false,
                });
            }
        };
        let start = self.i;
        loop {
            let Some(c) = self.peek() else {
                if braced {
                    return refuse("an unterminated ${");
                }
                break;
            };
            match c {
                b'}' if braced => break,
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
                    if !braced =>
                {
                    break
                }
                b'\\' => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'\n') => self.i += 1,
                        Some(e) => {
                            flush(&mut lit, &mut parts);
                            parts.push(Part::Lit {
                                text: vec![e],
                                quoted: true,
                            });
                            self.i += 1;
                        }
                        None => return refuse("a backslash at the end"),
                    }
                }
                b'\'' => {
                    self.i += 1;
                    let end = match self.s[self.i..].iter().position(|b| *b == b'\'') {
                        Some(n) => self.i + n,
                        None => return refuse("an unterminated quote"),
                    };
                    flush(&mut lit, &mut parts);
                    parts.push(Part::Lit {
                        text: self.s[self.i..end].to_vec(),
                        quoted: true,
                    });
                    self.i = end + 1;
                }
                b'"' => {
                    self.i += 1;
                    flush(&mut lit, &mut parts);
                    self.double_quoted(&mut parts)?;
                }
                b'$' => {
                    self.i += 1;
                    match self.dollar(false)? {
                        Some(p) => {
                            flush(&mut lit, &mut parts);
                            parts.push(Part::Param(p));
                        }
                        None => lit.push(b'$'),
                    }
                }
                b'`' => return refuse("command substitution"),
                b'*' | b'?' => return refuse("a file name pattern"),
                b'~' => return refuse("tilde expansion"),
                b'{' | b'}' => return refuse("braces"),
                _ => {
                    lit.push(c);
                    self.i += 1;
                }
            }
        }
        flush(&mut lit, &mut parts);
        // `[` opens a pattern unless it is the test command itself.
        let whole = &self.s[start..self.i];
        let bracket = parts
            .iter()
            .any(|p| matches!(p, Part::Lit { text, quoted: false } if text.contains(&b'[')));
        if bracket && whole != b"[" {
            return refuse("a file name pattern");
        }
        Ok(parts)
    }

    fn double_quoted(&mut self, parts: &mut Word) -> Res<()> {
        let mut lit = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return refuse("an unterminated quote");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => match self.peek() {
                    Some(b'\n') => self.i += 1,
                    Some(e @ (b'$' | b'`' | b'"' | b'\\')) => {
                        lit.push(e);
                        self.i += 1;
                    }
                    _ => lit.push(b'\\'),
                },
                b'$' => match self.dollar(true)? {
                    Some(p) => {
                        if !lit.is_empty() {
                            parts.push(Part::Lit {
                                text: std::mem::take(&mut lit),
                                quoted: true,
                            });
                        }
                        parts.push(Part::Param(p));
                    }
                    None => lit.push(b'$'),
                },
                b'`' => return refuse("command substitution"),
                _ => lit.push(c),
            }
        }
        // An empty "" still makes a (quoted, empty) word.
        parts.push(Part::Lit {
            text: lit,
            quoted: true,
        });
        Ok(())
    }

    /// After a `$`: a parameter, or `None` for a literal dollar sign.
    fn dollar(&mut self, quoted: bool) -> Res<Option<Param>> {
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let start = self.i;
                while self.peek().is_some_and(is_name) {
                    self.i += 1;
                }
                let name = &self.s[start..self.i];
                if !is_identifier(name) {
                    return refuse("a special parameter or ${#…}");
                }
                let name = String::from_utf8_lossy(name).into_owned();
                let colon = self.peek() == Some(b':');
                if colon {
                    self.i += 1;
                }
                let op = match self.peek() {
                    Some(b'}') if !colon => {
                        self.i += 1;
                        return Ok(Some(Param {
                            name,
                            op: Op::Plain,
                            word: Vec::new(),
                            quoted,
                        }));
                    }
                    Some(b'-') => Op::Default { colon },
                    Some(b'+') => Op::Alternative { colon },
                    _ => return refuse("a parameter expansion other than ${X-…} and ${X+…}"),
                };
                self.i += 1;
                let word = self.word(true)?;
                self.i += 1; // the closing brace
                Ok(Some(Param {
                    name,
                    op,
                    word,
                    quoted,
                }))
            }
            Some(c) if is_name_start(c) => {
                let start = self.i;
                while self.peek().is_some_and(is_name) {
                    self.i += 1;
                }
                Ok(Some(Param {
                    name: String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                    op: Op::Plain,
                    word: Vec::new(),
                    quoted,
                }))
            }
            Some(b'(') => refuse("command substitution or arithmetic"),
            Some(c) if c.is_ascii_digit() || b"@*#?$!-".contains(&c) => {
                refuse("a special parameter")
            }
            _ => Ok(None),
        }
    }
}

#[derive(Debug)]
enum Command {
    Simple(Vec<Word>),
    If {
        branches: Vec<(List, List)>,
        otherwise: Option<List>,
    },
}

/// Commands joined by `&&` / `||` (true: `&&`).
#[derive(Debug)]
struct AndOr {
    first: Command,
    rest: Vec<(bool, Command)>,
}

type List = Vec<AndOr>;

/// The word as a keyword, if it is one unquoted literal.
fn keyword(w: &Word) -> Option<&[u8]> {
    match w.as_slice() {
        [Part::Lit {
            text,
            quoted: false,
        }] => Some(text),
        _ => None,
    }
}

const RESERVED: &[&[u8]] = &[
    b"then",
    b"elif",
    b"else",
    b"fi",
    b"do",
    b"done",
    b"case",
    b"esac",
    b"for",
    b"while",
    b"until",
    b"in",
    b"!",
    b"function",
    b"select",
];

struct Parser<'a> {
    lexer: Lexer<'a>,
    peeked: Option<Token>,
}

impl Parser<'_> {
    fn peek(&mut self) -> Res<Option<&Token>> {
        if self.peeked.is_none() {
            self.peeked = self.lexer.next_token()?;
        }
        Ok(self.peeked.as_ref())
    }

    fn take(&mut self) -> Res<Option<Token>> {
        self.peek()?;
        Ok(self.peeked.take())
    }

    /// Commands up to one of `ends` (consumed and returned) or the end.
    fn list(&mut self, ends: &[&[u8]]) -> Res<(List, Option<Vec<u8>>)> {
        let mut list = Vec::new();
        loop {
            match self.peek()? {
                None => return Ok((list, None)),
                Some(Token::Newline) => {
                    self.take()?;
                    continue;
                }
                Some(Token::Word(w)) => {
                    if let Some(k) = keyword(w).filter(|k| ends.contains(k)) {
                        let k = k.to_vec();
                        self.take()?;
                        return Ok((list, Some(k)));
                    }
                }
                Some(_) => return refuse("a syntax error"),
            }
            let first = self.command()?;
            let mut rest = Vec::new();
            loop {
                let and = match self.peek()? {
                    Some(Token::And) => true,
                    Some(Token::Or) => false,
                    _ => break,
                };
                self.take()?;
                while matches!(self.peek()?, Some(Token::Newline)) {
                    self.take()?;
                }
                rest.push((and, self.command()?));
            }
            list.push(AndOr { first, rest });
            match self.take()? {
                None => return Ok((list, None)),
                Some(Token::Newline | Token::Semicolon) => {}
                Some(_) => return refuse("a syntax error"),
            }
        }
    }

    fn command(&mut self) -> Res<Command> {
        let Some(Token::Word(w)) = self.peek()? else {
            return refuse("a syntax error");
        };
        match keyword(w) {
            Some(b"if") => {
                self.take()?;
                self.if_clause()
            }
            Some(k) if RESERVED.contains(&k) => {
                refuse(format!("the shell word `{}`", String::from_utf8_lossy(k)))
            }
            _ => {
                let mut words = Vec::new();
                while let Some(Token::Word(_)) = self.peek()? {
                    if let Some(Token::Word(w)) = self.take()? {
                        words.push(w);
                    }
                }
                Ok(Command::Simple(words))
            }
        }
    }

    fn if_clause(&mut self) -> Res<Command> {
        let mut branches = Vec::new();
        let mut otherwise = None;
        loop {
            let (condition, end) = self.list(&[b"then"])?;
            if condition.is_empty() || end.is_none() {
                return refuse("a syntax error in `if`");
            }
            let (body, end) = self.list(&[b"elif", b"else", b"fi"])?;
            if body.is_empty() {
                return refuse("a syntax error in `if`");
            }
            branches.push((condition, body));
            match end.as_deref() {
                Some(b"elif") => continue,
                Some(b"else") => {
                    let (body, end) = self.list(&[b"fi"])?;
                    if body.is_empty() || end.is_none() {
                        return refuse("a syntax error in `if`");
                    }
                    otherwise = Some(body);
                    break;
                }
                Some(b"fi") => break,
                _ => return refuse("a syntax error in `if`"),
            }
        }
        match self.peek()? {
            None | Some(Token::Newline | Token::Semicolon | Token::And | Token::Or) => {}
            Some(Token::Word(_)) => return refuse("a syntax error after `fi`"),
        }
        Ok(Command::If {
            branches,
            otherwise,
        })
    }
}

fn parse(script: &[u8]) -> Res<List> {
    let mut parser = Parser {
        lexer: Lexer { s: script, i: 0 },
        peeked: None,
    };
    let (list, end) = parser.list(&[])?;
    match end {
        None => Ok(list),
        Some(_) => refuse("a syntax error"),
    }
}

#[derive(Debug, Clone)]
struct Var {
    value: Option<Vec<u8>>,
    exported: bool,
}

/// The shell's variables, in the order they came (the environment's
/// order is kept for the command).
#[derive(Debug, Clone, Default)]
pub struct Shell {
    vars: Vec<(Vec<u8>, Var)>,
    /// Environment entries whose names are not variable names (Lmod's
    /// `BASH_FUNC_module%%`): passed on untouched.
    other: Vec<(OsString, OsString)>,
}

/// Characters that a shell splits an unquoted expansion at, or matches
/// files with: a value with any of them is left to the shell.
fn splits_or_globs(v: &[u8]) -> bool {
    v.iter()
        .any(|c| matches!(c, b' ' | b'\t' | b'\n' | b'*' | b'?' | b'['))
}

impl Shell {
    /// A shell started with `env` as its environment (all of it exported).
    pub fn new(env: &[(OsString, OsString)]) -> Shell {
        let mut shell = Shell::default();
        for (k, v) in env {
            if is_identifier(k.as_bytes()) {
                shell.set(k.as_bytes(), v.as_bytes().to_vec(), true);
            } else {
                shell.other.push((k.clone(), v.clone()));
            }
        }
        shell
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.vars.iter().position(|(k, _)| k == name)
    }

    /// The value of `name`, when set.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.find(name)
            .and_then(|i| self.vars[i].1.value.as_deref())
    }

    /// Sets `name` (exported if `export` or if it already was).
    pub fn set(&mut self, name: &[u8], value: Vec<u8>, export: bool) {
        match self.find(name) {
            Some(i) => {
                let var = &mut self.vars[i].1;
                var.value = Some(value);
                var.exported |= export;
            }
            None => self.vars.push((
                name.to_vec(),
                Var {
                    value: Some(value),
                    exported: export,
                },
            )),
        }
    }

    fn export(&mut self, name: &[u8]) {
        match self.find(name) {
            Some(i) => self.vars[i].1.exported = true,
            None => self.vars.push((
                name.to_vec(),
                Var {
                    value: None,
                    exported: true,
                },
            )),
        }
    }

    fn unset(&mut self, name: &[u8]) {
        self.vars.retain(|(k, _)| k != name);
    }

    /// The environment a command run now gets.
    pub fn environment(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = self
            .vars
            .iter()
            .filter_map(|(k, var)| match (&var.value, var.exported) {
                (Some(v), true) => {
                    Some((OsString::from_vec(k.clone()), OsString::from_vec(v.clone())))
                }
                _ => None,
            })
            .collect();
        env.extend(self.other.iter().cloned());
        env
    }

    /// Runs `script` (one sourced file) in this shell.
    pub fn source(&mut self, script: &[u8]) -> Res<()> {
        let list = parse(script)?;
        self.run_list(&list)?;
        Ok(())
    }

    fn run_list(&mut self, list: &List) -> Res<i32> {
        let mut status = 0;
        for and_or in list {
            status = self.run_command(&and_or.first)?;
            for (and, command) in &and_or.rest {
                if (*and && status == 0) || (!*and && status != 0) {
                    status = self.run_command(command)?;
                }
            }
        }
        Ok(status)
    }

    fn run_command(&mut self, command: &Command) -> Res<i32> {
        match command {
            Command::If {
                branches,
                otherwise,
            } => {
                for (condition, body) in branches {
                    if self.run_list(condition)? == 0 {
                        return self.run_list(body);
                    }
                }
                match otherwise {
                    Some(body) => self.run_list(body),
                    None => Ok(0),
                }
            }
            Command::Simple(words) => self.run_simple(words),
        }
    }

    fn run_simple(&mut self, words: &[Word]) -> Res<i32> {
        let assignments: Vec<(Vec<u8>, Word)> = words.iter().map_while(assignment).collect();
        let rest = &words[assignments.len()..];
        if rest.is_empty() {
            for (name, value) in &assignments {
                let value = self.expand(value, Context::Assignment)?.unwrap_or_default();
                self.assign(name, value, false)?;
            }
            return Ok(0);
        }
        if !assignments.is_empty() {
            return refuse("an assignment before a command");
        }
        let Some(name) = self.expand(&rest[0], Context::Field)? else {
            return refuse("a command word that expands to nothing");
        };
        let args = &rest[1..];
        match name.as_slice() {
            b"export" => {
                if args.is_empty() {
                    return refuse("`export` that lists the variables");
                }
                for arg in args {
                    if let Some((name, value)) = assignment(arg) {
                        // Shells before dash 0.5.11 split these: only a
                        // value that no shell splits is taken.
                        let value = self.expand(&value, Context::Export)?.unwrap_or_default();
                        self.assign(&name, value, true)?;
                    } else {
                        let Some(name) = self.expand(arg, Context::Field)? else {
                            continue;
                        };
                        if !is_identifier(&name) {
                            return refuse("an `export` option or bad name");
                        }
                        self.export(&name);
                    }
                }
                Ok(0)
            }
            b"unset" => {
                for arg in args {
                    let Some(name) = self.expand(arg, Context::Field)? else {
                        continue;
                    };
                    if name == b"-v" {
                        continue;
                    }
                    if !is_identifier(&name) {
                        return refuse("an `unset` option or bad name");
                    }
                    if name == b"IFS" {
                        return refuse("a change of IFS");
                    }
                    self.unset(&name);
                }
                Ok(0)
            }
            b"[" | b"test" => {
                let mut fields = Vec::new();
                for arg in args {
                    if let Some(f) = self.expand(arg, Context::Field)? {
                        fields.push(f);
                    }
                }
                if name == b"[" {
                    if fields.last().map(Vec::as_slice) != Some(b"]") {
                        return refuse("`[` without `]`");
                    }
                    fields.pop();
                }
                test(&fields)
            }
            b":" | b"true" => Ok(0),
            b"false" => Ok(1),
            other => refuse(format!("the command `{}`", String::from_utf8_lossy(other))),
        }
    }

    fn assign(&mut self, name: &[u8], value: Vec<u8>, export: bool) -> Res<()> {
        if name == b"IFS" {
            return refuse("a change of IFS");
        }
        self.set(name, value, export);
        Ok(())
    }

    /// The word expanded: `None` when, as an unquoted field that came out
    /// empty, the shell would drop it.
    fn expand(&self, word: &[Part], ctx: Context) -> Res<Option<Vec<u8>>> {
        let mut out = Vec::new();
        let mut quoted = false;
        for part in word {
            match part {
                Part::Lit { text, quoted: q } => {
                    out.extend_from_slice(text);
                    quoted |= *q;
                }
                Part::Param(p) => {
                    let value = self.get(p.name.as_bytes());
                    let set = value.is_some();
                    let nonempty = value.is_some_and(|v| !v.is_empty());
                    let text = match p.op {
                        Op::Plain => value.unwrap_or_default().to_vec(),
                        Op::Default { colon } => {
                            if (colon && nonempty) || (!colon && set) {
                                value.unwrap_or_default().to_vec()
                            } else {
                                self.expand(&p.word, Context::Assignment)?
                                    .unwrap_or_default()
                            }
                        }
                        Op::Alternative { colon } => {
                            if (colon && nonempty) || (!colon && set) {
                                self.expand(&p.word, Context::Assignment)?
                                    .unwrap_or_default()
                            } else {
                                Vec::new()
                            }
                        }
                    };
                    if p.quoted {
                        quoted = true;
                    } else if ctx != Context::Assignment && splits_or_globs(&text) {
                        return refuse("an unquoted expansion the shell would split or match");
                    }
                    out.extend_from_slice(&text);
                }
            }
        }
        Ok(if ctx == Context::Field && out.is_empty() && !quoted {
            None
        } else {
            Some(out)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// `NAME=value`: no splitting, no file patterns.
    Assignment,
    /// `export NAME=value`: an assignment for today's shells, split by old
    /// ones.
    Export,
    /// A command's word.
    Field,
}

/// `NAME=…` as an assignment word: the name, and the parts of the value.
fn assignment(word: &Word) -> Option<(Vec<u8>, Word)> {
    let Some(Part::Lit {
        text,
        quoted: false,
    }) = word.first()
    else {
        return None;
    };
    let eq = text.iter().position(|c| *c == b'=')?;
    if !is_identifier(&text[..eq]) {
        return None;
    }
    let mut value = word.clone();
    value[0] = Part::Lit {
        text: text[eq + 1..].to_vec(),
        quoted: false,
    };
    Some((text[..eq].to_vec(), value))
}

/// `test` with its arguments, as POSIX defines it for up to four.
fn test(args: &[Vec<u8>]) -> Res<i32> {
    let truth = |b: bool| Ok(if b { 0 } else { 1 });
    match args {
        [] => truth(false),
        [s] => truth(!s.is_empty()),
        [not, rest @ ..] if not == b"!" && args.len() <= 4 && args.len() != 3 => {
            test(rest).map(|s| if s == 0 { 1 } else { 0 })
        }
        [op, operand] => unary(op, operand),
        [a, op, b] => match binary(a, op, b) {
            Some(r) => r,
            None if a == b"!" => test(&args[1..]).map(|s| if s == 0 { 1 } else { 0 }),
            None => refuse("a `test` the shell would reject"),
        },
        _ => refuse("a `test` of more than four arguments"),
    }
}

fn unary(op: &[u8], operand: &[u8]) -> Res<i32> {
    let path = || std::path::Path::new(OsStr::from_bytes(operand));
    let b = match op {
        b"-n" => !operand.is_empty(),
        b"-z" => operand.is_empty(),
        b"-e" => std::fs::metadata(path()).is_ok(),
        b"-f" => std::fs::metadata(path()).is_ok_and(|m| m.is_file()),
        b"-d" => std::fs::metadata(path()).is_ok_and(|m| m.is_dir()),
        b"-s" => std::fs::metadata(path()).is_ok_and(|m| m.len() > 0),
        b"-h" | b"-L" => {
            std::fs::symlink_metadata(path()).is_ok_and(|m| m.file_type().is_symlink())
        }
        _ => return refuse("a `test` operator Vessel leaves to the shell"),
    };
    Ok(if b { 0 } else { 1 })
}

fn binary(a: &[u8], op: &[u8], b: &[u8]) -> Option<Res<i32>> {
    let truth = |t: bool| Some(Ok(if t { 0 } else { 1 }));
    let int = |s: &[u8]| -> Option<i64> {
        let s = std::str::from_utf8(s).ok()?;
        (!s.is_empty()
            && s.bytes()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || (i == 0 && c == b'-')))
        .then(|| s.parse().ok())
        .flatten()
    };
    let ints = || match (int(a), int(b)) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(Refused("a `test` of numbers that are not".into())),
    };
    match op {
        b"=" => truth(a == b),
        b"!=" => truth(a != b),
        b"-eq" | b"-ne" | b"-lt" | b"-le" | b"-gt" | b"-ge" => Some(ints().map(|(x, y)| {
            let t = match op {
                b"-eq" => x == y,
                b"-ne" => x != y,
                b"-lt" => x < y,
                b"-le" => x <= y,
                b"-gt" => x > y,
                _ => x >= y,
            };
            if t {
                0
            } else {
                1
            }
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type Env = BTreeMap<String, String>;

    /// Variables a shell sets of its own, which differ between shells.
    const SHELLS_OWN: &[&str] = &["PWD", "SHLVL", "_", "OLDPWD"];

    fn start(env: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        env.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn by_vessel(script: &str, env: &[(&str, &str)]) -> Result<Env, Refused> {
        let mut sh = Shell::new(&start(env));
        sh.source(script.as_bytes())?;
        Ok(sh
            .environment()
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .filter(|(k, _)| !SHELLS_OWN.contains(&k.as_str()))
            .collect())
    }

    /// What `shell` leaves exported after sourcing `script`, or None when
    /// this machine has no such shell.
    fn by_shell(shell: &str, script: &str, env: &[(&str, &str)]) -> Option<Env> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("script.sh");
        std::fs::write(&file, script).unwrap();
        let out = std::process::Command::new(shell)
            .arg("-c")
            .arg(". \"$0\"; exec /usr/bin/env -0")
            .arg(&file)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .ok()?;
        assert!(out.status.success(), "{shell}: {script}: {out:?}");
        Some(
            out.stdout
                .split(|b| *b == 0)
                .filter(|e| !e.is_empty())
                .filter_map(|e| {
                    let e = String::from_utf8_lossy(e);
                    let (k, v) = e.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .filter(|(k, _)| !SHELLS_OWN.contains(&k.as_str()))
                .collect(),
        )
    }

    /// Vessel's result is the shell's, for every shell here.
    fn same(script: &str, env: &[(&str, &str)]) {
        let ours = by_vessel(script, env).unwrap_or_else(|r| panic!("{script:?} refused: {r:?}"));
        let mut compared = 0;
        for shell in ["/bin/dash", "/bin/sh", "/bin/bash"] {
            if let Some(theirs) = by_shell(shell, script, env) {
                assert_eq!(ours, theirs, "{shell} on {script:?}");
                compared += 1;
            }
        }
        assert!(compared > 0, "no shell to compare with");
    }

    fn refused(script: &str) {
        let env = [("PATH", "/bin"), ("SPACED", "a b")];
        assert!(
            by_vessel(script, &env).is_err(),
            "{script:?} was not refused"
        );
    }

    const HOST: &[(&str, &str)] = &[
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/home/u"),
        ("EMPTY", ""),
        ("LD_LIBRARY_PATH", "/host/lib"),
    ];

    #[test]
    fn assignments_and_exports_match_the_shells() {
        same("export PATH=/opt/x:$PATH\n", HOST);
        same(
            "export PATH=\"/usr/local/sbin:/usr/local/bin:/usr/sbin\"\n",
            HOST,
        );
        same("#!/bin/sh\n# comment\n\nexport C=1 # trailing\n", HOST);
        same("A=1 B=2\nexport A\nNOT=exported\n", HOST);
        same("export LATER\nLATER=5\n", HOST);
        same(
            "export Q='$HOME \"x\"' E=a\\ b E2=\"a\\\\b\\$c\\q\"\n",
            HOST,
        );
        same(
            "export FOO=\"${FOO:-\"b\\$r\\\"q\"}\"\nexport EMPTY=\"${EMPTY:-\"\"}\"\n",
            HOST,
        );
        same(
            "export HOME=\"${HOME:-/root}\" NEW=\"${NEW:-/new}\"\n",
            HOST,
        );
        same(
            "export U1=${EMPTY-dflt} U2=${EMPTY:-dflt} U3=${NOPE-dflt}\n",
            HOST,
        );
        same(
            "export A1=${HOME:+alt} A2=${EMPTY:+alt} A3=${EMPTY+alt} A4=${NOPE+alt}\n",
            HOST,
        );
        same("unset HOME \\\n  EMPTY \\\n  NOPE\n", HOST);
        same("X=1; export X; unset X\nexport X\n", HOST);
        same("P=\"${HOME}\"/bin:'$lit':\"$PATH\"; export P\n", HOST);
    }

    #[test]
    fn tests_and_ifs_match_the_shells() {
        same(
            "if [ -z \"$LD_LIBRARY_PATH\" ]; then\n    L=/a\nelse\n    L=\"$LD_LIBRARY_PATH:/b\"\nfi\nexport L\n",
            HOST,
        );
        same(
            "if [ -z \"$NOPE\" ]; then L=/a; else L=/b; fi; export L\n",
            HOST,
        );
        same(
            "if test -n \"${APP:-}\"; then\n  echo never run\n  . /nowhere\n  exit 1\nelif [ -d /tmp ]; then\n  export D=1\nelse\n  export D=0\nfi\n",
            HOST,
        );
        // An unquoted empty expansion is no argument at all.
        same("[ -n $EMPTY ] && export T1=1 || export T1=0\n", HOST);
        same("[ -n \"$EMPTY\" ] && export T2=1 || export T2=0\n", HOST);
        same(
            "[ a = a ] && export EQ=1\n[ a != a ] || export NE=1\n",
            HOST,
        );
        same("[ 3 -gt 2 ] && [ -2 -lt 0 ] && export NUM=1\n", HOST);
        same(
            "test -f /nonexistent || export NF=1\n[ ! -e /nonexistent ] && export NE=1\n",
            HOST,
        );
        same("[ \"$HOME\" ] && export S=1\n[ ! ] || export T=1\n", HOST);
        same("if true; then :; fi; false || export F=1\n", HOST);
        same(
            "if [ -n \"${SING_USER_DEFINED_PREPEND_PATH:-}\" ]; then\n\tPATH=\"${SING_USER_DEFINED_PREPEND_PATH}:${PATH}\"\nfi\nunset SING_USER_DEFINED_PREPEND_PATH\nexport PATH\n",
            &[("PATH", "/bin"), ("SING_USER_DEFINED_PREPEND_PATH", "/pre")],
        );
    }

    #[test]
    fn what_shells_do_differently_or_commands_do_is_refused() {
        for script in [
            "echo hi\n",
            "export D=$(date)\n",
            "export D=`date`\n",
            "for x in a b; do :; done\n",
            "case $x in a) ;; esac\n",
            "a | b\n",
            ". /etc/profile\n",
            "source /etc/profile\n",
            "[ a == a ]\n",
            "export A=$SPACED\n",
            "[ -n $SPACED ]\n",
            "export P=~/bin\n",
            "export B={a,b}\n",
            "export G=*\n",
            "IFS=:\n",
            "export L=${#PATH}\n",
            "export L=${PATH%:*}\n",
            "export L=${PATH:=x}\n",
            "export A=$1\n",
            "f() { :; }\n",
            "X=1 true\n",
            "if true; then\n",
            "[ -r /etc/passwd ]\n",
            "export A=\"unterminated\n",
            "{ :; }\n",
            "export\n",
        ] {
            refused(script);
        }
    }

    #[test]
    fn names_that_are_not_variables_pass_through() {
        let sh = Shell::new(&start(&[("BASH_FUNC_m%%", "() { x; }"), ("A", "1")]));
        let env = sh.environment();
        assert!(env.contains(&("BASH_FUNC_m%%".into(), "() { x; }".into())));
        assert!(env.contains(&("A".into(), "1".into())));
    }
}
