//! The admin console's static files, embedded in the binary: content types,
//! ETag revalidation, the Content-Security-Policy, and no file outside the list.

use crate::support::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[tokio::test]
async fn console_page_and_assets_are_served_with_types_etag_and_csp() {
    let app = spawn_app().await;
    let res = app.http.get(app.url("/admin")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["content-security-policy"], CSP);
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.len() == 34, "etag {etag}");
    let html = res.text().await.unwrap();
    assert_eq!(
        html,
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/admin/index.html")).unwrap()
    );
    assert!(html.contains(r#"<script type="module" src="/admin/app.js">"#));
    assert!(
        !html.contains("style="),
        "no inline style: the CSP forbids it"
    );

    // Same bytes, same tag: 304 without a body; another tag: the file again.
    let res = app
        .http
        .get(app.url("/admin"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);
    assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
    assert!(res.bytes().await.unwrap().is_empty());
    let res = app
        .http
        .get(app.url("/admin"))
        .header("If-None-Match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    for (path, ty) in [
        ("/admin/app.js", "text/javascript; charset=utf-8"),
        (
            "/admin/pages/templates.js",
            "text/javascript; charset=utf-8",
        ),
        ("/admin/styles.css", "text/css; charset=utf-8"),
        ("/admin/favicon.svg", "image/svg+xml"),
    ] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.headers()["content-type"], ty, "{path}");
        assert_eq!(res.headers()["content-security-policy"], CSP, "{path}");
        assert_ne!(res.headers()["etag"].to_str().unwrap(), etag, "{path}");
        let file = std::fs::read(format!(
            "{}/admin/{}",
            env!("CARGO_MANIFEST_DIR"),
            path.trim_start_matches("/admin/")
        ))
        .unwrap();
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            file.as_slice(),
            "{path}"
        );
    }

    // Only the embedded files exist; nothing is read from disk.
    for path in [
        "/admin/nope.js",
        "/admin/../Cargo.toml",
        "/admin/pages/../../Cargo.toml",
    ] {
        let (s, b) = split(app.http.get(app.url(path)).send().await.unwrap()).await;
        assert_error(s, &b, 404, "not_found");
    }
    let res = app.http.get(app.url("/admin/")).send().await.unwrap();
    assert_eq!(res.url().path(), "/admin", "/admin/ redirects to /admin");
    let (s, api) = split(app.http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(s, 200);
    assert!(
        api["paths"]["/admin"]["get"].is_object(),
        "openapi lacks /admin"
    );
}

/// Every module the console imports is embedded: a file added to `admin/`
/// but not to the list in `src/http/admin.rs` would be a 404 in the browser.
#[tokio::test]
async fn every_file_of_the_admin_folder_is_embedded() {
    let app = spawn_app().await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("admin");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e != "md") {
                files.push(path);
            }
        }
    }
    assert!(files.len() >= 15, "{files:?}");
    for file in files {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let res = app
            .http
            .get(app.url(&format!("/admin/{rel}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "admin/{rel} is not embedded");
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            std::fs::read(&file).unwrap().as_slice()
        );
    }
}
