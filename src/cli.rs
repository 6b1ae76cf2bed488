//! The command tree, mirroring Apptainer's: raw flags exactly as users type
//! them. Turning them into settings and library calls is `commands`' job.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "vessel",
    disable_version_flag = true,
    max_term_width = 100,
    about = "A container platform for HPC: run, build and share container images without privilege",
    long_about = "A container platform for HPC clusters, compatible with Apptainer and Singularity.\n\n\
Containers run as ordinary processes of the user who starts them, with no daemon and no \
privilege, so they work under batch schedulers and MPI launchers. Images are single SIF \
files that can live on shared parallel file systems.",
    after_help = "Environment: most options can also be set as APPTAINER_<OPTION> (or the legacy \
SINGULARITY_<OPTION>), for example APPTAINER_DEBUG=1."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print debugging messages
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// Print more messages about what is being done
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Print only warnings and errors
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Print only errors
    #[arg(short = 's', long)]
    pub silent: bool,

    /// Never color messages
    #[arg(long)]
    pub nocolor: bool,

    /// Print the version and exit
    #[arg(long)]
    pub version: bool,

    /// Another apptainer.conf (refused: Vessel's site configuration is vessel.conf)
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Apptainer's configuration for builds' nested runs (refused: internal to Apptainer)
    #[arg(long, hide = true)]
    pub build_config: bool,
}

/// Each subcommand's flags are made only when it runs (`defer`): making
/// every subcommand's (a thousand flags) was half of a start-up's own
/// time.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    // --- Running containers ---
    /// Run a command inside a container
    #[command(
        display_order = 10,
        after_help = "Examples:\n  vessel exec app.sif python3 train.py --epochs 10\n  \
vessel exec --bind /scratch/$USER:/data app.sif ls /data\n  \
srun vessel exec app.sif ./simulation"
    )]
    Exec(ActionArgs),
    /// Run a container's default command (its runscript)
    #[command(display_order = 11)]
    Run(ActionArgs),
    /// Start an interactive shell inside a container
    #[command(display_order = 12)]
    Shell(ShellArgs),
    /// Run a container's own tests (its %test section)
    #[command(display_order = 13)]
    Test(ActionArgs),
    /// Show the help text written by a container's author
    #[command(name = "run-help", display_order = 14)]
    RunHelp(RunHelpArgs),
    /// Manage containers running in the background as services
    #[command(display_order = 15)]
    Instance(InstanceArgs),

    // --- Images ---
    /// Build a container image from a definition file, another image or a registry
    #[command(display_order = 20)]
    Build(BuildArgs),
    /// Download an image from a registry into a SIF file
    #[command(
        display_order = 21,
        after_help = "Examples:\n  vessel pull docker://ubuntu:24.04            writes ubuntu_24.04.sif\n  \
vessel pull app.sif docker://registry.example.org/team/app:1.2\n  \
vessel pull --no-https docker://127.0.0.1:5000/busybox:latest"
    )]
    Pull(PullArgs),
    /// Upload a SIF image to a registry
    #[command(
        display_order = 22,
        after_help = "Examples:\n  vessel push app.sif oras://registry.example.org/team/app:1.2"
    )]
    Push(PushArgs),
    /// Delete an image from a registry
    #[command(display_order = 23)]
    Delete(NotYet),
    /// Add a tag to an image in an OCI registry
    #[command(display_order = 24)]
    Tag(NotYet),
    /// Search a registry for images
    #[command(display_order = 25)]
    Search(NotYet),
    /// Show an image's metadata: labels, scripts, environment, definition file
    #[command(display_order = 26)]
    Inspect(InspectArgs),
    /// Create writable overlay images
    #[command(display_order = 27)]
    Overlay(OverlayArgs),
    /// Read and change the objects inside a SIF file
    #[command(alias = "siftool", display_order = 28)]
    Sif(SifArgs),
    /// List or clean the local image cache
    #[command(display_order = 29)]
    Cache(CacheArgs),

    // --- Trust ---
    /// Add digital signatures to a SIF image
    #[command(
        display_order = 30,
        after_help = "Examples:\n  vessel sign app.sif                     PGP, your first secret key\n  \
vessel sign --keyidx 1 --group-id 1 app.sif\n  \
vessel sign --key private.pem app.sif   DSSE (RSA, ECDSA or Ed25519)"
    )]
    Sign(SignArgs),
    /// Check the digital signatures of a SIF image
    #[command(
        display_order = 31,
        after_help = "Examples:\n  vessel verify app.sif\n  \
vessel verify --key public.pem app.sif\n  \
vessel verify --legacy-insecure --json old.sif"
    )]
    Verify(VerifyArgs),
    /// Manage the OpenPGP keys used to sign and verify images
    #[command(alias = "keys", display_order = 32)]
    Key(KeyArgs),
    /// Manage the key servers used to find OpenPGP keys
    #[command(display_order = 33)]
    Keyserver(NotYet),

    // --- Endpoints and site configuration ---
    /// Manage remote service endpoints (libraries, key servers)
    #[command(display_order = 40)]
    Remote(NotYet),
    /// Manage login credentials for OCI registries
    #[command(display_order = 41)]
    Registry(RegistryArgs),
    /// Manage the Linux capabilities granted to users and groups
    #[command(alias = "caps", display_order = 42)]
    Capability(NotYet),
    /// Change the site configuration (fakeroot mappings, global settings)
    #[command(display_order = 43)]
    Config(ConfigArgs),
    /// Manage OCI bundle containers through a runc-like interface
    #[command(display_order = 44)]
    Oci(NotYet),
    /// Manage plugins
    #[command(alias = "plugins", display_order = 45)]
    Plugin(NotYet),
    /// Manage container checkpoints (experimental)
    #[command(display_order = 46)]
    Checkpoint(NotYet),

    /// Check that this node can run containers for you: user namespaces, /dev/fuse, fake root, caches
    #[command(
        display_order = 49,
        after_help = "Each check prints PASS, INFO, WARN or FAIL, one line of what it found, and for \
WARN and FAIL the fix. The checks make a user namespace, an overlay and a FUSE mount for real, in a \
throwaway child.\n\nExit status: 0 when no check FAILs, 1 when one does.\n\nExamples:\n  \
vessel doctor\n  vessel doctor --json      for monitoring: [{check, status, finding, fix}, …]"
    )]
    Doctor(DoctorArgs),

    // --- This program ---
    /// Show the version
    #[command(display_order = 50)]
    Version,
    /// Print a shell completion script
    #[command(display_order = 51)]
    Completion(CompletionArgs),
    /// Show how Vessel was built and installed (directories, version)
    #[command(display_order = 52)]
    Buildcfg(BuildcfgArgs),

    /// Internal: run a host command as fake root (used by `build`)
    #[command(name = "__fakeroot", hide = true)]
    FakerootRun(FakerootRunArgs),
    /// Internal: serve an image through FUSE at a directory around a host command (tests, benchmarks)
    #[command(name = "__mount-image", hide = true)]
    MountImage(MountImageArgs),
    /// Internal: print the flag compatibility table as tab-separated rows (tests)
    #[command(name = "__compat-table", hide = true)]
    CompatTable,
    /// Internal: an instance's init, re-executed by its payload, its plan on descriptor FD
    #[command(name = "__instance-init", hide = true)]
    InstanceInit { fd: i32 },
}

