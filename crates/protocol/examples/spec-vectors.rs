//! Prints the test-vector section of `protocol-spec/SPEC.md` from the code.
//! Envelope bodies are padded to 1 KiB, so long runs of zero bytes are folded as
//! `(zeros: N)` lines, which the spec test understands.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for v in postern_protocol::vectors::all()? {
        println!("<!-- vector: {} -->", v.name);
        println!("```hex");
        for line in postern_protocol::vectors::spec_lines(&v.frame) {
            println!("{line}");
        }
        println!("```");
        println!();
    }
    Ok(())
}
