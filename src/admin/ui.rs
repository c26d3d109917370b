//! `GET /ui/`: the web console, a page and its scripts and styles embedded in the
//! binary (no CDN, no build step: plain ES modules and hand-written SVG charts under
//! `src/admin/ui/`). The assets are public; the data comes from `/api`, which the page
//! calls with the admin token the user typed into its login form (kept in the tab's
//! `sessionStorage`).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::error::ApiError;

/// (file name, content type, bytes).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("ui/index.html"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("ui/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/api.js"),
    ),
    (
        "format.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/format.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/charts.js"),
    ),
    (
        "table.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/table.js"),
    ),
    (
        "queries.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/queries.js"),
    ),
    (
        "plan.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/plan.js"),
    ),
    (
        "pages.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/pages.js"),
    ),
    (
        "detail.js",
        "text/javascript; charset=utf-8",
        include_str!("ui/detail.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("ui/favicon.svg"),
    ),
];

/// Scripts and styles only from this origin; no inline script.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub async fn to_index() -> Redirect {
    Redirect::permanent("/ui/")
}

pub async fn index() -> Response {
    serve("index.html").unwrap_or_else(|e| e.into_response())
}

pub async fn asset(Path(file): Path<String>) -> Response {
    serve(&file).unwrap_or_else(|e| e.into_response())
}

fn serve(file: &str) -> Result<Response, ApiError> {
    let (_, kind, body) = (ASSETS.iter().find(|(name, _, _)| *name == file))
        .ok_or_else(|| ApiError::not_found(format!("no such console file: /ui/{file}")))?;
    let mut response = (StatusCode::OK, *body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Revalidate each time: a new binary brings new assets under the same names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).collect();
        for (_, _, body) in ASSETS {
            for part in body.split("from './").skip(1) {
                let imported = part.split('\'').next().unwrap_or_default();
                assert!(
                    names.contains(&imported),
                    "{imported} is imported but not embedded"
                );
            }
        }
        assert!(serve("../Cargo.toml").is_err());
    }
}