impl Command {
    /// The command's name as typed, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Exec(_) => "exec",
            Command::Run(_) => "run",
            Command::Shell(_) => "shell",
            Command::Test(_) => "test",
            Command::RunHelp(_) => "run-help",
            Command::Instance(_) => "instance",
            Command::Build(_) => "build",
            Command::Pull(_) => "pull",
            Command::Push(_) => "push",
            Command::Delete(_) => "delete",
            Command::Tag(_) => "tag",
            Command::Search(_) => "search",
            Command::Inspect(_) => "inspect",
            Command::Overlay(_) => "overlay",
            Command::Sif(_) => "sif",
            Command::Cache(_) => "cache",
            Command::Sign(_) => "sign",
            Command::Verify(_) => "verify",
            Command::Key(_) => "key",
            Command::Keyserver(_) => "keyserver",
            Command::Remote(_) => "remote",
            Command::Registry(_) => "registry",
            Command::Capability(_) => "capability",
            Command::Config(_) => "config",
            Command::Oci(_) => "oci",
            Command::Plugin(_) => "plugin",
            Command::Checkpoint(_) => "checkpoint",
            Command::Doctor(_) => "doctor",
            Command::Version => "version",
            Command::Completion(_) => "completion",
            Command::Buildcfg(_) => "buildcfg",
            Command::FakerootRun(_) => "__fakeroot",
            Command::MountImage(_) => "__mount-image",
            Command::CompatTable => "__compat-table",
            Command::InstanceInit { .. } => "__instance-init",
        }
    }
}

// How to reach registries, shared by the commands that pull.
#[derive(Debug, Args, Clone)]
pub struct RegistryOptions {
    /// Use plain HTTP instead of HTTPS for the registry
    #[arg(long = "no-https", visible_alias = "nohttps")]
    pub no_https: bool,
    /// Docker-style credentials file (default ~/.apptainer/docker-config.json, then ~/.docker/config.json)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Do not use or fill the cache
    #[arg(long)]
    pub disable_cache: bool,
    /// Ask for the registry user name and password
    #[arg(long)]
    pub docker_login: bool,
}

