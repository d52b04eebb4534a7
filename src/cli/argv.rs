//! The command line as docker users type it, turned into what argh parses: global flags
//! picked off the front, docker's aliases (`image ls` = `images`, `image rm` = `rmi`, ...)
//! mapped to one command each, grouped short flags (`-it`, `-aq`) expanded with the
//! command's own boolean flags, `-eK=V`/`-p80:80` split off, and `--flag=value` split
//! into `--flag value` (argh does not take `=`).
//!
//! Pure: strings in, strings out. It never decides what a flag means; it only knows which
//! short flags of a command are booleans and which take a value, so that it can tell a
//! group of flags from a flag with its value attached, and where a container's own command
//! line starts (after the image of `run`, everything is left alone).

/// What the expansion needs to know about one command's flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlagSpec {
    /// Short boolean flags: `"aq"` for `images -a -q`.
    pub bools: &'static str,
    /// Short flags that take a value: `"e"` for `-e K=V`.
    pub values: &'static str,
    /// Long flags that take a value (without `--`), so their value is never expanded.
    pub long_values: &'static [&'static str],
    /// The command's arguments end at its first positional (run, exec: the rest belongs to
    /// the container's command line).
    pub stop_at_positional: bool,
}

/// Global flags (before the command) that take a value.
const GLOBAL_VALUES: &[&str] = &["root", "runroot"];

/// Short value flags of `run` and `create` (`-h` is the hostname there, as in docker).
const RUN_VALUES: &str = "ewuvph";
/// Their long value flags.
const RUN_LONG_VALUES: &[&str] = &[
    "name",
    "env",
    "env-file",
    "volume",
    "mount",
    "workdir",
    "user",
    "publish",
    "network",
    "entrypoint",
    "hostname",
    "expose",
];

/// A command whose own arguments end at its first positional (the image, the container).
fn command_line(
    bools: &'static str,
    values: &'static str,
    long_values: &'static [&'static str],
) -> Option<FlagSpec> {
    Some(FlagSpec {
        bools,
        values,
        long_values,
        stop_at_positional: true,
    })
}

/// The commands camada knows, with the flags the expansion must know about.
pub fn spec(command: &[String]) -> Option<FlagSpec> {
    let words: Vec<&str> = command.iter().map(String::as_str).collect();
    let s = |bools, values, long_values| {
        Some(FlagSpec {
            bools,
            values,
            long_values,
            stop_at_positional: false,
        })
    };
    match words.as_slice() {
        ["images"] => s("aq", "f", &["format", "filter"]),
        ["tag"] => s("", "", &[]),
        ["rmi"] => s("f", "", &[]),
        ["inspect"] => s("", "f", &["format", "type"]),
        ["history"] => s("q", "H", &["format", "human"]),
        ["save"] => s("", "o", &["output", "format"]),
        ["load"] => s("q", "i", &["input"]),
        ["import"] => s("", "cm", &["change", "message"]),
        ["build"] => s(
            "q",
            "tf",
            &[
                "tag",
                "file",
                "build-arg",
                "target",
                "label",
                "network",
                "compression",
            ],
        ),
        ["image"] => s("", "", &[]),
        ["image", "prune"] => s("af", "", &[]),
        ["image", "tree"] => s("", "", &[]),
        ["system"] => s("", "", &[]),
        ["system", "prune"] => s("af", "", &[]),
        ["system", "df"] => s("", "", &[]),
        ["info"] => s("", "", &[]),
        ["pull"] => s("q", "", &["platform", "tls-verify"]),
        ["push"] => s("q", "", &["tls-verify"]),
        ["login"] => s("", "up", &["username", "password", "tls-verify"]),
        ["logout"] => s("", "", &[]),
        ["search"] => s("", "", &["limit", "tls-verify"]),
        ["version"] => s("", "", &[]),
        ["run"] => command_line("ditP", RUN_VALUES, RUN_LONG_VALUES),
        ["create"] => command_line("itP", RUN_VALUES, RUN_LONG_VALUES),
        ["exec"] => command_line("it", "ewu", &["env", "workdir", "user"]),
        ["start"] => s("ait", "", &[]),
        ["stop" | "restart"] => s("", "t", &["time"]),
        ["kill"] => s("", "s", &["signal"]),
        ["rm"] => s("fv", "", &[]),
        ["ps"] => s("aqs", "", &[]),
        ["logs"] => s("ft", "n", &["tail"]),
        ["attach" | "wait"] => s("", "", &[]),
        ["diff" | "mount" | "umount"] => s("", "", &[]),
        ["cp"] => s("aLq", "", &[]),
        ["commit"] => s("p", "acm", &["author", "change", "message"]),
        ["unshare"] => command_line("", "", &["container"]),
        ["container"] => s("", "", &[]),
        ["container", "inspect"] => s("", "f", &["format"]),
        ["container", "prune"] => s("f", "", &[]),
        ["top"] => command_line("", "", &[]),
        ["stats"] => s("a", "", &["format"]),
        ["volume"] => s("", "", &[]),
        ["volume", "create"] => s("", "d", &["driver", "label"]),
        ["volume", "ls"] => s("q", "f", &["filter", "format"]),
        ["volume", "inspect"] => s("", "f", &["format"]),
        ["volume", "rm"] => s("f", "", &[]),
        ["volume", "prune"] => s("af", "", &[]),
        _ => None,
    }
}

