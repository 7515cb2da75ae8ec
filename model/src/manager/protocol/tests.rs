//! Unit tests of the wire types' helpers (the model checks carry `Wait` and
//! `OpError` values but never read `timeout_ms` or an error's message).

use super::*;

/// The Redis waits take whole milliseconds: rounded up, so that a short
/// timeout never becomes "do not wait"; `Forever` has none.
#[test]
fn timeout_ms_rounds_up_to_whole_milliseconds() {
    assert_eq!(Wait::No.timeout_ms(), Some(0));
    assert_eq!(Wait::Micros(1).timeout_ms(), Some(1));
    assert_eq!(Wait::Micros(1000).timeout_ms(), Some(1));
    assert_eq!(Wait::Micros(1001).timeout_ms(), Some(2));
    assert_eq!(
        Wait::Micros(u64::MAX).timeout_ms(),
        Some(u64::MAX.div_ceil(1000))
    );
    assert_eq!(Wait::Forever.timeout_ms(), None);
}

/// An error displays as the message the caller sees.
#[test]
fn op_errors_display_their_message() {
    assert_eq!(OpError::KeyNotFound.to_string(), "key not found");
    assert_eq!(
        OpError::IndexOutOfRange { index: 5, len: 2 }.to_string(),
        "list index 5 out of range (len 2)"
    );
}
