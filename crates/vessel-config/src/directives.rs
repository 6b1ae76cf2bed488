//! Every directive of `vessel.conf` (and of an `apptainer.conf` read in its
//! place): its values, Apptainer's default, and what Vessel does with it.
//! The parser ([`crate::conf`]), `config global` and the README table all
//! read this one list.

/// What a directive's value may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// `yes` or `no` (also `true`/`false`, `1`/`0`).
    Bool,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// A whole number in `min..=max`.
    Uint { min: u64, max: u64 },
    /// A size: a number with an optional `K`, `M` or `G` suffix.
    Size,
    /// An absolute path.
    Path,
    /// Free text (a search path, a plugin name, a list of names).
    Text,
}

impl Values {
    /// The allowed values, as error messages name them.
    pub fn describe(self) -> String {
        match self {
            Values::Bool => "yes or no".into(),
            Values::Choice(words) => words.join(", "),
            Values::Uint { min, max } if max == u64::MAX => format!("a whole number from {min}"),
            Values::Uint { min, max } => format!("a whole number from {min} to {max}"),
            Values::Size => "a size such as 512M or 2G".into(),
            Values::Path => "an absolute path".into(),
            Values::Text => "any text".into(),
        }
    }
}

/// What Vessel does with a directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Applied as this says.
    Applied(&'static str),
    /// Accepted so that an `apptainer.conf` reads unchanged, with no
    /// effect, for the reason given.
    None(&'static str),
}

/// One directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The key, lower case, words separated by one space.
    pub key: &'static str,
    pub values: Values,
    /// Apptainer's default (Vessel's for its own keys); empty when unset.
    pub default: &'static str,
    /// May be given on several lines, each adding to a list.
    pub repeatable: bool,
    pub effect: Effect,
}

const fn d(key: &'static str, values: Values, default: &'static str, effect: Effect) -> Directive {
    Directive {
        key,
        values,
        default,
        repeatable: false,
        effect,
    }
}

const fn list(
    key: &'static str,
    values: Values,
    default: &'static str,
    effect: Effect,
) -> Directive {
    Directive {
        key,
        values,
        default,
        repeatable: true,
        effect,
    }
}

const B: Values = Values::Bool;
const U: Values = Values::Uint {
    min: 0,
    max: u64::MAX,
};
const SETUID: Effect = Effect::None("setuid installations only: Vessel has no setuid starter");
const NO_CGROUPS: Effect =
    Effect::None("Vessel refuses the cgroups flags (no cgroups manager yet)");
const NO_LOOP: Effect =
    Effect::None("Vessel mounts no loop devices: images are served through FUSE or extracted");
const NO_LIBRARY: Effect = Effect::None("Vessel does not download from library:// yet");
const NO_NETWORK: Effect = Effect::None("needs CNI and root: Vessel supports only --network none");
const HELPER_PATHS: Effect = Effect::None("Vessel finds its few helpers on PATH");
const NO_MONITORING: Effect = Effect::None("Vessel has no Apptheus monitoring");

