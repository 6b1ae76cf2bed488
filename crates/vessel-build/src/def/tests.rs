use super::*;

fn p(text: &str) -> Definition {
    parse("t.def", text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> DefError {
    parse("app.def", text).expect_err("expected an error")
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Definitions equal apart from the original text and warnings.
fn same(a: &Definition, b: &Definition) -> bool {
    let strip = |d: &Definition| {
        let mut d = d.clone();
        d.raw.clear();
        d.warnings.clear();
        for s in &mut d.stages {
            s.raw.clear();
        }
        d
    };
    strip(a) == strip(b)
}

fn assert_round_trip(text: &str) {
    let d = p(text);
    let rendered = d.render();
    let d2 = parse("rendered.def", &rendered)
        .unwrap_or_else(|e| panic!("rendered text does not parse: {e}\n{rendered}"));
    assert!(
        same(&d, &d2),
        "round trip changed the definition\n--- rendered:\n{rendered}\n--- before: {d:#?}\n--- after: {d2:#?}"
    );
    // Rendering is stable.
    assert_eq!(d2.render(), rendered);
}

// The "docker" case of Apptainer's parser testdata, with the expected
// values from its JSON.
const APPTAINER_DOCKER: &str = "# some comment before header
Bootstrap: docker   # some comment on header line
From: <registry>/<namespace>/<container>:<tag>@<digest>
IncludeCmd: yes

# Some dummy comment 1
%help
Hello Help!
# # double Hashtag comment
%setup
    touch ${APPTAINER_ROOTFS}/mock.txt
    touch mock.txt

# Some dummy comment 2

%files
mock1.txt
mock2.txt /opt

# Some dummy comment 3
%labels
Maintainer Eduardo
Version v1.0

%environment
    VADER=badguy
    LUKE=goodguy
    SOLO=someguy # comment 4
    export VADER LUKE SOLO



%post
    echo 'this is a command so long that the user had to' \\
    'add a new line'
    echo 'export GOPATH=$HOME/go' >> $APPTAINER_ENVIRONMENT

%runscript
    echo \"Mock!\"
    echo \"Arguments received: $*\" # This is a very long comment
    exec echo \"$@\"
";

#[test]
fn apptainer_docker_testdata() {
    let d = p(APPTAINER_DOCKER);
    assert_eq!(d.stages.len(), 1);
    let s = &d.stages[0];
    assert_eq!(
        s.header,
        pairs(&[
            ("bootstrap", "docker"),
            ("from", "<registry>/<namespace>/<container>:<tag>@<digest>"),
            ("includecmd", "yes"),
        ])
    );
    assert_eq!(s.bootstrap, "docker");
    assert_eq!(s.name, None);
    assert_eq!(s.sections.help, "Hello Help!\n# # double Hashtag comment\n");
    assert_eq!(
        s.sections.setup.body,
        "    touch ${APPTAINER_ROOTFS}/mock.txt\n    touch mock.txt\n\n# Some dummy comment 2\n\n"
    );
    assert_eq!(
        s.sections.files,
        vec![FilesBlock {
            from: None,
            entries: vec![
                ("mock1.txt".into(), None),
                ("mock2.txt".into(), Some("/opt".into()))
            ],
        }]
    );
    assert_eq!(
        s.sections.labels,
        pairs(&[("Maintainer", "Eduardo"), ("Version", "v1.0")])
    );
    assert_eq!(
        s.sections.environment,
        "    VADER=badguy\n    LUKE=goodguy\n    SOLO=someguy # comment 4\n    export VADER LUKE SOLO\n\n\n\n"
    );
    assert_eq!(
        s.sections.post.body,
        "    echo 'this is a command so long that the user had to' \\\n    'add a new line'\n    echo 'export GOPATH=$HOME/go' >> $APPTAINER_ENVIRONMENT\n\n"
    );
    assert_eq!(
        s.sections.runscript.body,
        "    echo \"Mock!\"\n    echo \"Arguments received: $*\" # This is a very long comment\n    exec echo \"$@\"\n"
    );
    // The leading comment belongs to the first stage's raw text.
    assert_eq!(s.raw, APPTAINER_DOCKER);
    assert_eq!(d.raw, APPTAINER_DOCKER);
    assert_round_trip(APPTAINER_DOCKER);
}

// ---------------------------------------------------------------- header

#[test]
fn header_keys_are_case_insensitive_and_lowercased() {
    let d = p("BOOTSTRAP: docker\nFrOm:   alpine:3.19   \nstage: build\n%post\n  true\n");
    let s = &d.stages[0];
    assert_eq!(
        s.header,
        pairs(&[
            ("bootstrap", "docker"),
            ("from", "alpine:3.19"),
            ("stage", "build")
        ])
    );
    assert_eq!(s.get("FROM"), Some("alpine:3.19"));
    assert_eq!(s.from(), Some("alpine:3.19"));
    assert_eq!(s.name.as_deref(), Some("build"));
    assert_eq!(s.get("registry"), None);
}

#[test]
fn header_value_keeps_case_and_bootstrap_is_not_validated() {
    // Apptainer checks the agent only when building (case-sensitively).
    let d = p("Bootstrap: Docker\nFrom: Alpine\n");
    assert_eq!(d.stages[0].bootstrap, "Docker");
    assert!(!BOOTSTRAP_AGENTS.contains(&"Docker"));
    assert!(BOOTSTRAP_AGENTS.contains(&"docker"));
}

#[test]
fn header_comments_and_blank_lines() {
    let d = p("Bootstrap: docker # the agent\n\n# a comment\n   # indented comment\nFrom: alpine#tag-looking comment\n");
    assert_eq!(
        d.stages[0].header,
        pairs(&[("bootstrap", "docker"), ("from", "alpine")])
    );
}

#[test]
fn header_repeated_key_keeps_last_value() {
    let d = p("Bootstrap: docker\nFrom: a\nFrom: b\n");
    assert_eq!(
        d.stages[0].header,
        pairs(&[("bootstrap", "docker"), ("from", "b")])
    );
}

#[test]
fn header_continuation_lines() {
    let d = p("Bootstrap: yum\nInclude: vim \\\n   wget\nSetopt: a\\n\\\nb\nFrom: x\n");
    let s = &d.stages[0];
    assert_eq!(s.get("include"), Some("vim wget"));
    assert_eq!(s.get("setopt"), Some("a\nb"));
    assert_eq!(s.get("from"), Some("x"));
    assert_round_trip("Bootstrap: yum\nInclude: vim \\\n   wget\nSetopt: a\\n\\\nb\nFrom: x\n");
}

#[test]
fn header_otherurl_takes_a_number() {
    let d = p("Bootstrap: zypper\nOtherURL0: http://a\notherurl12: http://b\n");
    assert_eq!(d.stages[0].get("otherurl12"), Some("http://b"));
    let e = err("Bootstrap: zypper\nOtherURL: http://a\n");
    assert_eq!(e.line, Some(2));
    assert!(matches!(e.kind, ErrorKind::UnknownHeaderKey { ref key, .. } if key == "otherurl"));
}

#[test]
fn header_all_apptainer_keys_accepted() {
    let mut text = String::from("Bootstrap: docker\n");
    for k in HEADER_KEYS.iter().filter(|k| **k != "bootstrap") {
        text.push_str(&format!("{}: v\n", header_display_name(k)));
    }
    let d = p(&text);
    assert_eq!(d.stages[0].header.len(), HEADER_KEYS.len());
}

#[test]
fn unknown_header_key_is_an_error_with_line() {
    let e = err("Bootstrap: docker\nForm: alpine\n%post\n");
    assert_eq!(e.line, Some(2));
    assert_eq!(
        e.kind,
        ErrorKind::UnknownHeaderKey {
            key: "form".into(),
            suggestion: Some("From".into())
        }
    );
    assert!(e
        .to_string()
        .starts_with("app.def:2: unknown header keyword \"form\"; did you mean \"From\"?"));
}

#[test]
fn header_line_without_colon_is_an_error() {
    let e = err("Bootstrap: docker\nFrom alpine\n");
    assert_eq!(e.line, Some(2));
    assert!(matches!(e.kind, ErrorKind::HeaderWithoutValue { .. }));
    // Content before the first section is header, so stray text is an error.
    let e = err("Bootstrap: docker\nFrom: alpine\n\necho hello\n%post\n");
    assert_eq!(e.line, Some(4));
    assert!(e.to_string().contains("section names start with %"));
}

// ---------------------------------------------------------------- bootstrap

#[test]
fn missing_bootstrap() {
    let e = err("From: alpine\n%post\n  true\n");
    assert_eq!(e.kind, ErrorKind::NoBootstrap);
    assert_eq!(e.line, None);
    let e = err("%post\n  true\n");
    assert_eq!(e.kind, ErrorKind::NoBootstrap);
    assert_eq!(e.line, None);
    assert_eq!(
        e.to_string(),
        "app.def: no Bootstrap header: a definition file must start with a header such as \"Bootstrap: docker\""
    );
    // Content before a later Bootstrap line.
    let e = err("# comment\nFrom: alpine\nBootstrap: docker\n");
    assert_eq!(e.kind, ErrorKind::ContentBeforeBootstrap);
    assert_eq!(e.line, Some(2));
}

#[test]
fn empty_files() {
    assert_eq!(err("").kind, ErrorKind::Empty);
    assert_eq!(err("\n  \n").kind, ErrorKind::Empty);
    assert_eq!(
        err("#comment line\n#another comment line").kind,
        ErrorKind::Empty
    );
}

#[test]
fn empty_bootstrap_value() {
    let e = err("Bootstrap:\nFrom: x\n");
    assert_eq!(e.kind, ErrorKind::EmptyBootstrap);
    assert_eq!(e.line, Some(1));
}

#[test]
fn headerless_allowed_when_not_required() {
    let opts = ParseOptions {
        require_bootstrap: false,
    };
    let d = parse_with("u.def", "%post\n  echo update\n", &opts).unwrap();
    assert_eq!(d.stages.len(), 1);
    assert_eq!(d.stages[0].bootstrap, "");
    assert_eq!(d.stages[0].sections.post.body, "  echo update\n");
}

#[test]
fn byte_order_mark_is_ignored() {
    let d = p("\u{feff}Bootstrap: docker\nFrom: alpine\n");
    assert_eq!(d.stages[0].bootstrap, "docker");
}

// ---------------------------------------------------------------- sections

#[test]
fn unknown_section_names_line_and_suggests() {
    let text = "Bootstrap: docker\nFrom: alpine\n\n%post\n  true\n\n%postt\n  echo\n";
    let e = err(text);
    assert_eq!(e.line, Some(7));
    assert_eq!(
        e.kind,
        ErrorKind::UnknownSection {
            name: "postt".into(),
            suggestion: Some("post".into())
        }
    );
    let s = e.to_string();
    assert!(
        s.starts_with(
            "app.def:7: unknown section %postt; did you mean %post? (sections are %setup, %files,"
        ),
        "{s}"
    );
    let e = err("Bootstrap: arch\n\n%badsection\n\tuh oh that's not good!!!\n");
    assert_eq!(e.line, Some(3));
    assert!(matches!(
        e.kind,
        ErrorKind::UnknownSection {
            suggestion: None,
            ..
        }
    ));
}

#[test]
fn percent_line_inside_a_body_starts_a_section() {
    // As in Apptainer, a `%word` at the start of any line is a section.
    let e = err("Bootstrap: docker\n%post\n  printf '\n%s\n' x\n");
    assert_eq!(e.line, Some(4));
    assert!(matches!(e.kind, ErrorKind::UnknownSection { ref name, .. } if name == "s"));
}

#[test]
fn indented_section_is_an_error() {
    let e = err("Bootstrap: docker\nFrom: alpine\n  %post\n  true\n");
    assert_eq!(e.line, Some(3));
    assert_eq!(
        e.kind,
        ErrorKind::IndentedSection {
            name: "post".into()
        }
    );
    assert!(e
        .to_string()
        .contains("must start at the beginning of the line"));
}

#[test]
fn section_names_are_case_insensitive() {
    let d = p("Bootstrap: docker\n%POST\n  a\n%RunScript\n  b\n");
    assert_eq!(d.stages[0].sections.post.body, "  a\n");
    assert_eq!(d.stages[0].sections.runscript.body, "  b\n");
}

#[test]
fn bodies_are_verbatim() {
    let d = p(
        "Bootstrap: docker\n%runscript\n\n    exec \"$@\"   \n\t\tx\n\n\n%help\n   indented help\n",
    );
    let s = &d.stages[0].sections;
    assert_eq!(s.runscript.body, "\n    exec \"$@\"   \n\t\tx\n\n\n");
    assert_eq!(s.help, "   indented help\n");
    // A last line without newline still ends in one.
    let d = p("Bootstrap: docker\n%test\n  true");
    assert_eq!(d.stages[0].sections.test.body, "  true\n");
    // An empty section is empty.
    let d = p("Bootstrap: docker\n%post\n");
    assert!(d.stages[0].sections.post.is_empty());
}

#[test]
fn repeated_sections_concatenate() {
    let d = p("Bootstrap: docker\n%post\n  a\n%environment\n  export A=1\n%post -c /bin/bash\n  b\n%environment\n  export B=2\n");
    let s = &d.stages[0].sections;
    assert_eq!(s.post.body, "  a\n  b\n");
    assert_eq!(s.post.interpreter.as_deref(), Some("/bin/bash"));
    assert_eq!(s.environment, "  export A=1\n  export B=2\n");
}

#[test]
fn post_with_interpreter() {
    let d = p("Bootstrap: docker\nFrom: debian\n%post -c /bin/bash\n  shopt -s extglob\n");
    let post = &d.stages[0].sections.post;
    assert_eq!(post.args, "-c /bin/bash");
    assert_eq!(post.interpreter.as_deref(), Some("/bin/bash"));
    assert_eq!(post.arg_words(), vec!["-c", "/bin/bash"]);
    assert_eq!(post.body, "  shopt -s extglob\n");

    // Apptainer's sectionargs testdata: the comment is kept in args but not
    // in the command.
    let d = p("Bootstrap: library\nFrom: debian:9\n%post -c /bin/bash extra stuff here #comment\n  echo\n");
    let post = &d.stages[0].sections.post;
    assert_eq!(post.args, "-c /bin/bash extra stuff here #comment");
    assert_eq!(
        post.interpreter.as_deref(),
        Some("/bin/bash extra stuff here")
    );

    // Tabs separate the section name from its arguments too.
    let d = p("Bootstrap: docker\n%setup\t-c\t/bin/sh\n  true\n");
    assert_eq!(
        d.stages[0].sections.setup.interpreter.as_deref(),
        Some("/bin/sh")
    );

    // No -c: no interpreter.
    let d = p("Bootstrap: docker\n%runscript --norc\n  true\n");
    assert_eq!(d.stages[0].sections.runscript.args, "--norc");
    assert_eq!(d.stages[0].sections.runscript.interpreter, None);
}

#[test]
fn dash_c_without_command_is_an_error() {
    let e = err("Bootstrap: docker\n%post\n  a\n%post -c # nothing\n  b\n");
    assert_eq!(e.line, Some(4));
    assert_eq!(
        e.kind,
        ErrorKind::MissingInterpreter {
            section: "post".into()
        }
    );
}

#[test]
fn labels_parse_like_apptainer() {
    let d = p("Bootstrap: docker\n%labels\n# comment\nMAINTAINER \"WestleyK <westley@sylabs.io>\"\n  e2e awesome\nE2E AWESOME\nTabbed\tvalue  here \nEmpty\ne2e again\n");
    assert_eq!(
        d.stages[0].sections.labels,
        pairs(&[
            ("MAINTAINER", "\"WestleyK <westley@sylabs.io>\""),
            ("e2e", "again"),
            ("E2E", "AWESOME"),
            ("Tabbed", "value  here"),
            ("Empty", ""),
        ])
    );
}

#[test]
fn arguments_section() {
    let d = parse(
        "a.def",
        "Bootstrap: docker\n%arguments\n  A=1\n  # c\n  B = two words \n  junk\n  A=3\n",
    )
    .unwrap();
    assert_eq!(
        d.stages[0].sections.arguments,
        pairs(&[("A", "3"), ("B", "two words")])
    );
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].starts_with("a.def:6: skipping line in %arguments"));
}

// ---------------------------------------------------------------- files

#[test]
fn files_quoting_like_apptainer_testdata() {
    let d = p("Bootstrap: docker\nFrom: alpine:latest\n\n%files\n    \"file 1\"\n    \"file 1\" \"nospace1\"\n    \"file 1\" \"with space 1\"\n    file2\n    file2 \"nospace2\"\n    file2 \"with space 2\"\n    \"file3\" \"nospace3\"\n    \"file3\" \"with space 3\"\n\n%post\n    echo \"Hello\"\n");
    let f = &d.stages[0].sections.files;
    assert_eq!(f.len(), 1);
    let want: Vec<(String, Option<String>)> = [
        ("file 1", None),
        ("file 1", Some("nospace1")),
        ("file 1", Some("with space 1")),
        ("file2", None),
        ("file2", Some("nospace2")),
        ("file2", Some("with space 2")),
        ("file3", Some("nospace3")),
        ("file3", Some("with space 3")),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.map(str::to_string)))
    .collect();
    assert_eq!(f[0].entries, want);
    assert_eq!(d.stages[0].sections.post.body, "    echo \"Hello\"\n");
}

