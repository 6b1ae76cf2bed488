//! `exec`, `run`, `shell` and `test`: the parsed flags handed to the
//! library, which decides the launch options; then the container is run.

use anyhow::{Context, Result};
use vessel_config::conf::Conf;
use vessel_config::Tool;
use vessel_runtime::resolve::{is_source_uri, resolve_site, ActionFlags, Vars};
use vessel_runtime::Host;

use crate::cli::ActionArgs;

pub use vessel_runtime::resolve::Verb;

pub fn run(tool: Tool, verb: Verb, args: ActionArgs) -> Result<u8> {
    // `exec instance://NAME …`: a command in a running instance.
    if let Some(name) = args
        .rest
        .first()
        .and_then(|a| a.to_str())
        .and_then(|a| a.strip_prefix("instance://"))
    {
        let name = name.to_string();
        return super::instance::join(tool, verb, &name, args);
    }
    let mut host = Host::current();
    let mut prepared = prepare(tool, verb, args, &host)?;
    // The site may have the ranks of parallel launches share containers.
    let launch = vessel_runtime::instance::sharens::parallel_launch(&host.env);
    if let Some(launch) = &launch {
        if !prepared.opts.sharens && prepared.opts.site.sharens_in_steps {
            tracing::debug!(
                "{launch}: sharing one container per node (share namespaces in job steps = yes)"
            );
            prepared.opts.sharens = true;
        }
        if !prepared.opts.sharens {
            for w in vessel_runtime::instance::sharens::apart_warnings(&prepared.opts, launch) {
                tracing::warn!("{w}");
            }
            // Each rank its own user namespace: Open MPI must copy.
            if host.uid != 0 {
                let settings =
                    vessel_runtime::instance::sharens::apart_open_mpi_settings(&host.env);
                for (k, v) in &settings {
                    tracing::debug!(
                        "{launch} in containers of their own: {}={} (CMA cannot cross user namespaces)",
                        k.to_string_lossy(),
                        v.to_string_lossy()
                    );
                }
                host.env.extend(settings);
            }
        }
    }
    let status = if prepared.opts.sharens {
        vessel_runtime::instance::sharens::run(&prepared.opts, &host, prepared.image)?
    } else {
        vessel_runtime::launch_image(&prepared.opts, &host, prepared.image)?
    };
    Ok(u8::try_from(status).unwrap_or(255))
}

/// The launch options decided, the image fetched (a source URI) and
/// opened, and the site's execution control checked: all a launch needs.
pub(super) struct Prepared {
    pub opts: vessel_runtime::LaunchOptions,
    pub image: vessel_image::Image,
    /// A fetched image's temporary file, kept until the launch is over.
    pub _fetched: Option<vessel_oci::source::Fetched>,
}

pub(super) fn prepare(tool: Tool, verb: Verb, args: ActionArgs, host: &Host) -> Result<Prepared> {
    let registry = args.registry.clone();
    let extra = args.refused.registry_extra.clone();
    let vars = Vars {
        tool,
        get: &vessel_config::process_var,
    };
    // The site's configuration, read once: the library decides with it.
    let conf = site_conf(tool)?;
    let mut opts = resolve_site(verb, args.into(), &vars, host, &conf)?;
    // `exec docker://…` and the like: fetch into the cache (or a temporary
    // file), then run that.
    let image_arg = opts.image.to_string_lossy().into_owned();
    let fetched = if is_source_uri(&image_arg) {
        let fetched = super::pull::fetch(tool, &registry, &extra, None, None, &image_arg)?;
        opts.image = fetched.path().to_path_buf();
        Some(fetched)
    } else {
        None
    };
    // Opened once: execution control checks this file, and the container
    // runs from it, whatever happens to the path meanwhile.
    let mut image =
        vessel_image::open_image(&opts.image).map_err(vessel_runtime::LaunchError::from)?;
    execution_control(&conf, &mut image)?;
    Ok(Prepared {
        opts,
        image,
        _fetched: fetched,
    })
}

