//! Twilio voice status callbacks: request signatures and the mapping of callback parameters
//! onto call events. Pure functions; the HTTP handler is `http::webhooks`.
//!
//! Signature (`X-Twilio-Signature`), as Twilio specifies it: base64 of HMAC-SHA1, keyed with
//! the account's auth token, over the full public URL of the request followed by every POST
//! parameter sorted by name, each name immediately followed by its value. Like Twilio's own
//! validators we also accept the URL with the scheme's default port added or removed. For a
//! JSON body the URL carries `bodySHA256` (hex SHA-256 of the raw body) and the signature
//! covers the URL only. Every comparison is constant-time.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::domain::{AnsweredBy, CallEvent, Direction, EndReason, EventType, Source};

type HmacSha1 = Hmac<Sha1>;

/// Where an organization's voice status callbacks are posted: the HTTP router serves it, and
/// the telephony settings show it to the admin who configures Twilio.
pub const VOICE_STATUS_ROUTE: &str = "/webhooks/twilio/{org_slug}/voice-status";

/// The path of an organization's voice status callback.
pub fn voice_status_path(org_slug: &str) -> String {
    VOICE_STATUS_ROUTE.replace("{org_slug}", org_slug)
}

/// The longest customer number an interaction keeps; Twilio's `From`/`To` can be SIP or client
/// addresses longer than that, which are then not recorded.
pub const MAX_CUSTOMER_NUMBER_CHARS: usize = 32;

/// The text Twilio signs: the URL, then `name` + `value` of each parameter, sorted by name
/// (byte order) and, for a repeated name, by value.
pub fn signed_text(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut text = String::with_capacity(url.len() + params.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>());
    text.push_str(url);
    for (name, value) in sorted {
        text.push_str(name);
        text.push_str(value);
    }
    text
}

/// HMAC-SHA1 of `text` (HMAC takes a key of any length, so this is always `Some`).
fn mac(auth_token: &str, text: &str) -> Option<HmacSha1> {
    let mut mac = HmacSha1::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(text.as_bytes());
    Some(mac)
}

/// The `X-Twilio-Signature` Twilio would send for this URL and parameters.
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    mac(auth_token, &signed_text(url, params)).map_or_else(String::new, |m| STANDARD.encode(m.finalize().into_bytes()))
}

/// The URL as given, and with the scheme's default port added (when it has no port) or
/// removed (when it names the default port), as Twilio's validators accept both.
pub fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // Skip user info and an IPv6 literal when looking for the port's colon.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let search_from = authority[host_start..]
        .rfind(']')
        .map_or(host_start, |i| host_start + i);
    match authority[search_from..].rfind(':').map(|i| search_from + i) {
        Some(colon) => {
            if &authority[colon + 1..] == default_port {
                variants.push(format!("{scheme}://{}{tail}", &authority[..colon]));
            }
        }
        None => variants.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    variants
}

/// Equality without an early exit, so timing does not reveal where two values differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the signature of a form-encoded callback (every URL variant is tried, all of them,
/// whatever the first result).
pub fn verify_form(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(presented) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    url_variants(url)
        .iter()
        .map(|candidate| {
            mac(auth_token, &signed_text(candidate, params)).is_some_and(|m| m.verify_slice(&presented).is_ok())
        })
        .fold(false, |any, ok| any | ok)
}

/// The `bodySHA256` query parameter of a URL.
fn body_sha256_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "bodySHA256")
        .map(|(_, value)| value.into_owned())
}

/// Checks a JSON-body request: the signature covers the URL only, and the URL's `bodySHA256`
/// must be the hex SHA-256 of the raw body.
pub fn verify_json(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(expected) = body_sha256_param(url) else {
        return false;
    };
    let actual = hex::encode(Sha256::digest(body));
    let body_ok = constant_time_eq(expected.to_ascii_lowercase().as_bytes(), actual.as_bytes());
    let signature_ok = verify_form(auth_token, url, &[], signature);
    body_ok & signature_ok
}

