//! The text reports of the reference `siftool` (`header`, `list`, `info`),
//! reproduced byte for byte so that scripts parsing them keep working.

use std::fmt::Write as _;
use std::io::Write as _;

use tabwriter::TabWriter;

use crate::descriptor::{Descriptor, Link};
use crate::error::{Error, Result};
use crate::header::{format_uuid, Header, DETERMINISTIC_TIME};
use crate::image::Sif;
use crate::types::DataType;

/// `siftool header`: the global header, aligned with one space of padding.
pub fn header(h: &Header) -> String {
    let mut lines = String::new();
    let mut script = h.launch_script().to_vec();
    if script.last() == Some(&b'\n') {
        script.pop();
    }
    if !script.is_empty() {
        let _ = writeln!(
            lines,
            "Launch Script:\t{}",
            String::from_utf8_lossy(&script)
        );
    }
    let _ = writeln!(lines, "Version:\t{}", h.version_str());
    if !h.arch.is_unknown() {
        let _ = writeln!(lines, "Primary Architecture:\t{}", h.arch);
    }
    if let Some(id) = h.uuid() {
        let _ = writeln!(lines, "ID:\t{}", format_uuid(&id));
    }
    time_line(&mut lines, "Created At:", h.created_at);
    time_line(&mut lines, "Modified At:", h.modified_at);
    let _ = writeln!(lines, "Descriptors Free:\t{}", h.descriptors_free);
    let _ = writeln!(lines, "Descriptors Total:\t{}", h.descriptors_total);
    let _ = writeln!(lines, "Descriptors Offset:\t{}", h.descriptors_offset);
    let _ = writeln!(
        lines,
        "Descriptors Size:\t{}",
        readable_size(h.descriptors_size)
    );
    let _ = writeln!(lines, "Data Offset:\t{}", h.data_offset);
    let _ = writeln!(lines, "Data Size:\t{}", readable_size(h.data_size));
    align(&lines, "", 1)
}

/// `siftool list`: one row per object, in descriptor-table order.
pub fn list<F>(sif: &Sif<F>) -> String {
    let rule = "-".repeat(78);
    let mut out = format!(
        "{rule}\n{:<4} {:<8} {:<8} {:<26} {}\n{rule}\n",
        "ID", "|GROUP", "|LINK", "|SIF POSITION (start-end)", "|TYPE"
    );
    for d in sif.descriptors() {
        let _ = write!(out, "{:<4} ", d.id);
        match d.group() {
            None => out.push_str("|NONE    "),
            Some(g) => {
                let _ = write!(out, "|{g:<7} ");
            }
        }
        match d.link() {
            Link::None => out.push_str("|NONE    "),
            Link::Group(g) => {
                let _ = write!(out, "|{g:<3} (G) ");
            }
            Link::Object(id) => {
                let _ = write!(out, "|{id:<7} ");
            }
        }
        let _ = write!(out, "{:<26} ", format!("|{}-{}", d.offset, d.end()));
        let _ = writeln!(out, "|{}", type_summary(d));
    }
    out
}

