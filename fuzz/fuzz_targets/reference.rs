//! Reference parsing never panics, and a parsed reference's normalised and familiar
//! forms both parse back to the same value.
#![no_main]

use camada::reference::{Reference, image_id_prefix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = image_id_prefix(s);
    if let Ok(named) = Reference::parse_named(s) {
        let again = Reference::parse_named(&named.to_string());
        assert_eq!(again.as_ref(), Ok(&named), "parse_named({s:?}) does not round-trip");
    }
    if let Ok(r) = Reference::parse(s) {
        assert!(r.tag.is_some() || r.digest.is_some());
        assert!(!r.registry.is_empty() && !r.repository.is_empty());
        let shown = r.to_string();
        assert_eq!(Reference::parse(&shown).as_ref(), Ok(&r), "{s:?} -> {shown:?}");
        let familiar = r.familiar();
        assert_eq!(Reference::parse(&familiar).as_ref(), Ok(&r), "{s:?} -> {familiar:?}");
        let _ = (r.plain_http_default(), r.api_host(), r.familiar_name());
    }
});
