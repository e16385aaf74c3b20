//! The HTTP ceiling for `benches/load.sh`: the same axum/tokio stack as ember-serve, with a
//! `POST /v1/predict` that reads the body and answers a constant JSON prediction without
//! touching a model. Throughput here is the most any model behind this stack could reach.

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::post;

const ANSWER: &str = r#"{"model":"digits-cnn","model_version":"2.0.0","backend":"none","device":"none","predictions":[{"label":"0","class":0,"confidence":1.0,"probabilities":[1.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0,0.0]}]}"#;

async fn predict(body: Bytes) -> impl IntoResponse {
    std::hint::black_box(body);
    ([(header::CONTENT_TYPE, "application/json")], ANSWER)
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8089".into());
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(&addr).await?;
            eprintln!("ceiling listening on {addr}");
            axum::serve(listener, Router::new().route("/v1/predict", post(predict))).await
        })
}