/// A status callback, mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub call_sid: String,
    pub account_sid: String,
    /// Set on a child leg (e.g. a `<Dial>` to an agent's phone).
    pub parent_call_sid: Option<String>,
    pub event: CallEvent,
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn valid_sid(sid: &str) -> bool {
    (1..=128).contains(&sid.len()) && sid.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// CallStatus → (event type, end reason).
pub fn map_call_status(status: &str) -> Option<(EventType, Option<EndReason>)> {
    Some(match status {
        "queued" | "initiated" => (EventType::Offered, None),
        "ringing" => (EventType::Ringing, None),
        "in-progress" => (EventType::Answered, None),
        "completed" => (EventType::Ended, Some(EndReason::Completed)),
        "busy" => (EventType::Ended, Some(EndReason::Busy)),
        "failed" => (EventType::Ended, Some(EndReason::Failed)),
        "no-answer" => (EventType::Ended, Some(EndReason::NoAnswer)),
        "canceled" => (EventType::Ended, Some(EndReason::Canceled)),
        _ => return None,
    })
}

fn map_direction(direction: &str) -> Option<Direction> {
    match direction {
        "inbound" | "trunking-originating" => Some(Direction::Inbound),
        "outbound-api" | "outbound-dial" | "outbound" | "trunking-terminating" => Some(Direction::Outbound),
        _ => None,
    }
}

/// AnsweredBy: `human`; `machine_start`, `machine_end_beep`, … and `fax` are machines;
/// `unknown` (or anything else) says nothing.
fn map_answered_by(value: &str) -> Option<AnsweredBy> {
    match value {
        "human" => Some(AnsweredBy::Human),
        "fax" => Some(AnsweredBy::Machine),
        v if v.starts_with("machine") => Some(AnsweredBy::Machine),
        _ => None,
    }
}

/// Maps callback parameters onto a call event; `Err` says what is wrong (answered 400).
pub fn parse_status_callback(params: &[(String, String)]) -> Result<StatusCallback, String> {
    let call_sid = param(params, "CallSid").ok_or("CallSid is missing")?;
    if !valid_sid(call_sid) {
        return Err("CallSid is not a valid id".into());
    }
    let account_sid = param(params, "AccountSid").ok_or("AccountSid is missing")?;
    let status = param(params, "CallStatus").ok_or("CallStatus is missing")?;
    let (event_type, end_reason) = map_call_status(status).ok_or_else(|| format!("unknown CallStatus `{status}`"))?;
    let timestamp = param(params, "Timestamp").ok_or("Timestamp is missing")?;
    let occurred_at: DateTime<Utc> = DateTime::parse_from_rfc2822(timestamp)
        .map_err(|_| format!("Timestamp `{timestamp}` is not an RFC 2822 date"))?
        .to_utc();
    let sequence = param(params, "SequenceNumber")
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| format!("SequenceNumber `{s}` is not a whole number"))
        })
        .transpose()?;
    let direction = param(params, "Direction")
        .map(|d| map_direction(d).ok_or_else(|| format!("unknown Direction `{d}`")))
        .transpose()?;
    let duration_ms = param(params, "CallDuration")
        .map(|d| {
            d.parse::<u32>()
                .map_err(|_| format!("CallDuration `{d}` is not a whole number of seconds"))
        })
        .transpose()?
        .map(|seconds| i64::from(seconds) * 1_000);
    let number_param = if direction == Some(Direction::Outbound) {
        "To"
    } else {
        "From"
    };
    let customer_number = param(params, number_param)
        .filter(|n| n.chars().count() <= MAX_CUSTOMER_NUMBER_CHARS)
        .map(str::to_owned);
    let parent_call_sid = param(params, "ParentCallSid").map(str::to_owned);

    let mut event = CallEvent::new(event_type, occurred_at, Source::Twilio);
    event.sequence = sequence.map(i64::from);
    event.direction = direction;
    event.customer_number = customer_number;
    event.answered_by = param(params, "AnsweredBy").and_then(map_answered_by);
    event.end_reason = end_reason;
    event.duration_ms = if event_type == EventType::Ended {
        duration_ms
    } else {
        None
    };
    Ok(StatusCallback {
        call_sid: call_sid.to_owned(),
        account_sid: account_sid.to_owned(),
        parent_call_sid,
        event,
    })
}

