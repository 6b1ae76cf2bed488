//! `config global`'s editor of `vessel.conf`: sets, unsets and resets one
//! directive in the text of the file, and leaves every other line (comments,
//! blank lines, other directives, their order and spelling) as it was, so an
//! administrator's annotated file survives an edit.
//!
//! It knows the file's syntax only (`key = value`, `#` comments, keys
//! matched case- and spacing-insensitively); whether a key exists, whether
//! it repeats and what its default is are the caller's, from the parser's
//! list of directives, and so is checking the value.

/// What the editor needs to know about one directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// The directive as written in new lines (`bind path`).
    pub name: String,
    /// Repeatable (`bind path`): each value is a line of its own.
    pub repeatable: bool,
    /// A repeatable key whose values may be given comma-separated, on the
    /// command line and on a line (`limit container owners = a, b`), as
    /// Apptainer splits them. Not `execution group`, whose one value holds
    /// a comma-separated list of fingerprints.
    pub comma_list: bool,
    /// Apptainer's default, one entry per line (none: the key is unset).
    pub default: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("give a value to set `{key}` to")]
    NoValue { key: String },
    #[error(
        "`{key}` would be left with no value, and a file without it means its default: \
         set the values it should have instead"
    )]
    WholeDefault { key: String },
    #[error("`{key}` has no value `{value}` in {file}")]
    NotFound {
        key: String,
        value: String,
        file: String,
    },
}

impl From<&crate::directives::Directive> for KeySpec {
    fn from(d: &crate::directives::Directive) -> KeySpec {
        let comma_list = d.repeatable && d.key != "execution group";
        let default = if comma_list {
            split_values(d.default)
        } else if d.default.is_empty() {
            Vec::new()
        } else {
            vec![d.default.to_string()]
        };
        KeySpec {
            name: d.key.to_string(),
            repeatable: d.repeatable,
            comma_list,
            default,
        }
    }
}

use crate::directives::normalize as normalize_key;

/// One line of the file, split where an edit needs it.
struct Line<'a> {
    raw: &'a str,
    /// The directive line's normalized key and value, if it is one.
    directive: Option<(String, &'a str)>,
}

fn lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .map(|raw| {
            let code = raw.split('#').next().unwrap_or("");
            let directive = code.split_once('=').and_then(|(k, v)| {
                let key = normalize_key(k);
                (!key.is_empty()).then(|| (key, v.trim()))
            });
            Line { raw, directive }
        })
        .collect()
}

/// Values as Apptainer's `config global` takes them: comma-separated,
/// trimmed, empty and repeated ones dropped.
pub fn split_values(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in value.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        if !out.iter().any(|o| o == v) {
            out.push(v.to_string());
        }
    }
    out
}

