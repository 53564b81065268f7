//! # sosw-pyjson
//!
//! JSON text exactly as Python's `json.dumps` writes it with default arguments: `", "` and `": "`
//! separators, every character outside printable ASCII (DEL included) escaped as lowercase
//! `\uXXXX` (`ensure_ascii=True`; UTF-16 surrogate pairs above the BMP), floats in Python's `repr`
//! form (`1e-05`, `1e+16`, `1.0`), integers with all their digits (serde_json's
//! `arbitrary_precision` keeps `18446744073709551623` exact, as Python's `int` does; `-0` is `0`),
//! and numbers Python reads as floats but that overflow (`1e400`) as `Infinity`, as Python writes
//! them.
//!
//! Python sosw stores task payloads with `json.dumps` and its `Worker` sends the Worker Assistant
//! event the same way, so writing the same bytes keeps rows and events identical between the two
//! implementations. sosw-core (task rows) and sosw-worker (worker reports) both use this crate; it
//! has no AWS dependency, so a worker does not compile sosw-core and its clients.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io::{self, Write};

/// `value` as Python's `json.dumps(value)` writes it.
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value
        .serialize(&mut ser)
        .expect("serializing to a Vec<u8> cannot fail");
    String::from_utf8(out).expect("the formatter writes ASCII only")
}

/// A float as Python's `repr(float)`: shortest round-trip digits, positional notation for
/// exponents -4..16, otherwise `d.ddde±XX`.
pub fn float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "1.2345e6" or "-5e-7".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("the exponent is an integer");
    let sign = if v < 0.0 { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = i32::try_from(digits.len()).expect("at most 17 digits");
    if (-4..16).contains(&exp) {
        // The position of the decimal point within `digits`.
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point >= n {
            format!("{digits}{}.0", "0".repeat((point - n) as usize))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{esign}{:02}", exp.unsigned_abs())
    }
}

/// The text Python's `json.dumps(json.loads(text))` writes for the JSON number `text`: an
/// integer keeps its digits (`-0` becomes `0`), anything with a fraction or exponent is a float
/// in `repr` form.
pub fn number_repr(text: &str) -> String {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        text.parse::<f64>().map_or_else(|_| text.to_string(), float_repr)
    } else if text.trim_start_matches('-').bytes().all(|b| b == b'0') {
        "0".into()
    } else {
        text.to_string()
    }
}

/// A `serde_json` formatter producing Python's default `json.dumps` layout.
#[derive(Debug, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }
    fn write_f32<W: ?Sized + Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }
    fn write_number_str<W: ?Sized + Write>(&mut self, w: &mut W, value: &str) -> io::Result<()> {
        w.write_all(number_repr(value).as_bytes())
    }
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        for c in fragment.chars() {
            // Python's `ensure_ascii` keeps only ' '..='~' as is: DEL (0x7f) is escaped too.
            if (' '..='~').contains(&c) {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn separators_match_python() {
        assert_eq!(dumps(&json!({"a": 1, "b": [1, 2]})), r#"{"a": 1, "b": [1, 2]}"#);
    }

    #[test]
    fn key_order_is_preserved() {
        assert_eq!(dumps(&json!({"z": 1, "a": 2})), r#"{"z": 1, "a": 2}"#);
    }

    #[test]
    fn non_ascii_is_escaped_like_ensure_ascii() {
        assert_eq!(dumps(&json!("é😀")), r#""\u00e9\ud83d\ude00""#);
        assert_eq!(
            dumps(&json!("a\u{7f}b")),
            r#""a\u007fb""#,
            "DEL, as Python escapes it"
        );
        assert_eq!(dumps(&json!("a\"b\n")), r#""a\"b\n""#);
        assert_eq!(dumps(&json!("q\"\\\n")), r#""q\"\\\n""#);
    }

    #[test]
    fn layout_and_escapes_match_python() {
        // Expected bytes printed by Python 3.11's json.dumps for the same object.
        let v: Value = serde_json::from_str(
            r#"{"a": "\u007f\u001f é😀", "f": 1e20, "g": 1e-5, "i": 100000000000000000000, "l": [1, -0, 2.50]}"#,
        )
        .unwrap();
        assert_eq!(
            dumps(&v),
            r#"{"a": "\u007f\u001f \u00e9\ud83d\ude00", "f": 1e+20, "g": 1e-05, "i": 100000000000000000000, "l": [1, 0, 2.5]}"#
        );
    }

    #[test]
    fn numbers_keep_python_precision() {
        let v: Value = serde_json::from_str(
            r#"{"big": 18446744073709551623, "neg": -18446744073709551623, "z": -0, "nz": -0.0,
                "tiny": 5e-324, "huge": 1.7976931348623157e308, "over": 1e400, "e": 1E5, "f": 0.1}"#,
        )
        .unwrap();
        assert_eq!(
            dumps(&v),
            r#"{"big": 18446744073709551623, "neg": -18446744073709551623, "z": 0, "nz": -0.0, "tiny": 5e-324, "huge": 1.7976931348623157e+308, "over": Infinity, "e": 100000.0, "f": 0.1}"#
        );
        assert_eq!(dumps(&json!(1e-5)), "1e-05");
        assert_eq!(dumps(&json!(u64::MAX)), "18446744073709551615");
    }

    #[test]
    fn floats_follow_python_repr() {
        for (v, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (1.5e300, "1.5e+300"),
            (-2.5, "-2.5"),
            (-2.5e-7, "-2.5e-07"),
            (-0.0, "-0.0"),
            (1732412345.123456, "1732412345.123456"),
        ] {
            assert_eq!(float_repr(v), s, "{v}");
        }
    }
}
