//! `config fakeroot`'s edits of `/etc/subuid` and `/etc/subgid`
//! (`USER:START:COUNT` lines, by name or uid; a leading `!` marks an entry
//! Apptainer's `config fakeroot --disable` switched off), on the text of
//! one file: every line the edit is not about stays as it was. Locking and
//! writing are the caller's.

/// The size of a fakeroot range, as Apptainer and `useradd` give.
pub const RANGE: u32 = 65536;
/// Where `useradd` starts handing out subordinate ids (`SUB_UID_MIN`).
pub const FIRST: u32 = 100_000;
/// The highest start Apptainer hands out: room for a range and the
/// overflow id below 2^32.
const LAST_START: u64 = (1 << 32) - 2 * RANGE as u64;

/// One entry line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its line, counted from 0.
    pub index: usize,
    /// The user name or uid, without the `!`.
    pub who: String,
    pub disabled: bool,
    pub start: u32,
    pub count: u32,
}

impl Entry {
    fn end(&self) -> u64 {
        u64::from(self.start) + u64::from(self.count)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubIdError {
    #[error("{file} has no entry for {user}")]
    NoEntry { file: String, user: String },
    #[error(
        "{file} gives {user} only ranges of fewer than {RANGE} ids, too few for --fakeroot; \
         remove them first (usermod --del-subuids/--del-subgids)"
    )]
    TooSmall { file: String, user: String },
    #[error("{file} has no free range of {RANGE} ids left below 2^32")]
    Full { file: String },
}

/// The valid entries of a file (comments, blank and malformed lines are
/// kept in the text but are no entries).
pub fn entries(text: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let mut f = line.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            let (who, disabled) = match who.strip_prefix('!') {
                Some(w) => (w, true),
                None => (who, false),
            };
            let start: u32 = start.trim().parse().ok()?;
            let count: u32 = count.trim().parse().ok()?;
            (!who.is_empty() && count > 0).then(|| Entry {
                index,
                who: who.to_string(),
                disabled,
                start,
                count,
            })
        })
        .collect()
}

/// The entry `--fakeroot` uses for the user `name` (`uid`), as Apptainer
/// chooses it: the first of exactly [`RANGE`] ids, else the largest
/// bigger one.
pub fn fakeroot_entry(text: &str, file: &str, name: &str, uid: u32) -> Result<Entry, SubIdError> {
    let uid = uid.to_string();
    let mine: Vec<Entry> = entries(text)
        .into_iter()
        .filter(|e| e.who == name || e.who == uid)
        .collect();
    if let Some(e) = mine.iter().find(|e| e.count == RANGE) {
        return Ok(e.clone());
    }
    if let Some(e) = mine
        .iter()
        .filter(|e| e.count > RANGE)
        .max_by_key(|e| e.count)
    {
        return Ok(e.clone());
    }
    let (file, user) = (file.to_string(), name.to_string());
    Err(if mine.is_empty() {
        SubIdError::NoEntry { file, user }
    } else {
        SubIdError::TooSmall { file, user }
    })
}

/// The first start, from [`FIRST`] up, of [`RANGE`] ids overlapping no
/// entry of the file (disabled ones included: their ids stay reserved).
pub fn free_start(text: &str) -> Option<u32> {
    let mut taken: Vec<(u64, u64)> = entries(text)
        .iter()
        .map(|e| (u64::from(e.start), e.end()))
        .collect();
    taken.sort_unstable();
    let mut candidate = u64::from(FIRST);
    for (start, end) in taken {
        if candidate + u64::from(RANGE) <= start {
            break;
        }
        candidate = candidate.max(end);
    }
    if candidate > LAST_START {
        return None;
    }
    u32::try_from(candidate).ok()
}

fn with_lines(text: &str, edit: impl FnOnce(&mut Vec<String>)) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines);
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// What `--add` did to one file.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// A new line `NAME:START:65536` at the end.
    New { text: String, start: u32 },
    /// The user has a usable entry already (maybe disabled): nothing to do.
    Present(Entry),
}

/// `--add`: a new range of [`RANGE`] ids for `name`, written by name as
/// `useradd` does, unless it has one.
pub fn add(text: &str, file: &str, name: &str, uid: u32) -> Result<Added, SubIdError> {
    if let Ok(e) = fakeroot_entry(text, file, name, uid) {
        return Ok(Added::Present(e));
    }
    let start = free_start(text).ok_or_else(|| SubIdError::Full {
        file: file.to_string(),
    })?;
    let text = with_lines(text, |l| l.push(format!("{name}:{start}:{RANGE}")));
    Ok(Added::New { text, start })
}

