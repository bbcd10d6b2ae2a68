//! Delivery of scheduled runs: e-mail over SMTP and signed webhooks, retried with backoff,
//! failures recorded. Every instance runs the senders.
//!
//! A fire writes its deliveries with its run (one per e-mail recipient, one for the webhook:
//! `report_deliveries`). Every `--delivery-poll` an instance claims pending deliveries whose
//! run has finished (SUCCEEDED, FAILED or CANCELLED), `FOR UPDATE SKIP LOCKED`, counting the
//! attempt and moving `next_attempt_at` a lease ahead (twice `--delivery-timeout`); it sends,
//! then records the outcome fenced by the attempt number. An instance that dies mid-send leaves
//! the delivery to be claimed again when the lease passes: delivery is at least once, and
//! every webhook carries its delivery id (`Omnivox-Delivery`) for receivers to drop a repeat.
//!
//! **Retries.** A failed attempt is tried again after the next wait of `--delivery-backoff`
//! (default 30 s, 2 min, 10 min, 1 h, 6 h: six attempts); when they are spent the delivery is
//! FAILED with the last error (and HTTP status), shown on the schedule's `deliveries`. A
//! permanent SMTP rejection (5xx, e.g. an unknown mailbox) fails at once: no retry mends it.
//! Any webhook answer other than 2xx, or none within the timeout, is retried; redirects are
//! not followed (the URL was checked when the schedule was written, a redirect's target was
//! not).
//!
//! **E-mail.** One message per recipient (recipients do not see each other). A finished file
//! up to `--report-attachment-limit` bytes (default 10 MiB) is attached; a larger one is sent
//! as a signed download link valid `--report-link-ttl` (default 7 days). A run that failed is
//! reported as such, with its error. SMTP is `--smtp-url` (plain, STARTTLS or TLS through
//! rustls, so no system OpenSSL is needed).
//!
//! **Webhooks.** `POST` of a JSON body (see [`payload`]) with
//! `Omnivox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed with the
//! schedule's secret — the timestamp is signed with the body so a receiver can refuse replays
//! older than a few minutes — plus `Omnivox-Event: report.run.finished` and
//! `Omnivox-Delivery: <id>`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::Sha256;

use crate::auth::Tenant;
use crate::db::report_deliveries::{self as rows, DeliveryRow, Outcome, RunContext, EMAIL};
use crate::db::report_runs::{self as runs, RunRow};
use crate::error::{AppError, AppResult};
use crate::reports::{downloads, files};
use crate::state::AppState;

/// Deliveries one instance claims at once (and sends concurrently).
pub const BATCH: i32 = 32;

/// The senders' clients, built once per instance.
pub struct Senders {
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    smtp_error: Option<String>,
    from: Option<Mailbox>,
    http: reqwest::Client,
}

impl Senders {
    pub fn new(state: &AppState) -> AppResult<Self> {
        let settings = &state.settings;
        let (smtp, smtp_error) = match settings.smtp_url.as_deref() {
            None => (None, Some("no SMTP server is configured (--smtp-url)".to_owned())),
            Some(url) => match AsyncSmtpTransport::<Tokio1Executor>::from_url(url) {
                Ok(builder) => (Some(builder.timeout(Some(settings.delivery_timeout)).build()), None),
                Err(e) => (None, Some(format!("--smtp-url is not usable: {e}"))),
            },
        };
        let from = settings.smtp_from.parse::<Mailbox>().ok();
        let http = reqwest::Client::builder()
            .timeout(settings.delivery_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Omnivox-Webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| AppError::internal(format!("webhook client: {e}")))?;
        Ok(Self {
            smtp,
            smtp_error,
            from,
            http,
        })
    }
}

