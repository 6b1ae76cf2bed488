//! The container's environment, with Apptainer's precedence:
//! `--env` > `--env-file` > `APPTAINERENV_*` > `SINGULARITYENV_*` > the
//! image's `/.singularity.d/env/*.sh` > the host's environment.
//!
//! The payload starts as `/bin/sh -c SCRIPT`, where SCRIPT sources the
//! image's environment scripts, applies the overrides, fills in host
//! variables the image did not set, and finally runs the action. Variables
//! whose names the shell cannot handle (such as Lmod's `BASH_FUNC_module%%`)
//! are passed straight through the process environment instead.
//!
//! For `exec`, the same steps are also kept as data
//! ([`crate::env_native::NativeEnv`]): when every one of them can be taken
//! without the shell, Vessel takes them and execs the command itself, and
//! the image's shell is not started.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::env_script::is_identifier;
use crate::options::Action;

/// The default `PATH` inside the container, as Apptainer sets it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables that always come from the host, even with `--cleanenv`.
const ALWAYS_KEPT: &[&str] = &[
    "TERM",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "ftp_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "FTP_PROXY",
];

/// Prefixes of the variables a scheduler or MPI launcher sets for its
/// tasks: kept even with `--cleanenv`, so that MPI ranks still find each
/// other (Apptainer drops them there, a common cause of broken MPI jobs).
const LAUNCHER_PREFIXES: &[&str] = &[
    "SLURM_",
    "PMI_",
    "PMIX_",
    "OMPI_",
    "PRTE_",
    "MPI_LOCALRANKID",
];

/// Host variables never forwarded: the container sets its own.
const NEVER_FORWARDED: &[&str] = &["HOME", "PATH", "LD_LIBRARY_PATH", "PS1", "PWD", "OLDPWD"];

/// What the environment is computed from.
pub struct EnvInput<'a> {
    pub host: &'a [(OsString, OsString)],
    pub cleanenv: bool,
    pub no_env: &'a [String],
    /// `--env-file` contents, in order.
    pub env_files: &'a [(std::path::PathBuf, String)],
    /// `--env` pairs, in order.
    pub env_flags: &'a [(String, String)],
    pub no_eval: bool,
    pub home: &'a str,
    pub image_path: &'a str,
    pub app: Option<&'a str>,
    pub action: &'a Action,
    pub product: &'a str,
    /// The image's environment scripts, in the order to source them.
    pub env_scripts: &'a [String],
    /// Directories of host libraries bound into the container
    /// (`/.singularity.d/libs`, a GPU driver's), to be on `LD_LIBRARY_PATH`.
    pub library_dirs: &'a [String],
    /// Variables a device asks for (CDI specs): the lowest of the
    /// user-set values, below `APPTAINERENV_*`, env files and `--env`.
    pub device_env: &'a [(String, String)],
    /// A GPU option was given: the job's GPU selection passes even with
    /// `--cleanenv`, as the launcher's variables do.
    pub gpus: bool,
}

/// The variables that say which GPUs a job may use, kept with `--cleanenv`
/// when the container gets GPUs.
const GPU_SELECTION: &[&str] = &[
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "CUDA_MPS_PIPE_DIRECTORY",
    "CUDA_MPS_LOG_DIRECTORY",
    "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "GPU_DEVICE_ORDINAL",
];

/// The environment to exec `/bin/sh` with, and the script it runs.
#[derive(Debug)]
pub struct ContainerEnv {
    pub initial: Vec<(OsString, OsString)>,
    pub script: String,
    /// The script's steps for Vessel to take itself
    /// ([`crate::env_native`]), when none of them needs the shell to
    /// evaluate a value; the command is added by the caller.
    pub native: Option<crate::env_native::NativeEnv>,
    /// Notes for the user (refused variables, conflicting prefixes).
    pub warnings: Vec<String>,
}

/// `'…'`: the value exactly, no expansion.
fn single_quoted(v: &[u8]) -> String {
    let text = String::from_utf8_lossy(v);
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `"…"`: the value with `$VAR` and `$(…)` expanded in the container, as
/// Apptainer evaluates `APPTAINERENV_` values.
fn double_quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', r"\\").replace('"', "\\\""))
}

