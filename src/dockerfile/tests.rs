//! Tables of Dockerfiles and what they parse to, errors with their lines, and expansion.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

fn one(src: &str) -> Instruction {
    let df = parse("Dockerfile", format!("FROM scratch\n{src}\n").as_bytes())
        .unwrap_or_else(|e| panic!("{src}: {e}"));
    assert_eq!(df.stages[0].steps.len(), 1, "{src}");
    df.stages[0].steps[0].instruction.clone()
}

fn err(src: &str) -> String {
    match parse("Dockerfile", src.as_bytes()) {
        Ok(df) => panic!("{src:?} parsed: {df:?}"),
        Err(e) => e.to_string(),
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: v.into(),
    }
}

#[test]
fn instructions_table() {
    let table: Vec<(&str, Instruction)> = vec![
        (
            "RUN echo hi",
            Instruction::Run {
                command: Command::Shell("echo hi".into()),
                mounts: vec![],
                network: None,
                security: None,
                heredocs: vec![],
            },
        ),
        (
            "run [\"a\", \"b c\"]",
            Instruction::Run {
                command: Command::Exec(s(&["a", "b c"])),
                mounts: vec![],
                network: None,
                security: None,
                heredocs: vec![],
            },
        ),
        (
            "RUN --mount=type=cache,target=/c --network=none make",
            Instruction::Run {
                command: Command::Shell("make".into()),
                mounts: s(&["type=cache,target=/c"]),
                network: Some("none".into()),
                security: None,
                heredocs: vec![],
            },
        ),
        (
            "RUN [not json",
            Instruction::Run {
                command: Command::Shell("[not json".into()),
                mounts: vec![],
                network: None,
                security: None,
                heredocs: vec![],
            },
        ),
        (
            "CMD [\"./app.sh\"]",
            Instruction::Cmd(Command::Exec(s(&["./app.sh"]))),
        ),
        (
            "CMD echo $HOME",
            Instruction::Cmd(Command::Shell("echo $HOME".into())),
        ),
        (
            "ENTRYPOINT [\"/bin/tini\", \"--\"]",
            Instruction::Entrypoint(Command::Exec(s(&["/bin/tini", "--"]))),
        ),
        (
            "LABEL maintainer 'F4NT0'",
            Instruction::Label(vec![kv("maintainer", "'F4NT0'")]),
        ),
        (
            "LABEL a=1 \"b c\"=\"d e\" f='g'",
            Instruction::Label(vec![kv("a", "1"), kv("\"b c\"", "\"d e\""), kv("f", "'g'")]),
        ),
        (
            "MAINTAINER Ana <a@b>",
            Instruction::Maintainer("Ana <a@b>".into()),
        ),
        (
            "EXPOSE 80 443/tcp 8000-8010/udp",
            Instruction::Expose(s(&["80", "443/tcp", "8000-8010/udp"])),
        ),
        (
            "ENV A=1 B=\"x y\"",
            Instruction::Env(vec![kv("A", "1"), kv("B", "\"x y\"")]),
        ),
        (
            "ENV GREETING Hello from camada",
            Instruction::Env(vec![kv("GREETING", "Hello from camada")]),
        ),
        ("WORKDIR /app dir", Instruction::Workdir("/app dir".into())),
        ("USER 1000:1000", Instruction::User("1000:1000".into())),
        ("VOLUME /a /b", Instruction::Volume(s(&["/a", "/b"]))),
        ("VOLUME [\"/a b\"]", Instruction::Volume(s(&["/a b"]))),
        (
            "ARG A B=2 C=\"x y\"",
            Instruction::Arg(vec![
                ArgDecl {
                    name: "A".into(),
                    default: None,
                },
                ArgDecl {
                    name: "B".into(),
                    default: Some("2".into()),
                },
                ArgDecl {
                    name: "C".into(),
                    default: Some("\"x y\"".into()),
                },
            ]),
        ),
        (
            "STOPSIGNAL SIGTERM",
            Instruction::StopSignal("SIGTERM".into()),
        ),
        (
            "SHELL [\"/bin/bash\", \"-c\"]",
            Instruction::Shell(s(&["/bin/bash", "-c"])),
        ),
        (
            "HEALTHCHECK NONE",
            Instruction::Healthcheck(Healthcheck::None),
        ),
        (
            "HEALTHCHECK --interval=30s --timeout=1m30s --retries=3 CMD curl -f http://x/",
            Instruction::Healthcheck(Healthcheck::Cmd {
                test: Command::Shell("curl -f http://x/".into()),
                interval: Some(Duration::from_secs(30)),
                timeout: Some(Duration::from_secs(90)),
                start_period: None,
                start_interval: None,
                retries: Some(3),
            }),
        ),
        (
            "COPY --from=build --chown=1:2 --chmod=0755 --link a b /dst/",
            Instruction::Copy(CopyArgs {
                sources: s(&["a", "b"]),
                dest: "/dst/".into(),
                from: Some("build".into()),
                chown: Some("1:2".into()),
                chmod: Some("0755".into()),
                link: true,
                ..Default::default()
            }),
        ),
        (
            "COPY [\"a file\", \"/my dir/\"]",
            Instruction::Copy(CopyArgs {
                sources: s(&["a file"]),
                dest: "/my dir/".into(),
                json: true,
                ..Default::default()
            }),
        ),
        (
            "COPY --exclude=*.md --exclude=x . /",
            Instruction::Copy(CopyArgs {
                sources: s(&["."]),
                dest: "/".into(),
                exclude: s(&["*.md", "x"]),
                ..Default::default()
            }),
        ),
        (
            "ADD --checksum=sha256:ab https://x/y.tgz /",
            Instruction::Add(CopyArgs {
                sources: s(&["https://x/y.tgz"]),
                dest: "/".into(),
                checksum: Some("sha256:ab".into()),
                ..Default::default()
            }),
        ),
        (
            "onbuild RUN make",
            Instruction::Onbuild {
                expression: "RUN make".into(),
                trigger: Box::new(Instruction::Run {
                    command: Command::Shell("make".into()),
                    mounts: vec![],
                    network: None,
                    security: None,
                    heredocs: vec![],
                }),
            },
        ),
    ];
    for (src, want) in table {
        assert_eq!(one(src), want, "{src}");
    }
}

