//! The bytes Python's `json.dumps(obj)` writes with its default arguments, which is how Python
//! sosw's `Worker` serialises its Worker Assistant event: `", "` and `": "` separators, every
//! character outside printable ASCII (DEL included) escaped as lowercase `\uXXXX` (UTF-16
//! surrogate pairs above the BMP), floats in `repr` form (`1e-05`, `1e+20`, `1.0`), integers with
//! all their digits.
//!
//! sosw-core has the same formatter for task rows; the worker keeps its own copy so that a worker
//! does not compile sosw-core and its DynamoDB/S3/SNS/SSM/CloudWatch clients.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io::{self, Write};

/// `value` as Python's `json.dumps(value)` writes it.
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value
        .serialize(&mut ser)
        .expect("a serde_json::Value always serialises to a Vec");
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
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` writes an exponent");
    let exp: i32 = exp.parse().expect("the exponent is an integer");
    let sign = if v < 0.0 { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = i32::try_from(digits.len()).expect("at most 17 digits");
    if (-4..16).contains(&exp) {
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

/// A JSON number's text as Python writes it after reading it: integers keep their digits (`-0`
/// is `0`), numbers with a fraction or an exponent are floats.
fn number_repr(text: &str) -> String {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        text.parse::<f64>().map_or_else(|_| text.to_string(), float_repr)
    } else if text.trim_start_matches('-').bytes().all(|b| b == b'0') {
        "0".into()
    } else {
        text.to_string()
    }
}

struct PythonFormatter;

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
    fn layout_and_escapes_match_python() {
        // Expected bytes printed by Python 3.11's json.dumps for the same object.
        let v: Value = serde_json::from_str(r#"{"a": "\u007f\u001f é😀", "f": 1e20, "g": 1e-5, "i": 100000000000000000000, "l": [1, -0, 2.50]}"#).unwrap();
        assert_eq!(
            dumps(&v),
            r#"{"a": "\u007f\u001f \u00e9\ud83d\ude00", "f": 1e+20, "g": 1e-05, "i": 100000000000000000000, "l": [1, 0, 2.5]}"#
        );
        assert_eq!(dumps(&json!("q\"\\\n")), r#""q\"\\\n""#);
    }

    #[test]
    fn floats_follow_python_repr() {
        for (v, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5e-7, "-2.5e-07"),
            (-0.0, "-0.0"),
            (1732412345.123456, "1732412345.123456"),
        ] {
            assert_eq!(float_repr(v), s, "{v}");
        }
    }
}
