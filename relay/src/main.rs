//! `postern-relay`: the Postern store-and-forward QUIC server ([`postern_relay::cli`]).

/// mimalloc instead of glibc's malloc: the relay's threads (QUIC workers and the storage
/// writer) allocate and free small buffers all the time, and glibc's arenas contend on
/// them (measured in `benches/load.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    postern_relay::cli::main()
}
