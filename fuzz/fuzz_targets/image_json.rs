//! The image model's parsers never panic on arbitrary bytes, and what they accept
//! re-serialises to something they parse back to the same value.
#![no_main]

use camada::image::{
    ImageConfig, Index, Manifest, parse_archive_manifest, parse_manifest, parse_oci_layout,
    parse_rfc3339,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let content_type = data.first().map(|b| match b % 4 {
        0 => "application/vnd.oci.image.index.v1+json",
        1 => "application/vnd.docker.distribution.manifest.v2+json",
        2 => "application/json",
        _ => "text/plain; charset=utf-8",
    });
    for ct in [None, content_type] {
        if let Ok(m) = parse_manifest(data, ct) {
            let bytes = match &m {
                Manifest::Image(i) => {
                    let _ = i.layer_compressions();
                    i.to_json()
                }
                Manifest::Index(i) => i.to_json(),
            };
            let bytes = bytes.expect("a parsed manifest serialises");
            assert_eq!(parse_manifest(&bytes, ct).ok().as_ref(), Some(&m));
        }
    }
    if let Ok(c) = ImageConfig::parse(data) {
        let bytes = c.to_json().expect("a parsed config serialises");
        assert_eq!(ImageConfig::parse(&bytes).ok().as_ref(), Some(&c));
        let _ = c.history_with_layers();
    }
    if let Ok(i) = Index::parse(data) {
        let _ = i.select(&camada::image::Platform::host());
    }
    let _ = parse_archive_manifest(data);
    let _ = parse_oci_layout(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = parse_rfc3339(s);
        let _ = camada::image::Platform::parse(s);
    }
});