/// The administrator's execution control list (`vessel.conf`): a SIF image
/// runs only if it is signed as its execution group demands, checked before
/// anything is mounted. As in Apptainer, it governs SIF images only; other
/// image kinds are for the site's other settings to allow or not.
fn execution_control(conf: &Conf, image: &mut vessel_image::Image) -> Result<()> {
    let dir = vessel_config::conf::conf_dir()?;
    let path = conf
        .read_from
        .last()
        .cloned()
        .unwrap_or_else(|| dir.join("vessel.conf"));
    let ecl = &conf.execution_control;
    if !ecl.activated {
        return Ok(());
    }
    let vessel_image::Image::Sif { sif, path: named } = image else {
        return Ok(());
    };
    // The group is the directory the opened file really lies in.
    let real = std::fs::read_link(vessel_sys::path::fd_path(sif.get_ref()))
        .with_context(|| format!("cannot resolve the image path {}", named.display()))?;
    let global = vessel_sign::Keyring::global(dir);
    let keys = global
        .public_keys()
        .context("reading the global public keyring for the execution control list")?;
    vessel_sign::policy::check(ecl, &real, sif, &keys)
        .with_context(|| format!("{} does not allow this image to run", path.display()))
}

/// `vessel.conf`, or the Apptainer installation's files read in its place
/// (`--debug` says which), with its warnings printed.
fn site_conf(tool: Tool) -> Result<Conf> {
    let conf = Conf::load_site(tool)?;
    if conf.read_from.is_empty() {
        tracing::debug!("site configuration: no file, Apptainer's defaults");
    }
    for file in &conf.read_from {
        tracing::debug!("site configuration: read {}", file.display());
    }
    for w in &conf.warnings {
        tracing::warn!("{w}");
    }
    Ok(conf)
}

impl From<ActionArgs> for ActionFlags {
    fn from(a: ActionArgs) -> ActionFlags {
        let r = a.refused;
        let cgroups = [
            ("--apply-cgroups", r.apply_cgroups.is_some()),
            ("--cpus", r.cpus.is_some()),
            ("--cpu-shares", r.cpu_shares.is_some()),
            ("--cpuset-cpus", r.cpuset_cpus.is_some()),
            ("--cpuset-mems", r.cpuset_mems.is_some()),
            ("--memory", r.memory.is_some()),
            ("--memory-reservation", r.memory_reservation.is_some()),
            ("--memory-swap", r.memory_swap.is_some()),
            ("--pids-limit", r.pids_limit.is_some()),
            ("--blkio-weight", r.blkio_weight.is_some()),
            ("--blkio-weight-device", !r.blkio_weight_device.is_empty()),
            ("--oom-kill-disable", r.oom_kill_disable),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        ActionFlags {
            bind: a.bind,
            mount: a.mount,
            contain: a.contain,
            containall: a.containall,
            cleanenv: a.cleanenv,
            env: a.env,
            env_file: a.env_file,
            no_env: a.no_env,
            no_eval: a.no_eval,
            no_home: a.no_home,
            home: a.home,
            no_mount: a.no_mount,
            scratch: a.scratch,
            workdir: a.workdir,
            cwd: a.cwd,
            writable: a.writable,
            writable_tmpfs: a.writable_tmpfs,
            writable_tmpfs_size: a.writable_tmpfs_size,
            unsquash: a.unsquash,
            overlay: a.overlay,
            pid: a.pid,
            ipc: a.ipc,
            uts: a.uts,
            hostname: a.hostname,
            net: a.net,
            app: a.app,
            fakeroot: a.fakeroot,
            nv: r.nv,
            nvccli: r.nvccli,
            rocm: r.rocm,
            network: r.network,
            network_args: r.network_args,
            dns: r.dns,
            no_init: r.no_init,
            no_umask: r.no_umask,
            compat: r.compat,
            containlibs: r.containlibs,
            no_privs: r.no_privs,
            keep_privs: r.keep_privs,
            add_caps: r.add_caps,
            drop_caps: r.drop_caps,
            security: r.security,
            cgroups,
            sharens: r.sharens,
            device: r.device,
            allow_setuid: r.allow_setuid,
            no_pid: r.no_pid,
            underlay: r.underlay,
            ignore_fakeroot_command: r.ignore_fakeroot_command,
            ignore_subuid: r.ignore_subuid,
            ignore_userns: r.ignore_userns,
            no_nv: r.no_nv,
            no_rocm: r.no_rocm,
            compat32: r.compat32,
            cdi_dirs: r.cdi_dirs,
            fusemount: r.fusemount,
            intel_hpu: r.intel_hpu,
            netns_path: r.netns_path,
            passphrase: r.passphrase,
            pem_path: r.pem_path,
            docker_host: r.registry_extra.docker_host,
            runscript_timeout: r.runscript_timeout,
            rest: a.rest,
        }
    }
}
