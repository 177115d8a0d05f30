//! The SBOM kiln makes itself (`--sbom`): an SPDX 2.3 JSON document listing the packages the
//! image's package databases record (see [`super::scan`]). BuildKit runs a scanner image for
//! this; kiln needs nothing but the image's layers.

use serde_json::{Value, json};

use super::scan::Package;

/// The in-toto predicate type of an SPDX document.
pub const SPDX_PREDICATE_TYPE: &str = "https://spdx.dev/Document";

/// A purl for a package (`pkg:deb/debian/NAME@VERSION?arch=ARCH`, `pkg:apk/alpine/...`,
/// `pkg:pypi/...`, `pkg:npm/...`), percent-encoding what purl reserves.
fn purl(p: &Package) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let ns = match p.kind {
        "deb" => "debian/",
        "apk" => "alpine/",
        _ => "",
    };
    let name = match (p.kind, p.name.strip_prefix('@')) {
        // An npm scope is the namespace.
        ("npm", Some(scoped)) => match scoped.split_once('/') {
            Some((scope, n)) => format!("%40{}/{}", enc(scope), enc(n)),
            None => enc(&p.name),
        },
        ("pypi", _) => enc(&p.name.to_lowercase().replace('_', "-")),
        _ => enc(&p.name),
    };
    let mut s = format!("pkg:{}/{ns}{name}@{}", p.kind, enc(&p.version));
    if let Some(a) = &p.arch {
        s.push_str(&format!("?arch={}", enc(a)));
    }
    s
}

/// The SPDX 2.3 document for `packages` of the image `image_name` (its manifest digest, for a
/// unique namespace), created at `created` (RFC 3339).
pub fn spdx_document(
    image_name: &str,
    image_digest: &str,
    created: &str,
    packages: &[Package],
) -> Value {
    let mut pkgs = vec![json!({
        "name": image_name,
        "SPDXID": "SPDXRef-Image",
        "versionInfo": image_digest,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
    })];
    let mut relationships = vec![json!({
        "spdxElementId": "SPDXRef-DOCUMENT",
        "relationshipType": "DESCRIBES",
        "relatedSpdxElement": "SPDXRef-Image",
    })];
    for (i, p) in packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}-{i}", p.kind);
        pkgs.push(json!({
            "name": p.name,
            "SPDXID": id,
            "versionInfo": p.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "sourceInfo": format!("found in /{}", p.source),
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": purl(p),
            }],
        }));
        relationships.push(json!({
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": id,
        }));
    }
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("sbom-{image_name}"),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/kiln-{}",
            image_digest.trim_start_matches("sha256:")
        ),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: kiln-{}", env!("CARGO_PKG_VERSION"))],
        },
        "documentDescribes": ["SPDXRef-Image"],
        "packages": pkgs,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn purls_follow_the_spec() {
        let p = |kind, name: &str, version: &str, arch: Option<&str>| Package {
            kind,
            name: name.into(),
            version: version.into(),
            arch: arch.map(Into::into),
            source: String::new(),
        };
        assert_eq!(
            purl(&p("deb", "libc6", "2.36-9+deb12u4", Some("amd64"))),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
        );
        assert_eq!(
            purl(&p("npm", "@types/node", "20.1.0", None)),
            "pkg:npm/%40types/node@20.1.0"
        );
        assert_eq!(
            purl(&p("pypi", "Foo_Bar", "1.0", None)),
            "pkg:pypi/foo-bar@1.0"
        );
    }
}
