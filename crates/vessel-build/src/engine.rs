//! The build engine: a definition file's single stage turned into a SIF (or
//! a sandbox), unprivileged. The bootstrap source is unpacked into a
//! private root file system (after `%pre` on the host); `%setup` runs on
//! the host, `%files` are copied in (resolved inside the root), `%post`
//! runs in the container as fake root (`vessel exec --fakeroot
//! --writable`, a root-mapped user namespace), the `/.singularity.d` metadata is written, `%test` runs, and
//! the tree is packed with the files' owners seen from inside (the user's
//! own files as root's), so that a failed build leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use crate::def::{Definition, Stage};
use crate::hostroot::HostRoot;
use crate::in_root::{BuildRoot, Target};
pub use crate::pack::{split_mksquashfs_args, SquashOptions};
pub use error::{BuildError, UnpackError};

mod error;

/// How to run the pieces the engine does not own: `vessel` itself (for
/// `%post` and `%test` in a container) and the fetch of a bootstrap source
/// into a SIF.
pub struct Tools<'a> {
    pub vessel: PathBuf,
    /// Fetches `docker://…`-style sources into a SIF; returns its path.
    pub fetch: &'a dyn Fn(&str) -> Result<PathBuf, String>,
    /// Checks that the SIF at the path is signed by one of the OpenPGP
    /// fingerprints (the `Fingerprints:` header); the error says why not.
    pub verify: &'a VerifySigners,
}

/// See [`Tools::verify`].
pub type VerifySigners = dyn Fn(&Path, &[String]) -> Result<(), String>;

#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub output: PathBuf,
    pub sandbox: bool,
    pub notest: bool,
    /// `--update`: run the definition over the existing sandbox `output`,
    /// without bootstrapping.
    pub update: bool,
    /// `--section`: the sections to run (`setup`, `files`, `post`,
    /// `environment`, `labels`, `runscript`, `test`, `none`); empty or
    /// `all` means every one.
    pub sections: Vec<String>,
    /// `--fix-perms`: give the owner rwX on everything the base image holds.
    pub fix_perms: bool,
    /// How the SquashFS is made (`--mksquashfs-args`).
    pub squash: SquashOptions,
    pub tmpdir: PathBuf,
    pub product: String,
    /// The labels every build writes afresh (the base image's are stale).
    pub stamp: BuildStamp,
    /// `--bind` values, for the `%post` and `%test` runs.
    pub binds: Vec<String>,
    /// `--mount` values, for the `%post` and `%test` runs.
    pub mounts: Vec<String>,
    /// `--writable-tmpfs`: `%test` runs with a writable (discarded) root;
    /// `%post` is always run `--writable`.
    pub writable_tmpfs: bool,
    /// `--nv`, `--rocm`, `--compat32`: the GPU flags of the `%post` and
    /// `%test` runs, so that they can run GPU code.
    pub gpu_flags: Vec<String>,
}

impl BuildOptions {
    /// The user's `--bind`/`--mount` and GPU flags as flags of the nested
    /// `vessel exec` and `vessel test` (which parse and check them).
    fn mount_flags(&self) -> Vec<String> {
        let binds = self.binds.iter().map(|b| format!("--bind={b}"));
        let mounts = self.mounts.iter().map(|m| format!("--mount={m}"));
        binds
            .chain(mounts)
            .chain(self.gpu_flags.iter().cloned())
            .collect()
    }
}

/// What a build records about itself in the image's labels, decided by the
/// caller (the clock and the version are the command's, not the engine's).
#[derive(Clone, Debug, Default)]
pub struct BuildStamp {
    /// `org.label-schema.build-date`, in Apptainer's format
    /// (`Tuesday_1_December_2026_16:02:00_UTC`).
    pub date: String,
    /// `org.label-schema.usage.apptainer.version`, as `--version` reports
    /// it under the Apptainer persona.
    pub version: String,
}

