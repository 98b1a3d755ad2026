//! `POST /v1/metrics`: OTLP/HTTP with a protobuf body, handed to the OTLP source like a gRPC
//! export. JSON bodies are not accepted (415).

use axum::{
    body::Bytes,
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension,
};
use prost::Message;

use super::Face;
use crate::{
    faces::{admission::PushesOf, auth::Grant},
    sources::otlp::wire,
};

const PROTOBUF: &str = "application/x-protobuf";

pub async fn export(
    State(face): State<Face>,
    grant: Option<Extension<Grant>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(otlp) = face.settings.otlp.as_ref() else {
        return super::error(
            StatusCode::NOT_FOUND,
            "the OTLP receiver is off (otlp.enabled)".into(),
            None,
        );
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with(PROTOBUF) {
        return super::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type {PROTOBUF}, got {content_type:?}"),
            None,
        );
    }
    let request = match wire::Export::decode(body) {
        Ok(request) => request,
        Err(error) => {
            return super::error(
                StatusCode::BAD_REQUEST,
                format!("the body is not an ExportMetricsServiceRequest: {error}"),
                None,
            )
        }
    };
    let grant = grant.map(|Extension(grant)| grant);
    let admit = PushesOf {
        admission: &face.settings.admission,
        grant: grant.as_ref(),
    };
    match otlp.export(request, &admit).await.response() {
        Ok(response) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, PROTOBUF)],
            response.encode_to_vec(),
        )
            .into_response(),
        Err((refusal, message)) => super::error(super::refusal_status(refusal), message, None),
    }
}
