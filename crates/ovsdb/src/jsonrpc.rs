//! JSON-RPC 1.0 messages as OVSDB uses them (RFC 7047 §4): requests, notifications, replies.

use serde_json::{json, Map, Value};

use crate::error::Error;

/// One JSON-RPC message, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects a reply with the same `id`.
    Request {
        /// The id to echo back (OVSDB servers use the string "echo" for their probes).
        id: Value,
        /// The method name.
        method: String,
        /// The parameters (an array).
        params: Value,
    },
    /// A call with a null id: no reply.
    Notification {
        /// The method name.
        method: String,
        /// The parameters (an array).
        params: Value,
    },
    /// The answer to a request.
    Reply {
        /// The request's id.
        id: Value,
        /// `Ok(result)`, or `Err(error)` where the error is a string or an object.
        result: Result<Value, Value>,
    },
}

impl Message {
    /// Classifies a decoded JSON value.
    pub fn from_value(value: Value) -> Result<Self, Error> {
        let Value::Object(mut obj) = value else {
            return Err(Error::NotJsonRpc("not a JSON object"));
        };
        let id = obj.remove("id").unwrap_or(Value::Null);
        if let Some(method) = obj.remove("method") {
            let Value::String(method) = method else {
                return Err(Error::NotJsonRpc("method is not a string"));
            };
            let params = obj.remove("params").unwrap_or_else(|| json!([]));
            return Ok(if id.is_null() {
                Message::Notification { method, params }
            } else {
                Message::Request { id, method, params }
            });
        }
        // A reply: the server leaves out `result` entirely when it reports an error.
        let error = obj.remove("error").filter(|e| !e.is_null());
        let result = obj.remove("result");
        match (error, result) {
            (Some(error), _) => Ok(Message::Reply {
                id,
                result: Err(error),
            }),
            (None, Some(result)) => Ok(Message::Reply {
                id,
                result: Ok(result),
            }),
            (None, None) => Err(Error::NotJsonRpc("neither method nor result nor error")),
        }
    }

    /// The JSON value to send.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        match self {
            Message::Request { id, method, params } => {
                obj.insert("id".into(), id.clone());
                obj.insert("method".into(), Value::String(method.clone()));
                obj.insert("params".into(), params.clone());
            }
            Message::Notification { method, params } => {
                obj.insert("id".into(), Value::Null);
                obj.insert("method".into(), Value::String(method.clone()));
                obj.insert("params".into(), params.clone());
            }
            Message::Reply { id, result } => {
                obj.insert("id".into(), id.clone());
                match result {
                    Ok(r) => {
                        obj.insert("result".into(), r.clone());
                        obj.insert("error".into(), Value::Null);
                    }
                    Err(e) => {
                        obj.insert("result".into(), Value::Null);
                        obj.insert("error".into(), e.clone());
                    }
                }
            }
        }
        Value::Object(obj)
    }
}

/// Renders a server error (a string, or an object with `error` and `details`) as one line.
pub fn error_text(error: &Value) -> String {
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            let main = o.get("error").and_then(Value::as_str).unwrap_or("error");
            match o.get("details").and_then(Value::as_str) {
                Some(details) => format!("{main}: {details}"),
                None => main.to_string(),
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_probe_with_string_id_is_a_request() {
        let m = Message::from_value(json!({"id":"echo","method":"echo","params":[]})).unwrap();
        assert_eq!(
            m,
            Message::Request {
                id: json!("echo"),
                method: "echo".into(),
                params: json!([])
            }
        );
    }

    #[test]
    fn update_with_null_id_is_a_notification() {
        let m = Message::from_value(json!({"id":null,"method":"update3","params":[1]})).unwrap();
        assert!(matches!(m, Message::Notification { method, .. } if method == "update3"));
    }

    #[test]
    fn error_reply_without_result_key_is_an_error() {
        let m = Message::from_value(json!({"id":3,"error":"unknown method"})).unwrap();
        assert_eq!(
            m,
            Message::Reply {
                id: json!(3),
                result: Err(json!("unknown method"))
            }
        );
        let obj = json!({"error":"syntax error","details":"bad table"});
        assert_eq!(error_text(&obj), "syntax error: bad table");
    }

    #[test]
    fn reply_with_null_error_is_a_result() {
        let m = Message::from_value(json!({"id":3,"error":null,"result":{}})).unwrap();
        assert!(matches!(m, Message::Reply { result: Ok(_), .. }));
    }

    #[test]
    fn object_with_nothing_recognisable_is_rejected() {
        assert!(Message::from_value(json!({"id":3})).is_err());
        assert!(Message::from_value(json!([1])).is_err());
        assert!(Message::from_value(json!({"method":5})).is_err());
    }
}