/// The labels Apptainer's `addBuildLabels` sets on every build, replacing
/// any the base image carried: the schema version, date, architecture,
/// Apptainer version, and one `…deffile.<key>` per header key of this
/// stage (a base's `deffile.*` labels describe another definition, so they
/// all go first).
fn set_build_labels(labels: &mut BTreeMap<String, String>, stage: &Stage, stamp: &BuildStamp) {
    const DEFFILE: &str = "org.label-schema.usage.singularity.deffile.";
    labels.retain(|k, _| !k.starts_with(DEFFILE));
    let arch = vessel_sif::Arch::host().go_name().unwrap_or("unknown");
    for (k, v) in [
        ("org.label-schema.schema-version", "1.0"),
        ("org.label-schema.build-arch", arch),
        ("org.label-schema.build-date", stamp.date.as_str()),
        (
            "org.label-schema.usage.apptainer.version",
            stamp.version.as_str(),
        ),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    for (k, v) in &stage.header {
        labels.insert(format!("{DEFFILE}{k}"), v.clone());
    }
    if !stage.header.iter().any(|(k, _)| k == "bootstrap") {
        labels.insert(format!("{DEFFILE}bootstrap"), stage.bootstrap.clone());
    }
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Builds every stage in order, each in its own root, and writes the last
/// one; `%files from NAME` copies out of an earlier stage's root.
pub fn build(def: &Definition, opts: &BuildOptions, tools: &Tools<'_>) -> Result<(), BuildError> {
    let work = tempfile::Builder::new()
        .prefix("vessel-build-")
        .tempdir_in(&opts.tmpdir)
        .map_err(io(&opts.tmpdir))?;
    let host = HostRoot::new(&tools.vessel);
    tracing::info!("{}", host.describe());
    let result = if opts.update {
        update_sandbox(def, opts, tools, work.path())
    } else {
        build_stages(def, opts, tools, &host, work.path())
    };
    // Files of the user's subordinate ids can only go from inside.
    host.remove_tree(work.path());
    result
}

fn build_stages(
    def: &Definition,
    opts: &BuildOptions,
    tools: &Tools<'_>,
    host: &HostRoot,
    work: &Path,
) -> Result<(), BuildError> {
    let mut built: Vec<(Option<&str>, PathBuf)> = Vec::new();
    for (i, stage) in def.stages.iter().enumerate() {
        if def.stages.len() > 1 {
            tracing::info!(
                "Building stage {} of {}{}",
                i + 1,
                def.stages.len(),
                stage
                    .name
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
        }
        let stage_dir = work.join(format!("stage-{i}"));
        std::fs::create_dir(&stage_dir).map_err(io(&stage_dir))?;
        let rootfs = stage_dir.join("rootfs");
        build_stage(def, stage, &rootfs, &built, opts, tools, host, &stage_dir)?;
        built.push((stage.name.as_deref(), rootfs));
    }
    let (_, rootfs) = built.pop().expect("a parsed definition has a stage");
    if opts.sandbox {
        std::fs::rename(&rootfs, &opts.output).map_err(io(&opts.output))?;
        return Ok(());
    }
    crate::pack::sif_from_dir(&rootfs, def, &opts.output, work, host, &opts.squash)
}

/// `--update`: the last stage's sections over an existing sandbox, in place.
fn update_sandbox(
    def: &Definition,
    opts: &BuildOptions,
    tools: &Tools<'_>,
    work: &Path,
) -> Result<(), BuildError> {
    if !opts.sandbox || !opts.output.is_dir() {
        return Err(BuildError::UpdateNeedsSandbox {
            output: opts.output.clone(),
            hint: vessel_sys::Hint::new("build with --sandbox into an existing directory"),
        });
    }
    if def.stages.len() > 1 {
        return Err(BuildError::UpdateMultiStage);
    }
    tracing::info!("Updating sandbox {} (no bootstrap)", opts.output.display());
    let rootfs = opts.output.canonicalize().map_err(io(&opts.output))?;
    sections_of_stage(def, def.final_stage(), &rootfs, &[], opts, tools, work)
}

/// Whether `--section` lets section `name` run.
fn runs(opts: &BuildOptions, name: &str) -> bool {
    opts.sections.is_empty() || opts.sections.iter().any(|s| s == name || s == "all")
}

/// One stage: `%pre` on the host, base image, `%setup`, `%files`,
/// metadata, `%post`, `%test`.
#[allow(clippy::too_many_arguments)]
fn build_stage(
    def: &Definition,
    stage: &Stage,
    rootfs: &Path,
    built: &[(Option<&str>, PathBuf)],
    opts: &BuildOptions,
    tools: &Tools<'_>,
    host: &HostRoot,
    work: &Path,
) -> Result<(), BuildError> {
    crate::apps::check_names(stage)?;
    if runs(opts, "pre") && !stage.sections.pre.is_empty() {
        tracing::info!("Running %pre on the host");
        let status = on_host(&stage.sections.pre, rootfs)?;
        if !status.success() {
            return Err(BuildError::Section {
                section: "pre",
                status,
            });
        }
    }
    bootstrap(stage, rootfs, tools, host)?;
    if opts.fix_perms {
        fix_perms(rootfs)?;
    }
    sections_of_stage(def, stage, rootfs, built, opts, tools, work)
}

/// A stage's sections over a root that exists, as `--section` allows.
fn sections_of_stage(
    def: &Definition,
    stage: &Stage,
    rootfs: &Path,
    built: &[(Option<&str>, PathBuf)],
    opts: &BuildOptions,
    tools: &Tools<'_>,
    work: &Path,
) -> Result<(), BuildError> {
    if runs(opts, "setup") {
        run_setup(stage, rootfs)?;
    }
    if runs(opts, "files") {
        copy_files(stage, rootfs, built)?;
    }
    write_metadata(def, stage, rootfs, opts)?;
    if runs(opts, "files") {
        crate::apps::lay_out(stage, rootfs)?;
    }
    let gpu_points = crate::gpu_points::GpuMountPoints::before(rootfs, &opts.gpu_flags)?;
    if runs(opts, "post") && !stage.sections.post.is_empty() {
        tracing::info!("Running %post as fake root (a root-mapped user namespace)");
        let ran = run_in(
            tools,
            rootfs,
            &opts.mount_flags(),
            &stage.sections.post,
            work,
            "post",
        );
        gpu_points.clean(rootfs)?;
        ran?;
    }
    if let Some(install) = crate::apps::install_script(stage).filter(|_| runs(opts, "post")) {
        tracing::info!("Running %appinstall as fake root");
        let ran = run_in(
            tools,
            rootfs,
            &opts.mount_flags(),
            &install,
            work,
            "appinstall",
        );
        gpu_points.clean(rootfs)?;
        ran?;
    }
    if runs(opts, "post") {
        add_post_labels(rootfs)?;
    }
    if !opts.notest && runs(opts, "test") && !stage.sections.test.is_empty() {
        tracing::info!("Running %test");
        let status = Command::new(&tools.vessel)
            .args(["-s", "test", "--no-home"])
            .args(opts.mount_flags())
            .args(opts.writable_tmpfs.then_some("--writable-tmpfs"))
            .arg(rootfs)
            .status()
            .map_err(io(&tools.vessel))?;
        if !status.success() {
            return Err(BuildError::Test { status });
        }
    }
    Ok(())
}

/// Unpacks the stage's base image into `rootfs`.
fn bootstrap(
    stage: &Stage,
    rootfs: &Path,
    tools: &Tools<'_>,
    host: &HostRoot,
) -> Result<(), BuildError> {
    let from = stage.from().unwrap_or("").trim();
    let agent = stage.bootstrap.to_ascii_lowercase();
    let source = match agent.as_str() {
        "scratch" => {
            std::fs::create_dir_all(rootfs).map_err(io(rootfs))?;
            return Ok(());
        }
        "localimage" => {
            let p = Path::new(from);
            if p.is_dir() {
                if stage.get("fingerprints").is_some() {
                    return Err(BuildError::Fingerprints {
                        image: p.to_path_buf(),
                        why: "a sandbox directory carries no signatures".into(),
                    });
                }
                copy_tree(p, rootfs)?;
                return Ok(());
            }
            p.to_path_buf()
        }
        "debootstrap" => return crate::debootstrap::bootstrap(stage, rootfs, host),
        "docker" | "oras" => fetch(tools, &format!("{agent}://{from}"))?,
        "oci" | "oci-archive" | "docker-archive" => fetch(tools, &format!("{agent}:{from}"))?,
        _ => return Err(BuildError::UnsupportedAgent { agent }),
    };
    // `Fingerprints:` binds the base of a signed-image bootstrap to its
    // signers, as Apptainer does for localimage, oras and library.
    if let Some(list) = stage.get("fingerprints") {
        if matches!(agent.as_str(), "localimage" | "oras") {
            let wanted: Vec<String> = list
                .split(',')
                .map(|f| f.trim().replace(' ', "").to_ascii_uppercase())
                .filter(|f| !f.is_empty())
                .collect();
            (tools.verify)(&source, &wanted).map_err(|why| BuildError::Fingerprints {
                image: source.clone(),
                why,
            })?;
        }
    }
    // As fake root with subordinate ids, the image's owners are kept;
    // otherwise every file becomes the user's (root inside).
    let owners = if host.is_real_root() {
        Owners::Real
    } else if host.has_subordinate_ids() {
        Owners::FakeRoot
    } else {
        Owners::Own
    };
    unpack_sif(&source, rootfs, owners)
}

/// Fetches a bootstrap source into a SIF with `tools.fetch`.
fn fetch(tools: &Tools<'_>, uri: &str) -> Result<PathBuf, BuildError> {
    (tools.fetch)(uri).map_err(|e| BuildError::Fetch(e.into()))
}

/// `--fix-perms`: owner read/write (and search on directories) everywhere,
/// so that a sandbox of an image with read-only files can be changed and
/// deleted by the user. Symlinks are left alone (`chmod -R` does not follow
/// them).
pub fn fix_perms(dir: &Path) -> Result<(), BuildError> {
    run_checked(
        Command::new("chmod").args(["-R", "u+rwX"]).arg(dir),
        dir,
        |status| BuildError::FixPerms {
            dir: dir.to_path_buf(),
            status,
        },
    )
}

/// Runs a host tool to completion; `failed` makes the error of a non-zero
/// exit.
fn run_checked(
    cmd: &mut Command,
    subject: &Path,
    failed: impl FnOnce(ExitStatus) -> BuildError,
) -> Result<(), BuildError> {
    let status = cmd.status().map_err(io(subject))?;
    if !status.success() {
        return Err(failed(status));
    }
    Ok(())
}

/// `build IMAGE.sif SANDBOX`: a sandbox directory packed into a SIF, its
/// definition file taken from its `/.singularity.d/Singularity`.
pub fn pack_sandbox(
    dir: &Path,
    output: &Path,
    tmpdir: &Path,
    vessel: &Path,
    squash: &SquashOptions,
) -> Result<(), BuildError> {
    let work = tempfile::Builder::new()
        .prefix("vessel-build-")
        .tempdir_in(tmpdir)
        .map_err(io(tmpdir))?;
    let deffile = vessel_image::RootDir::new(dir)
        .read_file("/.singularity.d/Singularity", 16 << 20)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let host = HostRoot::new(vessel);
    crate::pack::sif_from_tree(dir, &deffile, output, work.path(), &host, squash)
}

/// Removes a sandbox for `--force`; one built as fake root holds files of
/// the user's subordinate ids, which go only from inside the namespace.
pub fn remove_sandbox(dir: &Path, vessel: &Path) -> Result<(), BuildError> {
    if vessel_sys::fs::remove_tree(dir).is_ok() {
        return Ok(());
    }
    HostRoot::new(vessel).remove_tree(dir);
    if dir.exists() {
        return Err(BuildError::RemoveSandbox {
            dir: dir.to_path_buf(),
            hint: vessel_sys::Hint::new("remove it yourself and build again"),
        });
    }
    Ok(())
}

/// `build --sandbox DIR IMAGE`: an image's root file system as a directory.
pub fn unpack_to_sandbox(image: &Path, dest: &Path) -> Result<(), BuildError> {
    let owners = if vessel_sys::process::getuid() == 0 {
        Owners::Real
    } else {
        Owners::Own
    };
    unpack_sif(image, dest, owners)
}

/// Whose files an unpacked tree holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owners {
    /// Real root: the image's owners.
    Real,
    /// The image's owners, mapped through the user's subordinate ids: the
    /// tree is unpacked by a child process in a fake-root user namespace.
    FakeRoot,
    /// Everything the user's.
    Own,
}

/// Unpacks a SIF's (or SquashFS file's) root file system with Vessel's
/// own SquashFS reader. Device nodes that cannot be made are skipped.
fn unpack_sif(image: &Path, rootfs: &Path, owners: Owners) -> Result<(), BuildError> {
    let file = std::fs::File::open(image).map_err(io(image))?;
    let (offset, size) = rootfs_region(&file, image)?;
    let arc = vessel_squashfs::Archive::open(file, offset, size).map_err(|source| {
        BuildError::NotSquashfs {
            image: image.to_path_buf(),
            source,
        }
    })?;
    let failed = |source: UnpackError| BuildError::Unpack {
        image: image.to_path_buf(),
        source,
    };
    let opts = |owners| vessel_image::ExtractOptions {
        paths: Vec::new(),
        owners: Some(owners),
    };
    match owners {
        Owners::Real | Owners::Own => {
            vessel_image::extract(&arc, rootfs, &opts(owners == Owners::Real))
                .map_err(|e| failed(e.into()))?;
        }
        Owners::FakeRoot => {
            // chown to the subordinate ids works only inside the namespace:
            // a child enters it and unpacks, and reports an error through
            // an anonymous file it shares with this process.
            let mut report = tempfile::tempfile().map_err(io(rootfs))?;
            let pid = match vessel_sys::process::fork().map_err(|e| failed(e.into()))? {
                vessel_sys::process::Fork::Child => {
                    use std::io::Write;
                    let ns = vessel_sys::ns::Namespaces {
                        user: true,
                        ..Default::default()
                    };
                    let uid = vessel_sys::process::getuid();
                    let gid = vessel_sys::process::getgid();
                    let result = vessel_runtime::fakeroot::Fakeroot::current()
                        .enter(ns, uid, gid)
                        .map_err(UnpackError::from)
                        .and_then(|()| {
                            vessel_image::extract(&arc, rootfs, &opts(true))
                                .map_err(UnpackError::from)
                        });
                    let code = match result {
                        Ok(_) => 0,
                        Err(e) => {
                            let _ = report.write_all(error::one_line(&e).as_bytes());
                            1
                        }
                    };
                    vessel_sys::process::exit_now(code)
                }
                vessel_sys::process::Fork::Parent(pid) => pid,
            };
            let exit = vessel_sys::process::wait_for(pid).map_err(|e| failed(e.into()))?;
            if exit.status() != 0 {
                use std::io::{Read, Seek};
                let mut said = String::new();
                let _ = report.rewind();
                let _ = report.read_to_string(&mut said);
                if said.is_empty() {
                    return Err(BuildError::UnpackStatus {
                        image: image.to_path_buf(),
                        status: exit.status(),
                    });
                }
                return Err(failed(UnpackError::Child(said)));
            }
        }
    }
    Ok(())
}

/// Where the root file system lies in `file`: a SIF's primary partition,
/// or the whole file for a SquashFS image.
fn rootfs_region(file: &std::fs::File, image: &Path) -> Result<(u64, u64), BuildError> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 42];
    let len = file.metadata().map_err(io(image))?.len();
    if file.read_exact_at(&mut head, 0).is_ok() && &head[32..42] == b"SIF_MAGIC\0" {
        let sif =
            vessel_sif::Sif::load(file.try_clone().map_err(io(image))?).map_err(|source| {
                BuildError::SifRead {
                    image: image.to_path_buf(),
                    source,
                }
            })?;
        let part = sif
            .primary_partition()
            .ok_or_else(|| BuildError::NoRootfs {
                image: image.to_path_buf(),
            })?;
        return Ok((part.offset as u64, part.size as u64));
    }
    Ok((0, len))
}

