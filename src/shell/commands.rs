//! The shell's commands: what each is called, takes and does (the help and the completion read
//! the same table), and the parser from a line to a `Command`.

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Nodes,
    Tags,
    Actors(ActorFilter),
    Place,
    Stats {
        nodes: Vec<String>,
    },
    Move {
        root: String,
        to: String,
    },
    /// Watches the messages the actor at `path` handles, until `count` came.
    Trace {
        path: String,
        count: u32,
    },
    Drain {
        node: String,
    },
    /// Lifts a drained node's cordon: placement and moves may use it again.
    Uncordon {
        node: String,
    },
    Rebalance,
    /// A question for the application (`models`, `deploy`, `rollback`, `loop`, `motors`, `alerts`).
    App(AppCommand),
    Help(Option<String>),
    Quit,
}

/// An application command: asked of the entry node, or of every node that is up when what it
/// reports is each node's own (`loop`, `motors`, `alerts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCommand {
    pub name: &'static str,
    pub args: Vec<String>,
    pub every_node: bool,
}

/// Which actors `actors` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActorFilter {
    pub node: Option<String>,
    pub tier: Option<String>,
    /// Paths starting with this (`/` for every actor).
    pub path: String,
}

/// One command's name, usage and meaning.
pub struct Spec {
    pub name: &'static str,
    pub usage: &'static str,
    pub help: &'static str,
}

/// Messages `trace` waits for unless `--count` says otherwise.
pub const TRACE_COUNT: u32 = 20;

pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "nodes",
        usage: "nodes",
        help: "the members: address, status, incarnation, tags and the subtrees each hosts",
    },
    Spec { name: "tags", usage: "tags", help: "each node's CA-attested capability tags" },
    Spec {
        name: "actors",
        usage: "actors [--node NODE] [--tier TIER] [PATH-PREFIX]",
        help: "running actors, asked of every node that is up: mailbox depth, messages handled, failures, restarts, drops",
    },
    Spec {
        name: "place",
        usage: "place",
        help: "each top-level subtree: the node hosting it, what it requires and prefers, which nodes fit",
    },
    Spec {
        name: "stats",
        usage: "stats [NODE...]",
        help: "each node's counters (every node that is up unless named): lease, uptime, actors, dead letters, remote traffic, refused connections",
    },
    Spec {
        name: "move",
        usage: "move SUBTREE NODE",
        help: "moves a running top-level subtree to NODE with its state and waiting messages (live migration); refused if NODE lacks a tag it requires",
    },
    Spec {
        name: "drain",
        usage: "drain NODE",
        help: "cordons NODE (nothing new is placed or moved there) and moves every subtree off it, each to the least loaded other node that fits",
    },
    Spec {
        name: "uncordon",
        usage: "uncordon NODE",
        help: "lifts the cordon of a drained NODE: placement and moves may use it again",
    },
    Spec {
        name: "rebalance",
        usage: "rebalance",
        help: "moves subtrees from more to less loaded nodes (by actors) while a move evens the load",
    },
    Spec {
        name: "models",
        usage: "models",
        help: "the registry's models (lineage, validation metrics) and the current rollout with each mote's receipts",
    },
    Spec {
        name: "deploy",
        usage: "deploy VERSION",
        help: "rolls a registered model out to the motes over the air, canary cohort first",
    },
    Spec {
        name: "rollback",
        usage: "rollback",
        help: "rolls out again the model the fleet ran before the current rollout",
    },
    Spec {
        name: "loop",
        usage: "loop",
        help: "the ML loop on each node: stage 2's scoring and alerts, the drift monitor, the trainer, the pipeline",
    },
    Spec {
        name: "motors",
        usage: "motors",
        help: "each motor as stage 2 last saw it: latest features, fault probability, alert level",
    },
    Spec { name: "alerts", usage: "alerts", help: "the latest alerts stage 2 raised, escalated or cleared" },
    Spec {
        name: "trace",
        usage: "trace ACTOR [--count N]",
        help: "the messages an actor handles, live, as they come (the next N, default 20; Ctrl-C stops)",
    },
    Spec { name: "help", usage: "help [COMMAND]", help: "this list, or one command's usage" },
    Spec { name: "quit", usage: "quit", help: "leaves the shell (also exit, Ctrl-D)" },
];