/// Starts the senders' loop; it stops when the instance starts draining (a send in flight
/// finishes first).
pub fn spawn(state: &AppState) -> tokio::task::JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let senders = match Senders::new(&state) {
            Ok(senders) => senders,
            Err(e) => {
                tracing::error!(error = %e.operator_message(), "report delivery cannot start");
                return;
            }
        };
        if let Some(problem) = &senders.smtp_error {
            tracing::info!(problem = %problem, "report e-mails are off on this instance");
        }
        let poll = state.settings.delivery_poll.max(Duration::from_millis(50));
        let lifecycle = state.lifecycle.clone();
        loop {
            tokio::select! {
                () = lifecycle.draining() => break,
                () = tokio::time::sleep(poll) => {}
            }
            let _work = lifecycle.work();
            loop {
                match deliver_due(&state, &senders).await {
                    Ok(0) => break,
                    Ok(_) if lifecycle.is_draining() => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e.operator_message(), "report delivery poll failed; retrying next poll");
                        break;
                    }
                }
            }
        }
    })
}

/// Claims up to [`BATCH`] due deliveries and sends them; how many were claimed.
pub async fn deliver_due(state: &AppState, senders: &Senders) -> AppResult<usize> {
    let lease = state.settings.delivery_timeout * 2 + Duration::from_secs(5);
    let claimed = {
        // Cross-tenant (`db::tenancy`): due deliveries of every organization; each is then
        // sent and recorded as its organization's tenant.
        let mut conn = state.system_db.get().await?;
        rows::claim_due(&mut conn, BATCH, lease).await?
    };
    let count = claimed.len();
    let sends = claimed.into_iter().map(|d| deliver(state, senders, d));
    futures_util::future::join_all(sends).await;
    Ok(count)
}

/// One attempt of one claimed delivery, its outcome recorded.
async fn deliver(state: &AppState, senders: &Senders, delivery: DeliveryRow) {
    let tenant = Tenant::for_system(delivery.organization_id);
    let outcome = if delivery.attempts > delivery.max_attempts {
        Outcome::Failed {
            error: format!(
                "the last attempt did not finish (its instance stopped); {}",
                delivery.last_error.clone().unwrap_or_default()
            ),
            response_status: delivery.response_status,
            retry_in: None,
        }
    } else {
        match attempt(state, senders, &tenant, &delivery).await {
            Ok(outcome) => outcome,
            Err(e) => Outcome::Failed {
                error: e.operator_message(),
                response_status: None,
                retry_in: state.settings.delivery_backoff.after(delivery.attempts),
            },
        }
    };
    if let Outcome::Failed { error, retry_in, .. } = &outcome {
        tracing::warn!(
            delivery_id = %delivery.id, kind = %delivery.kind, attempt = delivery.attempts,
            retry_in_s = retry_in.map(|d| d.as_secs_f64()), error = %error,
            "report delivery attempt failed"
        );
    }
    let recorded = async {
        let mut conn = state.db.get(&tenant).await?;
        rows::finish(&mut conn, &tenant, delivery.id, delivery.attempts, outcome).await
    }
    .await;
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(delivery_id = %delivery.id, "report delivery was taken over; its outcome is the new attempt's")
        }
        Err(e) => {
            tracing::warn!(delivery_id = %delivery.id, error = %e.operator_message(), "report delivery outcome not recorded; it is tried again after its lease")
        }
    }
}

/// Everything a message needs about the run.
struct Finished {
    run: RunRow,
    context: RunContext,
    /// The file, when the run succeeded and the file is small enough to attach.
    attachment: Option<Vec<u8>>,
    /// The signed link, when the run succeeded.
    link: Option<String>,
    link_expires_at: DateTime<Utc>,
}

async fn finished(
    state: &AppState,
    tenant: &Tenant,
    delivery: &DeliveryRow,
    want_attachment: bool,
) -> AppResult<Result<Finished, String>> {
    let mut conn = state.db.get(tenant).await?;
    let (Some(run), Some(context)) = (
        runs::get(&mut conn, tenant, delivery.run_id).await?,
        rows::run_context(&mut conn, tenant, delivery.run_id).await?,
    ) else {
        return Ok(Err("the run is gone".into()));
    };
    let ttl = state.settings.report_link_ttl;
    let link_expires_at = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(7));
    let succeeded = run.status == "SUCCEEDED";
    let link = succeeded.then(|| downloads::signed_url(state, run.id, tenant.org_id(), ttl));
    let mut attachment = None;
    if succeeded && want_attachment {
        let size = run.bytes.and_then(|b| u64::try_from(b).ok()).unwrap_or(u64::MAX);
        if size <= state.settings.report_attachment_limit {
            if let Some((file, size)) = files::copy_to_temp(&mut conn, tenant, run.id).await? {
                if size <= state.settings.report_attachment_limit {
                    attachment = Some(read_all(file).await?);
                }
            }
        }
    }
    Ok(Ok(Finished {
        run,
        context,
        attachment,
        link,
        link_expires_at,
    }))
}

