//! The action flags of `exec`/`run`/`shell`/`test` that Vessel honours
//! (`--dns`, `--containlibs`, the capability flags as root, `--no-pid`,
//! `--allow-setuid`, `--ignore-subuid`), warns about
//! (`--runscript-timeout`), or refuses with one `FATAL:` line naming the
//! flag and why (exit 255), through the real binary: as the unprivileged
//! test user, and as root for what only root may do.

mod common;

use common::*;

/// `vessel exec FLAGS… BUSYBOX sh -c SCRIPT` as the test user in `dir`.
fn user_exec(dir: &std::path::Path, flags: &[&str], script: &str) -> std::process::Output {
    let image = busybox();
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image.to_str().unwrap(), "/bin/sh", "-c", script]);
    user_run(dir, &args, &[])
}

/// As [`user_exec`], asserting success; returns standard output.
fn user_sh(dir: &std::path::Path, flags: &[&str], script: &str) -> String {
    let out = user_exec(dir, flags, script);
    assert_ok(&out, format!("{flags:?} {script}"))
}

/// `vessel exec FLAGS… BUSYBOX sh -c SCRIPT` as the caller (root in CI),
/// asserting success; returns standard output.
fn root_sh(flags: &[&str], script: &str) -> String {
    let image = busybox();
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image.to_str().unwrap(), "/bin/sh", "-c", script]);
    assert_ok(&run(&args), format!("{flags:?} {script}"))
}

/// The value of `field` (`CapEff`, `CapBnd`, …) in a `/proc/PID/status`.
fn cap_field(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

const CAP_NET_RAW: u64 = 1 << 13;
const CAP_CHOWN: u64 = 1;

#[test]
fn dns_writes_the_containers_resolv_conf() {
    let dir = user_dir();
    let out = user_sh(
        dir.path(),
        &["--dns", "10.0.0.2,1.1.1.1"],
        "cat /etc/resolv.conf; echo x >> /etc/resolv.conf 2>/dev/null || echo read-only",
    );
    assert_eq!(out, "nameserver 10.0.0.2\nnameserver 1.1.1.1\nread-only\n");
    // Its variable, and a bad address named.
    let image = busybox();
    let image = image.to_str().unwrap();
    let out = user_run(
        dir.path(),
        &["exec", image, "cat", "/etc/resolv.conf"],
        &[("SINGULARITY_DNS", "fd00::1")],
    );
    assert_eq!(assert_ok(&out, "SINGULARITY_DNS"), "nameserver fd00::1\n");
    let out = user_exec(dir.path(), &["--dns", "1.1.1.1,dns.example"], "true");
    assert_fatal(&out, &["--dns \"dns.example\": not an IP address"]);
}

#[test]
fn containlibs_binds_host_libraries_onto_the_library_path() {
    let dir = user_dir();
    let lib = dir.path().join("libvesseltest.so.1");
    std::fs::write(&lib, "not really a library\n").unwrap();
    give_to_test_user(&lib);
    let lib = lib.to_str().unwrap();
    let out = user_sh(
        dir.path(),
        &["--containlibs", lib],
        "cat /.singularity.d/libs/libvesseltest.so.1; echo $LD_LIBRARY_PATH",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "not really a library");
    assert!(
        lines[1].split(':').any(|d| d == "/.singularity.d/libs"),
        "{out}"
    );
    // Once, even where the image's 99-base.sh put it there too.
    assert_eq!(lines[1].matches("/.singularity.d/libs").count(), 1, "{out}");
    // Read-only.
    let out = user_sh(
        dir.path(),
        &["--containlibs", lib],
        "echo x >> /.singularity.d/libs/libvesseltest.so.1 2>/dev/null || echo read-only",
    );
    assert_eq!(out, "read-only\n");
    // Its variable.
    let image = busybox();
    let out = user_run(
        dir.path(),
        &[
            "exec",
            image.to_str().unwrap(),
            "ls",
            "/.singularity.d/libs",
        ],
        &[("APPTAINER_CONTAINLIBS", lib)],
    );
    assert!(assert_ok(&out, "APPTAINER_CONTAINLIBS").contains("libvesseltest.so.1"));
    // A missing library is named.
    let missing = dir.path().join("libnope.so");
    let missing = missing.to_str().unwrap();
    let out = user_exec(dir.path(), &["--containlibs", missing], "true");
    assert_fatal(&out, &[&format!("--containlibs {missing}: doesn't exist")]);
}

#[test]
fn capabilities_as_root() {
    if !running_as_root() {
        skip("the capability flags are root's: run the tests as root");
        return;
    }
    let status = "grep -E '^(Cap|NoNewPrivs)' /proc/self/status";
    let default = root_sh(&[], status);
    let full = cap_field(&default, "CapBnd");
    // Root keeps its capabilities by default, as with Apptainer.
    assert_ne!(cap_field(&default, "CapEff"), 0, "{default}");
    assert_eq!(cap_field(&default, "CapEff"), full, "{default}");
    let dropped = root_sh(&["--drop-caps", "CAP_NET_RAW"], status);
    for field in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(
            cap_field(&dropped, field),
            full & !CAP_NET_RAW,
            "{field}: {dropped}"
        );
    }
    let none = root_sh(&["--no-privs"], status);
    for field in ["CapBnd", "CapEff", "CapPrm", "CapAmb"] {
        assert_eq!(cap_field(&none, field), 0, "{field}: {none}");
    }
    assert!(none.contains("NoNewPrivs:\t1"), "{none}");
    let some = root_sh(&["--no-privs", "--add-caps", "net_raw,chown"], status);
    assert_eq!(
        cap_field(&some, "CapEff"),
        (CAP_NET_RAW | CAP_CHOWN) & full,
        "{some}"
    );
    let kept = root_sh(&["--keep-privs"], status);
    assert_eq!(cap_field(&kept, "CapEff"), full, "{kept}");
    // The variables, both prefixes.
    let image = busybox();
    let image = image.to_str().unwrap();
    for var in ["APPTAINER_DROP_CAPS", "SINGULARITY_DROP_CAPS"] {
        let out = vessel()
            .env(var, "net_raw")
            .args(["exec", image, "/bin/sh", "-c", status])
            .output()
            .unwrap();
        let out = assert_ok(&out, var);
        assert_eq!(cap_field(&out, "CapEff"), full & !CAP_NET_RAW, "{var}");
    }
    let out = run(&["exec", "--drop-caps", "CAP_NOPE", image, "true"]);
    assert_fatal(&out, &["--drop-caps \"CAP_NOPE\": unknown capability"]);
}

