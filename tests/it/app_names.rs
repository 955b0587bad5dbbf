//! Look-alike application names (issue 24, finding 6): while "Alpha App" exists, names
//! that read the same on the consent page are refused, and a name is stored in one form.

use gatehouse_core::model::ClientKind;
use gatehouse_core::registration::{self, NewClient, RegistrationError};

use crate::common::*;

fn named(name: &str, owner: &str) -> NewClient {
    NewClient {
        name: name.into(),
        owner_user_id: owner.into(),
        category: "chat_bot".into(),
        kind: ClientKind::Confidential,
        allow_implicit: false,
        redirect_uris: vec![REDIRECT.into()],
        jwt_access_tokens: false,
    }
}

#[tokio::test]
async fn names_that_look_like_a_registered_one_are_refused() {
    let server = TestServer::start().await;
    let owner = server.add_user("alice").await;
    let (alpha, _) = registration::register(&server.auth, named("  Alpha \u{00A0} App ", &owner.id)).await.unwrap();
    assert_eq!(alpha.name, "Alpha App", "stored in one form");

    for twin in ["Alpha App", "alpha app", "\u{0391}lpha App", "AIpha App", "Alpha\u{00A0}App", "Ａｌｐｈａ App"] {
        let refused = registration::register(&server.auth, named(twin, &owner.id)).await;
        assert_eq!(refused.err(), Some(RegistrationError::NameTaken), "{twin:?}");
    }
    for hidden in ["Alpha App\u{200B}", "Alpha\u{200D}App", "\u{202E}ppA ahplA"] {
        let refused = registration::register(&server.auth, named(hidden, &owner.id)).await;
        assert!(matches!(refused, Err(RegistrationError::Invalid(_))), "{hidden:?}: {refused:?}");
    }
    let (beta, _) = registration::register(&server.auth, named("Beta App", &owner.id)).await.unwrap();
    // An edit may keep its own name, but not take another's look-alike.
    registration::update(&server.auth, &beta, named("Beta  App", &owner.id)).await.unwrap();
    let refused = registration::update(&server.auth, &beta, named("A1pha App", &owner.id)).await;
    assert_eq!(refused.err(), Some(RegistrationError::NameTaken));
}