fn copy_tree(src: &Path, dst: &Path) -> Result<(), BuildError> {
    run_checked(
        Command::new("cp")
            // -T: onto `dst` itself, never into a directory found there;
            // --remove-destination: an existing file is replaced, never
            // written through (an image's link names a host file here).
            .args([
                "-a",
                "-T",
                "--remove-destination",
                "--no-preserve=ownership",
            ])
            .arg(src)
            .arg(dst),
        src,
        |status| BuildError::Copy {
            src: src.to_path_buf(),
            status,
        },
    )
}

/// `%setup`: on the host, with `$APPTAINER_ROOTFS` naming the root.
fn run_setup(stage: &Stage, rootfs: &Path) -> Result<(), BuildError> {
    let s = &stage.sections.setup;
    if s.is_empty() {
        return Ok(());
    }
    tracing::info!("Running %setup on the host");
    let status = on_host(s, rootfs)?;
    if !status.success() {
        return Err(BuildError::Setup { status });
    }
    Ok(())
}

/// Runs a host section (`%pre`, `%setup`) as the building user, with
/// `$APPTAINER_ROOTFS` naming the root (which `%pre`, before the
/// bootstrap, sees not yet made).
fn on_host(s: &crate::def::Script, rootfs: &Path) -> Result<ExitStatus, BuildError> {
    let shell = s.interpreter.clone().unwrap_or_else(|| "/bin/sh".into());
    Command::new(&shell)
        .args(["-e", "-c", &s.body])
        .env("APPTAINER_ROOTFS", rootfs)
        .env("SINGULARITY_ROOTFS", rootfs)
        .status()
        .map_err(io(Path::new(&shell)))
}

