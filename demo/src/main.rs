//! `postern-demo`: one courier delivery, end to end, on the real code (see the library).

use std::process::ExitCode;

fn main() -> ExitCode {
    match postern_demo::run(&mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("postern-demo: {err}");
            ExitCode::FAILURE
        }
    }
}
