//! Human output: plain aligned tables and one-line cell values.

use serde_json::Value;

/// One table column: its header and where its value sits in a row object
/// (a JSON pointer such as `/queue/name`).
pub struct Column {
    /// Header text.
    pub header: &'static str,
    /// JSON pointer into each row.
    pub pointer: &'static str,
}

/// Shorthand for a column list.
pub const fn col(header: &'static str, pointer: &'static str) -> Column {
    Column { header, pointer }
}

/// A value as one table cell: strings bare, lists comma-joined, objects as
/// compact JSON, control characters escaped so rows stay on one line.
pub fn cell(value: Option<&Value>) -> String {
    let text = match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(|v| !v.is_object() && !v.is_array()) => items
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(map)) if map.is_empty() => String::new(),
        Some(other) => other.to_string(),
    };
    escape(&text)
}

/// Escapes control characters (newlines, tabs, ...) as `\n`, `\t`, `\u{..}`.
pub fn escape(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| match c {
            '\n' => "\\n".to_owned(),
            '\r' => "\\r".to_owned(),
            '\t' => "\\t".to_owned(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Renders rows (JSON objects) as an aligned table with a header line.
pub fn table(columns: &[Column], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| cell(row.pointer(c.pointer)))
                .collect()
        })
        .collect();
    let headers: Vec<String> = columns.iter().map(|c| c.header.to_owned()).collect();
    grid(&headers, &cells)
}

/// Renders string cells under headers, columns separated by two spaces.
pub fn grid(headers: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut text = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            text.push_str(c);
            let width = widths.get(i).copied().unwrap_or(0);
            if i + 1 < cells.len() {
                text.extend(std::iter::repeat_n(
                    ' ',
                    width.saturating_sub(c.chars().count()),
                ));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers);
    for row in rows {
        line(row);
    }
    out
}

/// A two-column key/value table.
pub fn pairs(rows: &[(String, String)]) -> String {
    let headers = ["key".to_owned(), "value".to_owned()];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    grid(&headers, &cells)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns() {
        let rows = vec![
            json!({"name": "q1", "messages": 10, "args": {"x-max-length": 5}}),
            json!({"name": "a-longer-name", "messages": 0, "args": {}}),
        ];
        let cols = [
            col("name", "/name"),
            col("messages", "/messages"),
            col("arguments", "/args"),
        ];
        assert_eq!(
            table(&cols, &rows),
            "name           messages  arguments\n\
             q1             10        {\"x-max-length\":5}\n\
             a-longer-name  0\n"
        );
    }

    #[test]
    fn cells_stay_on_one_line() {
        assert_eq!(cell(Some(&json!("a\nb"))), "a\\nb");
        assert_eq!(
            cell(Some(&json!(["administrator", "monitoring"]))),
            "administrator,monitoring"
        );
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&json!(true))), "true");
    }
}