// The registry flags of `build`, `pull` and `push` that the action
// commands declare among their own (`RefusedActionArgs`).
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryExtra {
    /// Registry user name (default: APPTAINER_DOCKER_USERNAME, DOCKER_USERNAME)
    #[arg(long, value_name = "NAME", hide = true)]
    pub docker_username: Option<String>,
    /// Registry password (default: APPTAINER_DOCKER_PASSWORD, DOCKER_PASSWORD)
    #[arg(long, value_name = "PASSWORD", hide = true)]
    pub docker_password: Option<String>,
    /// Docker daemon for docker-daemon: sources (refused: Vessel does not talk to Docker daemons)
    #[arg(long, value_name = "HOST")]
    pub docker_host: Option<String>,
    /// Directory for temporary files (default: APPTAINER_TMPDIR, TMPDIR, /tmp)
    #[arg(long, value_name = "DIR", hide = true)]
    pub tmpdir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Overwrite an existing image file
    #[arg(short = 'F', long)]
    pub force: bool,
    /// Architecture to pull from a multi-architecture image (amd64, arm64, …)
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Architecture variant (v7, v8, …)
    #[arg(long, value_name = "VARIANT")]
    pub arch_variant: Option<String>,
    /// Platform to pull from a multi-architecture image, as OS/ARCH[/VARIANT] (linux only)
    #[arg(long, value_name = "PLATFORM", conflicts_with_all = ["arch", "arch_variant"])]
    pub platform: Option<String>,
    /// Directory to write the image to
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Name of the pulled image file (instead of OUTPUT; with --dir, a name in it).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Do not verify signatures: Vessel's sources (docker://, oras://, oci:)
    /// carry none to check, so this changes nothing.
    #[arg(short = 'U', long)]
    pub allow_unsigned: bool,
    /// Keep temporary files of a failed conversion: Vessel leaves none.
    #[arg(long)]
    pub no_cleanup: bool,
    /// Pull into a sandbox directory instead of a SIF file
    #[arg(long)]
    pub sandbox: bool,
    /// Sylabs container library URL (refused: Vessel does not use the library)
    #[arg(long, value_name = "URL")]
    pub library: Option<String>,
    /// Pull unsigned images from a library: Vessel's sources are not signed, so this changes nothing
    #[arg(long, hide = true)]
    pub allow_unauthenticated: bool,
    /// Deterministic image (refused: not implemented yet)
    #[arg(long)]
    pub reproducible: bool,
    #[command(flatten)]
    pub registry: RegistryOptions,
    #[command(flatten)]
    pub extra: RegistryExtra,
    /// [OUTPUT.sif] SOURCE, where SOURCE is docker://NAME[:TAG]
    #[arg(value_name = "[OUTPUT] SOURCE", required = true, num_args = 1..=2)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunHelpArgs {
    /// Show the help of this SCIF app
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// The image
    pub image: PathBuf,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub registry: RegistryOptions,
    #[command(flatten)]
    pub extra: RegistryExtra,
    /// Sylabs container library URL (refused: Vessel does not use the library)
    #[arg(long, value_name = "URL")]
    pub library: Option<String>,
    /// Push an unsigned image without a warning: Vessel gives none, so this changes nothing
    #[arg(short = 'U', long)]
    pub allow_unsigned: bool,
    /// Description of the image (only the Sylabs library keeps one: ignored with a warning)
    #[arg(short = 'D', long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Annotation of the pushed manifest, KEY=VALUE (refused: not implemented yet)
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// The SIF image to upload
    #[arg(value_name = "IMAGE")]
    pub image: std::path::PathBuf,
    /// Where to: oras://REGISTRY/NAME:TAG
    #[arg(value_name = "URI")]
    pub uri: String,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Overwrite an existing image
    #[arg(short = 'F', long)]
    pub force: bool,
    /// Build a sandbox directory instead of a SIF file
    #[arg(short = 's', long)]
    pub sandbox: bool,
    /// Architecture to build for, from a multi-architecture source
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Architecture variant (v7, v8, …)
    #[arg(long, value_name = "VARIANT")]
    pub arch_variant: Option<String>,
    #[command(flatten)]
    pub registry: RegistryOptions,
    #[command(flatten)]
    pub extra: RegistryExtra,
    /// The definition is JSON (refused: Vessel reads definition files only)
    #[arg(long)]
    pub json: bool,
    /// Never use a setuid helper: Vessel never does (builds always run in a user namespace)
    #[arg(long)]
    pub userns: bool,
    /// Sylabs container library URL (refused: Vessel does not use the library)
    #[arg(long, value_name = "URL")]
    pub library: Option<String>,
    /// Keep the temporary files of a failed build (Vessel removes them; warns)
    #[arg(long)]
    pub no_cleanup: bool,
    /// Make a data container from a SquashFS file (refused: not implemented yet)
    #[arg(long)]
    pub data: bool,
    /// Encrypt the image (refused: Vessel does not make or run encrypted images)
    #[arg(short = 'e', long)]
    pub encrypt: bool,
    /// Passphrase of an encrypted image (refused: no encrypted images)
    #[arg(long)]
    pub passphrase: bool,
    /// RSA key of an encrypted image (refused: no encrypted images)
    #[arg(long, value_name = "FILE")]
    pub pem_path: Option<PathBuf>,
    /// NVIDIA GPUs in %post and %test (the host's driver, as exec --nv)
    #[arg(long)]
    pub nv: bool,
    /// GPUs through nvidia-container-cli in %post and %test (refused: not implemented yet)
    #[arg(long)]
    pub nvccli: bool,
    /// AMD GPUs in %post and %test (the host's ROCm driver, as exec --rocm)
    #[arg(long)]
    pub rocm: bool,
    /// With --nv or --rocm: their 32-bit libraries too
    #[arg(long)]
    pub compat32: bool,
    /// Deterministic image (refused: not implemented yet)
    #[arg(long)]
    pub reproducible: bool,
    /// BuildKit daemon for dockerfile: sources (refused: not supported)
    #[arg(long, value_name = "HOST")]
    pub buildkit_host: Option<String>,
    /// Map only root in the build's namespace (refused for builds: not implemented yet)
    #[arg(long, hide = true)]
    pub ignore_subuid: bool,
    /// Never use fakeroot(1): Vessel never does
    #[arg(long, hide = true)]
    pub ignore_fakeroot_command: bool,
    /// Never use PRoot: Vessel never does
    #[arg(long, hide = true)]
    pub ignore_proot: bool,
    /// Never use a user namespace (refused: Vessel's builds always do)
    #[arg(long, hide = true)]
    pub ignore_userns: bool,
    /// Build on a remote builder (refused: no longer supported, as in Apptainer)
    #[arg(long, hide = true)]
    pub remote: bool,
    /// Skip the definition's %test section
    #[arg(short = 'T', long)]
    pub notest: bool,
    /// Give the owner read/write on everything in the image (for sandboxes the user must change or delete)
    #[arg(long)]
    pub fix_perms: bool,
    /// Run the definition over an existing sandbox (no bootstrap)
    #[arg(short = 'u', long)]
    pub update: bool,
    /// Only run these sections: setup, files, post, environment, labels, runscript, test, none, all
    #[arg(long, value_name = "SECTION", value_delimiter = ',')]
    pub section: Vec<String>,
    /// Set a {{ build argument }}: KEY=VALUE (repeatable)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_arg: Vec<String>,
    /// File of KEY=VALUE build arguments
    #[arg(long = "build-arg-file", value_name = "FILE")]
    pub build_arg_file: Option<std::path::PathBuf>,
    /// Warn about build arguments the definition does not use, instead of failing
    #[arg(long)]
    pub warn_unused_build_args: bool,
    /// Extra mksquashfs options for the image, e.g. "-comp zstd" (gzip is the default)
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub mksquashfs_args: Option<String>,
    /// Build as fake root (what unprivileged builds always do; accepted for compatibility)
    #[arg(short = 'f', long)]
    pub fakeroot: bool,
    /// Bind a host path into the %post and %test runs: SRC[:DST[:ro|rw]], comma-separated or repeated
    #[arg(short = 'B', long = "bind", value_name = "SPEC")]
    pub bind: Vec<String>,
    /// Bind into the %post and %test runs in Docker's syntax: type=bind,src=SRC,dst=DST[,ro]
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Run %test with a writable root whose changes are discarded
    #[arg(long)]
    pub writable_tmpfs: bool,
    /// The image to write
    #[arg(value_name = "IMAGE")]
    pub output: std::path::PathBuf,
    /// What to build from: a definition file, or an image (docker://…, oras://…, oci:…, a SIF)
    #[arg(value_name = "SPEC")]
    pub spec: String,
}