#[test]
fn files_comments_extra_words_and_single_quotes() {
    let d = p("Bootstrap: docker\n%files\n  # whole-line comment\n\n  a b # trailing comment\n  c # only a comment after\n  d e f\n  'g h' i\n  /opt/*.so /usr/lib/\n");
    assert_eq!(
        d.stages[0].sections.files[0].entries,
        vec![
            ("a".to_string(), Some("b".to_string())),
            ("c".to_string(), None),
            ("d".to_string(), Some("e".to_string())),
            ("g h".to_string(), Some("i".to_string())),
            ("/opt/*.so".to_string(), Some("/usr/lib/".to_string())),
        ]
    );
}

#[test]
fn files_unterminated_quote() {
    let e = err("Bootstrap: docker\n%files\n  \"a b /c\n");
    assert_eq!(e.line, Some(3));
    assert!(matches!(e.kind, ErrorKind::UnterminatedQuote { .. }));
}

#[test]
fn files_blocks_merge_by_source_like_apptainer_testdata() {
    let text = "Bootstrap: docker\nFrom: alpine:latest\nStage: one\n\n%files\n    file2 onefile2\n    file1 onefile1\n\n%post\n    echo \"Hello\"\n\n%files\n    file1 twofile1\n\nBootstrap: docker\nFrom: alpine\nStage: two\n%files from one\n    file1 file1copy\n%files\n    x\n%files FROM one\n    file2 file2copy\n";
    let d = p(text);
    let f1 = &d.stages[0].sections.files;
    assert_eq!(f1.len(), 1);
    assert_eq!(f1[0].entries.len(), 3);
    assert_eq!(d.stages[0].sections.post.body, "    echo \"Hello\"\n\n");
    let f2 = &d.stages[1].sections.files;
    assert_eq!(f2.len(), 2);
    assert_eq!(f2[0].from.as_deref(), Some("one"));
    assert_eq!(
        f2[0].entries,
        vec![
            ("file1".to_string(), Some("file1copy".to_string())),
            ("file2".to_string(), Some("file2copy".to_string()))
        ]
    );
    assert_eq!(f2[1].from, None);
    assert_round_trip(text);
}

