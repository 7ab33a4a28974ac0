//! JSON objects, and nothing else, where a contract says "a JSON object".
//!
//! serde's derived `Deserialize` for a struct accepts a JSON object *and*
//! an array of the fields in order: `["voter","a"]` would read as a ballot.
//! [`ObjectOnly`] wraps such a type and accepts only the object form.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// `T`, read from a JSON object only; anything else (an array, a string, a
/// number, `null`, a boolean) is an "invalid type … expected a JSON object"
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        d.deserialize_map(ObjectVisitor(PhantomData))
            .map(ObjectOnly)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Pair {
        x: u8,
        y: u8,
    }

    #[test]
    fn objects_parse_and_nothing_else_does() {
        let ObjectOnly(pair) = serde_json::from_str::<ObjectOnly<Pair>>(r#" {"y":2,"x":1} "#)
            .expect("an object parses");
        assert_eq!(pair, Pair { x: 1, y: 2 });
        // The derive alone takes the array form.
        assert!(serde_json::from_str::<Pair>("[1,2]").is_ok());
        for other in ["[1,2]", "1", r#""xy""#, "null", "true"] {
            let err = serde_json::from_str::<ObjectOnly<Pair>>(other)
                .expect_err(other)
                .to_string();
            assert!(err.contains("expected a JSON object"), "{other}: {err}");
        }
    }
}
