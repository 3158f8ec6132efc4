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

/// What to do with a recipe key that is not a flag of the command.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OtherKeys {
    /// An error (`train`: every key must mean something).
    Refuse,
    /// Skipped (`bench data` takes a train recipe's augmentation and batch size).
    Skip,
}

/// `argv` with the flags of the recipe `path` appended, skipping those that `matches`
/// (the command line parsed by `command`) took from the command line.
pub fn expand(
    argv: Vec<OsString>,
    path: &Path,
    command: &Command,
    matches: &ArgMatches,
    other_keys: OtherKeys,
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
        let Some(arg) = command.get_arguments().find(|a| {
            a.get_long() == Some(flag.as_str())
                || a.get_all_aliases()
                    .is_some_and(|names| names.contains(&flag.as_str()))
        }) else {
            if other_keys == OtherKeys::Skip {
                continue;
            }
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

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    use super::super::Cli;

    /// `bitspike train --recipe path extra..` parsed as the CLI parses it.
    fn parse(path: &std::path::Path, extra: &[&str]) -> anyhow::Result<ArgMatchesOfTrain> {
        let mut argv: Vec<std::ffi::OsString> = vec![
            "bitspike".into(),
            "train".into(),
            "--recipe".into(),
            path.into(),
        ];
        argv.extend(extra.iter().map(|s| s.into()));
        let matches = super::super::parse_with_recipe(argv)?;
        Cli::from_arg_matches(&matches)?;
        let (_, sub) = matches.subcommand().expect("train");
        Ok(ArgMatchesOfTrain(sub.clone()))
    }

    struct ArgMatchesOfTrain(clap::ArgMatches);

    impl ArgMatchesOfTrain {
        fn string(&self, id: &str) -> String {
            self.0
                .get_raw(id)
                .and_then(|mut v| v.next())
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_default()
        }
    }

    #[test]
    fn every_shipped_recipe_names_real_flags_with_valid_values() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
        let mut recipes: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        recipes.sort();
        let names: Vec<String> = recipes
            .iter()
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "spikformer-cifar10",
            "spikformer-cifar100",
            "bestformer-cifar10",
            "ssa-bin-cifar10",
            "qsnn-cifar10",
            "spikformer-dvs",
        ] {
            assert!(names.iter().any(|n| n == want), "recipes/{want}.toml");
        }
        for path in &recipes {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(
                text.starts_with('#') && text.contains("Source:"),
                "{} names its source in a comment",
                path.display()
            );
            let args = parse(path, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            assert!(!args.string("model").is_empty(), "{}", path.display());
        }
    }

    #[test]
    fn the_command_line_overrides_the_recipe() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("recipes/spikformer-cifar10.toml");
        assert_eq!(parse(&path, &[]).unwrap().string("lr"), "0.0005");
        let args = parse(&path, &["--lr", "0.01", "--epochs=2"]).unwrap();
        assert_eq!(args.string("lr"), "0.01");
        assert_eq!(args.string("epochs"), "2");
        assert_eq!(args.string("batch_size"), "128");
    }
}