impl KeySpec {
    /// The values `value` stands for: split at commas for a comma list,
    /// else the whole of it.
    pub fn values(&self, value: &str) -> Vec<String> {
        if self.comma_list {
            split_values(value)
        } else {
            Some(value.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .into_iter()
                .collect()
        }
    }
}

/// The values `key` has in `text`, in file order (a line's comma list
/// split, as the parser reads list directives).
pub fn get(text: &str, spec: &KeySpec) -> Vec<String> {
    let key = normalize_key(&spec.name);
    let mut out = Vec::new();
    for line in lines(text) {
        match line.directive {
            Some((k, v)) if k == key => {
                out.extend(spec.values(v));
            }
            _ => {}
        }
    }
    out
}

fn join(lines: &[String], trailing_newline: bool) -> String {
    let mut out = lines.join("\n");
    if trailing_newline || !out.is_empty() {
        out.push('\n');
    }
    out
}

fn render(spec: &KeySpec, value: &str) -> String {
    format!("{} = {value}", spec.name)
}

/// `--set`: a repeatable key gains the values it lacks, each a line after
/// its last one; a single-valued key has its value replaced where it is
/// written (later duplicates dropped, since they would override it), or
/// gets a line at the end.
pub fn set(text: &str, spec: &KeySpec, value: &str) -> Result<String, EditError> {
    let key = normalize_key(&spec.name);
    let parsed = lines(text);
    let mut out: Vec<String> = Vec::with_capacity(parsed.len() + 1);
    if spec.repeatable {
        let values = spec.values(value);
        if values.is_empty() {
            return Err(EditError::NoValue {
                key: spec.name.clone(),
            });
        }
        let have = get(text, spec);
        // A file without the key has its default list (a line of the key
        // replaces it): added to, the default is written out first, so
        // that the new value joins it rather than replacing it.
        let values: Vec<String> = if have.is_empty() {
            let mut all = spec.default.clone();
            all.extend(values.into_iter().filter(|v| !spec.default.contains(v)));
            all
        } else {
            values
        };
        let new: Vec<String> = values
            .into_iter()
            .filter(|v| !have.contains(v))
            .map(|v| render(spec, &v))
            .collect();
        let last = parsed
            .iter()
            .rposition(|l| l.directive.as_ref().is_some_and(|(k, _)| *k == key));
        for (i, l) in parsed.iter().enumerate() {
            out.push(l.raw.to_string());
            if Some(i) == last {
                out.extend(new.iter().cloned());
            }
        }
        if last.is_none() {
            out.extend(new);
        }
        return Ok(join(&out, false));
    }
    let value = value.trim();
    if value.is_empty() {
        return Err(EditError::NoValue {
            key: spec.name.clone(),
        });
    }
    let mut done = false;
    for l in &parsed {
        match &l.directive {
            Some((k, old)) if *k == key => {
                if !done {
                    out.push(replace_value(l.raw, old, value));
                    done = true;
                }
            }
            _ => out.push(l.raw.to_string()),
        }
    }
    if !done {
        out.push(render(spec, value));
    }
    Ok(join(&out, false))
}

/// `raw` with its value `old` replaced by `new`, keeping the key's
/// spelling, the spacing around `=` and a trailing comment.
fn replace_value(raw: &str, old: &str, new: &str) -> String {
    let eq = raw.find('=').unwrap_or(raw.len());
    let after = &raw[eq + 1..];
    let code_end = after.find('#').unwrap_or(after.len());
    let code = &after[..code_end];
    let lead = &code[..code.len() - code.trim_start().len()];
    let rest = &after[code_end..];
    let trail = &code[lead.len() + old.len().min(code.len() - lead.len())..];
    let lead = if lead.is_empty() { " " } else { lead };
    format!("{}{lead}{new}{trail}{rest}", &raw[..=eq.min(raw.len() - 1)])
}

/// `--unset KEY [VALUE]`: without a value every line of the key goes (the
/// default applies again); with values, those values go from a repeatable
/// key (a line left empty goes with them), or the single-valued key's line
/// goes if it has that value. Naming a value the key does not have is an
/// error, as in Apptainer.
pub fn unset(
    text: &str,
    spec: &KeySpec,
    value: Option<&str>,
    file: &str,
) -> Result<String, EditError> {
    let key = normalize_key(&spec.name);
    let values = value.map(|v| spec.values(v)).unwrap_or_default();
    if spec.repeatable && !values.is_empty() && get(text, spec).is_empty() {
        // Not in the file: the values come off the default list, and what
        // remains of it is written out.
        if let Some(missing) = values.iter().find(|v| !spec.default.contains(v)) {
            return Err(EditError::NotFound {
                key: spec.name.clone(),
                value: missing.clone(),
                file: file.to_string(),
            });
        }
        let rest: Vec<String> = spec
            .default
            .iter()
            .filter(|d| !values.contains(d))
            .map(|d| render(spec, d))
            .collect();
        if rest.is_empty() {
            return Err(EditError::WholeDefault {
                key: spec.name.clone(),
            });
        }
        let mut out: Vec<String> = text.lines().map(str::to_string).collect();
        out.extend(rest);
        return Ok(join(&out, false));
    }
    let mut out: Vec<String> = Vec::new();
    let mut removed = Vec::new();
    for l in lines(text) {
        let Some((_, v)) = l.directive.as_ref().filter(|(k, _)| *k == key) else {
            out.push(l.raw.to_string());
            continue;
        };
        if values.is_empty() {
            removed.push(v.to_string());
            continue;
        }
        if !spec.repeatable {
            if values.iter().any(|w| w == v) {
                removed.push(v.to_string());
            } else {
                out.push(l.raw.to_string());
            }
            continue;
        }
        let on_line = spec.values(v);
        let kept: Vec<&String> = on_line.iter().filter(|x| !values.contains(x)).collect();
        if kept.len() == on_line.len() {
            out.push(l.raw.to_string());
            continue;
        }
        removed.extend(on_line.iter().filter(|x| values.contains(x)).cloned());
        if !kept.is_empty() {
            let rest: Vec<&str> = kept.iter().map(|s| s.as_str()).collect();
            out.push(replace_value(l.raw, v, &rest.join(", ")));
        }
    }
    if let Some(missing) = values.iter().find(|v| !removed.contains(v)) {
        return Err(EditError::NotFound {
            key: spec.name.clone(),
            value: missing.clone(),
            file: file.to_string(),
        });
    }
    Ok(join(&out, false))
}

/// `--reset KEY`: the key's lines give way to its default, written where
/// its first line was; a key the file does not set is left alone (the
/// default already applies).
pub fn reset(text: &str, spec: &KeySpec) -> String {
    let key = normalize_key(&spec.name);
    let mut out: Vec<String> = Vec::new();
    let mut placed = false;
    for l in lines(text) {
        if l.directive.as_ref().is_some_and(|(k, _)| *k == key) {
            if !placed {
                out.extend(spec.default.iter().map(|d| render(spec, d)));
                placed = true;
            }
            continue;
        }
        out.push(l.raw.to_string());
    }
    if !placed {
        return text.to_string();
    }
    join(&out, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind() -> KeySpec {
        KeySpec {
            name: "bind path".into(),
            repeatable: true,
            comma_list: true,
            default: vec!["/etc/localtime".into(), "/etc/hosts".into()],
        }
    }

    fn home() -> KeySpec {
        KeySpec {
            name: "mount home".into(),
            repeatable: false,
            comma_list: false,
            default: vec!["yes".into()],
        }
    }

    const FILE: &str = "# Site configuration\n\
\n\
# MOUNT HOME: [BOOL]\n\
Mount  Home = yes   # users want it\n\
\n\
bind path = /etc/localtime\n\
bind path = /etc/hosts\n\
# the end\n";

    #[test]
    fn set_replaces_a_single_value_in_place() {
        let got = set(FILE, &home(), "no").unwrap();
        assert_eq!(got, FILE.replace("Mount  Home = yes", "Mount  Home = no"));
        // Absent: appended.
        let got = set("# c\n", &home(), "no").unwrap();
        assert_eq!(got, "# c\nmount home = no\n");
        // Duplicates after the first would override it: dropped.
        let got = set("mount home = yes\nx = 1\nmount home = yes\n", &home(), "no").unwrap();
        assert_eq!(got, "mount home = no\nx = 1\n");
        assert_eq!(
            set(FILE, &home(), " "),
            Err(EditError::NoValue {
                key: "mount home".into()
            })
        );
    }

    #[test]
    fn set_adds_a_line_after_the_last_of_a_repeatable_key() {
        let got = set(FILE, &bind(), "/scratch, /proj,/etc/hosts").unwrap();
        assert_eq!(
            got,
            FILE.replace(
                "bind path = /etc/hosts\n",
                "bind path = /etc/hosts\nbind path = /scratch\nbind path = /proj\n"
            )
        );
        // Setting what is there changes nothing.
        assert_eq!(set(FILE, &bind(), "/etc/hosts").unwrap(), FILE);
        // Not in the file: the default list is kept and added to.
        assert_eq!(
            set("# c\n", &bind(), "/d:/e,/etc/hosts").unwrap(),
            "# c\nbind path = /etc/localtime\nbind path = /etc/hosts\nbind path = /d:/e\n"
        );
        let none = KeySpec {
            default: vec![],
            ..bind()
        };
        assert_eq!(set("", &none, "/d").unwrap(), "bind path = /d\n");
    }

    #[test]
    fn unset_removes_values_or_the_key() {
        let got = unset(FILE, &bind(), Some("/etc/hosts"), "f").unwrap();
        assert_eq!(got, FILE.replace("bind path = /etc/hosts\n", ""));
        let got = unset(FILE, &bind(), None, "f").unwrap();
        assert_eq!(
            got,
            FILE.replace("bind path = /etc/localtime\nbind path = /etc/hosts\n", "")
        );
        let got = unset("bind path = /a, /b ,/c # x\n", &bind(), Some("/b"), "f").unwrap();
        assert_eq!(got, "bind path = /a, /c # x\n");
        assert_eq!(
            unset(FILE, &bind(), Some("/nope"), "f"),
            Err(EditError::NotFound {
                key: "bind path".into(),
                value: "/nope".into(),
                file: "f".into()
            })
        );
        // Not in the file: off the default list.
        assert_eq!(
            unset("# c\n", &bind(), Some("/etc/hosts"), "f").unwrap(),
            "# c\nbind path = /etc/localtime\n"
        );
        assert!(unset("", &bind(), Some("/x"), "f").is_err());
        assert_eq!(
            unset("", &bind(), Some("/etc/hosts,/etc/localtime"), "f"),
            Err(EditError::WholeDefault {
                key: "bind path".into()
            })
        );
        let got = unset(FILE, &home(), Some("yes"), "f").unwrap();
        assert_eq!(
            got,
            FILE.replace("Mount  Home = yes   # users want it\n", "")
        );
        assert!(unset(FILE, &home(), Some("no"), "f").is_err());
    }

    #[test]
    fn reset_writes_the_default_where_the_key_was() {
        let text = "# a\nbind path = /x\n# b\nbind path = /y\n";
        assert_eq!(
            reset(text, &bind()),
            "# a\nbind path = /etc/localtime\nbind path = /etc/hosts\n# b\n"
        );
        let got = reset(&FILE.replace("= yes", "= no"), &home());
        assert_eq!(
            got,
            FILE.replace("Mount  Home = yes   # users want it", "mount home = yes")
        );
        // Not set: nothing to do.
        assert_eq!(reset("# only\n", &home()), "# only\n");
        let none = KeySpec {
            default: vec![],
            ..bind()
        };
        assert_eq!(reset(text, &none), "# a\n# b\n");
    }

    #[test]
    fn get_reads_every_value_in_order() {
        assert_eq!(get(FILE, &home()), vec!["yes"]);
        assert_eq!(get(FILE, &bind()), vec!["/etc/localtime", "/etc/hosts"]);
        assert_eq!(
            get("bind path = /a,/b\n#bind path = /c\n", &bind()),
            vec!["/a", "/b"]
        );
    }

    #[test]
    fn a_file_without_a_final_newline_gets_one() {
        assert_eq!(
            set("a = 1", &home(), "no").unwrap(),
            "a = 1\nmount home = no\n"
        );
        assert_eq!(unset("mount home = no", &home(), None, "f").unwrap(), "");
    }

    #[test]
    fn specs_come_from_the_directives() {
        let spec = KeySpec::from(crate::directives::find("bind path").unwrap());
        assert_eq!(spec, bind());
        let spec = KeySpec::from(crate::directives::find("Mount Home").unwrap());
        assert_eq!(spec, home());
        let spec = KeySpec::from(crate::directives::find("image driver").unwrap());
        assert_eq!(spec.default, vec!["auto"]);
    }

    #[test]
    fn execution_groups_keep_their_commas() {
        let spec = KeySpec::from(crate::directives::find("execution group").unwrap());
        assert!(spec.repeatable && !spec.comma_list);
        let group = "whitelist /d AAAA,BBBB";
        let text = set("", &spec, group).unwrap();
        assert_eq!(text, format!("execution group = {group}\n"));
        assert_eq!(get(&text, &spec), vec![group]);
        assert_eq!(unset(&text, &spec, Some(group), "f").unwrap(), "");
    }

    #[test]
    fn replace_value_keeps_spacing_and_comments() {
        assert_eq!(replace_value("a=b", "b", "c"), "a= c");
        assert_eq!(replace_value("a =  b  # c", "b", "xyz"), "a =  xyz  # c");
    }
}
