//! The `healthscore` binary: see `healthscore --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    healthscore::service::main()
}
