//! Fails early, with a clear message, if the vendored protoc that libsignal's build
//! scripts reach through `tools/protoc` is missing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Err(err) = protoc_bin_vendored::protoc_bin_path() {
        println!(
            "cargo:warning=vendored protoc unavailable ({err}); tools/protoc falls back to a system protoc"
        );
    }
}
