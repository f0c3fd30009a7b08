//! Prints the generated parts of `protocol-spec/SPEC.md`: the error-code table rows (§5)
//! and the test vectors (§9). Long runs of zero bytes (envelope padding) are folded into
//! `(zeros: N)` lines, which the spec test understands.

use postern_protocol::error::ErrorCode;
use postern_protocol::vectors;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let section = std::env::args().nth(1).unwrap_or_default();
    if section != "vectors" {
        for code in ErrorCode::ALL {
            println!("{}", postern_protocol::vectors::error_row(*code));
        }
    }
    if section != "errors" {
        for v in vectors::all()? {
            println!("<!-- vector: {} -->", v.name);
            println!("```hex");
            for line in vectors::spec_lines(&v.frame) {
                println!("{line}");
            }
            println!("```");
            println!();
        }
    }
    Ok(())
}