/// Parameters of a JSON body: a flat object of strings, numbers or booleans.
pub fn params_from_json(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| "the body is not valid JSON".to_owned())?;
    let object = value.as_object().ok_or("the JSON body must be an object")?;
    object
        .iter()
        .map(|(name, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(format!("`{name}` must be a string or a number")),
            };
            Ok((name.clone(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn check_vector_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ])
    }

    const CHECK_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    #[test]
    fn twilio_published_check_vector() {
        assert_eq!(
            compute_signature("12345", CHECK_URL, &check_vector_params()),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify_form(
            "12345",
            CHECK_URL,
            &check_vector_params(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        // Parameter order does not matter: they are sorted before signing.
        let mut reversed = check_vector_params();
        reversed.reverse();
        assert!(verify_form(
            "12345",
            CHECK_URL,
            &reversed,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        let mut changed = check_vector_params();
        changed[2].1 = "1235".into();
        assert!(!verify_form("12345", CHECK_URL, &changed, good));
        let mut added = check_vector_params();
        added.push(("Extra".into(), "1".into()));
        assert!(!verify_form("12345", CHECK_URL, &added, good));
        assert!(!verify_form(
            "12345",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &check_vector_params(),
            good
        ));
        assert!(!verify_form("54321", CHECK_URL, &check_vector_params(), good));
        assert!(!verify_form("12345", CHECK_URL, &check_vector_params(), ""));
        assert!(!verify_form("12345", CHECK_URL, &check_vector_params(), "not base64!"));
    }

    #[test]
    fn the_default_port_may_be_added_or_removed() {
        assert_eq!(
            url_variants("https://x.example/a?b=1"),
            vec!["https://x.example/a?b=1", "https://x.example:443/a?b=1"]
        );
        assert_eq!(
            url_variants("https://x.example:443/a"),
            vec!["https://x.example:443/a", "https://x.example/a"]
        );
        assert_eq!(
            url_variants("http://x.example"),
            vec!["http://x.example", "http://x.example:80"]
        );
        assert_eq!(
            url_variants("https://x.example:8443/a"),
            vec!["https://x.example:8443/a"]
        );
        assert_eq!(
            url_variants("https://[::1]/a"),
            vec!["https://[::1]/a", "https://[::1]:443/a"]
        );
        let signed_with_port = compute_signature(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &check_vector_params(),
        );
        assert!(verify_form(
            "12345",
            CHECK_URL,
            &check_vector_params(),
            &signed_with_port
        ));
        assert!(verify_form(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &check_vector_params(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        // Another port is another URL.
        assert!(!verify_form(
            "12345",
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &check_vector_params(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }

    #[test]
    fn json_bodies_are_signed_through_their_hash() {
        let body = br#"{"CallSid":"CA1","CallStatus":"ringing"}"#;
        let url = format!(
            "https://x.example/hook?bodySHA256={}",
            hex::encode(Sha256::digest(body))
        );
        let signature = compute_signature("secret-token", &url, &[]);
        assert!(verify_json("secret-token", &url, body, &signature));
        assert!(!verify_json(
            "secret-token",
            &url,
            br#"{"CallSid":"CA2","CallStatus":"ringing"}"#,
            &signature
        ));
        assert!(!verify_json(
            "secret-token",
            "https://x.example/hook",
            body,
            &compute_signature("secret-token", "https://x.example/hook", &[])
        ));
        assert_eq!(
            params_from_json(body).unwrap(),
            params(&[("CallSid", "CA1"), ("CallStatus", "ringing")])
        );
        assert!(params_from_json(b"[1]").is_err());
    }

    fn callback(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut p = params(&[
            ("CallSid", "CA0123456789abcdef0123456789abcdef"),
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("CallStatus", "completed"),
            ("Direction", "inbound"),
            ("From", "+447700900123"),
            ("To", "+441632960000"),
            ("Timestamp", "Tue, 24 Nov 2026 10:00:05 +0000"),
            ("SequenceNumber", "3"),
            ("CallDuration", "42"),
        ]);
        for (k, v) in extra {
            p.retain(|(name, _)| name != k);
            p.push(((*k).to_owned(), (*v).to_owned()));
        }
        p
    }

    #[test]
    fn callbacks_map_onto_events() {
        let c = parse_status_callback(&callback(&[])).unwrap();
        assert_eq!(c.event.event_type, EventType::Ended);
        assert_eq!(c.event.end_reason, Some(EndReason::Completed));
        assert_eq!(c.event.duration_ms, Some(42_000));
        assert_eq!(c.event.sequence, Some(3));
        assert_eq!(c.event.direction, Some(Direction::Inbound));
        assert_eq!(c.event.customer_number.as_deref(), Some("+447700900123"));
        assert_eq!(
            c.event.occurred_at,
            DateTime::parse_from_rfc3339("2026-11-24T10:00:05Z").unwrap().to_utc()
        );
        let out = parse_status_callback(&callback(&[
            ("Direction", "outbound-api"),
            ("CallStatus", "in-progress"),
            ("AnsweredBy", "machine_end_beep"),
        ]))
        .unwrap();
        assert_eq!(
            (out.event.event_type, out.event.direction),
            (EventType::Answered, Some(Direction::Outbound))
        );
        assert_eq!(out.event.customer_number.as_deref(), Some("+441632960000"));
        assert_eq!(out.event.answered_by, Some(AnsweredBy::Machine));
        assert_eq!(out.event.duration_ms, None);
        for (status, expected) in [
            ("queued", EventType::Offered),
            ("initiated", EventType::Offered),
            ("ringing", EventType::Ringing),
        ] {
            assert_eq!(
                parse_status_callback(&callback(&[("CallStatus", status)]))
                    .unwrap()
                    .event
                    .event_type,
                expected
            );
        }
        for (status, reason) in [
            ("busy", EndReason::Busy),
            ("failed", EndReason::Failed),
            ("no-answer", EndReason::NoAnswer),
            ("canceled", EndReason::Canceled),
        ] {
            assert_eq!(
                parse_status_callback(&callback(&[("CallStatus", status)]))
                    .unwrap()
                    .event
                    .end_reason,
                Some(reason)
            );
        }
        let sip = parse_status_callback(&callback(&[(
            "From",
            "sip:someone.with.a.long.address@pbx.example.com",
        )]))
        .unwrap();
        assert_eq!(sip.event.customer_number, None);
    }

    #[test]
    fn bad_callbacks_say_what_is_wrong() {
        let error = |extra: &[(&str, &str)]| parse_status_callback(&callback(extra)).unwrap_err();
        assert!(error(&[("CallStatus", "exploded")]).contains("CallStatus"));
        assert!(error(&[("CallSid", "")]).contains("CallSid"));
        assert!(error(&[("CallSid", "CA 1")]).contains("CallSid"));
        assert!(error(&[("Timestamp", "yesterday")]).contains("Timestamp"));
        assert!(error(&[("SequenceNumber", "-1")]).contains("SequenceNumber"));
        assert!(error(&[("Direction", "sideways")]).contains("Direction"));
        assert!(error(&[("CallDuration", "1.5")]).contains("CallDuration"));
        let mut no_account = callback(&[]);
        no_account.retain(|(k, _)| k != "AccountSid");
        assert!(parse_status_callback(&no_account).unwrap_err().contains("AccountSid"));
    }
}
