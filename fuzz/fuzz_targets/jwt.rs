//! JWT access tokens as a resource server receives them: header checks, then signature
//! and claims against a fixed RSA public key. Nothing unsigned may pass.
#![no_main]
use gatehouse_guard::untrusted::{jwt_claims, jwt_key_id};
use libfuzzer_sys::fuzz_target;

// A 2048-bit modulus (any value will do: the fuzzer cannot sign with its private key).
const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
const E: &str = "AQAB";

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let _ = jwt_key_id(token);
    // Every input, whatever its header says (alg none, HS256 with the public key as
    // secret, …): none may pass, since none was signed with the private key.
    let key = jsonwebtoken::DecodingKey::from_rsa_components(N, E).expect("key");
    assert!(jwt_claims(token, &key, "https://id.example.com", "https://id.example.com").is_err(), "a token passed without a signature");
});