/// `%files`: host paths (globs), or paths inside an earlier stage for
/// `%files from NAME`, copied to paths resolved inside the root, so that a
/// symlink in either image cannot send them elsewhere.
fn copy_files(
    stage: &Stage,
    rootfs: &Path,
    built: &[(Option<&str>, PathBuf)],
) -> Result<(), BuildError> {
    let root = BuildRoot::open(rootfs)?;
    for block in &stage.sections.files {
        let source_root = match &block.from {
            None => None,
            Some(name) => Some(
                built
                    .iter()
                    .find(|(n, _)| *n == Some(name.as_str()))
                    .map(|(_, p)| p.as_path())
                    .ok_or_else(|| BuildError::NoSuchStage {
                        stage: name.clone(),
                    })?,
            ),
        };
        for (src, dst) in &block.entries {
            let matches = match source_root {
                None => glob(src)?
                    .into_iter()
                    .map(|m| {
                        let shown = m.to_string_lossy().into_owned();
                        (m, shown)
                    })
                    .collect(),
                Some(from) => glob_in_stage(from, src)?,
            };
            if matches.is_empty() {
                return Err(BuildError::FilesUnmatched {
                    pattern: src.clone(),
                    stage: block.from.clone(),
                });
            }
            for (m, default_dest) in matches {
                let dest = dst.clone().unwrap_or(default_dest);
                copy_into_root(&root, &m, &dest)?;
            }
        }
    }
    Ok(())
}

