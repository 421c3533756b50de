//! A tiny aligned-column formatter for human output.

/// Rows of cells under a header, printed with every column padded to its widest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with this header row.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        Table {
            rows: vec![header.into_iter().map(Into::into).collect()],
        }
    }

    /// Append a row (missing cells print empty, extra cells widen the table).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        self.rows.push(cells.into_iter().map(Into::into).collect());
        self
    }

    /// The table as text: columns separated by two spaces, no trailing blanks, one `\n` per row.
    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; cols];
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns_to_the_widest_cell() {
        let mut t = Table::new(["NAME", "ENABLED", "ROOT"]);
        t.row(["crun", "yes", "/run/nexcage/crun"]);
        t.row(["runc-long", "no", "/r"]);
        assert_eq!(
            t.render(),
            "NAME       ENABLED  ROOT\n\
             crun       yes      /run/nexcage/crun\n\
             runc-long  no       /r\n"
        );
    }

    #[test]
    fn ragged_rows_and_unicode_widths() {
        let mut t = Table::new(["A", "B"]);
        t.row(["é", "x", "extra"]);
        t.row(["long"]);
        assert_eq!(t.render(), "A     B\né     x  extra\nlong\n");
    }

    #[test]
    fn header_only() {
        assert_eq!(Table::new(["ONE", "TWO"]).to_string(), "ONE  TWO\n");
    }
}
