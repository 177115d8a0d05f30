//! The `kiln` command line.

fn main() {
    println!("kiln {}", env!("CARGO_PKG_VERSION"));
}
