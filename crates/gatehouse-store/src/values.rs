//! Statement parameters and result rows, as both drivers hand them over.

use std::borrow::Cow;

use gatehouse_core::error::StoreError;
use gatehouse_core::store::StoreResult;

/// A statement parameter. Nulls carry their type: PostgreSQL must know the column type
/// of every parameter, even a null one.
#[derive(Debug, Clone)]
pub enum Arg<'a> {
    Int(i64),
    Text(Cow<'a, str>),
    NullInt,
    NullText,
}

impl Arg<'_> {
    /// The same parameter owning its text, to be sent to another thread.
    pub fn into_owned(self) -> Arg<'static> {
        match self {
            Arg::Int(i) => Arg::Int(i),
            Arg::Text(t) => Arg::Text(Cow::Owned(t.into_owned())),
            Arg::NullInt => Arg::NullInt,
            Arg::NullText => Arg::NullText,
        }
    }
}

impl From<i64> for Arg<'_> {
    fn from(i: i64) -> Self {
        Arg::Int(i)
    }
}

impl From<bool> for Arg<'_> {
    fn from(b: bool) -> Self {
        Arg::Int(b as i64)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(s: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(s))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(s: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Arg<'_> {
    fn from(s: String) -> Self {
        Arg::Text(Cow::Owned(s))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(i: Option<i64>) -> Self {
        i.map_or(Arg::NullInt, Arg::Int)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Arg::NullText, Arg::from)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(s: &'a Option<String>) -> Self {
        s.as_deref().into()
    }
}

/// One value of a result row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

/// A result row, its cells in the order the SELECT names its columns. Reading a text
/// cell takes it out of the row.
#[derive(Debug)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&mut self, i: usize) -> StoreResult<&mut Cell> {
        self.0.get_mut(i).ok_or_else(|| StoreError::Backend(format!("no column {i} in the row")))
    }

    pub fn opt_text(&mut self, i: usize) -> StoreResult<Option<String>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Text(t) => Ok(Some(std::mem::take(t))),
            Cell::Int(_) => Err(StoreError::Backend(format!("column {i}: an integer where text belongs"))),
        }
    }

    pub fn text(&mut self, i: usize) -> StoreResult<String> {
        self.opt_text(i)?.ok_or_else(|| StoreError::Backend(format!("column {i}: null where text belongs")))
    }

    pub fn opt_int(&mut self, i: usize) -> StoreResult<Option<i64>> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(n) => Ok(Some(*n)),
            Cell::Text(_) => Err(StoreError::Backend(format!("column {i}: text where an integer belongs"))),
        }
    }

    pub fn int(&mut self, i: usize) -> StoreResult<i64> {
        self.opt_int(i)?.ok_or_else(|| StoreError::Backend(format!("column {i}: null where an integer belongs")))
    }

    pub fn flag(&mut self, i: usize) -> StoreResult<bool> {
        Ok(self.int(i)? != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_give_their_cells_by_type_and_refuse_the_wrong_one() {
        let mut row = Row(vec![Cell::Text("a".into()), Cell::Int(7), Cell::Null]);
        assert_eq!(row.int(1).unwrap(), 7);
        assert!(row.text(1).is_err());
        assert!(row.int(0).is_err());
        assert_eq!(row.text(0).unwrap(), "a");
        assert_eq!(row.opt_text(2).unwrap(), None);
        assert!(row.int(2).is_err());
        assert!(row.int(3).is_err(), "past the last column");
    }
}
