//! Account e-mails (invitations, password resets), sent through the SMTP server the report
//! deliveries use (`--smtp-url`, `--smtp-from`). A message is sent once, after the change that
//! issued its token has committed; a failure is logged and reported to the caller, never
//! retried with the token kept around (the token exists only as a digest once we return).

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::state::AppState;

/// Whether this instance can send e-mail at all (an SMTP server is configured).
pub fn configured(state: &AppState) -> bool {
    state.settings.smtp_url.is_some()
}

/// Sends one plain-text message; the error says why it was not sent.
pub async fn send(state: &AppState, to: &str, subject: &str, body: String) -> Result<(), String> {
    let url = state
        .settings
        .smtp_url
        .as_deref()
        .ok_or_else(|| "no SMTP server is configured (--smtp-url)".to_owned())?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| format!("--smtp-url is not usable: {e}"))?
        .timeout(Some(state.settings.delivery_timeout))
        .build();
    let from = state
        .settings
        .smtp_from
        .parse::<Mailbox>()
        .map_err(|e| format!("--smtp-from is not a valid address: {e}"))?;
    let to = to.parse::<Mailbox>().map_err(|e| format!("bad recipient: {e}"))?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("message: {e}"))?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}
