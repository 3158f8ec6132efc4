//! The `bitspike` command: parse arguments, run the subcommand, print errors as one line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<cli::Interrupted>() {
            Some(interrupted) => {
                eprintln!("{interrupted}");
                ExitCode::from(cli::INTERRUPTED_EXIT_CODE as u8)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}