/// `KEY=VALUE` lines of an env file: comments, blank lines and a leading
/// `export` are allowed; quotes around the value are removed.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "line {}: expected KEY=VALUE, found {line:?}",
                n + 1
            ));
        };
        if !is_identifier(key.as_bytes()) {
            return Err(format!(
                "line {}: {key:?} is not a valid variable name",
                n + 1
            ));
        }
        let value = value.trim();
        let unquoted = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        out.push((key.to_string(), unquoted.to_string()));
    }
    Ok(out)
}

/// Computes the container environment.
pub fn container_env(input: &EnvInput<'_>) -> ContainerEnv {
    let mut warnings = Vec::new();
    let mut initial: Vec<(OsString, OsString)> = Vec::new();
    let mut host_vars: Vec<(String, Vec<u8>)> = Vec::new();

    // Overrides, lowest precedence first, so that later ones replace
    // earlier ones: SINGULARITYENV_, APPTAINERENV_, env files, --env.
    let mut overrides: Vec<(String, String)> = Vec::new();
    let set_override = |key: String, value: String, overrides: &mut Vec<(String, String)>| {
        overrides.retain(|(k, _)| *k != key);
        overrides.push((key, value));
    };
    for (k, v) in input.device_env {
        set_override(k.clone(), v.clone(), &mut overrides);
    }
    for prefix in ["SINGULARITYENV_", "APPTAINERENV_"] {
        for (k, v) in input.host {
            let Some(key) = k.to_str().and_then(|k| k.strip_prefix(prefix)) else {
                continue;
            };
            if matches!(
                key,
                "HOME"
                    | "APPTAINER_SHELL"
                    | "SINGULARITY_SHELL"
                    | "APPTAINER_APPNAME"
                    | "SINGULARITY_APPNAME"
            ) {
                warnings.push(format!(
                    "Overriding {key} environment variable with {prefix}{key} is not permitted"
                ));
                continue;
            }
            if !is_identifier(key.as_bytes()) {
                warnings.push(format!(
                    "{prefix}{key}: {key:?} is not a valid variable name, ignored"
                ));
                continue;
            }
            set_override(
                key.to_string(),
                v.to_string_lossy().into_owned(),
                &mut overrides,
            );
        }
    }
    for (_, text) in input.env_files {
        // Parse errors were reported when the options were validated.
        for (k, v) in parse_env_file(text).unwrap_or_default() {
            set_override(k, v, &mut overrides);
        }
    }
    for (k, v) in input.env_flags {
        set_override(k.clone(), v.clone(), &mut overrides);
    }

    for (k, v) in input.host {
        let name = k.as_bytes();
        let name_str = String::from_utf8_lossy(name);
        let kept_always = ALWAYS_KEPT.contains(&name_str.as_ref())
            || LAUNCHER_PREFIXES.iter().any(|p| name_str.starts_with(p))
            || (input.gpus && GPU_SELECTION.contains(&name_str.as_ref()));
        let dropped = input.cleanenv
            || name_str.starts_with("APPTAINER")
            || name_str.starts_with("SINGULARITY")
            || NEVER_FORWARDED.contains(&name_str.as_ref())
            || input.no_env.iter().any(|n| *n == name_str);
        if dropped && !kept_always {
            continue;
        }
        if is_identifier(name) {
            host_vars.push((name_str.into_owned(), v.as_bytes().to_vec()));
        } else {
            initial.push((k.clone(), v.clone()));
        }
    }

    let image_name = std::path::Path::new(input.image_path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let app = input.app.unwrap_or("");
    let fixed: Vec<(&str, String)> = vec![
        ("HOME", input.home.to_string()),
        ("PATH", DEFAULT_PATH.to_string()),
        ("APPTAINER_CONTAINER", input.image_path.to_string()),
        ("SINGULARITY_CONTAINER", input.image_path.to_string()),
        ("APPTAINER_NAME", image_name.clone()),
        ("SINGULARITY_NAME", image_name),
        ("APPTAINER_APPNAME", app.to_string()),
        ("SINGULARITY_APPNAME", app.to_string()),
        ("APPTAINER_COMMAND", input.action.verb().to_string()),
        (
            "APPTAINER_ENVIRONMENT",
            "/.singularity.d/env/91-environment.sh".to_string(),
        ),
        (
            "SINGULARITY_ENVIRONMENT",
            "/.singularity.d/env/91-environment.sh".to_string(),
        ),
    ];
    for (k, v) in &fixed {
        initial.push((OsString::from(k), OsString::from(v)));
    }
    if input.cleanenv {
        initial.push(("LANG".into(), "C".into()));
    }
    if let Action::Shell(Some(shell)) = input.action {
        initial.push(("APPTAINER_SHELL".into(), shell.into()));
        initial.push(("SINGULARITY_SHELL".into(), shell.into()));
    }

    // Values the shell would evaluate ($VAR, $(…)) leave the whole
    // environment to it; SCIF apps too.
    let evaluated = |v: &str| !input.no_eval && (v.contains('$') || v.contains('`'));
    let mut native = (app.is_empty() && !overrides.iter().any(|(_, v)| evaluated(v))).then(|| {
        crate::env_native::NativeEnv {
            initial: initial.clone(),
            scripts: input.env_scripts.to_vec(),
            host_defaults: host_vars
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        String::from_utf8_lossy(v).into_owned().into_bytes(),
                    )
                })
                .collect(),
            library_dirs: input.library_dirs.to_vec(),
            no_eval: input.no_eval,
            ..Default::default()
        }
    });

    let mut s = String::new();
    s.push_str("# Generated by Vessel: the container's environment, then the action.\n");
    for script in input.env_scripts {
        s.push_str(&format!(
            "[ -r {0} ] && . {0}\n",
            single_quoted(script.as_bytes())
        ));
    }
    if !app.is_empty() {
        // The app's own programs and libraries come first (SCIF's layout).
        let root = single_quoted(format!("/scif/apps/{app}").as_bytes());
        s.push_str(&format!(
            "PATH={root}/bin:\"$PATH\"; export PATH\n\
             LD_LIBRARY_PATH={root}/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}; export LD_LIBRARY_PATH\n"
        ));
    }
    let mut path_override = None;
    let (mut prepend, mut append) = (None, None);
    for (k, v) in &overrides {
        let value = if input.no_eval {
            single_quoted(v.as_bytes())
        } else {
            double_quoted(v)
        };
        if let Some(n) = native.as_mut() {
            let literal = v.clone().into_bytes();
            match k.as_str() {
                "PATH" => n.path = Some(literal),
                "PREPEND_PATH" => n.prepend_path = Some(literal),
                "APPEND_PATH" => n.append_path = Some(literal),
                _ => n.overrides.push((k.clone(), literal)),
            }
        }
        match k.as_str() {
            "PATH" => path_override = Some(value),
            "PREPEND_PATH" => prepend = Some(value),
            "APPEND_PATH" => append = Some(value),
            _ => s.push_str(&format!("export {k}={value}\n")),
        }
    }
    for (k, v) in &host_vars {
        s.push_str(&format!(
            "[ -n \"${{{k}+x}}\" ] || export {k}={}\n",
            single_quoted(v)
        ));
    }
    if let Some(p) = path_override {
        s.push_str(&format!("export PATH={p}\n"));
    }
    if let Some(p) = prepend {
        s.push_str(&format!("export PATH={p}:\"$PATH\"\n"));
    }
    if let Some(p) = append {
        s.push_str(&format!("export PATH=\"$PATH\":{p}\n"));
    }
    for dir in input.library_dirs {
        // Apptainer's images append /.singularity.d/libs in their
        // 99-base.sh; images without that script (or whose variables
        // replaced it) get it here, and every directory only once.
        s.push_str(&format!(
            "__vessel_lib={}; case :\"${{LD_LIBRARY_PATH:-}}\": in *:\"$__vessel_lib\":*) ;; *) LD_LIBRARY_PATH=\"${{LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}}$__vessel_lib\"; export LD_LIBRARY_PATH ;; esac; unset __vessel_lib\n",
            single_quoted(dir.as_bytes())
        ));
    }
    if input.no_eval {
        s.push_str("export APPTAINER_NO_EVAL=1\n");
    }
    s.push_str(&action_script(input.action, app, input.product));
    ContainerEnv {
        initial,
        script: s,
        native,
        warnings,
    }
}

