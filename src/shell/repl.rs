//! The interactive shell: rustyline for line editing, history (kept in
//! `$HOME/.aiot_shell_history`) and completion of commands, their options, node names and
//! actor paths the session has seen.

use std::sync::Arc;

use parking_lot::Mutex;
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::{Context, Editor, Helper, Highlighter, Hinter, Validator};

use super::commands::{flags, parse, split_script, Command, COMMANDS};
use super::print;
use super::session::{Known, Session};

#[derive(Helper, Hinter, Highlighter, Validator)]
struct ShellHelper {
    known: Arc<Mutex<Known>>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        // The command being typed starts after the last ';'.
        let command_start = before.rfind(';').map_or(0, |i| i + 1);
        let word_start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1).max(command_start);
        let word = &before[word_start..];
        let previous: Vec<&str> = before[command_start..word_start].split_whitespace().collect();
        let candidates = candidates(&self.known.lock(), &previous);
        let pairs = candidates
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Pair { display: c.clone(), replacement: c })
            .collect();
        Ok((word_start, pairs))
    }
}

/// What may come next after the words `previous` of a command.
fn candidates(known: &Known, previous: &[&str]) -> Vec<String> {
    let Some(command) = previous.first() else {
        return COMMANDS.iter().map(|s| s.name.to_string()).collect();
    };
    let nodes = || known.nodes.iter().cloned().collect::<Vec<_>>();
    match (*command, previous.last()) {
        (_, Some(&"--node")) | ("stats" | "drain" | "uncordon", _) => nodes(),
        ("move", _) if previous.len() == 1 => {
            known.paths.iter().filter(|p| p.matches('/').count() == 1).cloned().collect()
        }
        ("move", _) => nodes(),
        ("help", _) => COMMANDS.iter().map(|s| s.name.to_string()).collect(),
        ("actors", _) => {
            let mut all: Vec<String> = flags(command).iter().map(|f| f.to_string()).collect();
            all.extend(known.paths.iter().cloned());
            all
        }
        _ => Vec::new(),
    }
}

fn history_file() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".aiot_shell_history"))
}

pub fn run(runtime: &tokio::runtime::Runtime, session: &mut Session, json: bool) -> Result<(), String> {
    let mut editor: Editor<ShellHelper, rustyline::history::DefaultHistory> =
        Editor::new().map_err(|e| format!("cannot start the line editor: {e}"))?;
    editor.set_helper(Some(ShellHelper { known: session.known.clone() }));
    let history = history_file();
    if let Some(file) = &history {
        let _ = editor.load_history(file);
    }
    println!("connected to {}; help lists the commands", session.entry_node());
    let prompt = format!("aiot {}> ", session.entry_node());
    'lines: loop {
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(format!("reading a line: {e}")),
        };
        if line.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        for text in split_script(&line) {
            match parse(text) {
                Ok(Command::Quit) => break 'lines,
                Ok(command) => match runtime.block_on(session.execute(&command)) {
                    Ok(output) => print(&output, json),
                    Err(e) => eprintln!("error: {e}"),
                },
                Err(e) => eprintln!("error: {e}"),
            }
        }
    }
    if let Some(file) = &history {
        let _ = editor.save_history(file);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_offers_commands_then_their_options_nodes_and_paths() {
        let known = Known {
            nodes: ["a".to_string(), "b".to_string()].into(),
            paths: ["/counter".to_string()].into(),
        };
        assert!(candidates(&known, &[]).contains(&"actors".to_string()));
        assert_eq!(candidates(&known, &["actors"]), ["--node", "--tier", "/counter"]);
        assert_eq!(candidates(&known, &["actors", "--node"]), ["a", "b"]);
        assert_eq!(candidates(&known, &["stats", "a"]), ["a", "b"]);
        assert!(candidates(&known, &["nodes"]).is_empty());
    }
}