/// Copies host path `src` to container path `dest`, resolved (and its
/// parent made) inside the root; an existing directory there receives
/// `src` under its own name.
pub(crate) fn copy_into_root(root: &BuildRoot, src: &Path, dest: &str) -> Result<(), BuildError> {
    let target = match root.copy_target(dest)? {
        Target::At(p) => p,
        Target::Into(_) => {
            let name = src.file_name().unwrap_or_default().to_string_lossy();
            let inside = format!("{}/{name}", dest.trim_end_matches('/'));
            match root.copy_target(&inside)? {
                Target::At(p) | Target::Into(p) => p,
            }
        }
    };
    copy_tree(src, &target)
}

/// Expands a `%files from` source inside an earlier stage's root: the
/// directory part is resolved as that container would see it (a symlink
/// cannot lead out to the host), the last component may hold a pattern.
/// Gives each match's host path and its path inside the stage.
fn glob_in_stage(stage_root: &Path, pattern: &str) -> Result<Vec<(PathBuf, String)>, BuildError> {
    let in_image = format!("/{}", pattern.trim_start_matches('/'));
    let (parent, last) = in_image.rsplit_once('/').unwrap_or(("", &in_image));
    let parent = if parent.is_empty() { "/" } else { parent };
    let root = vessel_image::RootDir::new(stage_root);
    let Some(host_parent) = root.resolve(parent).map_err(io(stage_root))? else {
        return Ok(vec![]);
    };
    let in_parent = |name: &str| {
        if parent == "/" {
            format!("/{name}")
        } else {
            format!("{parent}/{name}")
        }
    };
    if last.is_empty() {
        return Ok(vec![(host_parent, parent.to_string())]);
    }
    if !last.contains(['*', '?', '[']) {
        let host = host_parent.join(last);
        return Ok(if host.symlink_metadata().is_ok() {
            vec![(host, in_parent(last))]
        } else {
            vec![]
        });
    }
    Ok(shell_glob(&host_parent, last, true)?
        .iter()
        .filter(|name| !name.contains('/'))
        .map(|name| (host_parent.join(name), in_parent(name)))
        .collect())
}

