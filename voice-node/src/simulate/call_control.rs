//! Twilio's REST call update, served by the simulator for the call it places
//! (`--twilio-api-listen ADDR`): `POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json` with `Twiml`,
//! `Url` (+ `Method`) or `Status=completed` — how a node transfers or hangs up a live call
//! (`crate::twilio_rest`).
//!
//! Twilio answers such an update by stopping the call's media stream (`stop`) and running the
//! new TwiML. A stand-in that only answers 200 proves the request was sent, not that the call
//! went on as Twilio's would, and only the call engine can make the live call follow the new
//! TwiML: here that is the simulator. So the update goes to the running stream through a
//! [`CallControl`], the stream sends `stop` and ends with [`super::twiml_follow::StreamEnd::Redirected`],
//! and the TwiML follower runs the new document (a transfer's `<Dial action>`, then the dial
//! result posted to the edge, then whatever TwiML the edge answers).
//!
//! Only the simulated call's own SID is known; any other is 404, as Twilio answers for a call it
//! does not have. Requests are checked with HTTP Basic (the Account SID and the auth token).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex as StdMutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use shared::form::Form;
use tokio::sync::{Mutex, mpsc};

use super::twilio_http::{CallIdentity, HttpMethod};

/// What a REST update asks the live call to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallRedirect {
    /// `Twiml=`: run this document now.
    Twiml(String),
    /// `Url=` (+ `Method`): fetch the next document from there.
    Url {
        /// The document's URL.
        url: String,
        /// How to fetch it.
        method: HttpMethod,
    },
    /// `Status=completed` (or `canceled`): hang the call up.
    Completed,
}

impl CallRedirect {
    /// The update a REST request's form asks for: `Twiml`, else `Url` (+ `Method`), else
    /// `Status=completed` (or `canceled`); `None` when it names nothing to do. The tests' Twilio
    /// fake validates call updates with it too.
    pub fn from_form(form: &Form) -> Option<Self> {
        if let Some(twiml) = form.get("Twiml") {
            Some(CallRedirect::Twiml(twiml.to_owned()))
        } else if let Some(url) = form.get("Url") {
            Some(CallRedirect::Url {
                url: url.to_owned(),
                method: HttpMethod::from_attr(form.get("Method")),
            })
        } else if matches!(form.get("Status"), Some("completed" | "canceled")) {
            Some(CallRedirect::Completed)
        } else {
            None
        }
    }

    /// A short description for the report ("Twiml: <?xml …", "Status=completed").
    pub fn describe(&self) -> String {
        match self {
            CallRedirect::Twiml(xml) => format!("Twiml: {xml}"),
            CallRedirect::Url { url, method } => format!("Url: {method:?} {url}"),
            CallRedirect::Completed => "Status=completed".to_owned(),
        }
    }
}

/// The running stream's end of the REST updates: one stream holds it at a time (the lock), so an
/// update reaches whichever stream is live.
#[derive(Debug, Clone)]
pub struct CallControl {
    /// Updates in the order Twilio accepted them.
    inbox: Arc<Mutex<mpsc::UnboundedReceiver<CallRedirect>>>,
}

impl CallControl {
    /// The inbox, held for the whole of one stream.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, mpsc::UnboundedReceiver<CallRedirect>> {
        self.inbox.lock().await
    }
}

/// What the endpoint needs per request.
struct Endpoint {
    /// The simulated call (its SIDs and numbers for the answer).
    call: CallIdentity,
    /// The Basic password the node must send with the Account SID.
    auth_token: String,
    /// Where accepted updates go.
    updates: mpsc::UnboundedSender<CallRedirect>,
    /// Every accepted update, described, for the report.
    log: Arc<StdMutex<Vec<String>>>,
}

/// The endpoint, listening; stops when dropped.
#[derive(Debug)]
pub struct CallControlServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Accepted updates, described.
    log: Arc<StdMutex<Vec<String>>>,
    /// The accept loop.
    task: tokio::task::JoinHandle<()>,
}

