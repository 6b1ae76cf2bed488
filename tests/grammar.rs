//! Apptainer's argument grammar for `exec`, `run`, `shell` and `test`, run
//! through the real binary as workflow tools write it: flags before the
//! image (`--flag=value`, `--flag value`, `-Bvalue`, `-B value`, combined
//! short flags, repeated flags), everything after the image for the
//! command; an unknown flag is a `FATAL:` line naming it (exit 255), never
//! an image path; flags Vessel does not honour are refused by name.

mod common;

use common::*;

/// `vessel exec FLAGS… BUSYBOX sh -c SCRIPT` as the test user in `dir`;
/// asserts success and returns standard output.
fn exec_sh(dir: &std::path::Path, flags: &[&str], script: &str, env: &[(&str, &str)]) -> String {
    let image = busybox();
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image.to_str().unwrap(), "/bin/sh", "-c", script]);
    let out = user_run(dir, &args, env);
    assert_ok(&out, format!("{args:?}"))
}

#[test]
fn flags_in_every_form_apptainer_accepts() {
    let dir = user_dir();
    let d = dir.path();
    for name in ["a", "b"] {
        std::fs::create_dir(d.join(name)).unwrap();
        std::fs::write(d.join(name).join("f"), name).unwrap();
        give_to_test_user(&d.join(name));
    }
    let a = d.join("a").to_str().unwrap().to_string();
    let b = d.join("b").to_str().unwrap().to_string();
    let (attached, equals) = (format!("-B{a}:/mnt"), format!("--bind={a}:/mnt"));
    let spec = format!("{a}:/mnt");
    let (spec_a, spec_b) = (format!("{a}:/ma"), format!("{b}:/mb"));
    let home = format!("-H{a}");
    let table: &[(&str, Vec<&str>, &str, &str)] = &[
        ("-Bvalue", vec![&attached], "cat /mnt/f", "a"),
        ("--bind=value", vec![&equals], "cat /mnt/f", "a"),
        ("-B value", vec!["-B", &spec], "cat /mnt/f", "a"),
        ("--bind value", vec!["--bind", &spec], "cat /mnt/f", "a"),
        (
            "repeated --bind accumulates",
            vec!["--bind", &spec_a, "-B", &spec_b],
            "cat /ma/f /mb/f",
            "ab",
        ),
        ("-Hvalue", vec![&home], "echo $HOME", &a),
        (
            "last --hostname wins",
            vec!["--hostname", "one", "--hostname=two"],
            "hostname",
            "two",
        ),
        ("combined -ce", vec!["-ce"], "echo ${FOO:-unset}", "unset"),
        ("combined -ec", vec!["-ec"], "echo ${FOO:-unset}", "unset"),
        (
            "repeated boolean",
            vec!["--cleanenv", "-e"],
            "echo ${FOO:-unset}",
            "unset",
        ),
        ("no flags", vec![], "echo ${FOO:-unset}", "bar"),
        ("--env map", vec!["--env", "A=1,B=2"], "echo $A $B", "1 2"),
        (
            "--env repeated",
            vec!["--env=A=1", "--env", "B=x,y"],
            "echo $A $B",
            "1 x,y",
        ),
    ];
    for (what, flags, script, want) in table {
        let out = exec_sh(d, flags, script, &[("FOO", "bar")]);
        let got: String = out.lines().collect::<Vec<_>>().join(" ");
        assert_eq!(got, *want, "{what}: {flags:?}");
    }
}

#[test]
fn everything_after_the_image_is_the_commands() {
    let dir = user_dir();
    let image = busybox();
    let image = image.to_str().unwrap();
    let out = user_run(
        dir.path(),
        &["exec", image, "echo", "--nv", "-B", "x", "--bnd", "-ce"],
        &[],
    );
    assert_eq!(assert_ok(&out, "exec echo"), "--nv -B x --bnd -ce\n");
}