/// Expands a `%files` source: `*`, `?` and `[…]` in the last component.
pub(crate) fn glob(pattern: &str) -> Result<Vec<PathBuf>, BuildError> {
    if !pattern.contains(['*', '?', '[']) {
        let p = PathBuf::from(pattern);
        return Ok(if p.exists() || p.is_symlink() {
            vec![p]
        } else {
            vec![]
        });
    }
    Ok(shell_glob(Path::new("."), pattern, false)?
        .into_iter()
        .map(PathBuf::from)
        .collect())
}

/// `sh`'s pathname expansion of `pattern` in `dir`, as Apptainer expands
/// `%files` sources with a shell expander: the names that exist and, with
/// `dangling`, links whose target does not.
fn shell_glob(dir: &Path, pattern: &str, dangling: bool) -> Result<Vec<String>, BuildError> {
    let exists = if dangling {
        "{ [ -e \"$f\" ] || [ -L \"$f\" ]; }"
    } else {
        "[ -e \"$f\" ]"
    };
    let script = format!("cd \"$1\" && for f in $2; do {exists} && printf '%s\\n' \"$f\"; done");
    let out = Command::new("sh")
        .args(["-c", &script, "glob"])
        .arg(dir)
        .arg(pattern)
        .output()
        .map_err(io(Path::new("sh")))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect())
}