/// Flags a command takes (for completion).
pub fn flags(command: &str) -> &'static [&'static str] {
    match command {
        "actors" => &["--node", "--tier"],
        "trace" => &["--count"],
        _ => &[],
    }
}

/// Parses one command (no `;`).
pub fn parse(line: &str) -> Result<Command, String> {
    let mut words = line.split_whitespace();
    let name = words.next().ok_or("an empty command")?;
    let rest: Vec<&str> = words.collect();
    let no_arguments = |command: Command| {
        if rest.is_empty() {
            Ok(command)
        } else {
            Err(format!("{name} takes no arguments (got {})", rest.join(" ")))
        }
    };
    match name {
        "nodes" => no_arguments(Command::Nodes),
        "tags" => no_arguments(Command::Tags),
        "place" => no_arguments(Command::Place),
        "rebalance" => no_arguments(Command::Rebalance),
        "move" => match rest.as_slice() {
            [root, to] if root.starts_with('/') => {
                Ok(Command::Move { root: root.to_string(), to: to.to_string() })
            }
            _ => Err("usage: move SUBTREE NODE (a subtree's path starts with /)".into()),
        },
        "drain" => match rest.as_slice() {
            [node] => Ok(Command::Drain { node: node.to_string() }),
            _ => Err("usage: drain NODE".into()),
        },
        "uncordon" => match rest.as_slice() {
            [node] => Ok(Command::Uncordon { node: node.to_string() }),
            _ => Err("usage: uncordon NODE".into()),
        },
        "quit" | "exit" => no_arguments(Command::Quit),
        "models" => no_arguments(app("models", Vec::new(), false)),
        "rollback" => no_arguments(app("rollback", Vec::new(), false)),
        "loop" => no_arguments(app("loop", Vec::new(), true)),
        "trace" => match rest.as_slice() {
            [path] if path.starts_with('/') => {
                Ok(Command::Trace { path: path.to_string(), count: TRACE_COUNT })
            }
            [path, "--count", n] if path.starts_with('/') => match n.parse() {
                Ok(count) if count > 0 => Ok(Command::Trace { path: path.to_string(), count }),
                _ => Err(format!("--count {n:?}: expected a positive number")),
            },
            _ => Err("usage: trace ACTOR [--count N] (an actor's path starts with /)".into()),
        },
        "motors" => no_arguments(app("motors", Vec::new(), true)),
        "alerts" => no_arguments(app("alerts", Vec::new(), true)),
        "deploy" => match rest.as_slice() {
            [version] if version.parse::<u32>().is_ok() => {
                Ok(app("deploy", vec![version.to_string()], false))
            }
            _ => Err("usage: deploy VERSION (a model version, models lists them)".into()),
        },
        "actors" => parse_actors(&rest).map(Command::Actors),
        "stats" => Ok(Command::Stats { nodes: rest.iter().map(|s| s.to_string()).collect() }),
        "help" => match rest.as_slice() {
            [] => Ok(Command::Help(None)),
            [command] => Ok(Command::Help(Some(command.to_string()))),
            _ => Err("help takes at most one command".into()),
        },
        other => Err(format!("unknown command {other:?} (help lists the commands)")),
    }
}

fn app(name: &'static str, args: Vec<String>, every_node: bool) -> Command {
    Command::App(AppCommand { name, args, every_node })
}