#[test]
fn errors_table() {
    let table = [
        (
            "FROM a\nRUN x\n\n# c\nRUN y\nENV A=1\nCOPPY a b\n",
            "Dockerfile:7: unknown instruction: COPPY (did you mean COPY?)",
        ),
        (
            "FROM a\nXYZZYQ\n",
            "Dockerfile:2: unknown instruction: XYZZYQ",
        ),
        (
            "FROM a\nRUNN x\n",
            "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)",
        ),
        (
            "RUN x\n",
            "Dockerfile:1: RUN is not allowed before the first FROM (only ARG is)",
        ),
        ("", "Dockerfile:1: the Dockerfile has no instructions"),
        (
            "FROM a AS 1x\n",
            "Dockerfile:1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols",
        ),
        (
            "FROM a b\n",
            "Dockerfile:1: FROM requires either one or three arguments (IMAGE [AS NAME])",
        ),
        (
            "FROM a AS x\nFROM b AS X\n",
            "Dockerfile:2: duplicate name for build stage: \"x\"",
        ),
        (
            "FROM a\nCOPY x\n",
            "Dockerfile:2: COPY requires at least two arguments, but only one was provided. Destination could not be determined",
        ),
        (
            "FROM a\nENV A\n",
            "Dockerfile:2: ENV must have two arguments",
        ),
        (
            "FROM a\nENV A=1 B\n",
            "Dockerfile:2: syntax error - can't find = in \"B\". Must be of the form: name=value",
        ),
        (
            "FROM a\nLABEL =x\n",
            "Dockerfile:2: LABEL names can not be blank",
        ),
        (
            "FROM a\nSHELL /bin/sh\n",
            "Dockerfile:2: SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM a\nCMD [1]\n",
            "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only",
        ),
        (
            "FROM a\nCOPY --form=x a b\n",
            "Dockerfile:2: unknown flag: --form (for COPY)",
        ),
        (
            "FROM a\nCOPY --link=maybe a b\n",
            "Dockerfile:2: expecting boolean value for flag --link, not: maybe",
        ),
        (
            "FROM a\nCOPY --from a b\n",
            "Dockerfile:2: missing a value on flag: --from",
        ),
        (
            "FROM a\nCOPY --from=x --from=y a b\n",
            "Dockerfile:2: duplicate flag specified: --from",
        ),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        (
            "FROM a\nONBUILD FROM x\n",
            "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM a\nHEALTHCHECK NONE x\n",
            "Dockerfile:2: HEALTHCHECK NONE takes no arguments",
        ),
        (
            "FROM a\nHEALTHCHECK WHAT x\n",
            "Dockerfile:2: unknown type \"WHAT\" in HEALTHCHECK (try CMD)",
        ),
        (
            "FROM a\nHEALTHCHECK --interval=1us CMD x\n",
            "Dockerfile:2: HEALTHCHECK --interval: \"1us\" cannot be less than 1ms",
        ),
        (
            "FROM a\nWORKDIR\n",
            "Dockerfile:2: WORKDIR requires exactly one argument",
        ),
        (
            "FROM a\nVOLUME [\"\"]\n",
            "Dockerfile:2: VOLUME specified can not be an empty string",
        ),
        (
            "# escape=x\nFROM a\n",
            "Dockerfile:1: invalid escape token 'x' does not match ` or \\",
        ),
        (
            "# escape=`\n# escape=\\\nFROM a\n",
            "Dockerfile:2: only one escape parser directive can be used",
        ),
        (
            "FROM a\nCOPY x <<EOF\nhi\nEOF\n",
            "Dockerfile:2: COPY cannot have a heredoc as its destination",
        ),
        (
            "FROM a\nRUN cat <<EOF\nhello\n",
            "Dockerfile:2: unterminated heredoc \"EOF\": no line holds only its delimiter",
        ),
    ];
    for (src, want) in table {
        assert_eq!(err(src), want, "{src:?}");
    }
    let bad = parse("Dockerfile", b"FROM a\n\xff\n").unwrap_err();
    assert_eq!(bad.line, 2);
}