#[test]
fn files_from_unknown_or_later_stage() {
    let e = err(
        "Bootstrap: docker\nStage: one\n\nBootstrap: docker\nStage: two\n%files from three\n  /a\n",
    );
    assert_eq!(e.line, Some(6));
    assert_eq!(
        e.kind,
        ErrorKind::UnknownStage {
            name: "three".into()
        }
    );
    let e = err(
        "Bootstrap: docker\nStage: one\n%files from two\n  /a\n\nBootstrap: docker\nStage: two\n",
    );
    assert_eq!(e.line, Some(3));
}

#[test]
fn files_bad_arguments() {
    let e = err("Bootstrap: docker\n%files frm one\n  /a\n");
    assert_eq!(e.line, Some(2));
    assert_eq!(
        e.kind,
        ErrorKind::BadFilesArgs {
            args: "frm one".into()
        }
    );
    let e = err("Bootstrap: docker\n%files from\n  /a\n");
    assert!(matches!(e.kind, ErrorKind::BadFilesArgs { .. }));
}

// ---------------------------------------------------------------- stages

#[test]
fn multi_stage() {
    let text = "Bootstrap: docker\nFrom: golang\nStage: devel\n\n%post\n  go build\n\n# Install binary into the final image\nbootstrap: docker\nFrom: alpine\nStage: final\n\n%files from devel\n  /go/bin/hello /bin/hello\n";
    let d = p(text);
    assert_eq!(d.stages.len(), 2);
    assert_eq!(d.stages[0].name.as_deref(), Some("devel"));
    assert_eq!(d.stages[1].name.as_deref(), Some("final"));
    assert_eq!(d.final_stage().from(), Some("alpine"));
    assert_eq!(d.stage("devel").unwrap().from(), Some("golang"));
    // The comment line before the second Bootstrap is part of the first
    // stage's %post, as in Apptainer.
    assert_eq!(
        d.stages[0].sections.post.body,
        "  go build\n\n# Install binary into the final image\n"
    );
    assert!(d.stages[1].raw.starts_with("bootstrap: docker\n"));
    let joined: String = d.stages.iter().map(|s| s.raw.as_str()).collect();
    assert_eq!(joined, text);
    assert_round_trip(text);
}

