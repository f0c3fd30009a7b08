//! The staff CLI, built in this package so the end-to-end tests can run it as a real
//! process (Cargo gives integration tests only their own package's binaries). Same library
//! code as the shipped `postern`.

fn main() -> std::process::ExitCode {
    postern::cli::main()
}
