//! `exec`'s environment made in Vessel, without the image's `/bin/sh`: the
//! steps of the script [`crate::env::container_env`] writes, taken in the
//! same order, with the environment scripts read by
//! [`crate::env_script`]. Where any step needs the shell (a script beyond
//! that subset, a command that is not found), the payload runs the script
//! through the shell as before: both ways give one result.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use crate::env_script::{Refused, Shell};

/// The steps, as the script takes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NativeEnv {
    /// The shell's starting environment.
    pub initial: Vec<(OsString, OsString)>,
    /// The image's environment scripts, sourced when readable.
    pub scripts: Vec<String>,
    /// `export NAME=VALUE` (values taken literally), in order.
    pub overrides: Vec<(String, Vec<u8>)>,
    /// Host variables, exported when the scripts left them unset.
    pub host_defaults: Vec<(String, Vec<u8>)>,
    /// `PATH`, then `PREPEND_PATH` and `APPEND_PATH` overrides.
    pub path: Option<Vec<u8>>,
    pub prepend_path: Option<Vec<u8>>,
    pub append_path: Option<Vec<u8>>,
    /// Directories appended to `LD_LIBRARY_PATH` unless on it.
    pub library_dirs: Vec<String>,
    pub no_eval: bool,
    /// The command `exec` runs.
    pub command: Vec<OsString>,
}

impl NativeEnv {
    /// The command's environment, or why the shell must make it.
    pub fn environment(&self, cwd: &[u8]) -> Result<Vec<(OsString, OsString)>, Refused> {
        let mut sh = Shell::new(&self.initial);
        // What a shell started without PWD sets.
        if sh.get(b"PWD").is_none() {
            sh.set(b"PWD", cwd.to_vec(), true);
        }
        for script in &self.scripts {
            // `[ -r FILE ] && . FILE`
            let Ok(mut file) = std::fs::File::open(script) else {
                continue;
            };
            let mut text = Vec::new();
            if std::io::Read::read_to_end(&mut file, &mut text).is_err() {
                return Err(Refused(format!("{script} cannot be read")));
            }
            sh.source(&text)
                .map_err(|Refused(why)| Refused(format!("{script} uses {why}")))?;
        }
        for (k, v) in &self.overrides {
            sh.set(k.as_bytes(), v.clone(), true);
        }
        for (k, v) in &self.host_defaults {
            if sh.get(k.as_bytes()).is_none() {
                sh.set(k.as_bytes(), v.clone(), true);
            }
        }
        let joined = |a: &[u8], b: &[u8]| [a, b":", b].concat();
        if let Some(p) = &self.path {
            sh.set(b"PATH", p.clone(), true);
        }
        if let Some(p) = &self.prepend_path {
            let path = joined(p, sh.get(b"PATH").unwrap_or_default());
            sh.set(b"PATH", path, true);
        }
        if let Some(p) = &self.append_path {
            let path = joined(sh.get(b"PATH").unwrap_or_default(), p);
            sh.set(b"PATH", path, true);
        }
        for dir in &self.library_dirs {
            let current = sh.get(b"LD_LIBRARY_PATH").unwrap_or_default().to_vec();
            // `case :"$LD_LIBRARY_PATH": in *:"$dir":*)`
            let needle = [b":", dir.as_bytes(), b":"].concat();
            let on_it = [b":", current.as_slice(), b":"]
                .concat()
                .windows(needle.len())
                .any(|w| w == needle.as_slice());
            if !on_it {
                let value = if current.is_empty() {
                    dir.as_bytes().to_vec()
                } else {
                    joined(&current, dir.as_bytes())
                };
                sh.set(b"LD_LIBRARY_PATH", value, true);
            }
        }
        if self.no_eval {
            sh.set(b"APPTAINER_NO_EVAL", b"1".to_vec(), true);
        }
        Ok(sh.environment())
    }

    /// In the container, just before the payload's exec: execs the command
    /// with the environment made here, and returns (having done nothing)
    /// when the shell must do it instead.
    pub fn exec(&self) {
        let cwd = std::env::current_dir()
            .map(|d| d.into_os_string().as_bytes().to_vec())
            .unwrap_or_else(|_| b"/".to_vec());
        let env = match self.environment(&cwd) {
            Ok(env) => env,
            Err(Refused(why)) => {
                tracing::debug!("environment: the image's shell reads it ({why})");
                return;
            }
        };
        if !env.iter().any(|(k, _)| k == "PATH") {
            tracing::debug!("environment: the image's shell runs the command (PATH is unset)");
            return;
        }
        tracing::debug!("environment: made by Vessel, the image's shell is not run");
        // A command not found or refused comes back here: the shell then
        // says so in its words, as without this step.
        let err = vessel_sys::process::exec(&self.command, &env);
        tracing::debug!("environment: {err}: the image's shell runs the command");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a [(OsString, OsString)], k: &str) -> Option<&'a str> {
        env.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.to_str())
    }

    #[test]
    fn the_steps_are_taken_in_the_script_s_order() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("90-environment.sh");
        std::fs::write(&script, "export FROM_IMAGE=image PATH=/opt/bin:$PATH\n").unwrap();
        let native = NativeEnv {
            initial: vec![("PATH".into(), "/usr/bin".into())],
            scripts: vec![
                dir.path().join("missing.sh").display().to_string(),
                script.display().to_string(),
            ],
            overrides: vec![("OVERRIDE".into(), b"o".to_vec())],
            host_defaults: vec![
                ("FROM_IMAGE".into(), b"host".to_vec()),
                ("FROM_HOST".into(), b"host".to_vec()),
                ("LD_LIBRARY_PATH".into(), b"/a:/libs".to_vec()),
            ],
            prepend_path: Some(b"/pre".to_vec()),
            append_path: Some(b"/post".to_vec()),
            library_dirs: vec!["/libs".into(), "/more".into()],
            no_eval: true,
            command: vec!["true".into()],
            ..Default::default()
        };
        let env = native.environment(b"/work").unwrap();
        assert_eq!(
            get(&env, "FROM_IMAGE"),
            Some("image"),
            "the image's value wins over the host's"
        );
        assert_eq!(get(&env, "FROM_HOST"), Some("host"));
        assert_eq!(get(&env, "OVERRIDE"), Some("o"));
        assert_eq!(get(&env, "PATH"), Some("/pre:/opt/bin:/usr/bin:/post"));
        assert_eq!(
            get(&env, "LD_LIBRARY_PATH"),
            Some("/a:/libs:/more"),
            "each directory once"
        );
        assert_eq!(get(&env, "APPTAINER_NO_EVAL"), Some("1"));
        assert_eq!(get(&env, "PWD"), Some("/work"));
    }

    #[test]
    fn a_script_beyond_the_subset_leaves_the_environment_to_the_shell() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("90-environment.sh");
        std::fs::write(&script, "export STAMP=$(date)\n").unwrap();
        let native = NativeEnv {
            initial: vec![("PATH".into(), "/usr/bin".into())],
            scripts: vec![script.display().to_string()],
            command: vec!["true".into()],
            ..Default::default()
        };
        let err = native.environment(b"/").unwrap_err();
        assert!(
            err.0
                .contains("90-environment.sh uses command substitution"),
            "{err:?}"
        );
    }
}