#[test]
fn duplicate_stage_names_warn() {
    let d = p("Bootstrap: docker\nStage: a\n\nBootstrap: docker\nStage: a\n");
    assert_eq!(d.warnings.len(), 1);
    assert!(d.warnings[0].starts_with("t.def:4: stage name \"a\" is used twice"));
}

#[test]
fn bootstrap_must_be_at_column_zero_to_split() {
    let d = p("Bootstrap: docker\n%post\n  bootstrap: not a stage\n");
    assert_eq!(d.stages.len(), 1);
}

// ---------------------------------------------------------------- apps

#[test]
fn scif_apps() {
    let text = "Bootstrap: docker\n%appinstall med\n  echo med\n%apprun hdf5\n  echo run\n%appinstall hdf5\n  echo hdf5\n%applabels hdf5\n  VERSION 1.10\n  # c\n%appfiles hdf5\n  a.txt\n  b.txt  dest/b.txt # comment\n%appenv hdf5\n  export X=1\n%apphelp hdf5\n  help\n%apptest hdf5\n  true\n%appstart hdf5\n  exec \"$@\"\n%AppRun Med\n  echo Med\n";
    let d = p(text);
    let s = &d.stages[0];
    assert_eq!(s.app_order, vec!["med", "hdf5", "Med"]);
    let h = &s.apps["hdf5"];
    assert_eq!(h.install, "  echo hdf5\n");
    assert_eq!(h.run, "  echo run\n");
    assert_eq!(h.labels, pairs(&[("VERSION", "1.10")]));
    assert_eq!(
        h.files,
        vec![
            ("a.txt".to_string(), None),
            ("b.txt".to_string(), Some("dest/b.txt".to_string()))
        ]
    );
    assert_eq!(h.env, "  export X=1\n");
    assert_eq!(h.help, "  help\n");
    assert_eq!(h.test, "  true\n");
    assert_eq!(h.start, "  exec \"$@\"\n");
    assert_eq!(s.apps["med"].install, "  echo med\n");
    assert_eq!(s.apps["Med"].run, "  echo Med\n");
    assert_round_trip(text);
}

