//! Instants as the schema stores them: integer microseconds since the Unix
//! epoch, the one time representation both backends hold identically (no
//! dialect's timestamp type, no time zone).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::StorageError;

/// `t` in microseconds since the epoch (negative before it), truncated: the
/// stored precision, ample for XEP-0203 stamps.
pub(crate) fn to_micros(t: SystemTime) -> Result<i64, StorageError> {
    let out_of_range = || StorageError::InvalidInput(format!("time {t:?} is out of range"));
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).map_err(|_| out_of_range()),
        Err(before) => i64::try_from(before.duration().as_micros())
            .map(|us| -us)
            .map_err(|_| out_of_range()),
    }
}

/// The instant a stored microsecond count stands for.
pub(crate) fn from_micros(us: i64) -> Result<SystemTime, StorageError> {
    let offset = Duration::from_micros(us.unsigned_abs());
    let t = if us >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    // Only a corrupted row could hold a value this platform cannot represent.
    t.ok_or_else(|| StorageError::Database(format!("stored time {us} is out of range")))
}

/// The current time as stored.
pub(crate) fn now_micros() -> Result<i64, StorageError> {
    to_micros(SystemTime::now())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_microsecond_precision() {
        for us in [0, 1, -1, 1_700_000_000_123_456, -86_400_000_000] {
            assert_eq!(to_micros(from_micros(us).unwrap()).unwrap(), us);
        }
    }

    #[test]
    fn truncates_below_a_microsecond() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_999);
        assert_eq!(to_micros(t).unwrap(), 1);
    }
}
