//! The admin API's wire format, which the server writes and `chorusctl`
//! reads: where a command lives (`/api/<words joined by '/'>`) and the JSON
//! envelope of every answer, `{"ok": <result>}` or `{"error": "..."}`.
//! Kept beside the declarations so that neither side spells it alone.

use serde_json::{json, Value};

/// Every command's path starts with this.
pub const API_PREFIX: &str = "/api/";

/// The command a request path names: `/api/actors/tree` (or with a
/// trailing `/`) is `actors tree`. `None` for a path outside the API.
pub fn command_name(path: &str) -> Option<String> {
    let rest = path.strip_prefix(API_PREFIX)?;
    Some(rest.trim_end_matches('/').replace('/', " "))
}

/// The body of a successful answer.
pub fn ok(result: Value) -> Value {
    json!({ "ok": result })
}

/// The body of a refusal or a failure.
pub fn error(message: impl Into<String>) -> Value {
    json!({ "error": message.into() })
}

/// What an answer's body says: the result, or the server's error text.
/// A body with neither is a null result, as a command with nothing to say
/// would give.
pub fn reply(body: &Value) -> Result<Value, String> {
    if let Some(err) = body.get("error").and_then(Value::as_str) {
        return Err(err.to_owned());
    }
    Ok(body.get("ok").cloned().unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_commands_with_or_without_a_trailing_slash() {
        assert_eq!(
            command_name("/api/actors/tree").as_deref(),
            Some("actors tree")
        );
        assert_eq!(command_name("/api/status/").as_deref(), Some("status"));
        assert_eq!(command_name("/metrics"), None);
    }

    #[test]
    fn replies_carry_a_result_or_an_error() {
        assert_eq!(reply(&ok(json!({ "n": 1 }))), Ok(json!({ "n": 1 })));
        assert_eq!(reply(&error("no")), Err("no".to_owned()));
        assert_eq!(reply(&json!({})), Ok(Value::Null));
    }
}