/// The shell code that runs the action once the environment is set.
pub(crate) fn action_script(action: &Action, app: &str, product: &str) -> String {
    let base = if app.is_empty() {
        "/.singularity.d".to_string()
    } else {
        format!("/scif/apps/{app}/scif")
    };
    match action {
        // The command is looked up here, with the PATH the environment
        // scripts left, so that a missing one is reported as Apptainer
        // reports it (exit 255), which workflow tools match on, rather
        // than as the shell's `exec: X: not found` (127).
        Action::Exec(_) => "if [ $# -gt 0 ]; then\n  \
               case $1 in\n  \
               */*) [ -e \"$1\" ] || { printf 'FATAL:   \"%s\": stat %s: no such file or directory\\n' \"$1\" \"$1\" >&2; exit 255; } ;;\n  \
               *) command -v -- \"$1\" >/dev/null 2>&1 || { printf 'FATAL:   \"%s\": executable file not found in $PATH\\n' \"$1\" >&2; exit 255; } ;;\n  \
               esac\n\
             fi\n\
             exec \"$@\"\n"
            .into(),
        Action::Run(_) => format!(
            "if [ -f {base}/runscript ]; then\n  \
               [ -x {base}/runscript ] && exec {base}/runscript \"$@\"\n  \
               exec /bin/sh {base}/runscript \"$@\"\n\
             elif [ -f /singularity ]; then exec /bin/sh /singularity \"$@\"\n\
             else\n  \
               echo 'INFO:    No runscript found in the container, executing /bin/sh' >&2\n  \
               exec /bin/sh \"$@\"\n\
             fi\n"
        ),
        Action::Test(_) => format!(
            "if [ -f {base}/test ]; then\n  \
               [ -x {base}/test ] && exec {base}/test \"$@\"\n  \
               exec /bin/sh {base}/test \"$@\"\n\
             fi\n\
             echo 'INFO:    No test script found in the container, exiting' >&2\nexit 0\n"
        ),
        Action::Shell(shell) => {
            let prompt = format!("{product}> ");
            let mut s = format!("PS1={}; export PS1\n", single_quoted(prompt.as_bytes()));
            if let Some(sh) = shell {
                s.push_str(&format!(
                    "if [ -x {0} ]; then SHELL={0}; export SHELL; exec {0}; fi\n\
                     echo {1} >&2; exit 255\n",
                    single_quoted(sh.as_bytes()),
                    single_quoted(
                        format!("FATAL:   shell {sh} not found or not executable in the container")
                            .as_bytes()
                    )
                ));
            } else {
                s.push_str(
                    "if [ -x /bin/bash ]; then SHELL=/bin/bash; export SHELL; exec /bin/bash --norc; fi\n\
                     SHELL=/bin/sh; export SHELL; exec /bin/sh\n",
                );
            }
            s
        }
    }
}