#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub command: CacheCommand,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// List what the cache holds
    List {
        /// Kinds to list: blob, oci (converted images), all
        #[arg(
            short = 'T',
            long = "type",
            value_delimiter = ',',
            default_value = "all"
        )]
        kinds: Vec<String>,
        /// One line per entry
        #[arg(short = 'v', long)]
        verbose: bool,
    },
    /// Remove cache entries
    Clean {
        /// Kinds to remove: blob, oci (converted images), all
        #[arg(
            short = 'T',
            long = "type",
            value_delimiter = ',',
            default_value = "all"
        )]
        kinds: Vec<String>,
        /// Only entries older than this many days
        #[arg(short = 'D', long, value_name = "DAYS")]
        days: Option<u64>,
        /// Show what would be removed, remove nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Do not ask for confirmation
        #[arg(short = 'f', long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Remote endpoints file (refused: Vessel keeps no remote endpoint configuration)
    // Its own id: the root's `--config` is another flag.
    #[arg(
        id = "registry_config",
        short = 'c',
        long = "config",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: RegistryCommand,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Store credentials for a registry
    Login {
        /// User name
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// Password (prefer --password-stdin: command lines are visible to other users)
        #[arg(short = 'p', long)]
        password: Option<String>,
        /// Read the password from standard input
        #[arg(long)]
        password_stdin: bool,
        /// Credentials file to write
        #[arg(long, value_name = "FILE")]
        authfile: Option<PathBuf>,
        /// The registry, as docker://HOST[:PORT] or HOST[:PORT]
        registry: String,
    },
    /// Remove the credentials of a registry
    Logout {
        /// Credentials file to change
        #[arg(long, value_name = "FILE")]
        authfile: Option<PathBuf>,
        /// The registry, as docker://HOST[:PORT] or HOST[:PORT]
        registry: String,
    },
    /// List the registries with stored credentials
    List {
        /// Credentials file to read
        #[arg(long, value_name = "FILE")]
        authfile: Option<PathBuf>,
    },
}

// The objects `sign` and `verify` work on, instead of every object group.
#[derive(Debug, Args)]
pub struct ObjectChoice {
    /// Only the objects of this group
    #[arg(short = 'g', long = "group-id", visible_alias = "groupid", value_name = "ID", conflicts_with_all = ["sif_id", "all"])]
    pub group_id: Option<u32>,
    /// Only this object
    #[arg(
        short = 'i',
        long = "sif-id",
        visible_alias = "id",
        value_name = "ID",
        conflicts_with = "all"
    )]
    pub sif_id: Option<u32>,
}

// Options of `sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    #[command(flatten)]
    pub objects: ObjectChoice,
    /// Sign every object group (the default; accepted for Apptainer's scripts)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// PGP secret key to use: its index in `key list --secret`
    #[arg(short = 'k', long, value_name = "N", conflicts_with = "key")]
    pub keyidx: Option<usize>,
    /// Sign with this PEM private key (DSSE) instead of a PGP key
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Keyring directory (default ~/.apptainer/keys)
    #[arg(short = 'd', long, value_name = "DIR")]
    pub keysdir: Option<PathBuf>,
    /// The SIF image to sign
    pub image: PathBuf,
}

// Options of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub objects: ObjectChoice,
    /// With --legacy-insecure, verify every object on its own (current signatures always cover every group)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Verify with this PEM public key (DSSE signatures)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Use only the local keyrings (Vessel never asks a key server)
    #[arg(short = 'l', long)]
    pub local: bool,
    /// Print the result as JSON
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Also accept legacy (Singularity 3.x, insecure) signatures
    #[arg(long)]
    pub legacy_insecure: bool,
    /// Key server URL (Vessel verifies with local keys only: ignored with a warning)
    #[arg(short = 'u', long, value_name = "URL", hide = true)]
    pub url: Option<String>,
    /// X.509 certificate to verify with (refused: not implemented yet)
    #[arg(long, value_name = "FILE")]
    pub certificate: Option<PathBuf>,
    /// Intermediate certificates (refused: not implemented yet)
    #[arg(long, value_name = "FILE")]
    pub certificate_intermediates: Option<PathBuf>,
    /// Root certificates (refused: not implemented yet)
    #[arg(long, value_name = "FILE")]
    pub certificate_roots: Option<PathBuf>,
    /// Check certificates with OCSP (refused: not implemented yet)
    #[arg(long)]
    pub ocsp_verify: bool,
    /// Keyring directory (default ~/.apptainer/keys)
    #[arg(short = 'd', long, value_name = "DIR")]
    pub keysdir: Option<PathBuf>,
    /// The SIF image to verify
    pub image: PathBuf,
}

// `key` and its subcommands.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Use the global public keyring (in the configuration directory; changing it needs root)
    #[arg(short = 'g', long, global = true)]
    pub global: bool,
    /// Keyring directory (default ~/.apptainer/keys)
    #[arg(short = 'd', long, global = true, value_name = "DIR")]
    pub keysdir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a new OpenPGP key pair in your keyrings
    #[command(
        after_help = "Example:\n  vessel key newpair --name 'Ada Lovelace' --email ada@example.org --password '' --bit-length 4096"
    )]
    Newpair {
        /// Key owner's name
        #[arg(short = 'N', long)]
        name: Option<String>,
        /// Key owner's email
        #[arg(short = 'E', long)]
        email: Option<String>,
        /// Key comment
        #[arg(short = 'C', long)]
        comment: Option<String>,
        /// Passphrase protecting the secret key ('' for none)
        #[arg(short = 'P', long)]
        password: Option<String>,
        /// RSA key length in bits
        #[arg(short = 'b', long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(2048..=8192))]
        bit_length: u32,
        /// Upload the public key to a key server (not supported)
        #[arg(short = 'U', long, hide = true)]
        push: bool,
    },
    /// List the keys of your keyrings
    List {
        /// List the secret keys instead of the public ones
        #[arg(short = 's', long)]
        secret: bool,
    },
    /// Add keys from a file (armored or binary, public or secret)
    Import {
        /// Re-protect an imported secret key with a new passphrase
        #[arg(long)]
        new_password: bool,
        /// The key file
        file: PathBuf,
    },
    /// Write a key to a file
    Export {
        /// Export the secret key
        #[arg(short = 's', long)]
        secret: bool,
        /// ASCII-armored output
        #[arg(short = 'a', long)]
        armor: bool,
        /// Fingerprint (or key id) of the key
        fingerprint: String,
        /// The file to write
        file: PathBuf,
    },
    /// Search a key server (refused: Vessel does not talk to key servers)
    Search {
        /// Key server URL
        #[arg(short = 'u', long, value_name = "URL")]
        url: Option<String>,
        /// Long listing
        #[arg(short = 'l', long)]
        long_list: bool,
        /// What to search for
        query: String,
    },
    /// Fetch a key from a key server (refused: Vessel does not talk to key servers)
    Pull {
        /// Key server URL
        #[arg(short = 'u', long, value_name = "URL")]
        url: Option<String>,
        /// Fingerprint of the key
        fingerprint: String,
    },
    /// Upload a key to a key server (refused: Vessel does not talk to key servers)
    Push {
        /// Key server URL
        #[arg(short = 'u', long, value_name = "URL")]
        url: Option<String>,
        /// Fingerprint of the key
        fingerprint: String,
    },
    /// Remove a key from your keyrings
    Remove {
        /// Remove the public key (the default)
        #[arg(short = 'p', long)]
        public: bool,
        /// Remove the secret key
        #[arg(short = 's', long)]
        secret: bool,
        /// Remove both keys
        #[arg(short = 'b', long)]
        both: bool,
        /// Fingerprint (or key id) of the key
        fingerprint: String,
    },
}

