use super::*;

fn env(name: &str) -> Option<String> {
    match name {
        "A" => Some("a".into()),
        "EMPTY" => Some(String::new()),
        "PATHV" => Some("/usr/local/bin/tool.tar.gz".into()),
        "SP" => Some("x y  z".into()),
        _ => None,
    }
}

fn ex(word: &str) -> String {
    match Expander::new('\\').expand(word, &env) {
        Ok(e) => e.value,
        Err(e) => format!("ERR {e}"),
    }
}

#[test]
fn basic() {
    assert_eq!(ex("$A"), "a");
    assert_eq!(ex("${A}b"), "ab");
    assert_eq!(ex("${NOPE:-d}"), "d");
}