/// Every directive, in the order of Apptainer's template.
pub const DIRECTIVES: &[Directive] = &[
    d("allow setuid", B, "yes", SETUID),
    d("max loop devices", Values::Uint { min: 0, max: 4096 }, "256", NO_LOOP),
    d("allow pid ns", B, "yes", Effect::Applied("no: --pid, --containall and their variables run without a PID namespace, with a warning (as Apptainer)")),
    d("allow ipc ns", B, "yes", Effect::Applied("no: --ipc, --containall and their variables run without an IPC namespace, with a warning")),
    d("allow uts ns", B, "yes", Effect::Applied("no: --uts and --hostname run without a UTS namespace (and hostname), with a warning")),
    d("allow user ns", B, "yes", Effect::Applied("no: only root may run containers (Vessel has no setuid starter)")),
    d("config passwd", B, "yes", Effect::Applied("no: /etc/passwd is the image's, without an entry for the user")),
    d("config group", B, "yes", Effect::Applied("no: /etc/group is the image's, without the user's groups")),
    d("config resolv_conf", B, "yes", Effect::Applied("no: the host's /etc/resolv.conf is not bound")),
    d("mount proc", B, "yes", Effect::Applied("no: no /proc in the container")),
    d("mount sys", B, "yes", Effect::Applied("no: no /sys in the container")),
    d("mount dev", Values::Choice(&["yes", "no", "minimal"]), "yes", Effect::Applied("minimal: a small /dev as with --contain; no: the image's own /dev")),
    d("mount devpts", B, "yes", Effect::Applied("no: a minimal /dev gets no private /dev/pts")),
    d("mount home", B, "yes", Effect::Applied("no: the home directory is not mounted")),
    d("mount tmp", B, "yes", Effect::Applied("no: /tmp and /var/tmp are the image's")),
    d("mount hostfs", B, "no", Effect::Applied("yes: every host mount point but those under /proc, /sys, /dev, /run, /boot and /var is bound at its place (not with --contain)")),
    list("bind path", Values::Text, "/etc/localtime, /etc/hosts", Effect::Applied("each SRC[:DST[:ro|rw]] is bound into every container, read-write (/etc/localtime and /etc/hosts read-only), not with --contain (but for those two); a missing SRC is skipped with a warning")),
    d("user bind control", B, "yes", Effect::Applied("no: -B/--bind, --mount, --home SRC:DST, --scratch, --workdir and --containlibs are refused")),
    d("enable fusemount", B, "yes", Effect::None("Vessel refuses --fusemount anyway")),
    d("enable overlay", Values::Choice(&["yes", "no", "try", "driver"]), "yes", Effect::Applied("no: --overlay and --writable-tmpfs are refused, and the read-only root is an underlay; driver: every overlay through fuse-overlayfs")),
    d("enable underlay", Values::Choice(&["yes", "no", "preferred"]), "yes", Effect::Applied("preferred: the read-only root is an underlay (a tmpfs with binds of the image's top-level entries), as with --underlay")),
    d("mount slave", B, "yes", Effect::None("Vessel's mount namespace is always a private copy of the host's")),
    d("sessiondir max size", Values::Uint { min: 1, max: 1 << 30 }, "64", Effect::Applied("MiB: the largest --writable-tmpfs; a larger --writable-tmpfs-size is refused")),
    list("limit container owners", Values::Text, "", Effect::Applied("for users other than root: only images (or sandboxes) owned by these users run")),
    list("limit container groups", Values::Text, "", Effect::Applied("for users other than root: only images owned by these groups run")),
    list("limit container paths", Values::Text, "", Effect::Applied("for users other than root: only images under these directories run (whole path components)")),
    d("allow container sif", B, "yes", Effect::Applied("no: SIF images are refused (root excepted, as in Apptainer)")),
    d("allow container encrypted", B, "yes", Effect::None("Vessel does not run encrypted images")),
    d("allow container squashfs", B, "yes", Effect::Applied("no: bare SquashFS images are refused")),
    d("allow container extfs", B, "yes", Effect::None("Vessel does not run ext3 images")),
    d("allow container dir", B, "yes", Effect::Applied("no: sandbox directories are refused")),
    d("allow setuid-mount encrypted", B, "yes", SETUID),
    d("allow setuid-mount squashfs", Values::Choice(&["yes", "no", "iflimited"]), "iflimited", SETUID),
    d("allow setuid-mount extfs", B, "no", SETUID),
    d("sync writable extfs", B, "no", Effect::None("Vessel does not run ext3 images")),
    list("allow net users", Values::Text, "", NO_NETWORK),
    list("allow net groups", Values::Text, "", NO_NETWORK),
    list("allow net networks", Values::Text, "", NO_NETWORK),
    list("allow netns paths", Values::Text, "", NO_NETWORK),
    d("always use nv", B, "no", Effect::Applied("yes: every run is as with --nv, unless --no-nv")),
    d("always use rocm", B, "no", Effect::Applied("yes: every run is as with --rocm, unless --no-rocm")),
    d("use nvidia-container-cli", B, "no", Effect::Applied("--nv sets the driver up with nvidia-container-cli, as --nvccli")),
    d("root default capabilities", Values::Choice(&["full", "file", "no"]), "full", Effect::Applied("root's capabilities in the container: all, none (file: none, Vessel has no capability.json), --keep-privs gives all")),
    d("memory fs type", Values::Choice(&["tmpfs", "ramfs"]), "tmpfs", Effect::Applied("the file system of the session (ramfs has no size limit)")),
    d("cni configuration path", Values::Path, "", NO_NETWORK),
    d("cni plugin path", Values::Path, "", NO_NETWORK),
    d("binary path", Values::Text, "$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HELPER_PATHS),
    d("mksquashfs procs", U, "0", Effect::Applied("build: mksquashfs -processors N (0: all), unless --mksquashfs-args sets it")),
    d("mksquashfs mem", Values::Size, "", Effect::Applied("build: mksquashfs -mem SIZE, unless --mksquashfs-args sets it")),
    d("shared loop devices", B, "no", NO_LOOP),
    d("image driver", Values::Choice(&["auto", "fuse", "extract"]), "auto", Effect::Applied("Vessel's image driver, as VESSEL_IMAGE_DRIVER (which wins)")),
    d("download concurrency", Values::Uint { min: 1, max: 64 }, "3", NO_LIBRARY),
    d("download part size", Values::Uint { min: 1, max: u64::MAX }, "5242880", NO_LIBRARY),
    d("download buffer size", Values::Uint { min: 1, max: u64::MAX }, "32768", NO_LIBRARY),
    d("systemd cgroups", B, "yes", NO_CGROUPS),
    d("apptheus communication socket path", Values::Path, "/run/apptheus/gateway.sock", NO_MONITORING),
    d("allow monitoring", B, "no", NO_MONITORING),
    // SingularityCE's, read from a singularity.conf.
    d("sif fuse", B, "no", Effect::None("Vessel serves images through FUSE whenever it can")),
    d("tmp sandbox", B, "yes", Effect::None("Vessel extracts into its node-local cache")),
    d("allow kernel squashfs", B, "yes", SETUID),
    d("allow kernel extfs", B, "yes", SETUID),
    d("mksquashfs path", Values::Path, "", HELPER_PATHS),
    d("unsquashfs path", Values::Path, "", HELPER_PATHS),
    d("cryptsetup path", Values::Path, "", HELPER_PATHS),
    d("ldconfig path", Values::Path, "", HELPER_PATHS),
    d("nvidia-container-cli path", Values::Path, "", HELPER_PATHS),
    d("go path", Values::Path, "", HELPER_PATHS),
    // Vessel's own.
    d("extract cache dir", Values::Path, "/var/tmp/vessel-UID/extract", Effect::Applied("where extracted images are cached, as VESSEL_EXTRACT_DIR (which wins)")),
    d("extract cache max size", Values::Uint { min: 1, max: 1 << 20 }, "20", Effect::Applied("GiB: the bound of that cache, as VESSEL_EXTRACT_MAX_GIB (which wins)")),
    d("share namespaces in job steps", B, "no", Effect::Applied("yes: exec, run, shell and test started as ranks of an MPI launch or of a Slurm step of several tasks share one container per node, as with --sharens")),
    d("execution control", B, "no", Effect::Applied("yes: SIF images run only if signed as their execution group says (ecl.toml's activated)")),
    d("execution control legacy insecure", B, "no", Effect::Applied("yes: legacy signatures count (ecl.toml's legacyinsecure)")),
    list("execution group", Values::Text, "", Effect::Applied("MODE DIRECTORY|* FINGERPRINT...: one of ecl.toml's [[execgroup]]")),
];

/// The directives, for `config global` and the documentation.
pub fn known_keys() -> &'static [Directive] {
    DIRECTIVES
}

