//! GPUs without a GPU: `--nv`, `--rocm`, `--compat32` and CDI `--device`
//! against the fake driver of `tests/gpu/fake-driver.sh` (libraries under
//! the real sonames in the linker cache, nvidia-smi and rocm-smi, device
//! nodes with /dev/null's numbers), run as the unprivileged test user on
//! the Debian image, whose programs load the host's libraries as a CUDA
//! program does.
//!
//! One test does it all in order: the fake driver is a change to the whole
//! machine (the linker cache, `/dev`), made once, checked, and removed even
//! when a check fails; and "no driver" must be seen before it is there.

// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI).
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const FAKE_DRIVER: &str = "tests/gpu/fake-driver.sh";

/// Removes the fake driver when dropped, so that a failed check leaves the
/// machine as it was.
struct FakeDriver;

impl FakeDriver {
    fn install() -> FakeDriver {
        let out = Command::new(FAKE_DRIVER).arg("install").output().unwrap();
        assert!(
            out.status.success(),
            "installing the fake driver: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        FakeDriver
    }
}

impl Drop for FakeDriver {
    fn drop(&mut self) {
        let _ = Command::new(FAKE_DRIVER).arg("remove").status();
    }
}

/// `vessel exec ARGS` as the test user with `env`: its output.
fn exec(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    user_run(dir, &all, env)
}

fn ok(out: &Output, what: &str) -> String {
    assert_ok(out, what)
}

/// `gpucheck`, built on the host (the Debian image has the same C
/// library), in a directory the test user can read.
fn build_gpucheck(dir: &Path) -> PathBuf {
    let bin = dir.join("gpucheck");
    let out = Command::new("gcc")
        .args(["-O1", "-o"])
        .arg(&bin)
        .arg("tests/gpu/gpucheck.c")
        .arg("-ldl")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bin
}

#[test]
fn gpus_from_a_fake_driver() {
    skip_unless!(
        running_as_root(),
        "needs root to install the fake GPU driver"
    );
    let Some(image) = debian_sif() else { return };
    let image = image.to_string_lossy().into_owned();
    skip_unless!(
        !Path::new("/dev/nvidiactl").exists(),
        "this machine has a real NVIDIA driver; the fake one would not be tested"
    );
    let dir = user_dir();
    let d = dir.path();
    let tools = d.join("tools");
    std::fs::create_dir(&tools).unwrap();
    build_gpucheck(&tools);
    let bind = format!("{}:/opt/t", tools.display());

    // No driver: one warning naming what was looked for, and the run goes on.
    let out = exec(d, &["--nv", &image, "echo", "ran"], &[]);
    assert_eq!(ok(&out, "--nv without a driver"), "ran\n");
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("WARNING:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("--nv: no NVIDIA driver on this host")
            && warnings[0].contains("libcuda.so"),
        "{err}"
    );

    let _driver = FakeDriver::install();

    // The program loads the host's libcuda.so.1 (64-bit: the 32-bit copy
    // in the cache would not load) through LD_LIBRARY_PATH.
    let out = exec(
        d,
        &[
            "--nv",
            "-B",
            &bind,
            &image,
            "/opt/t/gpucheck",
            "libcuda.so.1",
            "cuInit",
        ],
        &[],
    );
    assert_eq!(ok(&out, "cuInit through --nv"), "cuInit=4242\n");
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
    let out = exec(
        d,
        &[
            "--nv",
            "-B",
            &bind,
            &image,
            "/opt/t/gpucheck",
            "libnvidia-ml.so.1",
            "nvmlInit_v2",
        ],
        &[],
    );
    assert_eq!(ok(&out, "nvmlInit through --nv"), "nvmlInit_v2=4343\n");
    let out = exec(d, &["--nv", &image, "nvidia-smi"], &[]);
    let smi = ok(&out, "nvidia-smi");
    assert!(
        smi.contains("GPU 0: Vessel Fake GPU") && smi.contains("GPU 1:"),
        "{smi}"
    );
    let out = exec(
        d,
        &[
            "--nv",
            &image,
            "sh",
            "-c",
            "echo $LD_LIBRARY_PATH; ls /.singularity.d/libs",
        ],
        &[],
    );
    let listing = ok(&out, "the libraries");
    assert!(listing.starts_with("/.singularity.d/libs"), "{listing}");
    for lib in [
        "libcuda.so.1",
        "libnvidia-ml.so.1",
        "libnvidia-ptxjitcompiler.so.1",
    ] {
        assert!(
            listing.lines().any(|l| l == lib),
            "{lib} missing: {listing}"
        );
    }
    // APPTAINER_NV is --nv; --no-nv beats it.
    let out = exec(
        d,
        &[&image, "sh", "-c", "ls /.singularity.d/libs"],
        &[("APPTAINER_NV", "1")],
    );
    assert!(ok(&out, "APPTAINER_NV").contains("libcuda.so.1"));
    let out = exec(
        d,
        &[
            "--no-nv",
            &image,
            "sh",
            "-c",
            "ls /.singularity.d/libs 2>/dev/null | wc -l",
        ],
        &[("APPTAINER_NV", "1")],
    );
    assert_eq!(ok(&out, "--no-nv").trim(), "0");

    // --compat32: the 32-bit libcuda in libs32, on the library path after
    // the 64-bit one.
    let out = exec(
        d,
        &[
            "--nv",
            "--compat32",
            &image,
            "sh",
            "-c",
            "echo $LD_LIBRARY_PATH; head -c 5 /.singularity.d/libs32/libcuda.so.1 | od -An -tx1",
        ],
        &[],
    );
    let text = ok(&out, "--compat32");
    assert!(
        text.starts_with("/.singularity.d/libs:/.singularity.d/libs32"),
        "{text}"
    );
    assert!(
        text.contains("7f 45 4c 46 01"),
        "not a 32-bit ELF file: {text}"
    );

    // A minimal /dev gets the job's GPU only, with the control devices.
    let out = exec(
        d,
        &[
            "--nv",
            "--contain",
            &image,
            "sh",
            "-c",
            "ls /dev | grep nvidia",
        ],
        &[("CUDA_VISIBLE_DEVICES", "1")],
    );
    let devs = ok(&out, "--contain --nv");
    let devs: Vec<&str> = devs.lines().collect();
    assert!(
        devs.contains(&"nvidia1") && devs.contains(&"nvidiactl"),
        "{devs:?}"
    );
    assert!(!devs.contains(&"nvidia0"), "{devs:?}");
    // Slurm's allocation wins over a renumbered CUDA_VISIBLE_DEVICES.
    let out = exec(
        d,
        &[
            "--nv",
            "--containall",
            &image,
            "sh",
            "-c",
            "ls /dev | grep 'nvidia[0-9]'; echo $CUDA_VISIBLE_DEVICES",
        ],
        &[("CUDA_VISIBLE_DEVICES", "0"), ("SLURM_STEP_GPUS", "0")],
    );
    assert_eq!(ok(&out, "--containall --nv under Slurm"), "nvidia0\n0\n");

    // ROCm the same way.
    let out = exec(
        d,
        &[
            "--rocm",
            "--contain",
            "-B",
            &bind,
            &image,
            "sh",
            "-c",
            "rocm-smi; ls /dev/kfd /dev/dri; /opt/t/gpucheck libhsa-runtime64.so.1 hsa_init",
        ],
        &[],
    );
    let rocm = ok(&out, "--rocm");
    assert!(rocm.contains("Vessel Fake AMD GPU"), "{rocm}");
    assert!(
        rocm.contains("/dev/kfd") && rocm.contains("renderD128"),
        "{rocm}"
    );
    assert!(rocm.contains("hsa_init=4444"), "{rocm}");

    // build --nv: %post runs with the host's driver, and the image keeps
    // none of it (the mount points the binds needed are removed).
    let def = d.join("gpu.def");
    std::fs::write(
        &def,
        format!("Bootstrap: localimage\nFrom: {image}\n\n%post\n    nvidia-smi > /smi.txt\n    ls /.singularity.d/libs > /libs.txt\n"),
    )
    .unwrap();
    let sandbox = d.join("gpu-sandbox");
    let out = user_run(
        d,
        &[
            "build",
            "--nv",
            "--sandbox",
            &sandbox.to_string_lossy(),
            &def.to_string_lossy(),
        ],
        &[],
    );
    ok(&out, "build --nv");
    let smi = std::fs::read_to_string(sandbox.join("smi.txt")).unwrap();
    assert!(smi.contains("GPU 0: Vessel Fake GPU"), "{smi}");
    let libs = std::fs::read_to_string(sandbox.join("libs.txt")).unwrap();
    assert!(libs.lines().any(|l| l == "libcuda.so.1"), "{libs}");
    for gone in ["usr/bin/nvidia-smi", ".singularity.d/hostlibs"] {
        assert!(
            std::fs::symlink_metadata(sandbox.join(gone)).is_err(),
            "{gone} was left in the image"
        );
    }
    let left = std::fs::read_dir(sandbox.join(".singularity.d/libs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "driver libraries were left in the image");

    // A CDI spec: a device under another name, a bind, a variable and an
    // update-ldcache hook, which Vessel does itself (LD_LIBRARY_PATH).
    let cdi = d.join("cdi");
    std::fs::create_dir(&cdi).unwrap();
    let libcuda = "/usr/local/lib/vessel-fake-gpu/libcuda.so.1";
    std::fs::write(
        cdi.join("vessel-test.yaml"),
        format!(
            "cdiVersion: 0.6.0\nkind: vessel.test/gpu\ndevices:\n- name: \"1\"\n  containerEdits:\n    deviceNodes:\n    - path: /dev/gpu-one\n      hostPath: /dev/nvidia1\ncontainerEdits:\n  env: [FAKE_CDI=yes]\n  mounts:\n  - hostPath: {libcuda}\n    containerPath: /opt/cdi/libcuda.so.1\n    options: [ro, bind]\n  hooks:\n  - hookName: createContainer\n    path: /usr/bin/nvidia-ctk\n    args: [nvidia-ctk, hook, update-ldcache, --folder, /opt/cdi]\n"
        ),
    )
    .unwrap();
    let cdi_dirs = cdi.to_string_lossy().into_owned();
    let out = exec(
        d,
        &[
            "--device",
            "vessel.test/gpu=1",
            "--cdi-dirs",
            &cdi_dirs,
            "--contain",
            "-B",
            &bind,
            &image,
            "sh",
            "-c",
            "echo $FAKE_CDI; ls /dev/gpu-one; /opt/t/gpucheck libcuda.so.1 cuInit",
        ],
        &[],
    );
    assert_eq!(ok(&out, "--device"), "yes\n/dev/gpu-one\ncuInit=4242\n");
    // Under another name, a device needs a /dev of the container's own.
    let out = exec(
        d,
        &[
            "--device",
            "vessel.test/gpu=1",
            "--cdi-dirs",
            &cdi_dirs,
            &image,
            "true",
        ],
        &[],
    );
    assert_fatal(&out, &["/dev/nvidia1 at /dev/gpu-one", "--contain"]);
    let out = exec(
        d,
        &[
            "--device",
            "vessel.test/gpu=7",
            "--cdi-dirs",
            &cdi_dirs,
            &image,
            "true",
        ],
        &[],
    );
    assert_fatal(
        &out,
        &[
            "--device vessel.test/gpu=7",
            "its devices of kind vessel.test/gpu: 1",
        ],
    );
}

#[test]
fn compat32_alone_is_refused_by_name() {
    let dir = user_dir();
    let img = busybox();
    let img = img.to_string_lossy();
    let out = exec(dir.path(), &["--compat32", &img, "true"], &[]);
    assert_fatal(&out, &["--compat32 needs --nv or --rocm"]);
}

const FAKE_NVCCLI: &str = "/usr/local/bin/nvidia-container-cli";

/// A stand-in for NVIDIA's nvidia-container-cli, removed when dropped: it
/// records its arguments in the root it is given (the last one) and puts
/// a "driver" file there, or fails as the real one does when told to.
struct FakeNvccli;

impl FakeNvccli {
    fn install() -> FakeNvccli {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            FAKE_NVCCLI,
            "#!/bin/sh\n\
             for last; do :; done\n\
             if [ \"${FAKE_NVCCLI_FAIL:-}\" ]; then echo 'nvidia-container-cli: initialization error: nvml error: driver not loaded' >&2; exit 1; fi\n\
             echo \"$@\" > \"$last/nvccli-args\"\n\
             mkdir -p \"$last/usr/lib/nvccli\" && echo driver > \"$last/usr/lib/nvccli/libcuda.so.1\"\n",
        )
        .unwrap();
        std::fs::set_permissions(FAKE_NVCCLI, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeNvccli
    }
}

impl Drop for FakeNvccli {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(FAKE_NVCCLI);
    }
}

#[test]
fn nvccli_runs_nvidia_container_cli_on_the_root() {
    let dir = user_dir();
    let img = busybox();
    let img = img.to_string_lossy();
    let d = dir.path();
    let installed = ["/usr/bin", "/usr/local/bin", "/usr/sbin", "/sbin", "/bin"]
        .iter()
        .any(|p| Path::new(p).join("nvidia-container-cli").exists());
    if !installed {
        let out = exec(d, &["--nvccli", &img, "true"], &[]);
        assert_fatal(&out, &["--nvccli needs nvidia-container-cli", "--nv alone"]);
    }
    skip_unless!(
        running_as_root(),
        "needs root to install a stand-in nvidia-container-cli"
    );
    skip_unless!(!installed, "this machine has NVIDIA's nvidia-container-cli");
    let _tool = FakeNvccli::install();
    let script = "cat /nvccli-args; cat /usr/lib/nvccli/libcuda.so.1";
    let out = exec(d, &["--nvccli", &img, "sh", "-c", script], &[]);
    let text = ok(&out, "--nvccli");
    let args = text.lines().next().unwrap_or_default();
    assert!(
        args.starts_with("--user configure --no-cgroups --device=all --compute --utility"),
        "{text}"
    );
    assert!(args.contains("--ldconfig=@/sbin/ldconfig"), "{text}");
    assert!(text.ends_with("driver\n"), "{text}");
    // The job's choice of devices and capabilities reaches the tool; a
    // contained container gets no devices unless the job names some.
    let out = exec(
        d,
        &["--nvccli", "--contain", &img, "cat", "/nvccli-args"],
        &[("NVIDIA_DRIVER_CAPABILITIES", "graphics,utility")],
    );
    let args = ok(&out, "--nvccli --contain");
    assert!(!args.contains("--device"), "{args}");
    assert!(args.contains("--graphics --utility"), "{args}");
    // The tool's own error is reported, and nothing runs.
    let out = exec(
        d,
        &["--nvccli", &img, "echo", "ran"],
        &[("FAKE_NVCCLI_FAIL", "1")],
    );
    assert_fatal(&out, &["--nvccli:", "failed", "driver not loaded"]);
}
