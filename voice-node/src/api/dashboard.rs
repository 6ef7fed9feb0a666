//! The built dashboard (`dashboard/dist`) at `/`: static files, and `index.html` for every other
//! path so the single-page app's own routes (`/calls/…`, `/settings/…`) load on a reload.
//! Without a build, a 404 page says which directory is missing and how to make it.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use tower_http::services::{ServeDir, ServeFile};

/// The directory to serve: `DASHBOARD_DIR`, else `<repo>/dashboard/dist` of the source tree the
/// node was built from, when it exists.
pub fn default_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("dashboard")
        .join("dist")
}

/// A router with only a fallback: merged last into the node's router, it answers every path no
/// other route claims.
pub fn router(dir: &Path) -> Router<crate::server::AppState> {
    let index = dir.join("index.html");
    if index.is_file() {
        let serve = ServeDir::new(dir)
            .append_index_html_on_directories(true)
            .fallback(ServeFile::new(index));
        Router::new().fallback_service(serve)
    } else {
        let page = missing_page(dir);
        Router::new().fallback(move || {
            let page = page.clone();
            async move { (StatusCode::NOT_FOUND, Html(page)).into_response() }
        })
    }
}

fn missing_page(dir: &Path) -> String {
    let dir = dir.display().to_string();
    let dir = dir
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<!doctype html><meta charset=utf-8><title>callgate: dashboard not built</title>\
         <h1>The dashboard is not built</h1>\
         <p>This node serves the web app from <code>{dir}</code>, which has no <code>index.html</code>.</p>\
         <p>Build it with <code>npm ci &amp;&amp; npm run build</code> in <code>dashboard/</code>, \
         or point <code>DASHBOARD_DIR</code> at a build. The JSON API is at <code>/api/…</code>.</p>"
    )
}