/// `siftool info`: every field of one object, indented and aligned.
pub fn info<F>(sif: &Sif<F>, id: u32) -> Result<String> {
    let h = sif.header();
    if h.descriptors_free == h.descriptors_total {
        return Err(Error::InvalidInput("no objects in image".into()));
    }
    let d = sif.descriptor(id)?;
    let mut lines = String::new();
    let _ = writeln!(lines, "Data Type:\t{}", d.data_type);
    let _ = writeln!(lines, "ID:\t{}", d.id);
    let _ = writeln!(
        lines,
        "Group ID:\t{}",
        d.group().map_or("NONE".into(), |g| g.to_string())
    );
    let link = match d.link() {
        Link::None => "NONE".to_string(),
        Link::Group(g) => format!("{g} (G)"),
        Link::Object(id) => id.to_string(),
    };
    let _ = writeln!(lines, "Linked ID:\t{link}");
    let _ = writeln!(lines, "Offset:\t{}", d.offset);
    let _ = writeln!(lines, "Size:\t{}", d.size);
    time_line(&mut lines, "Created At:", d.created_at);
    time_line(&mut lines, "Modified At:", d.modified_at);
    if !d.name().is_empty() {
        let _ = writeln!(lines, "Name:\t{}", d.name_lossy());
    }
    if let Some(p) = d.partition() {
        let _ = writeln!(lines, "Filesystem Type:\t{}", p.fs);
        let _ = writeln!(lines, "Partition Type:\t{}", p.part);
        let _ = writeln!(lines, "Architecture:\t{}", p.arch);
    }
    if let Some(s) = d.signature() {
        let _ = writeln!(lines, "Hash Type:\t{}", s.hash);
        if let Some(fp) = s.fingerprint() {
            let hex: String = fp.iter().map(|b| format!("{b:02X}")).collect();
            let _ = writeln!(lines, "Entity:\t{hex}");
        }
    }
    if let Some(c) = d.crypto_message() {
        let _ = writeln!(lines, "Format Type:\t{}", c.format);
        let _ = writeln!(lines, "Message Type:\t{}", c.message);
    }
    if let Some(f) = d.sbom_format() {
        let _ = writeln!(lines, "Format:\t{}", f.name().unwrap_or("unknown"));
    }
    if let Some(digest) = d.oci_digest() {
        let _ = writeln!(lines, "Digest:\t{digest}");
    }
    Ok(align(&lines, "\t", 2))
}

/// The TYPE column of `list`.
fn type_summary(d: &Descriptor) -> String {
    if let Some(p) = d.partition() {
        return format!("FS ({}/{}/{})", p.fs, p.part, p.arch);
    }
    if let Some(s) = d.signature() {
        return format!("Signature ({})", s.hash);
    }
    if let Some(c) = d.crypto_message() {
        return format!("Cryptographic Message ({}/{})", c.format, c.message);
    }
    if let Some(f) = d.sbom_format() {
        return format!("SBOM ({})", f.name().unwrap_or("unknown"));
    }
    debug_assert!(d.data_type != DataType::PARTITION);
    d.data_type.to_string()
}

/// Appends `label\ttime` unless `t` is the deterministic zero time, which
/// the reference leaves out.
fn time_line(lines: &mut String, label: &str, t: i64) {
    if t != DETERMINISTIC_TIME {
        let _ = writeln!(lines, "{label}\t{}", go_time(t));
    }
}

/// A Unix time as Go's `time.Time.String()` prints it in UTC.
pub fn go_time(t: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
    );
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|dt| dt.format(FORMAT).ok())
        .unwrap_or_else(|| format!("{t} (seconds since 1970)"))
}

/// A byte count as the reference prints sizes: `27 KiB`, `0 B`.
pub fn readable_size(n: i64) -> String {
    if -1024 < n && n < 1024 {
        return format!("{n} B");
    }
    let (mut div, mut exp, mut q) = (1024f64, 0usize, n / 1024);
    while !(-1024 < q && q < 1024) {
        div *= 1024.0;
        exp += 1;
        q /= 1024;
    }
    let unit = b"KMGTPE"[exp.min(5)] as char;
    format!("{:.0} {unit}iB", (n as f64 / div).round())
}

/// Aligns tab-separated cells as Go's `text/tabwriter` does, each line
/// prefixed by `prefix` (itself a cell when it ends in a tab).
fn align(lines: &str, prefix: &str, padding: usize) -> String {
    let mut tw = TabWriter::new(Vec::new()).padding(padding).minwidth(0);
    for line in lines.lines() {
        let _ = writeln!(tw, "{prefix}{line}");
    }
    let _ = tw.flush();
    String::from_utf8_lossy(&tw.into_inner().unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_like_the_reference() {
        assert_eq!(readable_size(0), "0 B");
        assert_eq!(readable_size(1023), "1023 B");
        assert_eq!(readable_size(28080), "27 KiB");
        assert_eq!(readable_size(8784), "9 KiB");
        assert_eq!(readable_size(1536), "2 KiB");
        assert_eq!(readable_size(1_048_575), "1024 KiB");
        assert_eq!(readable_size(3 << 30), "3 GiB");
        assert_eq!(readable_size(i64::MAX), "8 EiB");
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(go_time(1_593_475_316), "2020-06-30 00:01:56 +0000 UTC");
        assert_eq!(go_time(0), "1970-01-01 00:00:00 +0000 UTC");
    }
}