/// The arguments after the script (`$0` and `$@` in it).
pub fn script_args(action: &Action) -> Vec<OsString> {
    let mut out = vec![OsString::from(format!(
        "/.singularity.d/actions/{}",
        action.verb()
    ))];
    match action {
        Action::Exec(args) | Action::Run(args) | Action::Test(args) => {
            out.extend(args.iter().cloned())
        }
        Action::Shell(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    /// Whether `name` is passed through as a host variable.
    fn forwarded(env: &ContainerEnv, name: &str) -> bool {
        env.script
            .contains(&format!("[ -n \"${{{name}+x}}\" ] || export {name}="))
            || env.initial.iter().any(|(k, _)| k == OsStr::new(name))
    }

    fn host(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn compute(
        h: &[(OsString, OsString)],
        flags: &[(String, String)],
        cleanenv: bool,
    ) -> ContainerEnv {
        container_env(&EnvInput {
            host: h,
            cleanenv,
            no_env: &["SECRET".to_string()],
            env_files: &[],
            env_flags: flags,
            no_eval: false,
            home: "/home/u",
            image_path: "/images/app.sif",
            app: None,
            action: &Action::Exec(vec!["env".into()]),
            product: "Apptainer",
            env_scripts: &["/.singularity.d/env/90-environment.sh".to_string()],
            library_dirs: &[],
            device_env: &[],
            gpus: false,
        })
    }

    #[test]
    fn values_the_shell_would_evaluate_leave_the_environment_to_it() {
        let h = host(&[("FOO", "host"), ("APPTAINERENV_LIT", "a \\ \"b\"")]);
        let native = compute(&h, &[("X".into(), "plain".into())], false)
            .native
            .expect("literal values are taken by Vessel");
        assert!(native
            .overrides
            .contains(&("LIT".into(), b"a \\ \"b\"".to_vec())));
        assert!(native.overrides.contains(&("X".into(), b"plain".to_vec())));
        assert!(native
            .host_defaults
            .contains(&("FOO".into(), b"host".to_vec())));
        for value in ["$HOME/x", "`date`"] {
            let env = compute(&h, &[("X".into(), value.into())], false);
            assert!(env.native.is_none(), "{value}");
        }
    }

    #[test]
    fn precedence_order_in_the_script() {
        let h = host(&[
            ("FOO", "host"),
            ("SINGULARITYENV_FOO", "singularityenv"),
            ("APPTAINERENV_FOO", "apptainerenv"),
            ("APPTAINERENV_HOME", "/nope"),
            ("SECRET", "x"),
            ("SLURM_PROCID", "3"),
            ("BASH_FUNC_module%%", "() { :; }"),
            ("PATH", "/host/bin"),
        ]);
        let env = compute(&h, &[("FOO".into(), "flag".into())], false);
        let s = &env.script;
        // The image's scripts come first, then overrides (last one wins),
        // then host values only where nothing set the variable.
        let image = s.find("90-environment.sh").unwrap();
        let flag = s.find("export FOO=\"flag\"").unwrap();
        let host_fill = s.find("[ -n \"${FOO+x}\" ] || export FOO='host'").unwrap();
        assert!(image < flag && flag < host_fill, "{s}");
        assert!(!s.contains("apptainerenv"), "{s}");
        assert!(!forwarded(&env, "SECRET"));
        assert!(forwarded(&env, "SLURM_PROCID"));
        assert!(env.initial.iter().any(|(k, _)| k == "BASH_FUNC_module%%"));
        assert!(env.warnings.iter().any(|w| w.contains("HOME")));
        assert!(env
            .initial
            .iter()
            .any(|(k, v)| k == "PATH" && v == DEFAULT_PATH));
    }

    #[test]
    fn cleanenv_keeps_only_terminal_proxies_and_launchers() {
        let h = host(&[
            ("FOO", "x"),
            ("TERM", "xterm"),
            ("http_proxy", "p"),
            ("OMPI_COMM_WORLD_RANK", "1"),
        ]);
        let env = compute(&h, &[], true);
        assert!(!forwarded(&env, "FOO"));
        assert!(forwarded(&env, "TERM"));
        assert!(forwarded(&env, "http_proxy"));
        assert!(forwarded(&env, "OMPI_COMM_WORLD_RANK"));
        assert!(env.initial.iter().any(|(k, v)| k == "LANG" && v == "C"));
    }

    #[test]
    fn quoting() {
        assert_eq!(single_quoted(b"it's"), r"'it'\''s'");
        assert_eq!(double_quoted("a\"b\\c $HOME"), r#""a\"b\\c $HOME""#);
    }

    #[test]
    fn env_files() {
        let parsed = parse_env_file("# c\nexport A=1\nB=\"two words\"\n\nC='x'\n").unwrap();
        assert_eq!(
            parsed,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ]
        );
        assert!(parse_env_file("not a line").is_err());
        assert!(parse_env_file("1X=2").is_err());
    }
}
