//! Why a build stopped: one variant per kind of failure, each naming the
//! user's file, section, stage or image, and keeping its cause as its
//! source. Where a message shows its cause (`…: {source}`), a printer that
//! walks the chain (the CLI's) skips the cause it already holds.

use std::path::PathBuf;
use std::process::ExitStatus;

use vessel_sys::{Hint, SysError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    // Files on the host and in the image being built.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The root being built could not be opened.
    #[error("{root}: {source}")]
    OpenRoot {
        root: PathBuf,
        #[source]
        source: SysError,
    },
    /// A container path could not be resolved (or made) inside the root.
    #[error("{path} in the image: {source}")]
    InImage {
        path: String,
        #[source]
        source: SysError,
    },
    #[error("{path} in the image is not a directory")]
    NotADirectory { path: String },
    /// A container path to write names a directory, not a file.
    #[error("{path}: not a file name")]
    NotAFileName { path: String },
    /// A container path leads out of the root (through a mount inside it).
    #[error("{path} resolves outside the image")]
    OutsideImage { path: String },

    // The definition and the options.
    #[error("--update runs a definition over an existing sandbox, and {output} is not a sandbox directory")]
    UpdateNeedsSandbox {
        output: PathBuf,
        #[source]
        hint: Hint,
    },
    #[error("--update works with single-stage definitions")]
    UpdateMultiStage,
    #[error("SCIF app name {name:?} is not usable as a directory name under /scif/apps")]
    AppName { name: String },
    #[error("--mksquashfs-args {text:?}: unterminated quote")]
    MksquashfsArgs { text: String },

    // The base image.
    #[error("the {agent} bootstrap agent is not supported yet (supported: docker, oras, oci, oci-archive, docker-archive, localimage, debootstrap, scratch)")]
    UnsupportedAgent { agent: String },
    /// The bootstrap source could not be fetched (`Tools::fetch`).
    #[error(transparent)]
    Fetch(Box<dyn std::error::Error + Send + Sync>),
    #[error(
        "Fingerprints: the base image {image} is not signed as the definition requires: {why}"
    )]
    Fingerprints { image: PathBuf, why: String },
    #[error("Bootstrap: debootstrap needs a MirrorURL: header (for example http://deb.debian.org/debian)")]
    NoMirrorUrl,
    #[error("Bootstrap: debootstrap needs an OSVersion: header (the suite, for example bookworm)")]
    NoOsVersion,
    #[error("the debootstrap bootstrap agent needs the debootstrap program: install it (apt-get install debootstrap)")]
    NoDebootstrap,
    #[error("debootstrap: no Debian architecture name known for {arch}")]
    NoDebianArch { arch: &'static str },
    /// debootstrap failed; `log` holds the last lines of its log.
    #[error("debootstrap of {suite} from {mirror} failed ({status}){}", log_tail(.log))]
    Debootstrap {
        suite: String,
        mirror: String,
        status: ExitStatus,
        log: Vec<String>,
    },
    /// The image's SIF header or descriptors could not be read.
    #[error("{image}: {source}")]
    SifRead {
        image: PathBuf,
        #[source]
        source: vessel_sif::Error,
    },
    #[error("{image} has no root file system")]
    NoRootfs { image: PathBuf },
    #[error("{image} is not a readable SquashFS image: {source}")]
    NotSquashfs {
        image: PathBuf,
        #[source]
        source: vessel_squashfs::Error,
    },
    #[error("unpacking {image} failed: {source}")]
    Unpack {
        image: PathBuf,
        #[source]
        source: UnpackError,
    },
    /// The child that unpacked in a fake-root namespace failed without
    /// saying why; `status` is its exit status.
    #[error("unpacking {image} failed (status {status})")]
    UnpackStatus { image: PathBuf, status: i32 },
    /// `cp` of a local image, a `%files` or an `%appfiles` source failed.
    #[error("copying {src} failed")]
    Copy { src: PathBuf, status: ExitStatus },
    #[error("--fix-perms: chmod of {dir} failed")]
    FixPerms { dir: PathBuf, status: ExitStatus },

    // The sections.
    #[error("%setup failed ({status})")]
    Setup { status: ExitStatus },
    /// A section run in the container (`%post`, `%appinstall`) failed.
    #[error("%{section} failed ({status}): the image was not written")]
    Section {
        section: &'static str,
        status: ExitStatus,
    },
    #[error("%test failed ({status}): the image was not written (use --notest to skip it)")]
    Test { status: ExitStatus },
    /// `%files from STAGE` names no earlier stage.
    #[error("%files from {stage}: no earlier stage is named {stage}")]
    NoSuchStage { stage: String },
    /// A `%files` source matches nothing on the host (`stage` is `None`)
    /// or in the earlier stage named.
    #[error("%files: {pattern} matches nothing {}", place(.stage))]
    FilesUnmatched {
        pattern: String,
        stage: Option<String>,
    },
    #[error("%appfiles {app}: {pattern} matches nothing on the host")]
    AppFilesUnmatched { app: String, pattern: String },
    /// Metadata (`labels.json`, the inspect metadata) could not be encoded.
    #[error(transparent)]
    Json(#[from] serde_json::Error),

    // The output.
    #[error("mksquashfs (squashfs-tools) is needed to write the image: {source}")]
    NoMksquashfs {
        #[source]
        source: std::io::Error,
    },
    /// mksquashfs failed; `stderr` holds the lines it wrote.
    #[error("making the SquashFS image failed ({status}): {}", .stderr.join("; "))]
    Mksquashfs {
        status: ExitStatus,
        stderr: Vec<String>,
    },
    /// The built tree's inspect metadata could not be gathered.
    #[error(transparent)]
    Inspect(#[from] vessel_image::inspect::InspectError),
    #[error("cannot write to {dir}: {source}")]
    CreateOutput {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The temporary SquashFS file (or the output's descriptor) could not
    /// be read while writing the SIF; the message is the system's alone.
    #[error("{source}")]
    Staging {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing the SIF's header or one of its objects failed.
    #[error(transparent)]
    SifWrite(vessel_sif::Error),
    #[error("could not write {output}: {source}")]
    CommitOutput {
        output: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not remove the sandbox {dir} to replace it")]
    RemoveSandbox {
        dir: PathBuf,
        #[source]
        hint: Hint,
    },
}

/// Why unpacking an image's root file system stopped.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(transparent)]
    Extract(#[from] vessel_image::ExtractError),
    /// Forking the unpacking child, entering its fake-root namespace, or
    /// waiting for it.
    #[error(transparent)]
    Process(#[from] SysError),
    /// What the child that unpacked in a fake-root namespace reported: its
    /// error and causes on one line, as text crosses a process boundary.
    #[error("{0}")]
    Child(String),
}

/// An error and its causes on one line, each cause once, as the CLI prints
/// errors: what the unpacking child reports to its parent.
pub(crate) use vessel_sys::error_chain as one_line;

fn log_tail(log: &[String]) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("; the end of its log:\n{}", log.join("\n"))
    }
}

fn place(stage: &Option<String>) -> String {
    match stage {
        None => "on the host".to_string(),
        Some(name) => format!("in stage {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn messages_read_as_before() {
        let status = ExitStatus::from_raw(1 << 8);
        assert_eq!(
            BuildError::Section {
                section: "post",
                status
            }
            .to_string(),
            "%post failed (exit status: 1): the image was not written"
        );
        assert_eq!(
            BuildError::FilesUnmatched {
                pattern: "/nowhere".into(),
                stage: Some("one".into())
            }
            .to_string(),
            "%files: /nowhere matches nothing in stage one"
        );
        assert_eq!(
            BuildError::FilesUnmatched {
                pattern: "a*".into(),
                stage: None
            }
            .to_string(),
            "%files: a* matches nothing on the host"
        );
        assert_eq!(
            BuildError::Mksquashfs {
                status,
                stderr: vec!["a".into(), "b".into()]
            }
            .to_string(),
            "making the SquashFS image failed (exit status: 1): a; b"
        );
        let deb = |log: Vec<String>| BuildError::Debootstrap {
            suite: "bookworm".into(),
            mirror: "http://m".into(),
            status,
            log,
        };
        assert_eq!(
            deb(vec![]).to_string(),
            "debootstrap of bookworm from http://m failed (exit status: 1)"
        );
        assert_eq!(
            deb(vec!["x".into(), "y".into()]).to_string(),
            "debootstrap of bookworm from http://m failed (exit status: 1); the end of its log:\nx\ny"
        );
    }

    #[test]
    fn causes_are_kept_and_printed_once() {
        let io = || std::io::Error::from_raw_os_error(2);
        let e = BuildError::Unpack {
            image: "a.sif".into(),
            source: UnpackError::Extract(vessel_image::ExtractError::Destination {
                dest: "/d".into(),
                source: io(),
            }),
        };
        let cause = std::error::Error::source(&e).expect("a source");
        assert!(cause.downcast_ref::<UnpackError>().is_some());
        assert_eq!(
            one_line(&e),
            format!(
                "unpacking a.sif failed: cannot use the destination /d: {}",
                io()
            )
        );
        let e = BuildError::NoMksquashfs { source: io() };
        assert_eq!(
            one_line(&e),
            format!(
                "mksquashfs (squashfs-tools) is needed to write the image: {}",
                io()
            )
        );
        let staging = BuildError::Staging {
            path: "/tmp/x".into(),
            source: io(),
        };
        assert_eq!(one_line(&staging), io().to_string());
    }

    #[test]
    fn a_child_reports_its_whole_chain() {
        let e = UnpackError::Process(SysError::new("fork", std::io::Error::from_raw_os_error(11)));
        assert_eq!(
            one_line(&e),
            format!("fork: {}", std::io::Error::from_raw_os_error(11))
        );
    }
}
