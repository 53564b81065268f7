//! JSON text exactly as Python's `json.dumps` writes it with default arguments:
//! `", "` and `": "` separators, non-ASCII escaped as `\uXXXX` (`ensure_ascii=True`), floats in
//! Python's `repr` form (`1e-05`, `1e+16`, `1.0`), integers with all their digits (serde_json's
//! `arbitrary_precision` keeps `18446744073709551623` exact, as Python's `int` does; `-0` is
//! `0`), and numbers Python reads as floats but that overflow (`1e400`) as `Infinity`, as
//! Python writes them. Python sosw stores task payloads with
//! `json.dumps`, so writing the same bytes keeps rows identical between the two implementations.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io;

/// Serialize `value` as Python's `json.dumps(value)` would.
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value
        .serialize(&mut ser)
        .expect("serializing to a Vec<u8> cannot fail");
    // The formatter only ever writes ASCII.
    String::from_utf8(out).expect("ensure_ascii output is ASCII")
}

/// Format a float as Python's `repr(float)`.
pub fn float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "1.2345e6" or "-5e-7".
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let point = exp + 1; // position of the decimal point within `digits`
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point >= n {
            format!("{}{}.0", digits, "0".repeat((point - n) as usize))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let mant = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

/// The text Python's `json.dumps(json.loads(text))` writes for the JSON number `text`: an
/// integer keeps its digits (`-0` becomes `0`), anything with a fraction or exponent is a float
/// in `repr` form.
pub fn number_repr(text: &str) -> String {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        match text.parse::<f64>() {
            Ok(v) => float_repr(v),
            Err(_) => text.to_string(),
        }
    } else if text.trim_start_matches('-').bytes().all(|b| b == b'0') {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// A `serde_json` formatter producing Python's default `json.dumps` layout.
#[derive(Debug, Default)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }
    fn write_number_str<W: ?Sized + io::Write>(&mut self, w: &mut W, value: &str) -> io::Result<()> {
        w.write_all(number_repr(value).as_bytes())
    }
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        for c in fragment.chars() {
            // Python's `ensure_ascii` keeps only ' '..='~' as is: DEL (0x7f) is escaped too.
            if c.is_ascii() && c != '\u{7f}' {
                let mut buf = [0u8; 1];
                w.write_all(c.encode_utf8(&mut buf).as_bytes())?;
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
    use serde_json::json;

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
    }

    #[test]
    fn numbers_keep_python_precision() {
        let v: serde_json::Value = serde_json::from_str(
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
            (1732412345.123456, "1732412345.123456"),
        ] {
            assert_eq!(float_repr(v), s, "{v}");
        }
    }
}