/// Commands whose next word names a subcommand.
fn is_group(word: &str) -> bool {
    matches!(word, "image" | "system" | "container" | "volume")
}

/// docker's two-word forms that are the same as a one-word command.
fn alias(group: &str, sub: &str) -> Option<&'static str> {
    Some(match (group, sub) {
        ("image", "ls" | "list") => "images",
        ("image", "rm" | "remove") => "rmi",
        ("image", "inspect") => "inspect",
        ("image", "history") => "history",
        ("image", "tag") => "tag",
        ("image", "save") => "save",
        ("image", "load") => "load",
        ("image", "import") => "import",
        ("image", "pull") => "pull",
        ("image", "push") => "push",
        ("image", "build") => "build",
        ("system", "info") => "info",
        ("container", "ls" | "list" | "ps") => "ps",
        ("container", "rm" | "remove") => "rm",
        ("container", "run") => "run",
        ("container", "create") => "create",
        ("container", "start") => "start",
        ("container", "stop") => "stop",
        ("container", "kill") => "kill",
        ("container", "restart") => "restart",
        ("container", "exec") => "exec",
        ("container", "logs") => "logs",
        ("container", "attach") => "attach",
        ("container", "wait") => "wait",
        ("container", "diff") => "diff",
        ("container", "cp") => "cp",
        ("container", "commit") => "commit",
        ("container", "mount") => "mount",
        ("container", "umount" | "unmount") => "umount",
        ("container", "top") => "top",
        ("container", "stats") => "stats",
        _ => return None,
    })
}

/// The command line after pre-processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    /// Global flags, already in argh's form (`--root DIR`).
    pub globals: Vec<String>,
    /// The command words as argh will see them (`["image", "prune"]`), empty if none.
    pub command: Vec<String>,
    /// The command's arguments, expanded.
    pub args: Vec<String>,
    /// Whether this table knows the command's flags. An unknown command's arguments are
    /// passed to argh untouched (argh decides whether the command exists).
    pub known: bool,
}

impl Expanded {
    /// Everything argh parses, in order.
    pub fn argv(&self) -> Vec<String> {
        let mut v = self.globals.clone();
        v.extend(self.command.iter().cloned());
        v.extend(self.args.iter().cloned());
        v
    }
}

/// Pre-processes `args` (without the program name).
pub fn expand(args: &[String]) -> Expanded {
    let mut i = 0;
    let mut globals = Vec::new();
    // global flags come before the command, as in docker
    while let Some(a) = args.get(i) {
        if !a.starts_with('-') || a == "-" {
            break;
        }
        i += 1;
        match split_eq(a) {
            Some((flag, value)) => {
                globals.push(flag.to_string());
                globals.push(value.to_string());
            }
            None => {
                globals.push(a.clone());
                let name = a.trim_start_matches('-');
                if GLOBAL_VALUES.contains(&name)
                    && let Some(v) = args.get(i)
                {
                    globals.push(v.clone());
                    i += 1;
                }
            }
        }
    }
    let mut command = Vec::new();
    if let Some(first) = args.get(i) {
        command.push(first.clone());
        i += 1;
        if is_group(first)
            && let Some(sub) = args.get(i)
            && !sub.starts_with('-')
        {
            i += 1;
            match alias(first, sub) {
                Some(one) => command = vec![one.to_string()],
                None => command.push(
                    match (first.as_str(), sub.as_str()) {
                        ("volume", "list") => "ls",
                        ("volume", "remove") => "rm",
                        _ => sub,
                    }
                    .to_string(),
                ),
            }
        }
    }
    // `camada help [COMMAND]`, as docker's
    if command.first().is_some_and(|c| c == "help") {
        let mut words: Vec<String> = args[i.min(args.len())..].to_vec();
        words.push("--help".into());
        let mut e = expand(&[globals, words].concat());
        e.known = true;
        return e;
    }
    let rest = &args[i.min(args.len())..];
    let Some(spec) = spec(&command) else {
        return Expanded {
            globals,
            known: false,
            command,
            args: rest.to_vec(),
        };
    };
    Expanded {
        globals,
        command,
        args: expand_flags(rest, &spec),
        known: true,
    }
}