/// `--remove`: the user's fakeroot entry goes.
pub fn remove(text: &str, file: &str, name: &str, uid: u32) -> Result<(String, Entry), SubIdError> {
    let e = fakeroot_entry(text, file, name, uid)?;
    let out = with_lines(text, |l| {
        l.remove(e.index);
    });
    Ok((out, e))
}

/// `--enable` (`disabled` false) or `--disable`: the `!` mark of the
/// user's fakeroot entry; `None` when it is so already.
pub fn set_disabled(
    text: &str,
    file: &str,
    name: &str,
    uid: u32,
    disabled: bool,
) -> Result<Option<String>, SubIdError> {
    let e = fakeroot_entry(text, file, name, uid)?;
    if e.disabled == disabled {
        return Ok(None);
    }
    Ok(Some(with_lines(text, |l| {
        let line = &mut l[e.index];
        *line = if disabled {
            format!("!{line}")
        } else {
            line.replacen('!', "", 1)
        };
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# site ranges\nalice:100000:65536\n1002:165536:65536\n\nbad line\n";

    #[test]
    fn entries_skip_what_is_not_one() {
        let e = entries(TEXT);
        assert_eq!(e.len(), 2);
        assert_eq!((e[1].index, e[1].who.as_str()), (2, "1002"));
        let d = entries("!carol:300000:65536\nx:1:0\n:1:1\n");
        assert_eq!(d.len(), 1);
        assert!(d[0].disabled);
        assert_eq!(d[0].who, "carol");
    }

    #[test]
    fn a_new_range_overlaps_none() {
        assert_eq!(free_start(""), Some(FIRST));
        assert_eq!(free_start(TEXT), Some(231072));
        // A gap big enough is used; one too small is not.
        let gaps = "a:100000:65536\nb:300000:10\nc:240000:5\n";
        assert_eq!(free_start(gaps), Some(165536));
        let tight = "a:100000:65536\nb:200000:65536\n";
        assert_eq!(free_start(tight), Some(265536));
        // A range straddling the start pushes it up.
        assert_eq!(free_start("a:50000:60000\n"), Some(110000));
        // Disabled entries keep their ids.
        assert_eq!(free_start("!a:100000:65536\n"), Some(165536));
        assert_eq!(free_start("a:100000:4294800000\n"), None);
    }

    #[test]
    fn add_appends_by_name_or_keeps_what_is_there() {
        let Added::New { text, start } = add(TEXT, "subuid", "bob", 1003).unwrap() else {
            panic!()
        };
        assert_eq!(start, 231072);
        assert_eq!(text, format!("{TEXT}bob:231072:65536\n"));
        assert!(matches!(
            add(TEXT, "subuid", "dave", 1002).unwrap(),
            Added::Present(Entry { start: 165536, .. })
        ));
        // Too small an entry is not one: a new range is added.
        assert!(matches!(
            add("e:100000:10\n", "subuid", "e", 5).unwrap(),
            Added::New { start: 100010, .. }
        ));
    }

    #[test]
    fn remove_enable_disable() {
        let (text, e) = remove(TEXT, "subuid", "alice", 1001).unwrap();
        assert_eq!(e.start, 100000);
        assert_eq!(text, TEXT.replace("alice:100000:65536\n", ""));
        assert_eq!(
            remove(TEXT, "/etc/subuid", "bob", 1003),
            Err(SubIdError::NoEntry {
                file: "/etc/subuid".into(),
                user: "bob".into()
            })
        );
        let off = set_disabled(TEXT, "f", "alice", 1001, true)
            .unwrap()
            .unwrap();
        assert_eq!(off, TEXT.replace("alice:", "!alice:"));
        assert_eq!(set_disabled(&off, "f", "alice", 1001, true).unwrap(), None);
        let on = set_disabled(&off, "f", "alice", 1001, false)
            .unwrap()
            .unwrap();
        assert_eq!(on, TEXT);
        assert!(matches!(
            remove("e:1:10\n", "f", "e", 5),
            Err(SubIdError::TooSmall { .. })
        ));
    }

    #[test]
    fn the_largest_range_serves_when_none_is_exact() {
        let text = "u:100000:70000\nu:200000:100000\nu:400000:65536\n";
        assert_eq!(fakeroot_entry(text, "f", "u", 9).unwrap().start, 400000);
        let text = "u:100000:70000\nu:200000:100000\n";
        assert_eq!(fakeroot_entry(text, "f", "u", 9).unwrap().start, 200000);
    }
}