/// Runs a section in the container as fake root, with the user's
/// `--bind`/`--mount` flags: `vessel exec --fakeroot --writable FLAGS
/// ROOTFS SHELL -e SCRIPT`.
fn run_in(
    tools: &Tools<'_>,
    rootfs: &Path,
    flags: &[String],
    script: &crate::def::Script,
    work: &Path,
    name: &'static str,
) -> Result<(), BuildError> {
    let shell = script
        .interpreter
        .clone()
        .unwrap_or_else(|| "/bin/sh".into());
    let file = work.join(format!("{name}.script"));
    std::fs::write(&file, &script.body).map_err(io(&file))?;
    let inside = format!("/.{name}.script");
    let in_root = BuildRoot::open(rootfs)?.file(&inside)?;
    std::fs::copy(&file, &in_root).map_err(io(&file))?;
    let status = Command::new(&tools.vessel)
        .args([
            "exec",
            "--fakeroot",
            "--writable",
            "--cleanenv",
            "--no-home",
        ])
        .args(flags)
        .args([
            "--env",
            "APPTAINER_ENVIRONMENT=/.singularity.d/env/91-environment.sh",
            "--env",
            &format!("APPTAINER_LABELS={POST_LABELS}"),
            "--env",
            &format!("SINGULARITY_LABELS={POST_LABELS}"),
            "--pwd",
            "/",
        ])
        .arg(rootfs)
        .args([shell.as_str(), "-e", inside.as_str()])
        .status()
        .map_err(io(&tools.vessel))?;
    let _ = std::fs::remove_file(&in_root);
    if !status.success() {
        return Err(BuildError::Section {
            section: name,
            status,
        });
    }
    Ok(())
}

/// Where `%post` may append `KEY VALUE` lines (`$APPTAINER_LABELS`).
const POST_LABELS: &str = "/.build.labels";

/// The labels `%post` wrote to `$APPTAINER_LABELS` (`KEY VALUE` lines; the
/// value is the rest of the line, trimmed; a line with no value is
/// skipped), as Apptainer reads `/.build.labels` after `%post`. A later
/// line replaces an earlier one with the same key.
fn parse_post_labels(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.trim().split_once(char::is_whitespace)?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Moves the labels `%post` wrote into `labels.json` (over the definition's
/// and the base image's), and removes the file.
fn add_post_labels(rootfs: &Path) -> Result<(), BuildError> {
    let root = BuildRoot::open(rootfs)?;
    let Some(text) = root.read(POST_LABELS) else {
        return Ok(());
    };
    let added = parse_post_labels(&text);
    if !added.is_empty() {
        let mut labels: BTreeMap<String, String> = root
            .read("/.singularity.d/labels.json")
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        labels.extend(added);
        root.write(
            "/.singularity.d/labels.json",
            &tab_indented_json(&labels)?,
            0o644,
        )?;
    }
    let file = root.file(POST_LABELS)?;
    std::fs::remove_file(&file).map_err(io(&file))
}

/// Writes a file with exactly `mode` (not filtered by the umask).
pub(crate) fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io(path))
}

/// JSON indented with tabs, as Apptainer writes `labels.json`.
pub(crate) fn tab_indented_json(value: &impl serde::Serialize) -> Result<String, BuildError> {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"\t"),
    );
    value.serialize(&mut ser)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The `/.singularity.d` layout, from the definition's sections.
