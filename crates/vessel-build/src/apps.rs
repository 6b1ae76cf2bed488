//! SCIF apps (`%appinstall NAME`, `%apprun NAME`, …): the `/scif` layout
//! Apptainer's apps plugin writes, so `run --app NAME`, `inspect --app` and
//! images built by either tool agree.
//!
//! Per app: `/scif/apps/NAME/{bin,lib,scif/env}` and
//! `/scif/data/NAME/{input,output}`; `scif/env/01-base.sh` sets the
//! `SCIF_APP*` variables, `%appenv` becomes `scif/env/90-environment.sh`,
//! `%apprun` `scif/runscript`, `%apptest` `scif/test`, `%apphelp`
//! `scif/runscript.help`, `%applabels` `scif/labels.json` (with
//! `SCIF_APP_NAME`), `%appfiles` are copied under the app's directory, and
//! `/.singularity.d/env/94-appsbase.sh` exports every app's locations.
//! `%appinstall` runs after `%post`, in the app's directory.

use std::collections::BTreeMap;
use std::path::Path;

use crate::def::{Script, Stage};
use crate::engine::{copy_into_root, glob, tab_indented_json, BuildError};
use crate::in_root::BuildRoot;

/// Refuses app names that would not stay one directory under `/scif/apps`.
pub(crate) fn check_names(stage: &Stage) -> Result<(), BuildError> {
    for name in &stage.app_order {
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(BuildError::AppName { name: name.clone() });
        }
    }
    Ok(())
}

/// Writes every app's directories, metadata and files into `rootfs`.
pub(crate) fn lay_out(stage: &Stage, rootfs: &Path) -> Result<(), BuildError> {
    if stage.app_order.is_empty() {
        return Ok(());
    }
    check_names(stage)?;
    let root = BuildRoot::open(rootfs)?;
    let mut global = String::new();
    for name in &stage.app_order {
        let Some(app) = stage.apps.get(name) else {
            continue;
        };
        let base = format!("/scif/apps/{name}");
        let meta = format!("{base}/scif");
        let data = format!("/scif/data/{name}");
        for d in [
            format!("{base}/bin"),
            format!("{base}/lib"),
            format!("{meta}/env"),
            format!("{data}/input"),
            format!("{data}/output"),
        ] {
            root.dir(&d)?;
        }
        let write =
            |rel: &str, text: &str, mode: u32| root.write(&format!("{meta}/{rel}"), text, mode);
        write("env/01-base.sh", &base_env(name), 0o755)?;
        if !app.env.is_empty() {
            write("env/90-environment.sh", &app.env, 0o755)?;
        }
        if !app.run.is_empty() {
            write("runscript", &format!("#!/bin/sh\n\n{}\n", app.run), 0o755)?;
        }
        if !app.test.is_empty() {
            write("test", &format!("#!/bin/sh\n\n{}\n", app.test), 0o755)?;
        }
        if !app.help.is_empty() {
            write("runscript.help", &app.help, 0o644)?;
        }
        let mut labels: BTreeMap<&str, &str> = BTreeMap::new();
        labels.insert("SCIF_APP_NAME", name);
        for (k, v) in &app.labels {
            labels.insert(k, v);
        }
        write("labels.json", &tab_indented_json(&labels)?, 0o644)?;
        for (src, dst) in &app.files {
            let matches = glob(src)?;
            if matches.is_empty() {
                return Err(BuildError::AppFilesUnmatched {
                    app: name.clone(),
                    pattern: src.clone(),
                });
            }
            let rel = dst.as_deref().unwrap_or(src).trim_start_matches('/');
            let dest = format!("/scif/apps/{name}/{rel}");
            for m in matches {
                copy_into_root(&root, &m, &dest)?;
            }
        }
        global.push_str(&global_env(name, |f| {
            root.read(&format!("{meta}/{f}")).is_some()
        }));
    }
    root.write("/.singularity.d/env/94-appsbase.sh", &global, 0o755)
}

/// One script running every `%appinstall` in app order, each in its app's
/// directory with its `SCIF_APP*` variables; `None` when there is none.
pub(crate) fn install_script(stage: &Stage) -> Option<Script> {
    let mut body = String::new();
    for name in &stage.app_order {
        let Some(app) = stage.apps.get(name).filter(|a| !a.install.is_empty()) else {
            continue;
        };
        body.push_str(&format!(
            "(\n. /scif/apps/{name}/scif/env/01-base.sh\ncd /scif/apps/{name}\n{}\n)\n",
            app.install.trim_end_matches('\n')
        ));
    }
    (!body.is_empty()).then(|| Script {
        body,
        ..Script::default()
    })
}

fn base_env(name: &str) -> String {
    format!(
        "#!/bin/sh\n\n\
         SCIF_APPNAME={name}\n\
         SCIF_APPROOT=\"/scif/apps/{name}\"\n\
         SCIF_APPMETA=\"/scif/apps/{name}/scif\"\n\
         SCIF_DATA=\"/scif/data\"\n\
         SCIF_APPDATA=\"/scif/data/{name}\"\n\
         SCIF_APPINPUT=\"/scif/data/{name}/input\"\n\
         SCIF_APPOUTPUT=\"/scif/data/{name}/output\"\n\
         export SCIF_APPDATA SCIF_APPNAME SCIF_APPROOT SCIF_APPMETA SCIF_APPINPUT SCIF_APPOUTPUT SCIF_DATA\n"
    )
}

/// Every app's locations as `SCIF_*_NAME` variables, with the name made a
/// valid shell identifier.
/// The exports of app `name`; `exists` tells which of its `scif` files exist.
fn global_env(name: &str, exists: impl Fn(&str) -> bool) -> String {
    let var: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut s = format!(
        "## App Global Exports For: {var}\n\n\
         SCIF_APPDATA_{var}=/scif/data/{name}\n\
         SCIF_APPMETA_{var}=/scif/apps/{name}/scif\n\
         SCIF_APPROOT_{var}=/scif/apps/{name}\n\
         SCIF_APPBIN_{var}=/scif/apps/{name}/bin\n\
         SCIF_APPLIB_{var}=/scif/apps/{name}/lib\n\n\
         export SCIF_APPDATA_{var} SCIF_APPMETA_{var} SCIF_APPROOT_{var} SCIF_APPBIN_{var} SCIF_APPLIB_{var}\n"
    );
    for (file, kind) in [
        ("env/90-environment.sh", "APPENV"),
        ("labels.json", "APPLABELS"),
        ("runscript", "APPRUN"),
    ] {
        if exists(file) {
            s.push_str(&format!(
                "export SCIF_{kind}_{var}=\"/scif/apps/{name}/scif/{file}\"\n"
            ));
        }
    }
    s
}
