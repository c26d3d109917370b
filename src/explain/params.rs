//! The client's parameters as tokio-postgres values: types by OID, values as the raw
//! bytes the client bound, in the client's formats; and EXPLAIN's JSON read back raw.

use std::error::Error;

use bytes::{Bytes, BytesMut};
use tokio_postgres::types::{to_sql_checked, Format, FromSql, IsNull, Kind, ToSql, Type};

use super::ExplainRequest;

type BoxError = Box<dyn Error + Sync + Send>;

/// One Bind value, passed through unchanged: the server decodes it exactly as it decoded
/// the client's, because the statement, the types and the format are the client's too.
#[derive(Debug)]
pub(crate) struct RawParam {
    value: Option<Bytes>,
    format: Format,
}

impl ToSql for RawParam {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match &self.value {
            Some(bytes) => {
                out.extend_from_slice(bytes);
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    /// Any type: the bytes were valid for it when the client sent them, and if they are
    /// not the server says so.
    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        self.format
    }

    to_sql_checked!();
}

/// The Parse types for `prepare_typed`. An OID tokio-postgres does not know (0, or a
/// user-defined type) is sent as is; 0 asks the server to infer the type.
pub(crate) fn param_types(req: &ExplainRequest) -> Vec<Type> {
    req.param_types
        .iter()
        .map(|&oid| {
            Type::from_oid(oid)
                .unwrap_or_else(|| Type::new(format!("oid{oid}"), oid, Kind::Simple, String::new()))
        })
        .collect()
}

/// The Bind values with their formats, resolved as Bind resolves them.
pub(crate) fn raw_params(req: &ExplainRequest) -> Vec<RawParam> {
    req.params
        .iter()
        .enumerate()
        .map(|(i, value)| RawParam {
            value: value.clone(),
            format: format_of(&req.param_formats, i),
        })
        .collect()
}

/// Bind's rule: no codes means text, one code applies to all, else one per parameter.
fn format_of(formats: &[i16], index: usize) -> Format {
    let code = match formats {
        [] => 0,
        [only] => *only,
        many => many.get(index).copied().unwrap_or(0),
    };
    if code == 1 {
        Format::Binary
    } else {
        Format::Text
    }
}

/// EXPLAIN's `json` column, parsed. The binary form of `json` is its text, which is what
/// tokio-postgres (it always asks for binary results) hands over.
pub(crate) struct ExplainJson(pub serde_json::Value);

impl<'a> FromSql<'a> for ExplainJson {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<ExplainJson, BoxError> {
        Ok(ExplainJson(serde_json::from_slice(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_bind_rules() {
        assert!(matches!(format_of(&[], 3), Format::Text));
        assert!(matches!(format_of(&[1], 3), Format::Binary));
        assert!(matches!(format_of(&[0, 1], 1), Format::Binary));
        assert!(matches!(format_of(&[0, 1], 0), Format::Text));
    }

    #[test]
    fn raw_params_write_the_given_bytes() {
        let param = RawParam {
            value: Some(Bytes::from_static(&[0, 0, 0, 42])),
            format: Format::Binary,
        };
        let mut out = BytesMut::new();
        let null = param.to_sql_checked(&Type::INT4, &mut out).unwrap();
        assert!(matches!(null, IsNull::No));
        assert_eq!(&out[..], &[0, 0, 0, 42]);
        assert!(matches!(param.encode_format(&Type::INT4), Format::Binary));

        let null = RawParam {
            value: None,
            format: Format::Text,
        };
        assert!(matches!(
            null.to_sql_checked(&Type::TEXT, &mut out).unwrap(),
            IsNull::Yes
        ));
    }

    #[test]
    fn unknown_oids_pass_through() {
        let req = ExplainRequest {
            param_types: vec![0, 23, 987_654],
            ..ExplainRequest::default()
        };
        let oids: Vec<u32> = param_types(&req).iter().map(Type::oid).collect();
        assert_eq!(oids, [0, 23, 987_654]);
    }
}