#[test]
fn continuations_comments_and_lines() {
    let src = "# syntax=docker/dockerfile:1\n\
               FROM base \\\n  AS b\n\
               RUN a \\\n# a comment inside\n\n    && b\n\
               \n\
               # trailing comment\n\
               run x\n";
    let df = parse("Dockerfile", src.as_bytes()).unwrap();
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.stages[0].name.as_deref(), Some("b"));
    assert_eq!(df.stages[0].from.line, 2);
    let steps = &df.stages[0].steps;
    assert_eq!((steps[0].line, steps[0].end_line), (4, 7));
    assert_eq!(steps[0].original, "RUN a     && b");
    assert_eq!(steps[1].line, 10);
    assert_eq!(steps[1].original, "run x");
}

#[test]
fn directives_only_at_the_top() {
    let df = parse("D", b"FROM a\n# escape=`\nRUN a \\\n").unwrap();
    assert_eq!(df.directives.escape, '\\');
    let df = parse(
        "D",
        b"# ESCAPE = `\n# check=skip=all\nFROM a\nRUN a `\n  b\nENV X=a`$b\n",
    )
    .unwrap();
    assert_eq!(df.directives.escape, '`');
    assert_eq!(df.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(df.stages[0].steps[0].original, "RUN a   b");
    let env = StageEnv::new(&df, &[], &BuildArgs::default()).unwrap();
    assert_eq!(env.expand("a`$b").unwrap(), "a$b");
    // A blank line ends the directives.
    let df = parse("D", b"\n# escape=`\nFROM a\n").unwrap();
    assert_eq!(df.directives.escape, '\\');
}

#[test]
fn heredocs() {
    let src = "FROM a\nRUN <<EOF bash\necho $X\nEOF\nRUN <<-'END' cat >&2 && 3<<\"B\" x\n\t\tline\n\tEND\nb\nB\nCOPY <<f1 /dst\nhi\nf1\nRUN [\"x\", \"<<EOF\"]\nENV Y=1\n";
    let df = parse("Dockerfile", src.as_bytes()).unwrap();
    let steps = &df.stages[0].steps;
    let Instruction::Run {
        heredocs, command, ..
    } = &steps[0].instruction
    else {
        panic!()
    };
    assert_eq!(command, &Command::Shell("<<EOF bash".into()));
    assert_eq!(heredocs.len(), 1);
    assert_eq!(
        (
            heredocs[0].name.as_str(),
            heredocs[0].content.as_str(),
            heredocs[0].expand
        ),
        ("EOF", "echo $X\n", true)
    );
    let Instruction::Run { heredocs, .. } = &steps[1].instruction else {
        panic!()
    };
    assert_eq!(heredocs.len(), 2);
    assert!(heredocs[0].chomp && !heredocs[0].expand);
    assert_eq!(heredocs[0].content, "\t\tline\n");
    assert_eq!(heredocs[0].body(), "line\n");
    assert_eq!(
        (
            heredocs[1].name.as_str(),
            heredocs[1].fd,
            heredocs[1].expand
        ),
        ("B", 3, false)
    );
    assert_eq!(heredocs[1].content, "b\n");
    assert_eq!((steps[1].line, steps[1].end_line), (5, 9));
    let Instruction::Copy(c) = &steps[2].instruction else {
        panic!()
    };
    assert_eq!(c.dest, "/dst");
    assert!(c.sources.is_empty());
    assert_eq!(c.heredocs[0].content, "hi\n");
    assert!(
        matches!(&steps[3].instruction, Instruction::Run { heredocs, .. } if heredocs.is_empty())
    );
    assert_eq!(steps[4].line, 14);
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn expansion_table() {
    let v = vars(&[
        ("A", "x"),
        ("E", ""),
        ("P", "/usr/local/bin/tool.tar.gz"),
        ("S", "a b"),
    ]);
    let table = [
        ("$A", "x"),
        ("${A}y", "xy"),
        ("$Ay", ""),
        ("$U-", "-"),
        ("${U:-d}", "d"),
        ("${E:-d}", "d"),
        ("${E-d}", ""),
        ("${U-d}", "d"),
        ("${A:+set}", "set"),
        ("${E:+set}", ""),
        ("${E+set}", "set"),
        ("${U+set}", ""),
        ("${U:-$A}", "x"),
        ("'$A'", "$A"),
        ("\"$A 'q'\"", "x 'q'"),
        ("\\$A", "$A"),
        ("\"\\$A\\\"\"", "$A\""),
        ("\"a\\b\"", "a\\b"),
        ("a\\ b", "a b"),
        ("$", "$"),
        ("$1x", "x"),
        ("${P#*/}", "usr/local/bin/tool.tar.gz"),
        ("${P##*/}", "tool.tar.gz"),
        ("${P%.*}", "/usr/local/bin/tool.tar"),
        ("${P%%.*}", "/usr/local/bin/tool"),
        ("${P/tar/zip}", "/usr/local/bin/tool.zip.gz"),
        ("${S// /_}", "a_b"),
        ("${A:?}", "x"),
    ];
    for (word, want) in table {
        assert_eq!(expand_word(word, &v, '\\').as_deref(), Ok(want), "{word}");
    }
    assert_eq!(expand_word("`$A", &v, '`').as_deref(), Ok("$A"));
    assert_eq!(
        expand_words("$S \"c d\" e", &v, '\\').unwrap(),
        s(&["a", "b", "c d", "e"])
    );
    for bad in [
        "${",
        "${A",
        "${}",
        "${:-x}",
        "'abc",
        "\"abc",
        "${U:?must be set}",
        "${A!x}",
    ] {
        assert!(expand_word(bad, &v, '\\').is_err(), "{bad}");
    }
    assert_eq!(
        expand_word("${U:?must be set}", &v, '\\')
            .unwrap_err()
            .to_string(),
        "U: must be set"
    );
}

#[test]
fn arg_scopes_and_precedence() {
    let src = "ARG V=1.0\nARG BASE=alpine:$V\nARG UNUSED\nFROM --platform=$TARGETPLATFORM $BASE AS one\nRUN echo $V\n\
               FROM one\nARG V\nARG W=${V}-w\nENV W=env\nARG W=arg\nLABEL v=$V w=$W u=\"$UNUSED\"\n";
    let df = parse("Dockerfile", src.as_bytes()).unwrap();
    let mut args = BuildArgs::default();
    args.automatic
        .insert("TARGETPLATFORM".into(), "linux/amd64".into());
    let stages = df.resolve(&args).unwrap();
    assert_eq!(stages[0].image, "alpine:1.0");
    assert_eq!(stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(stages[1].image, "one");
    // Stage 0 did not redeclare V: not visible (RUN is never expanded anyway).
    let env0 = StageEnv::new(&df, &[], &args).unwrap();
    assert_eq!(env0.expand("[$V]").unwrap(), "[]");
    let mut env = StageEnv::new(&df, &["PATH=/bin".into()], &args).unwrap();
    let out: Vec<Instruction> = df.stages[1]
        .steps
        .iter()
        .map(|st| env.step(st).unwrap())
        .collect();
    assert_eq!(
        out[1],
        Instruction::Arg(vec![ArgDecl {
            name: "W".into(),
            default: Some("1.0-w".into())
        }])
    );
    assert_eq!(
        out[4],
        Instruction::Label(vec![kv("v", "1.0"), kv("w", "env"), kv("u", "")])
    );
    assert_eq!(
        env.image_env(),
        &[("PATH".into(), "/bin".into()), ("W".into(), "env".into())][..]
    );
    // --build-arg overrides defaults, global and local; proxies reach RUN only.
    args.values.insert("V".into(), "2.0".into());
    args.values
        .insert("HTTP_PROXY".into(), "http://p:3128".into());
    let stages = df.resolve(&args).unwrap();
    assert_eq!(stages[0].image, "alpine:2.0");
    let mut env = StageEnv::new(&df, &[], &args).unwrap();
    for st in &df.stages[1].steps {
        env.step(st).unwrap();
    }
    let run = env.run_env();
    assert_eq!(run.get("V").map(String::as_str), Some("2.0"));
    assert_eq!(run.get("W").map(String::as_str), Some("env"));
    assert_eq!(
        run.get("HTTP_PROXY").map(String::as_str),
        Some("http://p:3128")
    );
    assert_eq!(env.expand("$HTTP_PROXY").unwrap(), "");
    args.values.insert("NOPE".into(), "x".into());
    assert_eq!(df.unused_build_args(&args), s(&["NOPE"]));
}

#[test]
fn env_uses_values_from_before_the_instruction() {
    let df = parse("D", b"FROM a\nENV A=1\nENV A=2 B=$A\nENV C $A$B\n").unwrap();
    let mut env = StageEnv::new(&df, &[], &BuildArgs::default()).unwrap();
    let out: Vec<_> = df.stages[0]
        .steps
        .iter()
        .map(|st| env.step(st).unwrap())
        .collect();
    assert_eq!(out[1], Instruction::Env(vec![kv("A", "2"), kv("B", "1")]));
    assert_eq!(out[2], Instruction::Env(vec![kv("C", "21")]));
}

#[test]
fn expansion_where_docker_expands_and_nowhere_else() {
    let df = parse(
        "D",
        b"FROM a\nENV D=/d P=80 U=me S=SIGINT\nCOPY --chown=$U $D/x ${D}/y/\nWORKDIR $D\nUSER $U\nEXPOSE $P ${P}/udp\nSTOPSIGNAL $S\nVOLUME $D\nRUN echo $D\nCMD echo $D\nONBUILD COPY $D /\n",
    )
    .unwrap();
    let mut env = StageEnv::new(&df, &[], &BuildArgs::default()).unwrap();
    let out: Vec<_> = df.stages[0]
        .steps
        .iter()
        .map(|st| env.step(st).unwrap())
        .collect();
    let Instruction::Copy(c) = &out[1] else {
        panic!()
    };
    assert_eq!(
        (c.sources.clone(), c.dest.as_str(), c.chown.as_deref()),
        (s(&["/d/x"]), "/d/y/", Some("me"))
    );
    assert_eq!(out[2], Instruction::Workdir("/d".into()));
    assert_eq!(out[3], Instruction::User("me".into()));
    assert_eq!(out[4], Instruction::Expose(s(&["80", "80/udp"])));
    assert_eq!(out[5], Instruction::StopSignal("SIGINT".into()));
    assert_eq!(out[6], Instruction::Volume(s(&["/d"])));
    assert_eq!(out[7], df.stages[0].steps[7].instruction);
    assert_eq!(out[8], Instruction::Cmd(Command::Shell("echo $D".into())));
    assert_eq!(out[9], df.stages[0].steps[9].instruction);
}

#[test]
fn port_specs() {
    assert_eq!(
        PortRange::parse("80").unwrap(),
        PortRange {
            first: 80,
            last: 80,
            protocol: "tcp"
        }
    );
    assert_eq!(
        PortRange::parse("8000-8010/UDP").unwrap(),
        PortRange {
            first: 8000,
            last: 8010,
            protocol: "udp"
        }
    );
    for bad in ["", "x", "80/icmp", "10-5", "70000"] {
        assert!(PortRange::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn keywords_are_case_insensitive_and_stages_found_by_name_or_index() {
    let df = parse(
        "D",
        b"from a as Build\nCoPy . /\nFROM b\nCOPY --from=build /x /\n",
    )
    .unwrap();
    assert_eq!(df.stage("BUILD").map(|s| s.index), Some(0));
    assert_eq!(df.stage("1").map(|s| s.index), Some(1));
    assert!(matches!(
        df.stages[0].steps[0].instruction,
        Instruction::Copy(_)
    ));
}

#[test]
fn the_example_fixture_parses() {
    let src = include_bytes!("../../fixtures/example/Dockerfile");
    let df = parse("fixtures/example/Dockerfile", src).unwrap();
    assert_eq!(df.stages.len(), 1);
    let env_base = ["PATH=/usr/bin".to_owned()];
    let mut env = StageEnv::new(&df, &env_base, &BuildArgs::default()).unwrap();
    let out: Vec<_> = df.stages[0]
        .steps
        .iter()
        .map(|st| env.step(st).unwrap())
        .collect();
    let kinds: Vec<_> = out.iter().map(Instruction::keyword).collect();
    assert_eq!(
        kinds,
        [
            "LABEL", "LABEL", "ENV", "ENV", "COPY", "COPY", "WORKDIR", "EXPOSE", "RUN", "CMD"
        ]
    );
    assert_eq!(
        out[0],
        Instruction::Label(vec![kv("maintainer", "Ana Teacher <ana@example.org>")])
    );
    assert_eq!(
        out[3],
        Instruction::Env(vec![kv("GREETING", "Hello from camada")])
    );
    assert_eq!(out[6], Instruction::Workdir("/app".into()));
    assert_eq!(df.stages[0].steps[8].line, 22);
    assert_eq!(df.stages[0].steps[8].end_line, 23);
}

#[test]
fn suggestions() {
    assert_eq!(suggest::nearest("COPPY"), Some("COPY"));
    assert_eq!(suggest::nearest("ENTRYPONT"), Some("ENTRYPOINT"));
    assert_eq!(suggest::nearest("QQQQQQQ"), None);
}
