//! Application names as users read them on the consent page: one written form per name
//! (NFKC, single spaces), no invisible or direction-changing characters, and no two
//! names that look alike (a confusable skeleton, Unicode TS #39), so that no app can
//! pass for another.

use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton;

/// Characters that show nothing or change the direction of what follows: a name holding
/// one could read as another's.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// The name as it is stored and shown, or why it cannot be one.
pub fn normalize(raw: &str) -> Result<String, &'static str> {
    let nfkc: String = raw.nfkc().collect();
    if nfkc.chars().any(|c| invisible(c) || (c.is_control() && !c.is_whitespace())) {
        return Err("a name may not hold invisible or direction-changing characters");
    }
    let name = nfkc.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() || name.chars().count() > 64 {
        return Err("a name is 1 to 64 printable characters");
    }
    Ok(name)
}

/// What two names that look alike have in common: their confusable skeleton (taken before
/// case is folded, since `I` and `l` look alike but `i` and `l` do not), ignoring case.
pub fn look_alike_key(name: &str) -> String {
    let shape: String = skeleton(name).collect();
    let folded: String = skeleton(&shape.to_lowercase()).collect();
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalized_and_look_alikes_share_a_key() {
        assert_eq!(normalize("  Alpha \u{00A0} App ").unwrap(), "Alpha App");
        assert_eq!(normalize("Ａｌｐｈａ App").unwrap(), "Alpha App", "full-width letters are NFKC-folded");
        for bad in ["Alpha\u{200B} App", "Alpha\u{200D}App", "\u{202E}ppA ahplA", "Alpha\u{FEFF}", "Al\u{0007}pha", "", "   "] {
            assert!(normalize(bad).is_err(), "{bad:?} was accepted");
        }
        let key = look_alike_key("Alpha App");
        for twin in ["alpha app", "\u{0391}lpha App", "AIpha App", "A1pha App"] {
            assert_eq!(look_alike_key(&normalize(twin).unwrap()), key, "{twin:?} passes for Alpha App");
        }
        assert_ne!(look_alike_key("Beta App"), key);
    }
}