async fn read_all(file: std::fs::File) -> AppResult<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut bytes = Vec::new();
        let mut file = file;
        file.read_to_end(&mut bytes).map(|_| bytes)
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::from)
}

async fn attempt(state: &AppState, senders: &Senders, tenant: &Tenant, delivery: &DeliveryRow) -> AppResult<Outcome> {
    let is_email = delivery.kind == EMAIL;
    let finished = match finished(state, tenant, delivery, is_email).await? {
        Ok(finished) => finished,
        Err(reason) => {
            return Ok(Outcome::Failed {
                error: reason,
                response_status: None,
                retry_in: None,
            })
        }
    };
    let retry_in = state.settings.delivery_backoff.after(delivery.attempts);
    if is_email {
        Ok(send_email(senders, delivery, &finished, retry_in).await)
    } else {
        Ok(send_webhook(senders, delivery, &finished, retry_in).await)
    }
}

fn local(at: DateTime<Utc>, timezone: Option<&str>) -> String {
    match timezone.and_then(|z| z.parse::<Tz>().ok()) {
        Some(tz) => at.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
        None => at.format("%Y-%m-%d %H:%M UTC").to_string(),
    }
}

/// The e-mail of a finished run to one recipient.
fn message(from: Mailbox, to: Mailbox, f: &Finished) -> Result<Message, String> {
    let when = local(
        f.context.fire_at.unwrap_or(f.link_expires_at),
        f.context.timezone.as_deref(),
    );
    let title = &f.context.report_title;
    let builder = Message::builder().from(from).to(to);
    let built = if f.run.status != "SUCCEEDED" {
        let body = format!(
            "The scheduled report \"{title}\" of {when} did not complete ({}).\n\n{}\n",
            f.run.status,
            f.run.error.as_deref().unwrap_or("No detail was recorded.")
        );
        builder
            .subject(format!("{title}: the scheduled report of {when} did not complete"))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
    } else {
        let subject = format!("{title} — {when}");
        let rows = f.run.rows_written;
        match (&f.attachment, &f.link) {
            (Some(bytes), _) => {
                let filename = f
                    .run
                    .filename
                    .clone()
                    .unwrap_or_else(|| format!("report.{}", f.context.format.to_ascii_lowercase()));
                let content_type = f
                    .run
                    .content_type
                    .as_deref()
                    .and_then(|c| ContentType::parse(c).ok())
                    .unwrap_or_else(|| {
                        ContentType::parse("application/octet-stream").unwrap_or(ContentType::TEXT_PLAIN)
                    });
                let text = format!("The scheduled report \"{title}\" of {when} ({rows} rows) is attached.\n");
                builder.subject(subject).multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(text))
                        .singlepart(Attachment::new(filename).body(bytes.clone(), content_type)),
                )
            }
            (None, link) => {
                let text = format!(
                    "The scheduled report \"{title}\" of {when} ({rows} rows, {} bytes) is too large to attach.\n\
                     Download it until {} UTC:\n\n{}\n",
                    f.run.bytes.unwrap_or(0),
                    f.link_expires_at.format("%Y-%m-%d %H:%M"),
                    link.as_deref().unwrap_or("(no link)")
                );
                builder.subject(subject).header(ContentType::TEXT_PLAIN).body(text)
            }
        }
    };
    built.map_err(|e| format!("the message cannot be built: {e}"))
}