// Options of `exec`, `run`, `shell` and `test`, in Apptainer's grammar:
// flags before the image, everything after it is the command's. A flag
// given twice takes its last value (lists accumulate), as with pflag.
#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct ActionArgs {
    /// Bind a host path into the container: SRC[:DST[:ro|rw]], comma-separated or repeated
    #[arg(short = 'B', long = "bind", value_name = "SPEC")]
    pub bind: Vec<String>,
    /// Bind in Docker's syntax: type=bind,src=SRC,dst=DST[,ro]
    #[arg(long = "mount", value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Use a minimal /dev and empty home and temporary directories
    #[arg(short = 'c', long)]
    pub contain: bool,
    /// Contain file systems, PIDs, IPC and the environment (--contain --pid --ipc --cleanenv)
    #[arg(short = 'C', long)]
    pub containall: bool,
    /// Do not pass the host's environment (except TERM, proxies and launcher variables)
    #[arg(short = 'e', long)]
    pub cleanenv: bool,
    /// Set variables in the container: KEY=VALUE[,KEY=VALUE...] (repeatable; beats every other source)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Set the variables of a file of KEY=VALUE lines
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Host variables not to pass into the container
    #[arg(long = "no-env", value_name = "NAME", value_delimiter = ',')]
    pub no_env: Vec<String>,
    /// Take variable values literally, without shell expansion
    #[arg(long)]
    pub no_eval: bool,
    /// Do not mount the home directory
    #[arg(long)]
    pub no_home: bool,
    /// Home directory: SRC[:DST] (default: your home, at the same path)
    #[arg(short = 'H', long, value_name = "SPEC")]
    pub home: Option<String>,
    /// Leave out default mounts: proc, sys, dev, tmp, home, cwd, bind-paths, or a path such as /etc/hosts
    #[arg(long = "no-mount", value_name = "WHAT", value_delimiter = ',')]
    pub no_mount: Vec<String>,
    /// Empty writable directories at these container paths
    #[arg(short = 'S', long, value_name = "PATH", value_delimiter = ',')]
    pub scratch: Vec<PathBuf>,
    /// Host directory holding /tmp, /var/tmp, home and scratch under --contain
    #[arg(short = 'W', long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Initial working directory in the container
    #[arg(long, visible_alias = "pwd", value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Mount a sandbox directory read-write
    #[arg(short = 'w', long)]
    pub writable: bool,
    /// Make the container writable, with changes kept in memory and discarded at exit
    #[arg(long)]
    pub writable_tmpfs: bool,
    /// Size of the memory behind --writable-tmpfs, in MiB [default: the site's sessiondir max size, 64]
    #[arg(long, value_name = "MIB")]
    pub writable_tmpfs_size: Option<u64>,
    /// Unpack the image into the node-local cache instead of serving it through FUSE
    #[arg(long)]
    pub unsquash: bool,
    /// Overlay directory: DIR (changes go there) or DIR:ro
    #[arg(short = 'o', long, value_name = "DIR[:ro]")]
    pub overlay: Vec<String>,
    /// Run in a new PID namespace (with a small init that reaps zombies)
    #[arg(short = 'p', long)]
    pub pid: bool,
    /// Run in a new IPC namespace
    #[arg(short = 'i', long)]
    pub ipc: bool,
    /// Run in a new UTS namespace
    #[arg(long)]
    pub uts: bool,
    /// Set the host name (implies --uts)
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Run in a new network namespace (loopback only)
    #[arg(short = 'n', long)]
    pub net: bool,
    /// Run a SCIF app of the image
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// Always use a user namespace (Vessel always does; accepted for compatibility)
    #[arg(short = 'u', long)]
    pub userns: bool,
    /// Appear as root inside the container (root over its files, none on the host)
    #[arg(short = 'f', long)]
    pub fakeroot: bool,
    #[command(flatten)]
    pub registry: RegistryOptions,
    #[command(flatten)]
    pub refused: RefusedActionArgs,
    /// The image (SIF, SquashFS or sandbox directory), then the command and its arguments.
    /// Everything after the image is the command's, flags included; an unknown flag
    /// before it is an error, never an image path.
    #[arg(
        value_name = "IMAGE [ARGS]...",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub rest: Vec<OsString>,
}