/// The directive named `key` (any case, any spacing).
pub fn find(key: &str) -> Option<&'static Directive> {
    let key = normalize(key);
    DIRECTIVES.iter().find(|d| d.key == key)
}

/// A key as the table spells it: lower case, single spaces.
pub fn normalize(key: &str) -> String {
    key.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// The known key closest to a misspelt one, when it is close.
pub fn suggest(key: &str) -> Option<&'static str> {
    let key = normalize(key);
    DIRECTIVES
        .iter()
        .map(|d| (distance(&key, d.key), d.key))
        .filter(|(n, k)| *n <= 3.max(k.len() / 5))
        .min_by_key(|(n, _)| *n)
        .map(|(_, k)| k)
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// A value checked against `values`: `Err` says what is allowed.
pub fn check(values: Values, value: &str) -> Result<(), String> {
    let bad = || format!("`{value}` is not allowed: use {}", values.describe());
    match values {
        Values::Bool => parse_bool(value).map(drop).ok_or_else(bad),
        Values::Choice(words) => words
            .iter()
            .any(|w| w.eq_ignore_ascii_case(value))
            .then_some(())
            .ok_or_else(bad),
        Values::Uint { min, max } => match value.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(bad()),
        },
        Values::Size => parse_size(value).map(drop).ok_or_else(bad),
        Values::Path => (value.is_empty() || value.starts_with('/'))
            .then_some(())
            .ok_or_else(bad),
        Values::Text => Ok(()),
    }
}