#[test]
fn app_section_needs_a_name() {
    let e = err("Bootstrap: docker\n%appenv apptest apptest2\ntest\n%appenv\ntest\n");
    assert_eq!(e.line, Some(4));
    assert_eq!(
        e.kind,
        ErrorKind::MissingAppName {
            section: "appenv".into()
        }
    );
    // Extra words after the name are ignored, as in Apptainer.
    let d = p("Bootstrap: docker\n%appenv apptest apptest2\ntest");
    assert_eq!(d.stages[0].apps["apptest"].env, "test\n");
}

#[test]
fn app_with_only_empty_sections_survives_round_trip() {
    let text = "Bootstrap: docker\n%apprun empty\n%apprun full\n  x\n";
    let d = p(text);
    assert_eq!(d.stages[0].app_order, vec!["empty", "full"]);
    assert_round_trip(text);
}

// ---------------------------------------------------------------- CRLF

#[test]
fn crlf_files_parse_like_lf() {
    let lf = "Bootstrap: docker\nFrom: alpine\nStage: s\n\n%post -c /bin/bash\n    echo hi  \n\n%labels\n    A b\n%files\n    \"x y\" /z\n%runscript\n    exec \"$@\"";
    let crlf = lf.replace('\n', "\r\n");
    let a = p(lf);
    let b = p(&crlf);
    assert!(same(&a, &b), "{a:#?}\n{b:#?}");
    assert_eq!(b.raw, crlf);
    assert_eq!(b.stages[0].raw, crlf);
    assert_eq!(b.stages[0].sections.post.body, "    echo hi  \n\n");
    assert_eq!(
        b.stages[0].sections.post.interpreter.as_deref(),
        Some("/bin/bash")
    );
    // Errors name the same line.
    let e = parse("w.def", "Bootstrap: docker\r\nFrom: x\r\n%postt\r\n").unwrap_err();
    assert_eq!(e.line, Some(3));
}