/// `--name=value` -> (`--name`, `value`); `None` for anything else.
fn split_eq(arg: &str) -> Option<(&str, &str)> {
    if !arg.starts_with("--") {
        return None;
    }
    arg.split_once('=')
}

/// Expands one command's arguments (see the module doc).
pub fn expand_flags(args: &[String], spec: &FlagSpec) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    // where positionals went: a `-` among them (stdin/stdout) must come after `--`, or
    // argh takes it for a flag
    let mut positionals: Vec<usize> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(it.by_ref().cloned());
            return out;
        }
        if let Some(long) = a.strip_prefix("--") {
            if let Some((flag, value)) = split_eq(a) {
                out.push(flag.to_string());
                out.push(value.to_string());
            } else {
                out.push(a.clone());
                if spec.long_values.contains(&long)
                    && let Some(v) = it.next()
                {
                    out.push(v.clone());
                }
            }
            continue;
        }
        if a == "-h" && !spec.bools.contains('h') && !spec.values.contains('h') {
            // docker's short help flag, where the command has no -h of its own
            out.push("--help".to_string());
            continue;
        }
        if a.len() < 2 || !a.starts_with('-') {
            // a positional (or `-` for stdin)
            positionals.push(out.len());
            out.push(a.clone());
            if spec.stop_at_positional && a != "-" {
                out.extend(it.by_ref().cloned());
                return out;
            }
            continue;
        }
        match expand_short(&a[1..], spec) {
            Some((flags, value_pending)) => {
                out.extend(flags);
                if value_pending && let Some(v) = it.next() {
                    // the value flag came last in the group: its value is the next word
                    out.push(v.clone());
                }
            }
            None => out.push(a.clone()),
        }
    }
    if positionals.iter().any(|&i| out[i] == "-") {
        let pos: Vec<String> = positionals.iter().map(|&i| out[i].clone()).collect();
        let mut flags: Vec<String> = out
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !positionals.contains(i))
            .map(|(_, a)| a)
            .collect();
        flags.push("--".into());
        flags.extend(pos);
        return flags;
    }
    out
}

