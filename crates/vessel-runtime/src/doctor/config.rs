//! The site's configuration parses, as a run reads it: `vessel.conf`, or
//! where there is none the Apptainer installation's `apptainer.conf` and
//! `ecl.toml` beside it. A broken file stops every run; a line Vessel does
//! not understand is a warning.

use super::{Finding, Node};

const CHECK: &str = "configuration";

pub(super) fn conf(node: &Node<'_>) -> Finding {
    let conf = match &node.site {
        Ok(conf) => conf,
        Err(e) => {
            let fix = if matches!(e, vessel_config::conf::ConfError::OverrideRefused { .. }) {
                "unset VESSEL_CONF_DIR to use the site's configuration"
            } else {
                "an administrator: correct the file at the line named"
            };
            return Finding::fail(CHECK, vessel_sys::error_chain(e), fix);
        }
    };
    let files: Vec<String> = conf
        .read_from
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let read = if files.is_empty() {
        "no configuration file: Apptainer's defaults apply".to_string()
    } else {
        let verb = if files.len() == 1 { "parses" } else { "parse" };
        format!("{} {verb}", files.join(" and "))
    };
    if conf.warnings.is_empty() {
        return Finding::pass(CHECK, read);
    }
    let warnings: Vec<String> = conf.warnings.iter().map(ToString::to_string).collect();
    Finding::warn(
        CHECK,
        format!("{read}, with warnings: {}", warnings.join("; ")),
        "an administrator: correct or remove those lines",
    )
}
