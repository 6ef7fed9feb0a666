//! The Twilio REST client against the fake Twilio: the wire format of twilio.md §6 (form fields,
//! Basic auth), typed errors and which of them are retried.

mod twilio_fake;

use twilio_fake::{Failure, TwilioFake};
use voice_node::twilio_rest::{CallUpdate, SmsRequest, TwilioClient, TwilioError};

fn sms(body: &str) -> SmsRequest {
    SmsRequest {
        to: "+14155550123".into(),
        from: "+14155550100".into(),
        body: body.into(),
        status_callback: Some("https://edge.example/telephony/sms-status".into()),
    }
}

#[tokio::test]
async fn sends_sms_as_twilio_expects_and_returns_the_message_sid() {
    let fake = TwilioFake::start().await;
    let sent = fake.client().send_sms(&sms("Hello & bye")).await.unwrap();
    assert!(sent.sid.starts_with("SM"));
    assert_eq!(sent.status.as_deref(), Some("queued"));
    let request = &fake.requests().await[0];
    assert_eq!(request.resource, "Messages");
    assert_eq!(request.form["To"], "+14155550123");
    assert_eq!(request.form["From"], "+14155550100");
    assert_eq!(request.form["Body"], "Hello & bye");
    assert_eq!(
        request.form["StatusCallback"],
        "https://edge.example/telephony/sms-status"
    );
}

#[tokio::test]
async fn updates_live_calls_with_twiml_url_or_hang_up() {
    let fake = TwilioFake::start().await;
    let client = fake.client();
    let twiml = "<Response><Dial>+14155550199</Dial></Response>";
    client
        .update_call("CA1", &CallUpdate::Twiml(twiml.into()))
        .await
        .unwrap();
    client
        .update_call("CA1", &CallUpdate::Url("https://edge.example/next".into()))
        .await
        .unwrap();
    client.hang_up("CA1").await.unwrap();
    let requests = fake.requests().await;
    assert!(requests.iter().all(|r| r.resource == "Calls/CA1"));
    assert_eq!(requests[0].form["Twiml"], twiml);
    assert_eq!(requests[1].form["Url"], "https://edge.example/next");
    assert_eq!(requests[1].form["Method"], "POST");
    assert_eq!(requests[2].form["Status"], "completed");
}

#[tokio::test]
async fn errors_carry_twilio_code_and_only_transient_ones_are_retryable() {
    let fake = TwilioFake::start().await;
    let wrong_token = TwilioClient::new(&fake.base(), twilio_fake::ACCOUNT_SID, "wrong");
    let err = wrong_token.send_sms(&sms("x")).await.unwrap_err();
    assert!(
        matches!(
            &err,
            TwilioError::Api {
                status: 401,
                code: 20003,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("wrong"), "no secret in errors");

    let err = fake.client().send_sms(&sms("")).await.unwrap_err();
    assert!(
        matches!(
            &err,
            TwilioError::Api {
                status: 400,
                code: 21602,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());

    fake.fail_next(1, Failure::Unavailable).await;
    let err = fake.client().send_sms(&sms("x")).await.unwrap_err();
    assert!(
        matches!(&err, TwilioError::Api { status: 503, .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());

    fake.fail_next(1, Failure::InvalidTo).await;
    let err = fake.client().send_sms(&sms("x")).await.unwrap_err();
    match err {
        TwilioError::Api {
            code, more_info, ..
        } => {
            assert_eq!(code, 21211);
            assert_eq!(
                more_info.as_deref(),
                Some("https://www.twilio.com/docs/errors/21211")
            );
        }
        other => panic!("{other:?}"),
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap();
    drop(listener);
    let nowhere = TwilioClient::new(&format!("http://{closed}"), "AC1", "token");
    let err = nowhere.send_sms(&sms("x")).await.unwrap_err();
    assert!(matches!(err, TwilioError::Transport(_)));
    assert!(err.is_retryable());
}