#[test]
fn allow_setuid_as_root_mounts_the_image_without_nosuid() {
    if !running_as_root() {
        skip("--allow-setuid is root's: run the tests as root");
        return;
    }
    let root_mount = "grep -E '^[^ ]+ / ' /proc/self/mounts";
    let default = root_sh(&[], root_mount);
    assert!(default.contains("nosuid"), "{default}");
    let allowed = root_sh(&["--allow-setuid"], root_mount);
    assert!(!allowed.contains("nosuid"), "{allowed}");
}

#[test]
fn root_only_flags_are_refused_for_users_by_name() {
    let dir = user_dir();
    let table: &[(&[&str], &str)] = &[
        (&["--add-caps", "CAP_NET_RAW"], "--add-caps needs root: "),
        (&["--drop-caps", "all"], "--drop-caps needs root: "),
        (&["--no-privs"], "--no-privs needs root: "),
        (&["--keep-privs"], "--keep-privs needs root: "),
        (&["--allow-setuid"], "--allow-setuid needs root: "),
        (&["--ignore-userns"], "--ignore-userns needs root: "),
    ];
    for (flags, want) in table {
        assert_fatal(&user_exec(dir.path(), flags, "true"), &[want]);
    }
    let image = busybox();
    let out = user_run(
        dir.path(),
        &["exec", image.to_str().unwrap(), "true"],
        &[("SINGULARITY_ADD_CAPS", "chown")],
    );
    assert_fatal(&out, &["SINGULARITY_ADD_CAPS (like --add-caps) needs root"]);
}

#[test]
fn every_refused_flag_is_one_fatal_line_naming_it() {
    let dir = user_dir();
    let table: &[(&[&str], &str)] = &[
        (
            &["--compat32"],
            "--compat32 needs --nv or --rocm: it adds their 32-bit libraries",
        ),
        (
            &["--fusemount", "host:sshfs h: /m"],
            "--fusemount is not supported: mount on the host and bind the mount point",
        ),
        (
            &["--intel-hpu"],
            "--intel-hpu is not supported (Intel Gaudi devices)",
        ),
        (
            &["--netns-path", "/run/netns/x"],
            "--netns-path is not supported: joining another network namespace needs root",
        ),
        (
            &["--passphrase"],
            "--passphrase is not supported: Vessel does not make or run encrypted images",
        ),
        (
            &["--pem-path", "k.pem"],
            "--pem-path is not supported: Vessel does not make or run encrypted images",
        ),
        (
            &["--docker-host", "unix:///run/docker.sock"],
            "--docker-host is not supported: Vessel does not talk to Docker daemons",
        ),
        (&["--intel-hpu"], "--intel-hpu is not supported"),
        (
            &["--security", "seccomp:p.json"],
            "--security is not implemented",
        ),
        (&["--memory", "1G"], "--memory needs cgroups"),
    ];
    for (flags, want) in table {
        assert_fatal(&user_exec(dir.path(), flags, "true"), &[want]);
    }
    let image = busybox();
    for (var, want) in [
        ("APPTAINER_COMPAT32", "APPTAINER_COMPAT32 (like --compat32)"),
        (
            "SINGULARITY_FUSESPEC",
            "SINGULARITY_FUSESPEC (like --fusemount)",
        ),
        ("APPTAINER_NETNS_PATH", "(like --netns-path)"),
        ("APPTAINER_INTEL_HPU", "(like --intel-hpu)"),
        ("APPTAINER_DOCKER_HOST", "(like --docker-host)"),
    ] {
        let out = user_run(
            dir.path(),
            &["exec", image.to_str().unwrap(), "true"],
            &[(var, "1")],
        );
        assert_fatal(&out, &[want]);
    }
}

