//! Prints the JSON dump of a Dockerfile given on stdin.
use std::io::Read;

fn main() {
    let mut src = String::new();
    if std::io::stdin().read_to_string(&mut src).is_err() {
        return;
    }
    match kiln_dockerfile_parser::parse_typed(&src) {
        Ok(df) => println!(
            "{}",
            serde_json::to_string_pretty(&kiln_dockerfile_parser::dump::to_json(&df))
                .unwrap_or_default()
        ),
        Err(e) => println!("{}", kiln_dockerfile_parser::dump::error_to_json(&e)),
    }
}
