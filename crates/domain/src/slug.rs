//! A macro for the closed enums that travel as snake_case strings (API, database, config).

/// Error for a string that names no variant of a slug enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{value}' (expected one of: {expected})")]
pub struct UnknownSlug {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

/// Defines an enum whose variants map one-to-one to snake_case slugs, with `as_str`, `parse`,
/// `ALL`, `Display`, `FromStr` and serde that use those slugs.
#[macro_export]
macro_rules! slug_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident as $what:literal { $($(#[$vmeta:meta])* $variant:ident => $slug:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The slug used in the API, the database and configuration.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $slug),+ }
            }

            /// Parses a slug, naming the accepted values when it is unknown.
            pub fn parse(value: &str) -> Result<Self, $crate::slug::UnknownSlug> {
                match value {
                    $($slug => Ok($name::$variant),)+
                    _ => Err($crate::slug::UnknownSlug {
                        what: $what,
                        value: value.to_owned(),
                        expected: [$($slug),+].join(", "),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::slug::UnknownSlug;
            fn from_str(s: &str) -> Result<Self, Self::Err> { Self::parse(s) }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(::serde::de::Error::custom)
            }
        }
    };
}
