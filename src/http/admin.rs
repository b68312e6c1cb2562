//! The admin console at `/admin`: static files compiled into the binary
//! (`include_bytes!` of `admin/`), so a deployment is still one file and
//! users run no build step. The console is plain JS modules that call the
//! public REST API with the credential the admin signs in with; this module
//! only serves bytes.
//!
//! Caching: the file names are stable, so every response carries a strong
//! `ETag` (SHA-256 of the bytes, computed once) and `Cache-Control: no-cache`:
//! browsers revalidate and get `304 Not Modified` until a new binary ships.
//! Every response carries a strict Content-Security-Policy: scripts, styles
//! and API calls from this origin only, no inline script or style, no
//! framing, no forms posted elsewhere.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::AppState;

/// The policy every console response carries. `img-src data:` is for nothing
/// but the favicon; charts are inline SVG built in the DOM.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its path under `/admin/`, bytes and content type.
struct Asset {
    path: &'static str,
    bytes: &'static [u8],
    content_type: &'static str,
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            bytes: include_bytes!(concat!("../../admin/", $path)),
            content_type: $type,
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of `admin/`. A file missing here is a 404, not a fallback.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("styles.css", CSS),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("format.js", JS),
    asset!("charts.js", JS),
    asset!("csv.js", JS),
    asset!("pages/signin.js", JS),
    asset!("pages/messages.js", JS),
    asset!("pages/message.js", JS),
    asset!("pages/send.js", JS),
    asset!("pages/templates.js", JS),
    asset!("pages/template.js", JS),
    asset!("pages/template-form.js", JS),
    asset!("pages/bulk.js", JS),
    asset!("pages/dashboard.js", JS),
    asset!("pages/patients.js", JS),
    asset!("pages/audit.js", JS),
];

/// Strong ETags, one per asset (same order as `ASSETS`), computed on first use.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..32]))
            .collect()
    })
}

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(index))
        .route("/admin/", get(|| async { Redirect::permanent("/admin") }))
        .route("/admin/{*path}", get(file))
}

/// The admin console (HTML). Its scripts and styles are `/admin/<file>`, embedded
/// in the binary; the console calls this API with the API key or admin token
/// the admin signs in with (kept in the tab's `sessionStorage`).
#[utoipa::path(get, path = "/admin", tag = "admin console",
    responses((status = 200, content_type = "text/html", description = "the console"),
              (status = 304, description = "unchanged (If-None-Match)")))]
async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such admin file")
            .into_response();
    };
    let (asset, etag) = (&ASSETS[i], &etags()[i]);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, HeaderValue::from_str(etag).expect("hex etag"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}
