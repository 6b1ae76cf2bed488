//! `doctor`: the node's checkup (`vessel_runtime::doctor`), printed as a
//! table for people and logs, or as JSON for monitoring.

use anyhow::Result;
use vessel_config::Tool;
use vessel_runtime::doctor::{self, Finding, Node};

use crate::cli::DoctorArgs;

pub fn run(tool: Tool, args: DoctorArgs) -> Result<u8> {
    let node = Node::current(tool, &vessel_config::process_var);
    let findings = doctor::run(&node);
    let text = if args.json {
        let mut json = serde_json::to_string_pretty(&findings)?;
        json.push('\n');
        json
    } else {
        table(&findings)
    };
    super::write_stdout(text.as_bytes())?;
    Ok(u8::from(doctor::any_failed(&findings)))
}

/// One line per check, the names in a column, each fix on its own line
/// below (`  fix: …`), and a count at the end.
fn table(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{}  {:width$}  {}\n",
            f.status.label(),
            f.check,
            f.finding
        ));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("  fix: {fix}\n"));
        }
    }
    let count = |s: doctor::Status| findings.iter().filter(|f| f.status == s).count();
    out.push_str(&format!(
        "\n{} passed, {} info, {} warnings, {} failed\n",
        count(doctor::Status::Pass),
        count(doctor::Status::Info),
        count(doctor::Status::Warn),
        count(doctor::Status::Fail)
    ));
    out
}