#[test]
fn unknown_flags_are_named_never_taken_for_the_image() {
    let image = busybox();
    let image = image.to_str().unwrap();
    for verb in ["exec", "run", "shell", "test"] {
        let out = run(&[verb, "--bnd", "/x", image, "true"]);
        assert_fatal(&out, &["unknown flag: --bnd"]);
        let out = run(&[verb, "--bnd=/x", image, "true"]);
        assert_fatal(&out, &["unknown flag: --bnd"]);
    }
    let out = run(&["exec", "-cX", image, "true"]);
    assert_fatal(&out, &["unknown shorthand flag: 'X'"]);
}

#[test]
fn refused_flags_are_named() {
    let image = busybox();
    let image = image.to_str().unwrap();
    let table: &[(&[&str], &[&str])] = &[
        (&["--intel-hpu"], &["--intel-hpu is not supported"]),
        (
            &["--network", "bridge"],
            &["--network bridge", "needs CNI and root"],
        ),
        (
            &["--network-args", "portmap=80:80/tcp"],
            &["--network-args"],
        ),
        (&["--compat32"], &["--compat32 needs --nv or --rocm"]),
        (&["--memory", "1G"], &["--memory", "needs cgroups"]),
        (&["--cpus", "2"], &["--cpus", "needs cgroups"]),
        (&["--fusemount", "host:sshfs h: /m"], &["--fusemount"]),
        (&["--security", "seccomp:p.json"], &["--security"]),
        (&["--device", "nvidia.com/gpu=all"], &["--device"]),
    ];
    for (flags, needles) in table {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image, "true"]);
        assert_fatal(&run(&args), needles);
    }
    // Their variables too: never silently ignored.
    let out = vessel()
        .env("APPTAINER_INTEL_HPU", "1")
        .args(["exec", image, "true"])
        .output()
        .unwrap();
    assert_fatal(
        &out,
        &["APPTAINER_INTEL_HPU (like --intel-hpu) is not supported"],
    );
}

#[test]
fn network_none_gives_only_loopback() {
    let dir = user_dir();
    let out = exec_sh(dir.path(), &["--network", "none"], "cat /proc/net/dev", &[]);
    let interfaces: Vec<&str> = out
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(interfaces, ["lo"], "{out}");
    // cwltool's form.
    let out = exec_sh(
        dir.path(),
        &["--net", "--network", "none"],
        "cat /proc/net/dev",
        &[],
    );
    assert_eq!(out.lines().count(), 3, "{out}");
}

#[test]
fn no_init_no_umask_and_compat() {
    let dir = user_dir();
    // With a PID namespace a shim init is PID 1; --no-init makes the
    // command PID 1 itself.
    assert_eq!(exec_sh(dir.path(), &["--pid"], "echo $$", &[]), "2\n");
    assert_eq!(
        exec_sh(dir.path(), &["--pid", "--no-init"], "echo $$", &[]),
        "1\n"
    );
    // The user's umask is passed in unless --no-umask: `sh -c 'umask 077;
    // exec vessel …'` as the test user.
    let with_umask = |flags: &[&str]| {
        let image = busybox();
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image.to_str().unwrap(), "/bin/sh", "-c", "umask"]);
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let line = format!(
            "umask 077; exec {} {}",
            bin_path().display(),
            quoted.join(" ")
        );
        let sh = std::path::Path::new("/bin/sh");
        let out = as_user(&test_user(), sh, &["-c", &line], &[], dir.path())
            .output()
            .unwrap();
        assert_ok(&out, format!("{flags:?}"))
    };
    assert_eq!(with_umask(&[]).trim(), "0077");
    assert_eq!(with_umask(&["--no-umask"]).trim(), "0022");
    // --compat: contained, PID 1 the command, umask 0022, a writable root
    // whose changes vanish.
    let out = with_umask(&["--compat"]);
    assert_eq!(out.trim(), "0022");
    let out = exec_sh(
        dir.path(),
        &["--compat"],
        "echo $$; touch /new && echo writable",
        &[],
    );
    assert_eq!(out, "1\nwritable\n");
}

