//! Recordings through the node: the media streamed from (a fake) Twilio with Range, scoped by
//! tenant; start / stop on a live call, refused once it ended.

mod api_support;
mod node_support;

use api_support::*;
use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use node_support::{TestNode, bind};
use serde_json::json;
use sqlx::PgPool;

const MEDIA: &[u8] = b"ID3-fake-mp3-bytes";

async fn fake_twilio() -> String {
    let authorized = |headers: &HeaderMap| {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Basic "))
    };
    let app = Router::new()
        .route(
            "/2010-04-01/Accounts/ACtest/Recordings/RE1.mp3",
            get(move |headers: HeaderMap| async move {
                if !authorized(&headers) {
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                match headers.get("range").and_then(|v| v.to_str().ok()) {
                    Some("bytes=0-3") => (
                        StatusCode::PARTIAL_CONTENT,
                        [("content-range", format!("bytes 0-3/{}", MEDIA.len()))],
                        &MEDIA[..4],
                    )
                        .into_response(),
                    _ => (StatusCode::OK, MEDIA).into_response(),
                }
            }),
        )
        .route(
            "/2010-04-01/Accounts/ACtest/Calls/{call}/Recordings.json",
            post(|| async {
                (
                    StatusCode::CREATED,
                    axum::Json(json!({"sid": "RE2", "status": "in-progress"})),
                )
            }),
        )
        .route(
            "/2010-04-01/Accounts/ACtest/Calls/{call}/Recordings/{sid}",
            post(|| async { axum::Json(json!({"sid": "RE2", "status": "stopped"})) }),
        );
    let (listener, addr) = bind().await;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn recording_streams_with_range_and_only_within_the_tenant(pool: PgPool) {
    let world = World::new(&pool).await;
    let ended = call(&pool, world.tenant_a, "+14155550101", "screening", 5, false).await;
    sqlx::query("INSERT INTO recordings (recording_sid, tenant_id, call_id, status, duration_s) VALUES ('RE1', $1, $2, 'completed', 12)")
        .bind(world.tenant_a)
        .bind(ended)
        .execute(&pool)
        .await
        .unwrap();
    let twilio = fake_twilio().await;
    let node = TestNode::start_with(
        pool.clone(),
        &[
            ("TWILIO_ACCOUNT_SID", "ACtest"),
            ("TWILIO_API_BASE", &twilio),
        ],
    )
    .await;
    let path = node.url(&format!("/api/calls/{ended}/recording"));

    let full = reqwest::Client::new()
        .get(&path)
        .header("cookie", &world.member_a)
        .send()
        .await
        .unwrap();
    assert_eq!(full.status().as_u16(), 200);
    assert_eq!(full.headers()["content-type"], "audio/mpeg");
    assert_eq!(full.bytes().await.unwrap().as_ref(), MEDIA);
    let part = reqwest::Client::new()
        .get(&path)
        .header("cookie", &world.member_a)
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 0-3/{}", MEDIA.len())
    );
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"ID3-");

    let other = reqwest::Client::new()
        .get(&path)
        .header("cookie", &world.member_b)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
    let anonymous = reqwest::Client::new().get(&path).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn recording_starts_and_stops_on_live_calls_only(pool: PgPool) {
    let world = World::new(&pool).await;
    let live = call(&pool, world.tenant_a, "+14155550101", "screening", 0, true).await;
    let ended = call(&pool, world.tenant_a, "+14155550102", "screening", 5, false).await;
    let twilio = fake_twilio().await;
    let node = TestNode::start_with(
        pool.clone(),
        &[
            ("TWILIO_ACCOUNT_SID", "ACtest"),
            ("TWILIO_API_BASE", &twilio),
        ],
    )
    .await;
    let base = node.url("");

    let started = send(
        &base,
        "POST",
        &format!("/api/calls/{live}/recording/start"),
        Some(&world.member_a),
        None,
    )
    .await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.body["recording"]["status"], "in_progress");
    let detail = send(
        &base,
        "GET",
        &format!("/api/calls/{live}"),
        Some(&world.member_a),
        None,
    )
    .await;
    assert_eq!(detail.body["recording"]["status"], "in_progress");
    let stopped = send(
        &base,
        "POST",
        &format!("/api/calls/{live}/recording/stop"),
        Some(&world.member_a),
        None,
    )
    .await;
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    assert_eq!(stopped.body["recording"]["status"], "stopped");
    let again = send(
        &base,
        "POST",
        &format!("/api/calls/{live}/recording/stop"),
        Some(&world.member_a),
        None,
    )
    .await;
    assert_eq!(again.status, 409);

    let late = send(
        &base,
        "POST",
        &format!("/api/calls/{ended}/recording/start"),
        Some(&world.member_a),
        None,
    )
    .await;
    assert_eq!(late.status, 409);
    assert_eq!(late.code(), "conflict");
    let cross = send(
        &base,
        "POST",
        &format!("/api/calls/{live}/recording/start"),
        Some(&world.member_b),
        None,
    )
    .await;
    assert_eq!(cross.status, 404);

    // Without a Twilio account: 503.
    let bare = TestNode::start(pool.clone()).await;
    let none = send(
        &bare.url(""),
        "POST",
        &format!("/api/calls/{live}/recording/start"),
        Some(&world.member_a),
        None,
    )
    .await;
    assert_eq!(none.status, 503);
}

#[sqlx::test(migrator = "voice_node::db::MIGRATOR")]
async fn deleting_a_call_deletes_its_recording_at_twilio(pool: PgPool) {
    let world = World::new(&pool).await;
    let ended = call(&pool, world.tenant_a, "+14155550101", "screening", 5, false).await;
    sqlx::query("INSERT INTO recordings (recording_sid, tenant_id, call_id, status) VALUES ('RE9', $1, $2, 'completed')")
        .bind(world.tenant_a)
        .bind(ended)
        .execute(&pool)
        .await
        .unwrap();
    let app = Router::new().route(
        "/2010-04-01/Accounts/ACtest/Recordings/RE9.json",
        axum::routing::delete(|| async { StatusCode::NO_CONTENT }),
    );
    let (listener, addr) = bind().await;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let twilio = format!("http://{addr}");
    let node = TestNode::start_with(
        pool.clone(),
        &[
            ("TWILIO_ACCOUNT_SID", "ACtest"),
            ("TWILIO_API_BASE", &twilio),
        ],
    )
    .await;
    let answer = send(
        &node.url(""),
        "DELETE",
        &format!("/api/calls/{ended}"),
        Some(&world.admin_a),
        None,
    )
    .await;
    assert_eq!(answer.status, 204);
    let deleted: bool = sqlx::query_scalar(
        "SELECT deleted_at IS NOT NULL FROM recordings WHERE recording_sid = 'RE9'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(deleted);
}