pub fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// A size in bytes: digits with an optional `K`, `M` or `G` (powers of 1024).
pub fn parse_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let (digits, shift) = match v.chars().last()?.to_ascii_uppercase() {
        'K' => (&v[..v.len() - 1], 10),
        'M' => (&v[..v.len() - 1], 20),
        'G' => (&v[..v.len() - 1], 30),
        _ => (v, 0),
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// The README's table of directives.
pub fn markdown() -> String {
    let mut out =
        String::from("| directive | values | default | effect in Vessel |\n|---|---|---|---|\n");
    for d in DIRECTIVES {
        let values = match d.values {
            Values::Choice(words) => words.join(" \\| "),
            v => v.describe(),
        };
        let values = if d.repeatable {
            format!("{values} (repeatable)")
        } else {
            values
        };
        let default = if d.default.is_empty() {
            "unset".to_string()
        } else {
            format!("`{}`", d.default)
        };
        let effect = match d.effect {
            Effect::Applied(what) => what.to_string(),
            Effect::None(why) => format!("no effect: {why}"),
        };
        out.push_str(&format!(
            "| `{}` | {values} | {default} | {effect} |\n",
            d.key
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's table is this list's, regenerated by
    /// `VESSEL_TEST_UPDATE_README=1 cargo test -p vessel-config`.
    #[test]
    fn the_readme_lists_every_directive() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (start, end) = ("<!-- directives:begin -->\n", "<!-- directives:end -->");
        let (head, rest) = readme
            .split_once(start)
            .expect("README: directives:begin marker");
        let (_, tail) = rest.split_once(end).expect("README: directives:end marker");
        let wanted = format!("{head}{start}{}{end}{tail}", markdown());
        if crate::process_var("VESSEL_TEST_UPDATE_README").is_some() {
            std::fs::write(&path, &wanted).unwrap();
        }
        assert!(
            readme == wanted,
            "the README's directive table is stale: run VESSEL_TEST_UPDATE_README=1 cargo test -p vessel-config"
        );
    }

    #[test]
    fn keys_are_unique_and_normal() {
        for (i, d) in DIRECTIVES.iter().enumerate() {
            assert_eq!(normalize(d.key), d.key);
            assert!(!DIRECTIVES[..i].iter().any(|e| e.key == d.key), "{}", d.key);
            if !d.default.is_empty() && !d.repeatable && d.values != Values::Text {
                let default = d.default.replace("UID", "0");
                assert_eq!(check(d.values, &default), Ok(()), "{}", d.key);
            }
        }
    }

    #[test]
    fn values_and_suggestions() {
        assert!(check(Values::Bool, "Yes").is_ok());
        let err = check(Values::Choice(&["yes", "no", "minimal"]), "maybe").unwrap_err();
        assert_eq!(err, "`maybe` is not allowed: use yes, no, minimal");
        assert!(check(Values::Uint { min: 1, max: 10 }, "0").is_err());
        assert!(check(Values::Uint { min: 1, max: 10 }, "-3").is_err());
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(suggest("mount hom"), Some("mount home"));
        assert_eq!(suggest("bind  Pth"), Some("bind path"));
        assert_eq!(suggest("completely different"), None);
        assert_eq!(
            find("Allow  Container DIR").unwrap().key,
            "allow container dir"
        );
    }
}