impl CallControlServer {
    /// Serves the REST update for `call` on `listen`, checking `auth_token`; the stream side is
    /// the returned [`CallControl`].
    pub async fn start(
        listen: &str,
        call: &CallIdentity,
        auth_token: &str,
    ) -> anyhow::Result<(Self, CallControl)> {
        use anyhow::Context as _;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding --twilio-api-listen {listen}"))?;
        let addr = listener.local_addr()?;
        let (updates, inbox) = mpsc::unbounded_channel();
        let log = Arc::new(StdMutex::new(Vec::new()));
        let endpoint = Arc::new(Endpoint {
            call: call.clone(),
            auth_token: auth_token.to_owned(),
            updates,
            log: Arc::clone(&log),
        });
        let app = Router::new()
            .route("/2010-04-01/Accounts/{account}/Calls/{call}", post(update))
            .with_state(endpoint);
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                tracing::warn!(error = %err, "simulated Twilio REST endpoint stopped");
            }
        });
        Ok((
            CallControlServer { addr, log, task },
            CallControl {
                inbox: Arc::new(Mutex::new(inbox)),
            },
        ))
    }

    /// The updates accepted so far, described.
    pub fn updates(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for CallControlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `POST /2010-04-01/Accounts/{account}/Calls/{call}.json`.
async fn update(
    State(endpoint): State<Arc<Endpoint>>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let c = &endpoint.call;
    if account != c.account_sid
        || !basic_auth_matches(&headers, &c.account_sid, &endpoint.auth_token)
    {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let sid = call.strip_suffix(".json").unwrap_or(&call);
    if sid != endpoint.call.call_sid {
        return twilio_error(
            StatusCode::NOT_FOUND,
            20404,
            &format!(
                "The requested resource /2010-04-01/Accounts/{account}/Calls/{call} was not found"
            ),
        );
    }
    let Ok(form) = Form::parse(&body) else {
        return twilio_error(StatusCode::BAD_REQUEST, 20001, "Invalid form body");
    };
    let Some(redirect) = CallRedirect::from_form(&form) else {
        // [UNVERIFIED] Twilio's exact code for an update naming nothing to do.
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21220,
            "An update needs Twiml, Url or Status=completed",
        );
    };
    let status = if redirect == CallRedirect::Completed {
        "completed"
    } else {
        "in-progress"
    };
    if let Ok(mut log) = endpoint.log.lock() {
        log.push(redirect.describe());
    }
    if endpoint.updates.send(redirect).is_err() {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21220,
            "Call is not in-progress. Cannot redirect.",
        );
    }
    let json = serde_json::json!({
        "sid": c.call_sid,
        "account_sid": c.account_sid,
        "from": c.from,
        "to": c.to,
        "status": status,
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{}/Calls/{}.json", c.account_sid, c.call_sid),
    });
    (StatusCode::OK, axum::Json(json)).into_response()
}

/// Whether `headers` carry HTTP Basic with `account_sid` and `auth_token`, as Twilio's REST API
/// requires.
pub fn basic_auth_matches(headers: &HeaderMap, account_sid: &str, auth_token: &str) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{account_sid}:{auth_token}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

/// Twilio's error answer: `status` with the body `{code, message, more_info, status}`.
pub fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let json = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(json)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twilio_rest::{CallUpdate, TwilioClient, TwilioError};

    const TOKEN: &str = "sim-auth-token";

    async fn endpoint() -> (CallControlServer, CallControl, CallIdentity) {
        let call = CallIdentity::new(
            "AC00000000000000000000000000000001",
            "+14155550123",
            "+14155550100",
        );
        let (server, control) = CallControlServer::start("127.0.0.1:0", &call, TOKEN)
            .await
            .unwrap();
        (server, control, call)
    }

    #[tokio::test]
    async fn the_nodes_transfer_reaches_the_live_stream_in_order() {
        let (server, control, call) = endpoint().await;
        let client =
            TwilioClient::new(&format!("http://{}", server.addr), &call.account_sid, TOKEN);
        let twiml = "<?xml version=\"1.0\"?><Response><Dial>+15550100</Dial></Response>";
        client
            .update_call(&call.call_sid, &CallUpdate::Twiml(twiml.into()))
            .await
            .unwrap();
        client.hang_up(&call.call_sid).await.unwrap();
        let mut inbox = control.lock().await;
        assert_eq!(
            inbox.recv().await,
            Some(CallRedirect::Twiml(twiml.to_owned()))
        );
        assert_eq!(inbox.recv().await, Some(CallRedirect::Completed));
        assert_eq!(
            server.updates(),
            vec![format!("Twiml: {twiml}"), "Status=completed".to_owned()]
        );
    }

    #[tokio::test]
    async fn answers_like_twilio_for_bad_credentials_and_unknown_calls() {
        let (server, control, call) = endpoint().await;
        let base = format!("http://{}", server.addr);
        let wrong_token = TwilioClient::new(&base, &call.account_sid, "not-the-token");
        match wrong_token.hang_up(&call.call_sid).await {
            Err(TwilioError::Api { status, code, .. }) => assert_eq!((status, code), (401, 20003)),
            other => panic!("{other:?}"),
        }
        let client = TwilioClient::new(&base, &call.account_sid, TOKEN);
        match client.hang_up("CA0000000000000000000000000000dead").await {
            Err(TwilioError::Api { status, code, .. }) => assert_eq!((status, code), (404, 20404)),
            other => panic!("{other:?}"),
        }
        assert!(server.updates().is_empty());
        assert!(control.lock().await.try_recv().is_err());
    }
}
