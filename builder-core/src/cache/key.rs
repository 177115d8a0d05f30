//! Cache keys: sha256 over a versioned domain tag, an op tag and length-prefixed fields.
//!
//! The encoding is injective: every field is written as its length (u64, little endian) followed
//! by its bytes, so no two different field lists hash the same input. Bump [`KEY_VERSION`] whenever
//! the meaning or the set of fields of any op changes; old records then simply stop matching.
//! `docs/cache-keys.md` lists the fields of every op.

use sha2::{Digest as _, Sha256};

/// The version tag that starts every key's input.
pub const KEY_VERSION: &str = "kiln-cache-key-v1";

/// A step's cache key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses lower-case hex.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(CacheKey(out))
    }
}

impl std::fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..16])
    }
}

impl std::fmt::Display for CacheKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Builds a key field by field.
pub struct KeyBuilder {
    hasher: Sha256,
}

impl KeyBuilder {
    /// Starts a key for `op` (e.g. `"run"`), on top of `parent` (the state the op runs on).
    pub fn new(op: &str, parent: Option<&CacheKey>) -> Self {
        let mut b = KeyBuilder {
            hasher: Sha256::new(),
        };
        b.field(KEY_VERSION.as_bytes());
        b.field(op.as_bytes());
        match parent {
            Some(p) => b.field(&p.0),
            None => b.field(b""),
        };
        b
    }

    /// Adds one field.
    pub fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.hasher.update((bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
        self
    }

    /// Adds a named string field.
    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.field(name.as_bytes()).field(value.as_bytes())
    }

    /// Adds a named optional field (absent and empty are different).
    pub fn opt(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self
                .field(name.as_bytes())
                .field(b"some")
                .field(v.as_bytes()),
            None => self.field(name.as_bytes()).field(b"none"),
        }
    }

    /// Adds a named list of strings (its length first).
    pub fn list<S: AsRef<str>>(&mut self, name: &str, values: &[S]) -> &mut Self {
        self.field(name.as_bytes())
            .field(&(values.len() as u64).to_le_bytes());
        for v in values {
            self.field(v.as_ref().as_bytes());
        }
        self
    }

    /// Adds a named key from another step (a stage's state, a mount source).
    pub fn key(&mut self, name: &str, key: &CacheKey) -> &mut Self {
        self.field(name.as_bytes()).field(&key.0)
    }

    /// Finishes the key.
    pub fn finish(self) -> CacheKey {
        CacheKey(self.hasher.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_length_prefixed() {
        let a = {
            let mut b = KeyBuilder::new("run", None);
            b.field(b"ab").field(b"c");
            b.finish()
        };
        let b = {
            let mut b = KeyBuilder::new("run", None);
            b.field(b"a").field(b"bc");
            b.finish()
        };
        assert_ne!(a, b);
    }

    #[test]
    fn parent_and_op_matter_and_hex_round_trips() {
        let p = KeyBuilder::new("base", None).finish();
        let k1 = KeyBuilder::new("run", Some(&p)).finish();
        let k2 = KeyBuilder::new("run", None).finish();
        let k3 = KeyBuilder::new("copy", Some(&p)).finish();
        assert_ne!(k1, k2);
        assert_ne!(k1, k3);
        assert_eq!(CacheKey::from_hex(&k1.to_hex()), Some(k1));
        assert_eq!(CacheKey::from_hex("zz"), None);
    }

    #[test]
    fn optional_none_differs_from_empty() {
        let mut a = KeyBuilder::new("x", None);
        a.opt("chown", None);
        let mut b = KeyBuilder::new("x", None);
        b.opt("chown", Some(""));
        assert_ne!(a.finish(), b.finish());
    }
}