// Apptainer's action flags that Vessel honours only in part, or by what
// it always does, or refuses: the library decides each (refusals name the
// flag and why: GPUs, CNI networks, cgroups, root-only settings for other
// users), so that none is taken for the image or silently ignored.
#[derive(Debug, Args, Default)]
pub struct RefusedActionArgs {
    /// NVIDIA GPUs: the host's driver (libraries, programs, devices) in the container
    #[arg(long)]
    pub nv: bool,
    /// NVIDIA GPUs through nvidia-container-cli (not implemented yet: use --nv)
    #[arg(long)]
    pub nvccli: bool,
    /// AMD GPUs: the host's ROCm driver (libraries, programs, /dev/kfd, /dev/dri) in the container
    #[arg(long)]
    pub rocm: bool,
    /// Network: `none` (loopback only, like --net); CNI networks need root
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// CNI network arguments (need CNI and root)
    #[arg(long, value_name = "ARGS")]
    pub network_args: Vec<String>,
    /// Name servers for the container's /etc/resolv.conf
    #[arg(long, value_name = "IP[,IP...]")]
    pub dns: Option<String>,
    /// Do not run an init as PID 1 in a PID namespace
    #[arg(long)]
    pub no_init: bool,
    /// Do not pass the host's umask; use 0022
    #[arg(long)]
    pub no_umask: bool,
    /// OCI compatibility: --containall --writable-tmpfs --no-init --no-umask --no-eval
    #[arg(long)]
    pub compat: bool,
    /// Host library files to bind into /.singularity.d/libs (on LD_LIBRARY_PATH)
    #[arg(long, value_name = "LIB[,LIB...]", hide = true)]
    pub containlibs: Vec<String>,
    /// Drop all capabilities, even root's (root only)
    #[arg(long)]
    pub no_privs: bool,
    /// Keep all of root's capabilities, the default (root only)
    #[arg(long)]
    pub keep_privs: bool,
    /// Capabilities to add, comma-separated (root only)
    #[arg(long, value_name = "CAPS")]
    pub add_caps: Option<String>,
    /// Capabilities to drop, comma-separated, or all (root only)
    #[arg(long, value_name = "CAPS")]
    pub drop_caps: Option<String>,
    /// Let setuid programs in the image work: no nosuid on its mount (root only)
    #[arg(long)]
    pub allow_setuid: bool,
    /// No PID namespace, even with --containall or --compat
    #[arg(long)]
    pub no_pid: bool,
    /// Use an underlay (binds of the image's entries in a tmpfs) instead of an overlay for the read-only root
    #[arg(long)]
    pub underlay: bool,
    /// Never use fakeroot(1): Vessel never does, so this changes nothing
    #[arg(long, hide = true)]
    pub ignore_fakeroot_command: bool,
    /// With --fakeroot, map only root, even with subordinate ids in /etc/subuid
    #[arg(long, hide = true)]
    pub ignore_subuid: bool,
    /// Never use a user namespace: root never does (refused for other users)
    #[arg(long, hide = true)]
    pub ignore_userns: bool,
    /// No NVIDIA GPUs, even where the site always uses them
    #[arg(long, hide = true)]
    pub no_nv: bool,
    /// No AMD GPUs, even where the site always uses them
    #[arg(long, hide = true)]
    pub no_rocm: bool,
    /// With --nv or --rocm: their 32-bit libraries too, in /.singularity.d/libs32
    #[arg(long)]
    pub compat32: bool,
    /// Directories of CDI specifications (default /etc/cdi, /var/run/cdi)
    #[arg(long, value_name = "DIR")]
    pub cdi_dirs: Vec<String>,
    /// FUSE mounts in the container (not supported: mount on the host and bind)
    #[arg(long, value_name = "SPEC")]
    pub fusemount: Vec<String>,
    /// Intel Gaudi devices (not supported)
    #[arg(long)]
    pub intel_hpu: bool,
    /// Join a network namespace (not supported)
    #[arg(long, value_name = "PATH")]
    pub netns_path: Option<String>,
    /// Passphrase of an encrypted image (not supported: no encrypted images)
    #[arg(long)]
    pub passphrase: bool,
    /// Key of an encrypted image (not supported: no encrypted images)
    #[arg(long, value_name = "FILE")]
    pub pem_path: Option<String>,
    /// Time limit of the runscript's evaluation (no effect: Vessel evaluates it with /bin/sh)
    #[arg(long, value_name = "DURATION")]
    pub runscript_timeout: Option<String>,
    /// `--docker-username`, `--docker-password`, `--tmpdir` (for an
    /// `exec docker://…` fetch) and `--docker-host` (refused).
    #[command(flatten)]
    pub registry_extra: RegistryExtra,
    /// Security options: seccomp:, apparmor:, selinux:, uid:, gid: (not implemented yet)
    #[arg(long, value_name = "OPTION")]
    pub security: Vec<String>,
    /// Apply a cgroups TOML file (needs cgroups)
    #[arg(long, value_name = "FILE")]
    pub apply_cgroups: Option<String>,
    /// Number of CPUs (needs cgroups)
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// CPU shares (needs cgroups)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpu_shares: Option<String>,
    /// Host CPUs to run on (needs cgroups)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Host memory nodes to use (needs cgroups)
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit (needs cgroups)
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory soft limit (needs cgroups)
    #[arg(long, value_name = "SIZE")]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (needs cgroups)
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (needs cgroups)
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<String>,
    /// Block IO weight (needs cgroups)
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<String>,
    /// Per-device block IO weight (needs cgroups)
    #[arg(long, value_name = "DEVICE:WEIGHT")]
    pub blkio_weight_device: Vec<String>,
    /// Disable the OOM killer (needs cgroups)
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// Share namespaces and image with the other containers of the same parent (not implemented yet)
    #[arg(long)]
    pub sharens: bool,
    /// CDI devices to add: VENDOR/CLASS=NAME, as the specs in --cdi-dirs describe them
    #[arg(long, value_name = "NAME")]
    pub device: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The shell to start (default: /bin/bash, else /bin/sh)
    #[arg(short = 's', long, value_name = "PATH")]
    pub shell: Option<String>,
    #[command(flatten)]
    pub action: ActionArgs,
}

// `vessel __fakeroot CMD ARGS…`: the command, on the host, in new user
// (fake root), mount and PID namespaces.
#[derive(Debug, Args)]
pub struct FakerootRunArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<OsString>,
}