fn parse_actors(words: &[&str]) -> Result<ActorFilter, String> {
    let mut filter = ActorFilter { path: "/".into(), ..ActorFilter::default() };
    let mut path = None;
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let mut value =
            |flag: &str| words.next().map(|v| v.to_string()).ok_or(format!("{flag} needs a value"));
        match *word {
            "--node" => filter.node = Some(value("--node")?),
            "--tier" => filter.tier = Some(value("--tier")?),
            flag if flag.starts_with("--") => return Err(format!("actors: unknown option {flag}")),
            prefix if prefix.starts_with('/') && path.is_none() => path = Some(prefix.to_string()),
            other => return Err(format!("actors: unexpected {other:?} (a path prefix starts with /)")),
        }
    }
    if let Some(path) = path {
        filter.path = path;
    }
    Ok(filter)
}

/// Splits a script (`-c "nodes; actors"`) into its commands.
pub fn split_script(script: &str) -> Vec<&str> {
    script.split([';', '\n']).map(str::trim).filter(|c| !c.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_options_and_refuse_what_they_do_not_take() {
        assert_eq!(parse("nodes"), Ok(Command::Nodes));
        assert_eq!(
            parse("actors --tier inference /stage2"),
            Ok(Command::Actors(ActorFilter {
                node: None,
                tier: Some("inference".into()),
                path: "/stage2".into()
            }))
        );
        assert_eq!(
            parse("actors").unwrap(),
            Command::Actors(ActorFilter { path: "/".into(), ..Default::default() })
        );
        assert_eq!(parse("stats a b"), Ok(Command::Stats { nodes: vec!["a".into(), "b".into()] }));
        assert!(parse("nodes extra").unwrap_err().contains("takes no arguments"));
        assert!(parse("actors --node").unwrap_err().contains("--node needs a value"));
        assert!(parse("actors --bogus").unwrap_err().contains("unknown option --bogus"));
        assert!(parse("actors counter").unwrap_err().contains("a path prefix starts with /"));
        assert!(parse("frobnicate").unwrap_err().contains("unknown command \"frobnicate\""));
        assert_eq!(split_script(" nodes ;; actors /a\nstats "), ["nodes", "actors /a", "stats"]);
        assert_eq!(parse("move /counter b"), Ok(Command::Move { root: "/counter".into(), to: "b".into() }));
        assert!(parse("move counter b").unwrap_err().contains("usage: move SUBTREE NODE"));
        assert_eq!(parse("drain b"), Ok(Command::Drain { node: "b".into() }));
        assert!(parse("drain").unwrap_err().contains("usage: drain NODE"));
        assert_eq!(parse("uncordon b"), Ok(Command::Uncordon { node: "b".into() }));
        assert_eq!(parse("deploy 3"), Ok(app("deploy", vec!["3".into()], false)));
        assert!(parse("deploy three").unwrap_err().contains("usage: deploy VERSION"));
        assert_eq!(parse("loop"), Ok(app("loop", Vec::new(), true)));
        assert_eq!(
            parse("trace /counter"),
            Ok(Command::Trace { path: "/counter".into(), count: TRACE_COUNT })
        );
        assert_eq!(parse("trace /a/b --count 5"), Ok(Command::Trace { path: "/a/b".into(), count: 5 }));
        assert!(parse("trace counter").unwrap_err().contains("usage: trace ACTOR"));
        assert!(parse("trace /a --count 0").unwrap_err().contains("expected a positive number"));
        assert!(parse("models 2").unwrap_err().contains("takes no arguments"));
    }

    #[test]
    fn every_command_in_the_help_parses() {
        let examples = [
            "nodes",
            "tags",
            "actors",
            "place",
            "stats",
            "move /x n",
            "drain n",
            "uncordon n",
            "rebalance",
            "models",
            "deploy 2",
            "rollback",
            "loop",
            "trace /counter --count 3",
            "motors",
            "alerts",
            "help",
            "quit",
        ];
        for spec in COMMANDS {
            let example = examples.iter().find(|e| e.split(' ').next() == Some(spec.name));
            let example = example.unwrap_or_else(|| panic!("no example of {}", spec.name));
            assert!(parse(example).is_ok(), "{example}: {:?}", parse(example));
        }
    }
}
