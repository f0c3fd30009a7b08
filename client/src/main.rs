//! `postern`: the Postern command-line client ([`postern::cli`]).

fn main() -> std::process::ExitCode {
    postern::cli::main()
}
