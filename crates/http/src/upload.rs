//! The HTTP side of XEP-0363 File Upload: `PUT /upload/<id>/<sig>/<name>`
//! streams the body to `<dir>/<id>/data` (never whole in memory) and checks
//! it against the slot (size, content type, expiry: all signed into the
//! URL, §5); `GET` and `HEAD` serve it back with `Range` (RFC 9110 §14)
//! and a `Content-Disposition`, authorized by the signature alone.
//!
//! A file is written to `data.part` and renamed into place when whole, so
//! a GET never sees half a file, and a second PUT of the same slot finds
//! it taken (409).

use std::io::ErrorKind;
use std::time::SystemTime;

use chorus_modules::upload::{percent_decode, percent_encode, PutSlot, UploadOptions};
use chorus_storage::UploadStore;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::{respond, Body, Conn};

/// Bytes read from a file per body frame.
const CHUNK: usize = 64 * 1024;

/// Longest wait for the next piece of an upload's body: a client that
/// stalls longer gives its slot back.
const BODY_STALL: std::time::Duration = std::time::Duration::from_secs(30);

/// Deletes `data.part` unless the upload was stored: whatever ends the PUT
/// early (the client gone, the actor killed, a shutdown) leaves no half
/// file to block a retry of the slot.
struct PartGuard {
    path: std::path::PathBuf,
    stored: bool,
}

impl Drop for PartGuard {
    fn drop(&mut self) {
        if !self.stored {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The media type as stored and served: `type/subtype`, lowercase, no
/// parameters, or nothing for anything else (a list, spaces).
fn media_type(raw: &str) -> String {
    let t = raw
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let valid = t.split_once('/').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"/!#$&^_.+-".contains(&c))
    });
    if valid {
        t
    } else {
        String::new()
    }
}

pub(crate) async fn handle(
    conn: &Conn,
    opts: &UploadOptions,
    req: Request<Incoming>,
    rest: &str,
) -> Response<Body> {
    let mut parts = rest.splitn(3, '/');
    let (Some(id), Some(sig), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return not_found();
    };
    let Some(filename) = percent_decode(name) else {
        return not_found();
    };
    let Some(dir) = opts.upload_dir(id) else {
        return not_found();
    };
    // The path's signature first, for every method: an unsigned path is
    // no file at all.
    if !opts.verify_get(id, sig, &filename) {
        return not_found();
    }
    match *req.method() {
        Method::PUT => put(conn, opts, req, id, &filename, &dir).await,
        Method::GET | Method::HEAD => get(&req, &filename, &dir).await,
        _ => respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n",
        ),
    }
}

fn not_found() -> Response<Body> {
    respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")
}

fn header_str(req: &Request<Incoming>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn put(
    conn: &Conn,
    opts: &UploadOptions,
    req: Request<Incoming>,
    id: &str,
    filename: &str,
    dir: &std::path::Path,
) -> Response<Body> {
    let query = req.uri().query().unwrap_or_default();
    let Some(slot) = PutSlot::parse(id, filename, query) else {
        return respond(StatusCode::FORBIDDEN, "text/plain", "not an upload URL\n");
    };
    let Some(len) = header_str(&req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
    else {
        return respond(
            StatusCode::LENGTH_REQUIRED,
            "text/plain",
            "Content-Length is required\n",
        );
    };
    let ctype = media_type(header_str(&req, header::CONTENT_TYPE).unwrap_or_default());
    let now = SystemTime::now();
    // §5: the size and type the slot was asked for; a slot asked for
    // without a type takes any.
    if !opts.verify_put(&slot, len, &ctype, now) && !opts.verify_put(&slot, len, "", now) {
        return respond(
            StatusCode::FORBIDDEN,
            "text/plain",
            "the URL has expired, or the size or type differ from the slot\n",
        );
    }
    let storage = &conn.ctx.storage;
    match storage.upload(id).await {
        Ok(Some(u)) if !u.complete => {}
        Ok(Some(_)) => return respond(StatusCode::CONFLICT, "text/plain", "already uploaded\n"),
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::warn!(upload = id, error = %e, "cannot read an upload slot");
            return respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "try again\n");
        }
    }
    if let Err(e) = tokio::fs::create_dir_all(dir).await {
        tracing::warn!(upload = id, error = %e, "cannot make the upload directory");
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "cannot store\n",
        );
    }
    let part = dir.join("data.part");
    let mut guard = PartGuard {
        path: part.clone(),
        stored: false,
    };
    let mut file = match tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part)
        .await
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // Someone else's part file: not ours to delete.
            guard.stored = true;
            return respond(StatusCode::CONFLICT, "text/plain", "upload in progress\n");
        }
        Err(e) => {
            tracing::warn!(upload = id, error = %e, "cannot create an upload");
            return respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "cannot store\n",
            );
        }
    };
    let mut body = req.into_body();
    let mut written: u64 = 0;
    let outcome: Result<(), (StatusCode, &str)> = async {
        loop {
            let next = tokio::time::timeout(BODY_STALL, body.frame())
                .await
                .map_err(|_| (StatusCode::REQUEST_TIMEOUT, "upload stalled\n"))?;
            let Some(frame) = next else {
                break;
            };
            let frame = frame.map_err(|_| (StatusCode::BAD_REQUEST, "upload interrupted\n"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            written += data.len() as u64;
            if written > len {
                return Err((StatusCode::PAYLOAD_TOO_LARGE, "more than Content-Length\n"));
            }
            file.write_all(&data)
                .await
                .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "cannot store\n"))?;
        }
        if written != len {
            return Err((StatusCode::BAD_REQUEST, "less than Content-Length\n"));
        }
        file.flush()
            .await
            .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "cannot store\n"))?;
        Ok(())
    }
    .await;
    drop(file);
    if let Err((status, text)) = outcome {
        return respond(status, "text/plain", text);
    }
    let meta = serde_json::json!({ "filename": filename, "content_type": ctype }).to_string();
    let stored = async {
        tokio::fs::write(dir.join("meta"), meta).await?;
        tokio::fs::rename(&part, dir.join("data")).await
    }
    .await;
    if let Err(e) = stored {
        tracing::warn!(upload = id, error = %e, "cannot store an upload");
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            "cannot store\n",
        );
    }
    guard.stored = true;
    // The record decides: a slot deleted meanwhile (its account removed,
    // retention) takes the file with it, which GET alone would never know.
    match storage.upload_complete(id).await {
        Ok(true) => {}
        Ok(false) => {
            let _ = tokio::fs::remove_dir_all(dir).await;
            return respond(StatusCode::GONE, "text/plain", "the slot is gone\n");
        }
        Err(e) => {
            tracing::warn!(upload = id, error = %e, "cannot mark an upload stored");
            let _ = tokio::fs::remove_dir_all(dir).await;
            return respond(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "try again\n");
        }
    }
    conn.ctx
        .metrics
        .upload_bytes
        .fetch_add(written, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        conn = conn.id,
        upload = id,
        bytes = written,
        "file uploaded"
    );
    respond(StatusCode::CREATED, "text/plain", "")
}