// ---------------------------------------------------------------- render

#[test]
fn render_is_canonical() {
    let d = p("BOOTSTRAP: docker\nstage: one\nfrom: alpine\n%labels\n  A  b\n%post -c /bin/bash\n  echo\n%files\n  \"a b\" c\n  '\"q\"' \"#x\"\n");
    let r = d.render();
    assert!(
        r.starts_with("Bootstrap: docker\nStage: one\nFrom: alpine\n\n"),
        "{r}"
    );
    assert!(r.contains("%post -c /bin/bash\n  echo\n"), "{r}");
    assert!(r.contains("%labels\n    A b\n"), "{r}");
    assert!(
        r.contains("%files\n    \"a b\" c\n    '\"q\"' \"#x\"\n"),
        "{r}"
    );
    assert_eq!(d.to_string(), r);
}

#[test]
fn round_trips() {
    for text in [
        "Bootstrap: docker\nFrom: alpine\n",
        "Bootstrap: docker\n%post\n",
        "Bootstrap: docker\n%post -c /bin/sh\n",
        "Bootstrap: docker\n%startscript\n  exec \"$@\"\n%test\n  true\n%pre\n  echo pre\n%arguments\n  A=1\n  B=x y\n",
        "Bootstrap: localimage\nFrom: x.sif\nFingerprints: AAA,BBB\n%help\nsome help\n\n%environment\n  export A=1\n",
        "Bootstrap: docker\nStage: a\n%files\n  \"%odd\" \"\"\n",
    ] {
        assert_round_trip(text);
    }
}