// `vessel __mount-image IMAGE DIR CMD ARGS…`.
#[derive(Debug, Args)]
pub struct MountImageArgs {
    pub image: std::path::PathBuf,
    pub dir: std::path::PathBuf,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<OsString>,
}

// `instance`: containers that run in the background under a name.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    #[command(subcommand)]
    pub command: InstanceCommand,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Start a named instance of a container (its startscript)
    Start(InstanceStartArgs),
    /// Start a named instance of a container (its runscript)
    Run(InstanceStartArgs),
    /// Stop instances
    Stop {
        /// Instances of this user (root only)
        #[arg(short = 'u', long, value_name = "USER")]
        user: Option<String>,
        /// Every instance
        #[arg(short = 'a', long)]
        all: bool,
        /// Kill at once (SIGKILL)
        #[arg(short = 'F', long)]
        force: bool,
        /// Signal to send first (default SIGTERM)
        #[arg(short = 's', long, value_name = "SIGNAL")]
        signal: Option<String>,
        /// Seconds to wait before SIGKILL
        #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 10)]
        timeout: u64,
        /// Instance names (patterns)
        names: Vec<String>,
    },
    /// List instances
    List {
        /// Instances of this user (root only)
        #[arg(short = 'u', long, value_name = "USER")]
        user: Option<String>,
        /// JSON output
        #[arg(short = 'j', long)]
        json: bool,
        /// Show the log file paths
        #[arg(short = 'l', long)]
        logs: bool,
        /// Include hidden instances
        #[arg(short = 'a', long)]
        all: bool,
        /// Instance name (pattern)
        name: Option<String>,
    },
    /// Show an instance's resource use
    Stats {
        /// Instances of this user (root only)
        #[arg(short = 'u', long, value_name = "USER")]
        user: Option<String>,
        /// JSON output
        #[arg(short = 'j', long)]
        json: bool,
        /// One sample only
        #[arg(long)]
        no_stream: bool,
        /// Instance name
        name: Option<String>,
    },
}

// `instance start` and `instance run`: the action flags and four of their own.
#[derive(Debug, Args)]
pub struct InstanceStartArgs {
    /// Run /sbin/init as PID 1 (root only)
    #[arg(long)]
    pub boot: bool,
    /// Write the instance's PID to this file
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Start under DMTCP, checkpointing to this name
    #[arg(long, value_name = "NAME")]
    pub dmtcp_launch: Option<String>,
    /// Restart from this DMTCP checkpoint
    #[arg(long, value_name = "NAME")]
    pub dmtcp_restart: Option<String>,
    /// IMAGE NAME [ARGS]...: the action flags' image, the instance name, the startscript's arguments
    #[command(flatten)]
    pub action: ActionArgs,
}

// `overlay`: writable overlay images.
#[derive(Debug, Args)]
pub struct OverlayArgs {
    #[command(subcommand)]
    pub command: OverlayCommand,
}

#[derive(Debug, Subcommand)]
pub enum OverlayCommand {
    /// Create an ext3 overlay image, or add one to a SIF
    Create {
        /// Size in MiB
        #[arg(short = 's', long, value_name = "MIB", default_value_t = 64)]
        size: u64,
        /// Directory to create in the overlay (repeatable)
        #[arg(long, value_name = "DIR")]
        create_dir: Vec<String>,
        /// Make the overlay usable with --fakeroot
        #[arg(short = 'f', long)]
        fakeroot: bool,
        /// A sparse image file
        #[arg(short = 'S', long)]
        sparse: bool,
        /// Directory for temporary files
        #[arg(long, value_name = "DIR", hide = true)]
        tmpdir: Option<PathBuf>,
        /// The overlay image (or the SIF to add it to)
        image: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Edit the site configuration file, vessel.conf (administrators)
    #[command(
        after_help = "Examples:\n  vessel config global --set \"bind path\" /scratch\n  \
vessel config global --unset \"bind path\" /scratch\n  \
vessel config global --get \"mount home\"\n  \
vessel config global --reset \"mount home\""
    )]
    Global(ConfigGlobalArgs),
    /// Give users subordinate ids for --fakeroot in /etc/subuid and /etc/subgid (administrators)
    #[command(after_help = "Examples:\n  vessel config fakeroot --add alice\n  \
vessel config fakeroot --disable alice")]
    Fakeroot(ConfigFakerootArgs),
}

#[derive(Debug, Args)]
pub struct ConfigGlobalArgs {
    /// Set the directive's value (a repeatable directive gains it)
    #[arg(short = 's', long)]
    pub set: bool,
    /// Remove the directive, or the given values of it
    #[arg(short = 'u', long)]
    pub unset: bool,
    /// Print the directive's value
    #[arg(short = 'g', long)]
    pub get: bool,
    /// Give the directive its default value again
    #[arg(short = 'r', long)]
    pub reset: bool,
    /// Print the resulting file instead of writing it
    #[arg(short = 'd', long)]
    pub dry_run: bool,
    /// The directive, as in vessel.conf ("bind path")
    pub directive: String,
    /// The value (several comma-separated for a repeatable directive)
    pub value: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConfigFakerootArgs {
    /// Give the user a free range of 65536 subordinate ids
    #[arg(short = 'a', long)]
    pub add: bool,
    /// Remove the user's range
    #[arg(short = 'r', long)]
    pub remove: bool,
    /// Enable the user's range again
    #[arg(short = 'e', long)]
    pub enable: bool,
    /// Disable the user's range, keeping its ids reserved
    #[arg(short = 'd', long)]
    pub disable: bool,
    /// The user
    pub user: String,
}

#[derive(Debug, Args)]
pub struct BuildcfgArgs {
    /// Print only this setting's value (PACKAGE_VERSION, SYSCONFDIR, …)
    pub key: Option<String>,
}

// Arguments of a command that Vessel does not implement yet: taken as
// given, so that the command can say so instead of a usage error.
#[derive(Debug, Args)]
pub struct NotYet {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<OsString>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  vessel inspect app.sif                 labels (the default)\n  \
vessel inspect --runscript app.sif     the runscript\n  \
vessel inspect --all app.sif           everything, as JSON\n  \
vessel inspect --list-apps app.sif     the SCIF apps in the image"
)]
pub struct InspectArgs {
    /// Show the labels (the default when nothing else is asked for)
    #[arg(short = 'l', long)]
    pub labels: bool,
    /// Show the definition file the image was built from
    #[arg(short = 'd', long)]
    pub deffile: bool,
    /// Show the runscript (what `run` does)
    #[arg(short = 'r', long)]
    pub runscript: bool,
    /// Show the startscript (what `instance start` does)
    #[arg(short = 's', long)]
    pub startscript: bool,
    /// Show the test script (what `test` does)
    #[arg(short = 't', long)]
    pub test: bool,
    /// Show the environment scripts
    #[arg(short = 'e', long)]
    pub environment: bool,
    /// Show the help text written by the image's author
    #[arg(short = 'H', long)]
    pub helpfile: bool,
    /// List the SCIF apps in the image
    #[arg(long)]
    pub list_apps: bool,
    /// Show the data of this SCIF app instead of the image's
    #[arg(long, value_name = "NAME")]
    pub app: Option<String>,
    /// Print the result as JSON
    #[arg(short = 'j', long)]
    pub json: bool,
    /// Show everything, as JSON
    #[arg(long)]
    pub all: bool,
    /// The image: a SIF file, a SquashFS file or a sandbox directory
    pub image: PathBuf,
}