/// `Range: bytes=a-b`, `a-` or `-n` (one range, RFC 9110 §14.1.2): the
/// inclusive span, or Err for one that cannot be satisfied.
fn range(value: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    // Several ranges: served whole, as RFC 9110 §14.2 allows.
    if spec.contains(',') {
        return Ok(None);
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let span = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().map_err(|_| ())?;
            let end = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
            };
            if start >= len || start > end {
                return Err(());
            }
            (start, end)
        }
        (true, true) => return Err(()),
    };
    Ok(Some(span))
}

/// Types a browser may show in place; anything else is a download, so
/// that an uploaded page cannot run as the server's.
fn inline(ctype: &str) -> bool {
    let major = ctype.split('/').next().unwrap_or_default();
    matches!(major, "image" | "audio" | "video") && !ctype.contains("svg")
}

async fn get(req: &Request<Incoming>, filename: &str, dir: &std::path::Path) -> Response<Body> {
    let mut file = match tokio::fs::File::open(dir.join("data")).await {
        Ok(f) => f,
        Err(_) => return not_found(),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(_) => return not_found(),
    };
    let ctype = tokio::fs::read_to_string(dir.join("meta"))
        .await
        .ok()
        .and_then(|m| serde_json::from_str::<serde_json::Value>(&m).ok())
        .and_then(|v| v["content_type"].as_str().map(str::to_owned))
        .filter(|t| !t.is_empty() && HeaderValue::from_str(t).is_ok())
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let span = match range(header_str(req, header::RANGE), len) {
        Ok(span) => span,
        Err(()) => {
            let mut r = respond(StatusCode::RANGE_NOT_SATISFIABLE, "text/plain", "");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let (start, end, status) = match span {
        Some((a, b)) => (a, b, StatusCode::PARTIAL_CONTENT),
        None => (0, len.saturating_sub(1), StatusCode::OK),
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    let body: Body = if req.method() == Method::HEAD || count == 0 {
        crate::full(Bytes::new())
    } else {
        if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
            return not_found();
        }
        let stream = futures_util::stream::unfold((file, count), |(mut f, left)| async move {
            if left == 0 {
                return None;
            }
            let mut buf = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK))];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Frame::data(Bytes::from(buf))), (f, left - n as u64)))
                }
                Err(e) => Some((Err(e), (f, 0))),
            }
        });
        BodyExt::boxed(StreamBody::new(stream))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, ctype.clone());
    set(header::CONTENT_LENGTH, count.to_string());
    set(header::ACCEPT_RANGES, "bytes".to_owned());
    if status == StatusCode::PARTIAL_CONTENT {
        set(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
    }
    let disposition = if inline(&ctype) {
        "inline"
    } else {
        "attachment"
    };
    set(
        header::CONTENT_DISPOSITION,
        format!(
            "{disposition}; filename*=UTF-8''{}",
            percent_encode(filename)
        ),
    );
    // The file is the uploader's, not ours: never sniffed, never run.
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned());
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox".to_owned(),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range(None, 10), Ok(None));
        assert_eq!(range(Some("bytes=0-3"), 10), Ok(Some((0, 3))));
        assert_eq!(range(Some("bytes=5-"), 10), Ok(Some((5, 9))));
        assert_eq!(range(Some("bytes=-3"), 10), Ok(Some((7, 9))));
        assert_eq!(range(Some("bytes=8-100"), 10), Ok(Some((8, 9))));
        assert_eq!(range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(range(Some("bytes=4-2"), 10), Err(()));
        assert_eq!(range(Some("bytes=0-1,3-4"), 10), Ok(None));
        assert_eq!(range(Some("items=0-1"), 10), Ok(None));
        assert!(inline("image/png") && !inline("image/svg+xml") && !inline("text/html"));
    }
}