#[test]
fn no_pid_keeps_the_hosts_pid_namespace_under_containall() {
    let dir = user_dir();
    let host_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let host_ns = host_ns.to_str().unwrap();
    let ns = "readlink /proc/self/ns/pid";
    assert_ne!(user_sh(dir.path(), &["--containall"], ns).trim(), host_ns);
    let out = user_sh(dir.path(), &["--containall", "--no-pid"], ns);
    assert_eq!(out.trim(), host_ns);
    let image = busybox();
    let out = user_run(
        dir.path(),
        &[
            "exec",
            "--compat",
            image.to_str().unwrap(),
            "readlink",
            "/proc/self/ns/pid",
        ],
        &[("APPTAINER_NO_PID", "1")],
    );
    assert_eq!(assert_ok(&out, "APPTAINER_NO_PID").trim(), host_ns);
}

#[test]
fn ignore_subuid_maps_only_root() {
    let dir = user_dir();
    let out = user_exec(
        dir.path(),
        &["--fakeroot", "--ignore-subuid"],
        "id -u; cat /proc/self/uid_map",
    );
    let out = assert_ok(&out, "--fakeroot --ignore-subuid");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    assert_eq!(lines.len(), 2, "only root is mapped: {out}");
}

#[test]
fn flags_vessel_honours_by_what_it_always_does() {
    let dir = user_dir();
    let out = user_sh(
        dir.path(),
        &[
            "--underlay",
            "--ignore-fakeroot-command",
            "--no-nv",
            "--no-rocm",
        ],
        "echo ok",
    );
    assert_eq!(out, "ok\n");
    // --runscript-timeout warns, once, and runs.
    let out = user_exec(dir.path(), &["--runscript-timeout", "30s"], "echo ok");
    let err = stderr(&out);
    assert_eq!(assert_ok(&out, "--runscript-timeout"), "ok\n");
    assert_eq!(
        err.matches("--runscript-timeout has no effect: Vessel evaluates runscripts with /bin/sh, without a time limit").count(),
        1,
        "{err}"
    );
}

#[test]
fn registry_credentials_flags_go_together() {
    let dir = user_dir();
    let out = user_run(
        dir.path(),
        &[
            "exec",
            "--docker-username",
            "me",
            "docker://127.0.0.1:9/none:latest",
            "true",
        ],
        &[],
    );
    assert_fatal(
        &out,
        &["--docker-username and --docker-password go together"],
    );
}

/// `exec docker://…` with the fetch flags of the action commands:
/// `--disable-cache` with `--tmpdir` (the fetch's temporary files go there,
/// the cache stays empty), and `--docker-username`/`--docker-password`,
/// which beat their variables.
#[test]
fn exec_of_a_registry_image_with_the_fetch_flags() {
    let Some((_, get)) = registry_env() else {
        return;
    };
    let s = Scratch::new();
    let uri = format!("docker://{}/busybox:latest", get("REGISTRY_HTTP"));
    let missing = s.path().join("no-such-tmpdir");
    let missing = missing.to_str().unwrap();
    let flags = ["exec", "--no-https", "--disable-cache", "--tmpdir"];
    let mut args = flags.to_vec();
    args.extend_from_slice(&[missing, &uri, "true"]);
    assert_failed(&s.run(&args, &[]), &[missing]);
    let tmp = s.path().join("fetch-tmp");
    std::fs::create_dir(&tmp).unwrap();
    give_to_test_user(&tmp);
    let mut args = flags.to_vec();
    args.extend_from_slice(&[tmp.to_str().unwrap(), &uri, "echo", "ran"]);
    assert_eq!(s.ok(&args, &[]), "ran\n");
    assert!(
        !std::path::Path::new(&s.cache()).join("cache").exists(),
        "--disable-cache wrote to the cache"
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0, "left behind");
    let uri = format!("docker://{}/private/busybox:latest", get("REGISTRY_TLS"));
    let (user, password, ca) = (
        get("REGISTRY_USER"),
        get("REGISTRY_PASSWORD"),
        get("REGISTRY_CA"),
    );
    let ca = [("SSL_CERT_FILE", ca.as_str())];
    let out = s.ok(
        &[
            "exec",
            "--docker-username",
            &user,
            "--docker-password",
            &password,
            &uri,
            "echo",
            "in",
        ],
        &ca,
    );
    assert_eq!(out, "in\n");
    let s = Scratch::new();
    let env = [
        ca[0],
        ("APPTAINER_DOCKER_USERNAME", user.as_str()),
        ("APPTAINER_DOCKER_PASSWORD", password.as_str()),
    ];
    let out = s.run(&["exec", "--docker-password", "wrong", &uri, "true"], &env);
    assert_failed(&out, &["refused access"]);
}
