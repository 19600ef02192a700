//! `kubectl port-forward`: not served yet (kubectl 1.32 speaks SPDY for it, inside a WebSocket or
//! alone); the request is refused with a message saying so.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// Refuse a port-forward request.
pub async fn serve() -> Response {
    (StatusCode::BAD_REQUEST, "unable to upgrade: port-forward is not supported by jobwright's node simulator")
        .into_response()
}
