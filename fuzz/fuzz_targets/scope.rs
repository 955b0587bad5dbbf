//! Scope strings as clients send them, and as the store gives them back.
#![no_main]
use gatehouse_core::scope::{ScopeCatalog, ScopeSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let catalog = ScopeCatalog::default();
    if let Ok(set) = catalog.parse(Some(text)) {
        // Only known scopes are granted, and the stored form reads back the same.
        for s in set.iter() {
            assert!(catalog.get(s).is_some(), "unknown scope {s:?} accepted");
        }
        let again = ScopeSet::from_stored(&set.to_space_separated());
        assert_eq!(again.to_vec(), set.to_vec());
    }
    let _ = ScopeSet::from_stored(text).to_space_separated();
});
