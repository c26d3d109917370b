//! What the console writes: result sets (RowDescription, DataRow, CommandComplete), the
//! few other backend messages it needs, and PgBouncer's timestamp format.
//!
//! Encoded by hand: every length is computed from the data, values are length-prefixed
//! (a NUL inside a value is harmless), and nothing here can panic.

use bytes::{BufMut, BytesMut};

/// A column's type as announced in RowDescription; values are always sent as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int8,
    Float8,
}

impl Kind {
    fn oid(self) -> i32 {
        match self {
            Kind::Text => 25,
            Kind::Int8 => 20,
            Kind::Float8 => 701,
        }
    }

    fn size(self) -> i16 {
        match self {
            Kind::Text => -1,
            Kind::Int8 | Kind::Float8 => 8,
        }
    }
}

/// One value of a row: NULL or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Text(String),
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

macro_rules! cell_from_number {
    ($($t:ty),*) => {$(
        impl From<$t> for Cell {
            fn from(n: $t) -> Cell {
                Cell::Text(n.to_string())
            }
        }
    )*};
}
cell_from_number!(u64, i64, usize, i32, u16, u32);

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(v: Option<T>) -> Cell {
        v.map_or(Cell::Null, Into::into)
    }
}

/// Milliseconds from microseconds, three decimals, as a float8 cell.
pub fn ms(us: f64) -> Cell {
    Cell::Text(format!("{:.3}", us / 1000.0))
}

/// Rows under named, typed columns; encodes as a complete `SHOW` answer.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    columns: Vec<(&'static str, Kind)>,
    rows: Vec<Vec<Cell>>,
}

impl ResultSet {
    pub fn new(columns: &[(&'static str, Kind)]) -> ResultSet {
        ResultSet {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Column names, in order (for renderings other than the wire's).
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|(name, _)| *name).collect()
    }

    /// The rows as optional text, NULL as `None`.
    pub fn text_rows(&self) -> Vec<Vec<Option<String>>> {
        let cell = |c: &Cell| match c {
            Cell::Null => None,
            Cell::Text(t) => Some(t.clone()),
        };
        (self.rows.iter())
            .map(|r| r.iter().map(cell).collect())
            .collect()
    }

    /// Appends a row; missing cells become NULL and extra ones are dropped, so the
    /// DataRow always matches the RowDescription.
    pub fn push(&mut self, mut row: Vec<Cell>) {
        row.resize(self.columns.len(), Cell::Null);
        self.rows.push(row);
    }

    /// RowDescription, every DataRow, and CommandComplete `SHOW`.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut body = BytesMut::new();
        body.put_i16(clamp_i16(self.columns.len()));
        for (name, kind) in &self.columns {
            put_cstr(&mut body, name);
            body.put_i32(0); // table oid
            body.put_i16(0); // attribute number
            body.put_i32(kind.oid());
            body.put_i16(kind.size());
            body.put_i32(-1); // type modifier
            body.put_i16(0); // text format
        }
        put_message(out, b'T', &body);
        for row in &self.rows {
            body.clear();
            body.put_i16(clamp_i16(row.len()));
            for cell in row {
                match cell {
                    Cell::Null => body.put_i32(-1),
                    Cell::Text(s) => {
                        body.put_i32(i32::try_from(s.len()).unwrap_or(i32::MAX));
                        body.put_slice(s.as_bytes());
                    }
                }
            }
            put_message(out, b'D', &body);
        }
        command_complete(out, "SHOW");
    }
}

pub use crate::protocol::messages::command_complete;

/// The answer to an empty query string.
pub fn empty_query(out: &mut BytesMut) {
    put_message(out, b'I', &[]);
}

/// A NoticeResponse with a message and an optional detail.
pub fn notice(out: &mut BytesMut, message: &str, detail: &str) {
    let mut body = BytesMut::new();
    for (field, value) in [(b'S', "NOTICE"), (b'V', "NOTICE"), (b'C', "00000")] {
        body.put_u8(field);
        put_cstr(&mut body, value);
    }
    body.put_u8(b'M');
    put_cstr(&mut body, message);
    if !detail.is_empty() {
        body.put_u8(b'D');
        put_cstr(&mut body, detail);
    }
    body.put_u8(0);
    put_message(out, b'N', &body);
}

fn put_message(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_u32(u32::try_from(body.len() + 4).unwrap_or(u32::MAX));
    out.put_slice(body);
}

/// A C string; an interior NUL would end the string early, so it is dropped.
fn put_cstr(out: &mut BytesMut, s: &str) {
    out.extend(s.bytes().filter(|&b| b != 0));
    out.put_u8(0);
}

fn clamp_i16(n: usize) -> i16 {
    i16::try_from(n).unwrap_or(i16::MAX)
}

pub use crate::timefmt::pgbouncer as format_time;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn result_set_encoding() {
        let mut rs = ResultSet::new(&[("name", Kind::Text), ("n", Kind::Int8)]);
        rs.push(vec!["a".into(), 5u64.into()]);
        rs.push(vec![Cell::Null]);
        let mut out = BytesMut::new();
        rs.encode(&mut out);
        let mut expected = BytesMut::new();
        expected.extend_from_slice(b"T\0\0\0\x31\0\x02");
        expected.extend_from_slice(b"name\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0");
        expected.extend_from_slice(b"n\0\0\0\0\0\0\0\0\0\0\x14\0\x08\xff\xff\xff\xff\0\0");
        expected.extend_from_slice(b"D\0\0\0\x10\0\x02\0\0\0\x01a\0\0\0\x015");
        expected.extend_from_slice(b"D\0\0\0\x0e\0\x02\xff\xff\xff\xff\xff\xff\xff\xff");
        expected.extend_from_slice(b"C\0\0\0\x09SHOW\0");
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn other_messages() {
        let mut out = BytesMut::new();
        command_complete(&mut out, "PA\0USE");
        empty_query(&mut out);
        assert_eq!(&out[..], b"C\0\0\0\x0aPAUSE\0I\0\0\0\x04");
        out.clear();
        notice(&mut out, "m", "");
        assert_eq!(&out[..], b"N\0\0\0\x1fSNOTICE\0VNOTICE\0C00000\0Mm\0\0");
    }

    #[test]
    fn timestamps() {
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3_723);
        assert_eq!(format_time(t), "2000-02-29 01:02:03 UTC");
        let t = UNIX_EPOCH + Duration::from_secs(1_798_761_599);
        assert_eq!(format_time(t), "2026-12-31 23:59:59 UTC");
        assert_eq!(ms(1500.0), Cell::Text("1.500".into()));
        assert_eq!(Cell::from(None::<u64>), Cell::Null);
    }
}