fn write_metadata(
    def: &Definition,
    stage: &Stage,
    rootfs: &Path,
    opts: &BuildOptions,
) -> Result<(), BuildError> {
    let root = BuildRoot::open(rootfs)?;
    for d in ["", "/env", "/actions", "/libs"] {
        root.dir(&format!("/.singularity.d{d}"))?;
    }
    let write = |rel: &str, text: &str, mode: u32| {
        root.write(&format!("/.singularity.d/{rel}"), text, mode)
    };
    let script = |s: &crate::def::Script, default: &str| -> String {
        if s.is_empty() {
            return default.to_string();
        }
        let shebang = s.interpreter.clone().unwrap_or_else(|| "/bin/sh".into());
        format!("#!{shebang}\n\n{}\n", s.body.trim_end_matches('\n'))
    };
    let s = &stage.sections;
    // Without a %runscript or %startscript of its own, an image keeps its
    // base's, as Apptainer keeps a local image's and the OCI runscript
    // (ENTRYPOINT and CMD) of a registry image; the defaults are for a root
    // with none (scratch, debootstrap). An update keeps the sandbox's.
    let keep = |section: &crate::def::Script, rel: &str| {
        section.is_empty()
            && (opts.update || root.read(&format!("/.singularity.d/{rel}")).is_some())
    };
    if runs(opts, "runscript") && !keep(&s.runscript, "runscript") {
        write(
            "runscript",
            &script(
                &s.runscript,
                "#!/bin/sh\n\necho \"There is no runscript defined for this container\\n\";\n",
            ),
            0o755,
        )?;
    }
    if runs(opts, "runscript") && !keep(&s.startscript, "startscript") {
        write("startscript", &script(&s.startscript, "#!/bin/sh\n"), 0o755)?;
    }
    if runs(opts, "runscript") && !s.help.trim().is_empty() {
        write(
            "runscript.help",
            &format!("{}\n", s.help.trim_end_matches('\n')),
            0o644,
        )?;
    }
    if runs(opts, "test") && !s.test.is_empty() {
        write("test", &script(&s.test, ""), 0o755)?;
    }
    if runs(opts, "environment") {
        let env_existing = root
            .read("/.singularity.d/env/90-environment.sh")
            .unwrap_or_else(|| {
                "#!/bin/sh\n# Custom environment shell code should follow\n\n".into()
            });
        write(
            "env/90-environment.sh",
            &format!("{env_existing}{}\n", s.environment.trim_end_matches('\n')),
            0o755,
        )?;
        if root.read("/.singularity.d/env/01-base.sh").is_none() {
            write("env/01-base.sh", "#!/bin/sh\n", 0o755)?;
        }
    }
    if runs(opts, "labels") {
        let mut labels: BTreeMap<String, String> = root
            .read("/.singularity.d/labels.json")
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        for (k, v) in &s.labels {
            labels.insert(k.clone(), v.clone());
        }
        set_build_labels(&mut labels, stage, &opts.stamp);
        write("labels.json", &tab_indented_json(&labels)?, 0o644)?;
    }
    write("Singularity", &def.raw, 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_labels_are_key_and_rest_of_line() {
        assert_eq!(
            parse_post_labels("A 1\n\n  B  two words \nlonely\nA\t3\n"),
            [("A", "1"), ("B", "two words"), ("A", "3")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .to_vec()
        );
    }

    #[test]
    fn build_labels_replace_the_bases() {
        let def = crate::parse("t.def", "Bootstrap: localimage\nFrom: base.sif\n").unwrap();
        let mut labels: BTreeMap<String, String> = [
            (
                "org.label-schema.build-date",
                "Monday_1_January_2024_1:2:3_UTC",
            ),
            ("org.label-schema.build-arch", "ppc64le"),
            ("org.label-schema.usage.apptainer.version", "1.0.0"),
            (
                "org.label-schema.usage.singularity.deffile.bootstrap",
                "docker",
            ),
            ("org.label-schema.usage.singularity.deffile.from", "alpine"),
            ("org.label-schema.usage.singularity.deffile.osversion", "9"),
            ("Author", "kept"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let stamp = BuildStamp {
            date: "Tuesday_1_December_2026_16:2:0_UTC".into(),
            version: "1.4.5+vessel.0.1.0".into(),
        };
        set_build_labels(&mut labels, def.final_stage(), &stamp);
        let get = |k: &str| labels.get(k).map(String::as_str);
        assert_eq!(
            get("org.label-schema.build-date"),
            Some(stamp.date.as_str())
        );
        assert_eq!(
            get("org.label-schema.build-arch"),
            vessel_sif::Arch::host().go_name()
        );
        assert_eq!(
            get("org.label-schema.usage.apptainer.version"),
            Some("1.4.5+vessel.0.1.0")
        );
        let deffile = "org.label-schema.usage.singularity.deffile.";
        assert_eq!(get(&format!("{deffile}bootstrap")), Some("localimage"));
        assert_eq!(get(&format!("{deffile}from")), Some("base.sif"));
        assert_eq!(get(&format!("{deffile}osversion")), None);
        assert_eq!(get("Author"), Some("kept"));
        assert_eq!(get("org.label-schema.schema-version"), Some("1.0"));
    }
}
