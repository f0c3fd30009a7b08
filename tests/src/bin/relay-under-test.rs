//! The relay's command line, built in this package so the end-to-end tests can run,
//! SIGKILL and restart it as a real process (Cargo gives integration tests only their own
//! package's binaries). Same library code as the shipped `postern-relay`.

/// The same allocator as the shipped relay.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    postern_relay::cli::main()
}