async fn send_email(senders: &Senders, delivery: &DeliveryRow, f: &Finished, retry_in: Option<Duration>) -> Outcome {
    let fail = |error: String, retry_in: Option<Duration>| Outcome::Failed {
        error,
        response_status: None,
        retry_in,
    };
    let (Some(smtp), Some(from)) = (&senders.smtp, &senders.from) else {
        let error = senders
            .smtp_error
            .clone()
            .unwrap_or_else(|| "--smtp-from is not a valid address".to_owned());
        return fail(error, retry_in);
    };
    let to = match delivery.target.parse::<Mailbox>() {
        Ok(to) => to,
        Err(e) => return fail(format!("`{}` is not an address: {e}", delivery.target), None),
    };
    let message = match message(from.clone(), to, f) {
        Ok(message) => message,
        Err(e) => return fail(e, None),
    };
    let sent_link = f.run.status == "SUCCEEDED" && f.attachment.is_none();
    match smtp.send(message).await {
        Ok(response) => Outcome::Sent {
            response_status: Some(i32::from(u16::from(response.code()))),
            sent_link,
        },
        Err(e) if e.is_permanent() => Outcome::Failed {
            error: format!("SMTP refused it for good: {e}"),
            response_status: e.status().map(|c| i32::from(u16::from(c))),
            retry_in: None,
        },
        Err(e) => Outcome::Failed {
            error: format!("SMTP: {e}"),
            response_status: e.status().map(|c| i32::from(u16::from(c))),
            retry_in,
        },
    }
}

/// The webhook's JSON body.
fn payload(delivery: &DeliveryRow, f: &Finished) -> serde_json::Value {
    serde_json::json!({
        "event": "report.run.finished",
        "deliveryId": delivery.id,
        "organizationId": delivery.organization_id,
        "scheduleId": delivery.schedule_id,
        "reportId": f.context.report_id,
        "reportTitle": f.context.report_title,
        "runId": f.run.id,
        "fireAt": f.context.fire_at,
        "status": f.run.status,
        "format": f.context.format,
        "rows": f.run.rows_written,
        "bytes": f.run.bytes,
        "filename": f.run.filename,
        "contentType": f.run.content_type,
        "error": f.run.error,
        "finishedAt": f.run.finished_at,
        "downloadUrl": f.link,
        "downloadExpiresAt": f.link.as_ref().map(|_| f.link_expires_at),
    })
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>`.
pub fn signature(secret: &str, unix: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn send_webhook(senders: &Senders, delivery: &DeliveryRow, f: &Finished, retry_in: Option<Duration>) -> Outcome {
    let Some(secret) = f.context.webhook_secret.as_deref() else {
        return Outcome::Failed {
            error: "the schedule was deleted: nothing signs its webhook".into(),
            response_status: None,
            retry_in: None,
        };
    };
    let body = match serde_json::to_vec(&payload(delivery, f)) {
        Ok(body) => body,
        Err(e) => {
            return Outcome::Failed {
                error: format!("payload: {e}"),
                response_status: None,
                retry_in: None,
            }
        }
    };
    let unix = Utc::now().timestamp();
    let response = senders
        .http
        .post(&delivery.target)
        .header("content-type", "application/json")
        .header("omnivox-event", "report.run.finished")
        .header("omnivox-delivery", delivery.id.to_string())
        .header("omnivox-signature", signature(secret, unix, &body))
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) if response.status().is_success() => Outcome::Sent {
            response_status: Some(i32::from(response.status().as_u16())),
            sent_link: f.link.is_some(),
        },
        Ok(response) => Outcome::Failed {
            error: format!("the receiver answered HTTP {}", response.status().as_u16()),
            response_status: Some(i32::from(response.status().as_u16())),
            retry_in,
        },
        Err(e) => Outcome::Failed {
            error: format!("no answer: {e}"),
            response_status: None,
            retry_in,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature a receiver recomputes: HMAC-SHA256 of "<t>.<body>" in hex.
    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let header = signature("whsec_test", 1_700_000_000, br#"{"a":1}"#);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"whsec_test").unwrap();
        mac.update(br#"1700000000.{"a":1}"#);
        assert_eq!(
            header,
            format!("t=1700000000,v1={}", hex::encode(mac.finalize().into_bytes()))
        );
        assert_ne!(header, signature("whsec_test", 1_700_000_001, br#"{"a":1}"#));
        assert_ne!(header, signature("whsec_other", 1_700_000_000, br#"{"a":1}"#));
    }
}
