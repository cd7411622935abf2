//! The container image recipe: pinned base images, a non-root user, a health check, and no
//! secret baked into a layer or a build argument.
//!
//! A deliberately small Dockerfile reader: instructions with `\` continuations joined,
//! comments dropped, `${VAR}`/`$VAR` resolved from `ARG` defaults (global ones for `FROM`,
//! the stage's for `USER`). It reads what `deployments/Dockerfile` uses and reports, rather
//! than guesses, what it cannot resolve.

use std::collections::HashMap;
use std::path::Path;

use super::images::ImageRef;
use super::report::{Finding, Rule};
use super::secrets::is_secret_name;

/// One instruction: keyword (upper-cased) and its arguments as written.
struct Instruction {
    line: usize,
    keyword: String,
    args: String,
}

/// Audits the Dockerfile at `path`; `display` is the name used in findings.
pub(crate) fn audit(path: &Path, display: &Path, out: &mut Vec<Finding>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            out.push(Finding::error(
                display,
                "(file)",
                Rule::Dockerfile,
                format!("cannot read: {e}"),
            ));
            return;
        }
    };
    let instructions = parse(&text);
    let mut global_args: HashMap<String, String> = HashMap::new();
    let mut stage_args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut in_stage = false;
    let mut user: Option<(usize, String)> = None;
    let mut healthcheck: Option<String> = None;
    let mut final_stage = String::new();

    for ins in &instructions {
        let at = format!("line {}", ins.line);
        match ins.keyword.as_str() {
            "ARG" => {
                let (name, value) = split_assignment(&ins.args);
                check_secret_name(display, &at, "ARG", &name, out);
                // A bare `ARG NAME` inside a stage re-imports the global default.
                let value = value.or_else(|| global_args.get(&name).cloned());
                let table = if in_stage {
                    &mut stage_args
                } else {
                    &mut global_args
                };
                table.insert(name, value.unwrap_or_default());
            }
            "FROM" => {
                in_stage = true;
                stage_args.clear();
                user = None;
                healthcheck = None;
                let words: Vec<&str> = ins
                    .args
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let image = resolve(words.first().copied().unwrap_or(""), &global_args);
                let alias = match (words.get(1), words.get(2)) {
                    (Some(kw), Some(name)) if kw.eq_ignore_ascii_case("as") => {
                        Some((*name).to_owned())
                    }
                    _ => None,
                };
                final_stage = alias.clone().unwrap_or_else(|| image.clone());
                if image.contains('$') {
                    out.push(Finding::error(display, &at, Rule::Dockerfile, format!("FROM {image}: a variable without an ARG default; the base image must be pinned in the file")));
                } else if image != "scratch" && !stages.contains(&image) {
                    let reference = ImageRef::parse(&image);
                    let pinned = reference.digest.is_some()
                        || reference
                            .tag
                            .as_deref()
                            .is_some_and(|t| !t.is_empty() && !t.eq_ignore_ascii_case("latest"));
                    if !pinned {
                        out.push(Finding::error(
                            display,
                            &at,
                            Rule::Dockerfile,
                            format!(
                                "FROM {image}: base image is not pinned to a version tag or digest"
                            ),
                        ));
                    }
                }
                if let Some(alias) = alias {
                    stages.push(alias);
                }
            }
            "USER" => {
                let mut args = global_args.clone();
                args.extend(stage_args.clone());
                user = Some((ins.line, resolve(ins.args.trim(), &args)));
            }
            "HEALTHCHECK" => healthcheck = Some(ins.args.trim().to_owned()),
            "ENV" => {
                for (name, value) in env_pairs(&ins.args) {
                    if is_secret_name(&name) && !value.is_empty() {
                        out.push(Finding::error(
                            display,
                            &at,
                            Rule::PlaceholderSecrets,
                            format!(
                                "ENV {name} bakes a secret into the image; pass it at run time"
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    let stage = format!("final stage {final_stage}");
    match &user {
        None => out.push(Finding::error(
            display,
            &stage,
            Rule::Dockerfile,
            "no USER: the container would run as root",
        )),
        Some((line, user)) => {
            let name = user.split(':').next().unwrap_or("");
            if name == "root" || name == "0" || name.is_empty() {
                out.push(Finding::error(
                    display,
                    format!("line {line}"),
                    Rule::Dockerfile,
                    format!("USER {user} runs as root"),
                ));
            } else if !name.chars().all(|c| c.is_ascii_digit()) {
                out.push(Finding::warning(display, format!("line {line}"), Rule::Dockerfile, format!("USER {user} is not numeric; Kubernetes' runAsNonRoot cannot verify a user name")));
            }
        }
    }
    match healthcheck.as_deref() {
        None => out.push(Finding::error(
            display,
            &stage,
            Rule::Dockerfile,
            "no HEALTHCHECK in the final stage",
        )),
        Some(h) if h.eq_ignore_ascii_case("none") => out.push(Finding::error(
            display,
            &stage,
            Rule::Dockerfile,
            "HEALTHCHECK NONE disables the health check",
        )),
        Some(_) => {}
    }
}

fn check_secret_name(display: &Path, at: &str, keyword: &str, name: &str, out: &mut Vec<Finding>) {
    if is_secret_name(name) {
        out.push(Finding::error(
            display,
            at,
            Rule::PlaceholderSecrets,
            format!("{keyword} {name}: build arguments are recorded in the image history; secrets are given at run time"),
        ));
    }
}

/// Joins continuation lines and drops comments and blank lines.
fn parse(text: &str) -> Vec<Instruction> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if current.is_empty() {
            start = index + 1;
        } else if trimmed.starts_with('#') {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(body) => {
                current.push_str(body);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (keyword, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                instructions.push(Instruction {
                    line: start,
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_owned(),
                });
                current.clear();
            }
        }
    }
    instructions
}

/// `NAME=value` or `NAME` (ARG).
fn split_assignment(args: &str) -> (String, Option<String>) {
    let args = args.trim();
    match args.split_once('=') {
        Some((name, value)) => (
            name.trim().to_owned(),
            Some(unquote(value.trim()).to_owned()),
        ),
        None => (args.to_owned(), None),
    }
}

/// The pairs of `ENV A=1 B="two words"` (and the legacy `ENV A value`).
fn env_pairs(args: &str) -> Vec<(String, String)> {
    let args = args.trim();
    if !args.split_whitespace().next().unwrap_or("").contains('=') {
        let (name, value) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        return vec![(name.to_owned(), value.trim().to_owned())];
    }
    let mut pairs = Vec::new();
    let mut rest = args;
    while let Some((name, after)) = rest.trim_start().split_once('=') {
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            quoted.split_once('"').unwrap_or((quoted, ""))
        } else {
            after.split_once(char::is_whitespace).unwrap_or((after, ""))
        };
        pairs.push((name.trim().to_owned(), value.to_owned()));
        rest = remainder;
    }
    pairs
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Replaces `${NAME}` and `$NAME` by their values; unknown variables stay as written.
fn resolve(text: &str, args: &HashMap<String, String>) -> String {
    let mut out = text.to_owned();
    for (name, value) in args {
        out = out
            .replace(&format!("${{{name}}}"), value)
            .replace(&format!("${name}"), value);
    }
    out
}
