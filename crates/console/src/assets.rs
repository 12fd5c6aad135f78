//! The console's static files, embedded in the binary: each served under a name carrying its
//! hash (cached for good) and linked with its SRI hash. uPlot 1.6.32 (MIT, `uPlot.LICENSE`)
//! is vendored as published on npm.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// One embedded file.
struct Asset {
    stem: &'static str,
    extension: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 4] = [
    Asset {
        stem: "console",
        extension: "css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/console.css"),
    },
    Asset {
        stem: "uPlot",
        extension: "css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/uPlot.min.css"),
    },
    Asset {
        stem: "uPlot",
        extension: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/uPlot.iife.min.js"),
    },
    Asset {
        stem: "console",
        extension: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/console.js"),
    },
];

/// An embedded file's address and SRI hash.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// `/assets/{stem}.{hash}.{extension}`.
    pub(crate) href: String,
    /// `sha256-…`.
    pub(crate) integrity: String,
}

fn links() -> &'static [Link] {
    static LINKS: OnceLock<Vec<Link>> = OnceLock::new();
    LINKS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.bytes);
                let short: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                Link {
                    href: format!("/assets/{}.{short}.{}", asset.stem, asset.extension),
                    integrity: format!(
                        "sha256-{}",
                        base64::engine::general_purpose::STANDARD.encode(digest)
                    ),
                }
            })
            .collect()
    })
}

/// The links every page's frame carries: the stylesheets, then the scripts.
pub(crate) fn stylesheets() -> [Link; 2] {
    let links = links();
    [links[0].clone(), links[1].clone()]
}

/// The scripts: uPlot, then the console's.
pub(crate) fn scripts() -> [Link; 2] {
    let links = links();
    [links[2].clone(), links[3].clone()]
}

/// `GET /assets/{file}`: an embedded file under its hashed name.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let found = ASSETS
        .iter()
        .zip(links())
        .find(|(_, link)| link.href.strip_prefix("/assets/") == Some(file.as_str()));
    match found {
        Some((asset, _)) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
