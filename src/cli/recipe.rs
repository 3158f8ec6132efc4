//! Recipe files for `bitspike train --recipe FILE.toml`: a TOML table whose keys are the
//! command's long flags (`lr = 5e-4`, `warmup_epochs = 20`, `aa = "rand-m9-n1-mstd0.4-inc1"`,
//! `hflip = true`, `cutmix_minmax = [0.2, 0.8]`), underscores or dashes alike. The recipe
//! becomes flags appended to the command line, except those the command line already
//! gives: flags typed by the user override the recipe. Paths in a recipe are relative to
//! the working directory, as on the command line.

use std::ffi::OsString;
use std::path::Path;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

use bitspike::input::read_file;

/// The most bytes a recipe file may have.
const MAX_RECIPE_BYTES: u64 = 1 << 20;

/// `argv` with the flags of the recipe `path` appended, skipping those that `matches`
/// (the command line parsed by `command`) took from the command line.
pub fn expand(
    argv: Vec<OsString>,
    path: &Path,
    command: &Command,
    matches: &ArgMatches,
) -> anyhow::Result<Vec<OsString>> {
    let text = read_file(path, MAX_RECIPE_BYTES, "recipe")?;
    let text = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("{}: a recipe must be UTF-8 text", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{}: not a TOML recipe", path.display()))?;
    let mut out = argv;
    let mut seen = std::collections::HashMap::new();
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        let bad = |why: String| anyhow::anyhow!("{}: key '{key}': {why}", path.display());
        if let Some(first) = seen.insert(flag.clone(), key) {
            return Err(bad(format!("names the flag --{flag} as '{first}' does")));
        }
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
        else {
            return Err(bad(format!(
                "not a flag of `bitspike {}`{}",
                command.get_name(),
                suggestion(command, &flag)
            )));
        };
        if flag == "recipe" {
            return Err(bad("a recipe cannot name another recipe".into()));
        }
        if matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
            continue;
        }
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        match (value, switch) {
            (toml::Value::Boolean(true), true) => out.push(format!("--{flag}").into()),
            (toml::Value::Boolean(false), true) => {}
            (_, true) => return Err(bad("is a switch: give true or false".into())),
            (value, false) => {
                out.push(format!("--{flag}={}", flag_value(value).map_err(bad)?).into())
            }
        }
    }
    Ok(out)
}

/// A TOML value as the flag's text: numbers and strings as written, arrays as `a,b`.
fn flag_value(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| match v {
                toml::Value::Array(_) | toml::Value::Table(_) => {
                    Err("arrays hold numbers or strings".to_string())
                }
                v => flag_value(v),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        toml::Value::Table(_) => Err("tables are not flags: keys sit at the top level".into()),
        toml::Value::Datetime(_) => Err("a date is not a flag's value".into()),
    }
}

/// " (did you mean --x?)" for the flag nearest `flag`, when one is near.
fn suggestion(command: &Command, flag: &str) -> String {
    command
        .get_arguments()
        .filter_map(|a| a.get_long())
        .map(|long| (edit_distance(long, flag), long))
        .filter(|(d, long)| *d <= 2.max(long.len() / 4))
        .min()
        .map(|(_, long)| format!(" (did you mean {long}?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
