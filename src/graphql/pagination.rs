//! Cursor pagination helpers. Cursors are opaque to clients: base64url of a keyset position
//! `(created_at in microseconds, id)`, so pages stay stable while rows are inserted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{AppError, AppResult, FieldError};

pub fn encode_cursor(created_at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", created_at.timestamp_micros(), id))
}

pub fn decode_cursor(cursor: &str) -> AppResult<(DateTime<Utc>, Uuid)> {
    let invalid = || AppError::invalid_fields(vec![FieldError::new("after", "not a cursor returned by this API")]);
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once(':').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    let created_at = DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok((created_at, id))
}

/// Cursors of listings ordered by something other than creation (`agentPerformance`,
/// `agents`) are opaque row offsets in the requested order.
pub fn encode_offset(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("offset:{offset}"))
}

pub fn decode_offset(cursor: &str) -> AppResult<usize> {
    let invalid = || AppError::invalid_fields(vec![FieldError::new("after", "not a cursor returned by this API")]);
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    text.strip_prefix("offset:")
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(invalid)
}

/// Validates `first` against the configured cap; returns it as a row limit.
pub fn page_size(first: Option<i32>, default: i32, max: usize) -> AppResult<i64> {
    let first = first.unwrap_or(default);
    let max = i32::try_from(max).unwrap_or(i32::MAX);
    if first < 1 || first > max {
        return Err(AppError::invalid_fields(vec![FieldError::new(
            "first",
            format!("must be between 1 and {max}"),
        )]));
    }
    Ok(i64::from(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default();
        let id = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(at, id)).ok(), Some((at, id)));
        assert!(decode_cursor("not-a-cursor").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("12:zz")).is_err());
    }

    #[test]
    fn offset_cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_offset(&encode_offset(41)).ok(), Some(41));
        assert!(decode_offset("garbage!").is_err());
        assert!(decode_offset(&URL_SAFE_NO_PAD.encode("offset:-1")).is_err());
    }

    #[test]
    fn page_size_is_capped() {
        assert_eq!(page_size(None, 20, 100).ok(), Some(20));
        assert_eq!(page_size(Some(100), 20, 100).ok(), Some(100));
        assert!(page_size(Some(101), 20, 100).is_err());
        assert!(page_size(Some(0), 20, 100).is_err());
        assert!(page_size(Some(-5), 20, 100).is_err());
    }
}
