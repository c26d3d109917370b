//! The cache key: every input that can change a result or its bytes, encoded without
//! ambiguity (each part length-prefixed), compared in full (never only a hash: a
//! collision would serve another statement's rows).
//!
//! Parts: database, session user, current role, search_path, a hash of the
//! output-affecting settings, the resolved relation OIDs, the statement text, the
//! parameter type OIDs, formats and values, and the result formats.

use sha2::{Digest, Sha256};

/// Settings that change the bytes of a result; a session that changes any setting not
/// listed here (and not harmless) bypasses the cache.
pub const OUTPUT_SETTINGS: [&str; 10] = [
    "timezone",
    "datestyle",
    "intervalstyle",
    "extra_float_digits",
    "bytea_output",
    "client_encoding",
    "standard_conforming_strings",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
];

/// The inputs of one key, borrowed from the session and the request.
#[derive(Debug, Clone, Copy)]
pub struct KeyParts<'a> {
    pub database: &'a str,
    pub session_user: &'a str,
    pub current_role: &'a str,
    pub search_path: &'a str,
    /// [`settings_hash`] of the session's output settings.
    pub settings: [u8; 32],
    pub relations: &'a [u32],
    pub text: &'a str,
    pub param_types: &'a [u32],
    pub param_formats: &'a [i16],
    /// `None` is NULL.
    pub params: &'a [Option<&'a [u8]>],
    pub result_formats: &'a [i16],
}

/// A digest of the output settings, by name (case-insensitive) and value; settings
/// the session never set count with the value it has (the caller passes every one of
/// [`OUTPUT_SETTINGS`] it knows, in any order).
pub fn settings_hash<'a>(settings: impl IntoIterator<Item = (&'a str, &'a str)>) -> [u8; 32] {
    let mut pairs: Vec<(String, &str)> = settings
        .into_iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .filter(|(name, _)| OUTPUT_SETTINGS.contains(&name.as_str()))
        .collect();
    pairs.sort();
    let mut hash = Sha256::new();
    for (name, value) in pairs {
        for part in [name.as_bytes(), value.as_bytes()] {
            hash.update((part.len() as u32).to_be_bytes());
            hash.update(part);
        }
    }
    hash.finalize().into()
}

/// The key's bytes.
pub fn encode(parts: &KeyParts<'_>) -> Box<[u8]> {
    let mut out = Vec::with_capacity(128 + parts.text.len());
    for s in [
        parts.database,
        parts.session_user,
        parts.current_role,
        parts.search_path,
        parts.text,
    ] {
        put(&mut out, s.as_bytes());
    }
    out.extend_from_slice(&parts.settings);
    put_list(&mut out, parts.relations.iter().map(|o| o.to_be_bytes()));
    put_list(&mut out, parts.param_types.iter().map(|o| o.to_be_bytes()));
    put_list(
        &mut out,
        parts.param_formats.iter().map(|f| f.to_be_bytes()),
    );
    put_list(
        &mut out,
        parts.result_formats.iter().map(|f| f.to_be_bytes()),
    );
    out.extend_from_slice(&(parts.params.len() as u32).to_be_bytes());
    for param in parts.params {
        match param {
            // -1 for NULL as on the wire; an empty value has length 0.
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(value) => put(&mut out, value),
        }
    }
    out.into_boxed_slice()
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

fn put_list<const N: usize>(out: &mut Vec<u8>, items: impl ExactSizeIterator<Item = [u8; N]>) {
    out.extend_from_slice(&(items.len() as u32).to_be_bytes());
    for item in items {
        out.extend_from_slice(&item);
    }
}

/// The key's parts for a request and the relations its analysis resolved.
pub(super) fn parts<'a>(req: &super::Request<'a>, relations: &'a [u32]) -> KeyParts<'a> {
    KeyParts {
        database: req.database,
        session_user: req.session_user,
        current_role: req.current_role,
        search_path: req.search_path,
        settings: req.settings,
        relations,
        text: req.text,
        param_types: req.param_types,
        param_formats: req.param_formats,
        params: req.params,
        result_formats: req.result_formats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KeyParts<'static> {
        KeyParts {
            database: "db",
            session_user: "app",
            current_role: "app",
            search_path: "\"$user\", public",
            settings: settings_hash([("TimeZone", "UTC")]),
            relations: &[16384],
            text: "SELECT * FROM t WHERE id = $1",
            param_types: &[23],
            param_formats: &[0],
            params: &[Some(b"1")],
            result_formats: &[],
        }
    }

    #[test]
    fn every_part_changes_the_key() {
        let k = encode(&base());
        let variants: Vec<KeyParts> = vec![
            KeyParts {
                database: "db2",
                ..base()
            },
            KeyParts {
                session_user: "other",
                ..base()
            },
            KeyParts {
                current_role: "admin",
                ..base()
            },
            KeyParts {
                search_path: "public",
                ..base()
            },
            KeyParts {
                settings: settings_hash([("TimeZone", "Europe/Paris")]),
                ..base()
            },
            KeyParts {
                relations: &[16385],
                ..base()
            },
            KeyParts {
                text: "SELECT * FROM t WHERE id = $1 ",
                ..base()
            },
            KeyParts {
                param_types: &[20],
                ..base()
            },
            KeyParts {
                param_formats: &[1],
                ..base()
            },
            KeyParts {
                params: &[Some(b"2")],
                ..base()
            },
            KeyParts {
                params: &[None],
                ..base()
            },
            KeyParts {
                params: &[Some(b"")],
                ..base()
            },
            KeyParts {
                result_formats: &[1],
                ..base()
            },
        ];
        for v in &variants {
            assert_ne!(encode(v), k, "{v:?}");
        }
        assert_eq!(encode(&base()), k);
    }

    #[test]
    fn parts_cannot_run_into_each_other() {
        let a = KeyParts {
            database: "ab",
            session_user: "c",
            ..base()
        };
        let b = KeyParts {
            database: "a",
            session_user: "bc",
            ..base()
        };
        assert_ne!(encode(&a), encode(&b));
    }

    #[test]
    fn settings_hash_ignores_order_and_case_but_not_values() {
        let a = settings_hash([("DateStyle", "ISO, MDY"), ("TimeZone", "UTC")]);
        let b = settings_hash([("timezone", "UTC"), ("datestyle", "ISO, MDY")]);
        assert_eq!(a, b);
        assert_ne!(
            a,
            settings_hash([("timezone", "UTC"), ("datestyle", "ISO, DMY")])
        );
        assert_eq!(
            settings_hash([("application_name", "x")]),
            settings_hash([])
        );
    }
}