// ---------------------------------------------------------------- helpers

#[test]
fn edit_distance_and_suggestions() {
    assert_eq!(edit_distance("post", "post"), 0);
    assert_eq!(edit_distance("postt", "post"), 1);
    assert_eq!(edit_distance("enviroment", "environment"), 1);
    assert_eq!(suggest("runscrpt", SECTIONS), Some("runscript"));
    assert_eq!(suggest("zzzzzzzz", SECTIONS), None);
}

#[test]
fn split_lines_like_go_scanner() {
    let l = split_lines("a\r\nb\n\nc");
    let t: Vec<_> = l.iter().map(|l| (l.no, l.text, l.start)).collect();
    assert_eq!(t, vec![(1, "a", 0), (2, "b", 3), (3, "", 5), (4, "c", 6)]);
    assert!(split_lines("").is_empty());
}

#[test]
fn files_word_splitting() {
    assert_eq!(
        split_files_line("{{ HOME }}/hello.sh /bin/hello").unwrap(),
        vec!["{{ HOME }}/hello.sh", "/bin/hello"]
    );
    assert_eq!(split_files_line("a\"b c\"").unwrap(), vec!["a", "b c"]);
    assert_eq!(split_files_line("\"\" x").unwrap(), vec!["", "x"]);
    assert_eq!(split_files_line("a#b c").unwrap(), vec!["a#b", "c"]);
    assert!(split_files_line("'a").is_none());
}

/// Every input the `def_parse` fuzz target crashed on, replayed.
#[test]
fn past_fuzz_crashes_stay_fixed() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/def_parse");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        super::exercise_untrusted(&String::from_utf8_lossy(&data));
    }
}

#[test]
fn round_trip_of_awkward_text() {
    // A body line ending in `\r` (after the one the line ending drops), a
    // `%files` word holding a vertical tab, header values ending in `\` or
    // in a continued newline.
    assert_round_trip("Bootstrap: docker\n%post\n    echo a\r\r\n%help\nx\r\r\n");
    assert_round_trip("Bootstrap: docker\n%files\n    a \"\u{b}\"\n");
    assert_round_trip("Bootstrap: docker\nFrom: a\\\\\nStage: b\\n\\\n\nInclude: c\n");
    assert_round_trip("Bootstrap: d+  \\\n# comment\nFrom: x \u{a0}\\\n\n");
}