// Its help is the `sif` variant's: with deferred flags (`Command`), an
// about set here would replace it.
#[derive(Debug, Args)]
pub struct SifArgs {
    #[command(subcommand)]
    pub command: SifCommand,
}

#[derive(Debug, Subcommand)]
pub enum SifCommand {
    /// Show the global header
    Header {
        #[arg(value_name = "sif_path")]
        path: PathBuf,
    },
    /// List the data objects
    List {
        #[arg(value_name = "sif_path")]
        path: PathBuf,
    },
    /// Show every field of one data object
    Info {
        /// Object ID, as shown by `list`
        id: String,
        #[arg(value_name = "sif_path")]
        path: PathBuf,
    },
    /// Write the bytes of one data object to standard output
    Dump {
        /// Object ID, as shown by `list`
        id: String,
        #[arg(value_name = "sif_path")]
        path: PathBuf,
    },
    /// Create an empty SIF file
    New {
        #[arg(value_name = "sif_path")]
        path: PathBuf,
    },
    /// Add a data object read from a file
    #[command(after_help = "Examples:\n  \
vessel sif add --datatype 4 --partfs 1 --parttype 2 --partarch 2 image.sif rootfs.squashfs\n  \
vessel sif add --datatype 6 --groupid 1 --filename labels.json image.sif labels.json")]
    Add(SifAddArgs),
    /// Delete a data object
    Del {
        /// Object ID, as shown by `list`
        id: String,
        #[arg(value_name = "sif_path")]
        path: PathBuf,
    },
    /// Make a system partition the primary one (the container's root file system)
    Setprim {
        /// Object ID, as shown by `list`
        id: String,
        #[arg(value_name = "sif_path")]
        path: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SifAddArgs {
    /// Object type: 1 definition file, 2 environment, 3 labels, 4 partition, 5 signature,
    /// 6 JSON, 7 generic, 8 cryptographic message, 9 SBOM, 10 OCI root index, 11 OCI blob
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub datatype: i64,
    /// Partition role: 1 system, 2 primary system, 3 data, 4 overlay
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub parttype: i32,
    /// Partition file system: 1 SquashFS, 2 ext3, 3 archive, 4 raw
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub partfs: i32,
    /// Partition architecture: 1 386, 2 amd64, 3 arm, 4 arm64, 5 ppc64, 6 ppc64le, 7 mips,
    /// 8 mipsle, 9 mips64, 10 mips64le, 11 s390x, 12 riscv64, 13 loong64
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub partarch: i32,
    /// Signature hash: 1 SHA-256, 2 SHA-384, 3 SHA-512, 4 BLAKE2s, 5 BLAKE2b
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub signhash: i32,
    /// Signing key fingerprint, 40 hex digits
    #[arg(long, default_value = "")]
    pub signentity: String,
    /// SBOM format: cyclonedx-json, cyclonedx-xml, github-json, spdx-json, spdx-rdf,
    /// spdx-tag-value, spdx-yaml, syft-json
    #[arg(long, default_value = "")]
    pub sbomformat: String,
    /// Object group; 0 puts the object in no group
    #[arg(long, default_value_t = 0)]
    pub groupid: u32,
    /// ID of the object this one refers to
    #[arg(long)]
    pub link: Option<u32>,
    /// Byte alignment of the object's start (default 4096 for partitions, none otherwise)
    #[arg(long, allow_negative_numbers = true)]
    pub alignment: Option<i64>,
    /// Name stored with the object
    #[arg(long)]
    pub filename: Option<String>,
    #[arg(value_name = "sif_path")]
    pub path: PathBuf,
    #[arg(value_name = "object_path")]
    pub object: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
vessel completion bash > /etc/bash_completion.d/vessel\n  \
vessel completion zsh > \"${fpath[1]}/_vessel\"\n  \
vessel completion fish > ~/.config/fish/completions/vessel.fish")]
pub struct CompletionArgs {
    /// The shell to write the script for
    pub shell: CompletionShell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the findings as a JSON array of {check, status, finding, fix}
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// A subcommand's flags are deferred, and what its `Args` struct sets
    /// (a doc comment becomes an about) lands after the subcommand's own
    /// help: building must leave every subcommand's help as declared.
    #[test]
    fn deferred_flags_leave_each_subcommands_help_as_declared() {
        let declared = super::Cli::command();
        let mut built = super::Cli::command();
        built.build();
        for sub in declared.get_subcommands() {
            let made = built.find_subcommand(sub.get_name()).unwrap();
            let name = sub.get_name();
            assert_eq!(made.get_about(), sub.get_about(), "about of {name}");
            assert_eq!(
                made.get_long_about(),
                sub.get_long_about(),
                "long about of {name}"
            );
        }
    }
}