/// pflag's `--flag=BOOL` on every kind of command, as Go's
/// `strconv.ParseBool` reads it: `=false` is as if not given, `=true` as
/// given; before the image only.
#[test]
fn boolean_flags_take_go_booleans() {
    let dir = user_dir();
    let d = dir.path();
    let table: &[(&[&str], &str)] = &[
        (&["--cleanenv=false"], "bar"),
        (&["--cleanenv=true"], "unset"),
        (&["--cleanenv=1"], "unset"),
        (&["--cleanenv=0"], "bar"),
        (&["--cleanenv=T"], "unset"),
        (&["--cleanenv=FALSE"], "bar"),
        (&["-e=false"], "bar"),
        (&["-e=true"], "unset"),
        (&["-ce=false"], "bar"),
    ];
    for (flags, want) in table {
        let out = exec_sh(d, flags, "echo ${FOO:-unset}", &[("FOO", "bar")]);
        assert_eq!(out.trim(), *want, "{flags:?}");
    }
    // `--contain=false` does not contain: the host's /tmp is there.
    let marker = tempfile::Builder::new()
        .prefix("vessel-grammar-")
        .tempfile_in("/tmp")
        .unwrap();
    let name = marker.path().to_str().unwrap();
    let script = format!("test -e {name} && echo host || echo contained");
    assert_eq!(exec_sh(d, &["--contain=false"], &script, &[]), "host\n");
    assert_eq!(exec_sh(d, &["--contain=true"], &script, &[]), "contained\n");
    // After the image, the command's own.
    let image = busybox();
    let out = user_run(
        d,
        &["exec", image.to_str().unwrap(), "echo", "--contain=false"],
        &[],
    );
    assert_eq!(assert_ok(&out, "exec echo"), "--contain=false\n");
}

/// pflag's errors, word for word, as one `FATAL:` line and exit 255.
#[test]
fn pflag_errors_word_for_word() {
    let image = busybox();
    let image = image.to_str().unwrap();
    let table: &[(&[&str], &str)] = &[
        (
            &["exec", "--contain=x", image, "true"],
            r#"FATAL:   invalid argument "x" for "-c, --contain" flag: strconv.ParseBool: parsing "x": invalid syntax"#,
        ),
        (
            &["exec", "--nv=yes", image, "true"],
            r#"FATAL:   invalid argument "yes" for "--nv" flag: strconv.ParseBool: parsing "yes": invalid syntax"#,
        ),
        (
            &["build", "--force=maybe", "o.sif", image],
            r#"FATAL:   invalid argument "maybe" for "-F, --force" flag: strconv.ParseBool: parsing "maybe": invalid syntax"#,
        ),
        (
            &["exec", "--bind"],
            "FATAL:   flag needs an argument: --bind",
        ),
        (
            &["exec", "-B"],
            "FATAL:   flag needs an argument: 'B' in -B",
        ),
        (
            &["exec", "-cB"],
            "FATAL:   flag needs an argument: 'B' in -cB",
        ),
        (
            &["pull", "--name"],
            "FATAL:   flag needs an argument: --name",
        ),
        (
            &["instance", "start", "--bnd", image, "web"],
            "FATAL:   unknown flag: --bnd",
        ),
        (
            &["overlay", "create", "--sise", "1", "o.img"],
            "FATAL:   unknown flag: --sise",
        ),
    ];
    for (args, want) in table {
        let out = run(args);
        assert_eq!(out.status.code(), Some(255), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).trim_end(), *want, "{args:?}");
    }
}

/// A value flag takes the next argument whatever it looks like, as pflag
/// does (`--hostname -x` names the host `-x`).
#[test]
fn a_value_flag_takes_the_next_argument() {
    let dir = user_dir();
    assert_eq!(
        exec_sh(dir.path(), &["--hostname", "-x"], "hostname", &[]),
        "-x\n"
    );
}