/// Splits `-abc` (given as `abc`): booleans, then optionally one value flag that either
/// ends the group (its value is the next word) or has its value attached (`-p8080:80`).
/// Returns the words and whether the last flag takes a value still to come.
/// `None` when the group is not made of this command's flags (left to argh to judge).
fn expand_short(group: &str, spec: &FlagSpec) -> Option<(Vec<String>, bool)> {
    let mut words = Vec::new();
    for (i, c) in group.char_indices() {
        if spec.bools.contains(c) {
            words.push(format!("-{c}"));
        } else if spec.values.contains(c) {
            words.push(format!("-{c}"));
            let rest = &group[i + c.len_utf8()..];
            if rest.is_empty() {
                return Some((words, true));
            }
            // `-H=false` as well as `-Hfalse`
            words.push(rest.strip_prefix('=').unwrap_or(rest).to_string());
            return Some((words, false));
        } else {
            return None;
        }
    }
    Some((words, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    fn argv(s: &str) -> String {
        expand(&v(s)).argv().join(" ")
    }

    #[test]
    fn aliases_become_one_command() {
        assert_eq!(argv("image ls -a"), "images -a");
        assert_eq!(argv("image list"), "images");
        assert_eq!(argv("image rm -f x"), "rmi -f x");
        assert_eq!(argv("image inspect x"), "inspect x");
        assert_eq!(argv("image history x"), "history x");
        assert_eq!(argv("image tag a b"), "tag a b");
        assert_eq!(argv("image prune -af"), "image prune -a -f");
        assert_eq!(argv("image tree busybox"), "image tree busybox");
        assert_eq!(argv("system info"), "info");
        assert_eq!(argv("system prune -fa"), "system prune -f -a");
    }

    #[test]
    fn grouped_short_flags_expand() {
        assert_eq!(argv("images -aq"), "images -a -q");
        assert_eq!(argv("images -qa busybox"), "images -q -a busybox");
        // not this command's flags: left for argh to refuse
        assert_eq!(argv("images -xz"), "images -xz");
        assert_eq!(argv("rmi -f a b"), "rmi -f a b");
        assert_eq!(argv("images -h"), "images --help");
        assert_eq!(argv("help"), "--help");
        assert_eq!(argv("help image ls"), "images --help");
    }

    #[test]
    fn equals_and_attached_values_split() {
        assert_eq!(
            argv("inspect --format={{.Id}} busybox"),
            "inspect --format {{.Id}} busybox"
        );
        assert_eq!(argv("inspect -f{{.Id}} x"), "inspect -f {{.Id}} x");
        assert_eq!(argv("save -oout.tar x"), "save -o out.tar x");
        assert_eq!(argv("history -H=false x"), "history -H false x");
        assert_eq!(argv("--root=/r images"), "--root /r images");
        assert_eq!(
            argv("--root /r --runroot /x images -a"),
            "--root /r --runroot /x images -a"
        );
        // a value is never expanded even if it looks like flags
        assert_eq!(argv("inspect -f -aq x"), "inspect -f -aq x");
        assert_eq!(argv("import -m -aq f"), "import -m -aq f");
    }

    #[test]
    fn run_like_commands_stop_at_the_image() {
        let spec = FlagSpec {
            bools: "dit",
            values: "ep",
            long_values: &["name"],
            stop_at_positional: true,
        };
        let e = |s: &str| expand_flags(&v(s), &spec).join(" ");
        assert_eq!(e("-it busybox sh"), "-i -t busybox sh");
        assert_eq!(
            e("-dit --name x busybox ls -la"),
            "-d -i -t --name x busybox ls -la"
        );
        assert_eq!(e("-itd -eA=1 busybox"), "-i -t -d -e A=1 busybox");
        assert_eq!(e("-dp 8080:80 img"), "-d -p 8080:80 img");
        assert_eq!(e("-p8080:80 img -it"), "-p 8080:80 img -it");
        assert_eq!(e("busybox -- -it"), "busybox -- -it");
    }

    #[test]
    fn container_commands_expand_up_to_their_command_line() {
        assert_eq!(argv("run -it base sh"), "run -i -t base sh");
        assert_eq!(
            argv("run -dit --name x -eA=1 base ls -la"),
            "run -d -i -t --name x -e A=1 base ls -la"
        );
        assert_eq!(argv("run -itd --rm base"), "run -i -t -d --rm base");
        assert_eq!(argv("run -h myhost base"), "run -h myhost base");
        assert_eq!(
            argv("run --env-file=f base -it"),
            "run --env-file f base -it"
        );
        assert_eq!(argv("create -it base"), "create -i -t base");
        assert_eq!(argv("exec -it c sh -c x"), "exec -i -t c sh -c x");
        assert_eq!(argv("start -ai c"), "start -a -i c");
        assert_eq!(argv("start -it c"), "start -i -t c");
        assert_eq!(argv("container ls -aq"), "ps -a -q");
        assert_eq!(argv("container rm -fv c"), "rm -f -v c");
        assert_eq!(argv("container run -d base"), "run -d base");
        assert_eq!(argv("container prune -f"), "container prune -f");
        assert_eq!(argv("logs -ft c"), "logs -f -t c");
        assert_eq!(argv("logs -n3 c"), "logs -n 3 c");
        assert_eq!(argv("stop -t 1 c"), "stop -t 1 c");
        assert_eq!(argv("kill -sTERM c"), "kill -s TERM c");
    }

    #[test]
    fn unknown_commands_are_flagged() {
        let e = expand(&v("frobnicate -x"));
        assert!(!e.known);
        assert_eq!(e.command, v("frobnicate"));
        assert!(expand(&v("images")).known);
        assert_eq!(argv("frobnicate -xy --a=b"), "frobnicate -xy --a=b");
    }
}
