//! The limits a task must fit in, and a task's size as DynamoDB counts it.
//!
//! | limit | value | where |
//! |---|---|---|
//! | [`MAX_ITEM_BYTES`] | 400 KB (409,600 bytes) | DynamoDB item: attribute names + values |
//! | [`MAX_ASYNC_PAYLOAD_BYTES`] | 256 KiB (262,144 bytes) | the event of an asynchronous Lambda invocation |

use super::model::Item;
use aws_sdk_dynamodb::types::AttributeValue;

/// DynamoDB's maximum item size: 400 KB, attribute names and values together.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The maximum event of an asynchronous (`Event`) Lambda invocation: 256 KiB.
pub const MAX_ASYNC_PAYLOAD_BYTES: usize = 256 * 1024;

/// The size of an item as DynamoDB counts it against [`MAX_ITEM_BYTES`]: for each attribute,
/// the UTF-8 length of its name plus the size of its value ([`value_size`]).
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// The size of one attribute value, by DynamoDB's rules: strings and binaries their length in
/// bytes; numbers 1 byte per two significant digits plus 1 (plus 1 when negative); booleans and
/// nulls 1; sets the sum of their elements; lists and maps 3 bytes plus, per element, 1 byte and
/// its size (map keys counted too).
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(l) => l.iter().map(String::len).sum(),
        AttributeValue::Ns(l) => l.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(l) => l.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        // A type added to the SDK later: count it as the largest scalar, a 38-digit number.
        _ => 21,
    }
}

/// Size of a number: significant digits (leading and trailing zeros trimmed) / 2, rounded up, + 1,
/// and one more byte for a negative number.
fn number_size(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or(n);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1 + usize::from(n.starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn strings_count_utf8_bytes_of_name_and_value() {
        assert_eq!(
            item_size(&item(&[("ab", AttributeValue::S("é😀".into()))])),
            2 + 2 + 4
        );
    }

    #[test]
    fn numbers_count_significant_digits() {
        let size = |n: &str| value_size(&AttributeValue::N(n.into()));
        assert_eq!(size("0"), 2);
        assert_eq!(size("1000"), 2);
        assert_eq!(size("12345"), 4);
        assert_eq!(size("-12345"), 5);
        assert_eq!(size("1718000000.1234567"), 10);
    }

    #[test]
    fn lists_and_maps_carry_overhead_per_element() {
        let list = AttributeValue::L(vec![AttributeValue::S("ab".into()), AttributeValue::Bool(true)]);
        assert_eq!(value_size(&list), 3 + (1 + 2) + (1 + 1));
        let map = AttributeValue::M([("k".to_string(), AttributeValue::S("v".into()))].into());
        assert_eq!(value_size(&map), 3 + 1 + 1 + 1);
    }
}
