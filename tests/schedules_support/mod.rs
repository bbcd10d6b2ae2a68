//! Shared helpers of the schedule and delivery tests (tests/report_schedules.rs and the
//! schedules benchmark): a real SMTP server and a real HTTP receiver, both speaking their
//! protocol over TCP on 127.0.0.1, started by the test; and the steps a test takes on the
//! database (make a schedule due, finish a run as the run worker would).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message the SMTP server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A minimal SMTP server (RFC 5321: EHLO/HELO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT),
/// storing what it accepts. `rcpt_reply` is what it answers to RCPT TO: 250 accepts; 451
/// (temporary) or 550 (permanent) refuse.
pub struct SmtpServer {
    pub addr: SocketAddr,
    pub mails: Arc<Mutex<Vec<Mail>>>,
    pub rcpt_reply: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let rcpt_reply = Arc::new(AtomicU16::new(250));
        let task = {
            let mails = Arc::clone(&mails);
            let rcpt_reply = Arc::clone(&rcpt_reply);
            tokio::spawn(async move {
                while let Ok((socket, _)) = listener.accept().await {
                    let mails = Arc::clone(&mails);
                    let rcpt_reply = Arc::clone(&rcpt_reply);
                    tokio::spawn(async move {
                        let _ = session(socket, mails, rcpt_reply).await;
                    });
                }
            })
        };
        Self {
            addr,
            mails,
            rcpt_reply,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    mails: Arc<Mutex<Vec<Mail>>>,
    rcpt_reply: Arc<AtomicU16>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 test.local ESMTP ready\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write.write_all(b"250-test.local\r\n250 8BITMIME\r\n").await?;
        } else if upper.starts_with("HELO") {
            write.write_all(b"250 test.local\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = command[10..].trim().to_owned();
            to.clear();
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            match AtomicU16::load(&rcpt_reply, Ordering::SeqCst) {
                250 => {
                    to.push(command[8..].trim().trim_matches(['<', '>']).to_owned());
                    write.write_all(b"250 OK\r\n").await?;
                }
                451 => write.write_all(b"451 4.3.0 try again later\r\n").await?,
                _ => write.write_all(b"550 5.1.1 no such mailbox\r\n").await?,
            }
        } else if upper == "DATA" {
            write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                // Dot-stuffing (RFC 5321 §4.5.2).
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            mails.lock().unwrap().push(Mail {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            });
            write.write_all(b"250 OK queued\r\n").await?;
        } else if upper == "RSET" || upper == "NOOP" {
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"502 command not implemented\r\n").await?;
        }
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// An HTTP server recording every POST and answering `status`.
pub struct Receiver {
    pub addr: SocketAddr,
    pub hooks: Arc<Mutex<Vec<Hook>>>,
    pub status: Arc<AtomicU16>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hooks = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(status));
        let router = {
            let hooks = Arc::clone(&hooks);
            let status = Arc::clone(&status);
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                    let hooks = Arc::clone(&hooks);
                    let status = Arc::clone(&status);
                    async move {
                        hooks.lock().unwrap().push(Hook {
                            headers,
                            body: body.to_vec(),
                        });
                        StatusCode::from_u16(AtomicU16::load(&status, Ordering::SeqCst)).unwrap()
                    }
                }),
            )
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            addr,
            hooks,
            status,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }
}

pub async fn db(url: &str) -> AsyncPgConnection {
    AsyncPgConnection::establish(url).await.unwrap()
}

/// Makes every schedule whose id is given due at `at` (as if time had passed).
pub async fn make_due(url: &str, ids: &[uuid::Uuid], at: chrono::DateTime<chrono::Utc>) {
    diesel::sql_query("UPDATE report_schedules SET next_fire_at = $1 WHERE id = ANY($2)")
        .bind::<diesel::sql_types::Timestamptz, _>(at)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(ids)
        .execute(&mut db(url).await)
        .await
        .unwrap();
}

/// Finishes a run as the run worker would: SUCCEEDED with `file` stored in one chunk.
pub async fn finish_run(url: &str, run_id: uuid::Uuid, file: &[u8]) {
    let mut conn = db(url).await;
    diesel::sql_query(
        "UPDATE report_runs SET status = 'SUCCEEDED', attempt = 1, rows_written = 3, bytes = $2, \
         filename = 'report.csv', content_type = 'text/csv; charset=utf-8', started_at = now(), finished_at = now() \
         WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(run_id)
    .bind::<diesel::sql_types::BigInt, _>(file.len() as i64)
    .execute(&mut conn)
    .await
    .unwrap();
    diesel::sql_query("INSERT INTO report_files (run_id, chunk, data) VALUES ($1, 0, $2)")
        .bind::<diesel::sql_types::Uuid, _>(run_id)
        .bind::<diesel::sql_types::Bytea, _>(file)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Fails a run as the run worker would when its attempts are spent.
pub async fn fail_run(url: &str, run_id: uuid::Uuid, error: &str) {
    diesel::sql_query(
        "UPDATE report_runs SET status = 'FAILED', attempt = 3, error = $2, finished_at = now() WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(run_id)
    .bind::<diesel::sql_types::Text, _>(error)
    .execute(&mut db(url).await)
    .await
    .unwrap();
}

#[derive(diesel::QueryableByName, Debug, Clone)]
pub struct RunOfFire {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub schedule_id: uuid::Uuid,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    pub fire_at: chrono::DateTime<chrono::Utc>,
}

/// Every scheduled run.
pub async fn scheduled_runs(url: &str) -> Vec<RunOfFire> {
    diesel::sql_query(
        "SELECT id, schedule_id, fire_at FROM report_runs WHERE schedule_id IS NOT NULL ORDER BY schedule_id, fire_at",
    )
    .load(&mut db(url).await)
    .await
    .unwrap()
}

#[derive(diesel::QueryableByName, Debug, Clone)]
pub struct DeliveryState {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub target: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Integer>)]
    pub response_status: Option<i32>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub sent_link: bool,
}

pub async fn deliveries(url: &str) -> Vec<DeliveryState> {
    diesel::sql_query(
        "SELECT kind, target, status, attempts, last_error, response_status, sent_link FROM report_deliveries ORDER BY kind, target",
    )
    .load(&mut db(url).await)
    .await
    .unwrap()
}
