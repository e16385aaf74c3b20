//! API keys and CORS over the real router (and API keys over gRPC): off by default, and when
//! on, a key guards exactly the inference and model routes.

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use ember_serve::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient;
use ember_serve::grpc::pb::{
    ModelReadyRequest, ServerLiveRequest, ServerMetadataRequest, ServerReadyRequest,
};
use tonic::Code;

mod common;
use common::*;

const KEY: &str = "test-key-0123456789abcdef";
const OTHER: &str = "rotated-key-0123456789ab";

fn with_auth(
    req: axum::http::request::Builder,
    auth: Option<&str>,
) -> axum::http::request::Builder {
    match auth {
        Some(a) => req.header("authorization", a),
        None => req,
    }
}

async fn get_as(app: &Router, uri: &str, auth: Option<&str>) -> Reply {
    send(
        app,
        with_auth(Request::get(uri), auth)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

async fn predict_as(app: &Router, uri: &str, body: &str, auth: Option<&str>) -> Reply {
    let req = with_auth(Request::post(uri), auth).header("content-type", "application/json");
    send(app, req.body(Body::from(body.to_string())).unwrap()).await
}

fn v2_body() -> String {
    let row = rows(1).remove(0);
    serde_json::json!({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}]})
        .to_string()
}

#[tokio::test]
async fn without_keys_everything_is_open() {
    let (app, _) = ready_app(&[]).await;
    let v1 = read("tests/data/predict-zero.json");
    assert_eq!(predict_as(&app, "/v1/predict", &v1, None).await.status, 200);
    assert_eq!(
        get_as(&app, "/v2/models/digits-cnn", None).await.status,
        200
    );
    // The scheme is declared either way, but nothing requires it.
    let doc = get_as(&app, "/api-docs/openapi.json", None).await.json();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/v1/predict"]["post"]["security"].is_null());
}

#[tokio::test]
async fn every_route_needs_a_key_exactly_where_the_document_says_and_open_ones_do_not() {
    let (app, _) = ready_app(&["--api-key", KEY]).await;
    let doc = get_as(&app, "/api-docs/openapi.json", None).await.json();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 15, "{} documented paths", paths.len());
    let (mut guarded, mut open) = (0, 0);
    for (path, item) in paths {
        let uri = path
            .replace("{name}", "digits-cnn")
            .replace("{version}", "1");
        for (method, op) in item.as_object().unwrap() {
            let req = match method.as_str() {
                "get" => Request::get(&uri),
                "post" => Request::post(&uri).header("content-type", "application/json"),
                _ => continue,
            };
            let reply = send(&app, req.body(Body::from("{}")).unwrap()).await;
            if op["security"].is_array() {
                guarded += 1;
                assert_eq!(reply.status, 401, "{method} {uri} answered without a key");
            } else {
                open += 1;
                assert_ne!(reply.status, 401, "{method} {uri} asked for a key");
                assert!(
                    ember_serve::http::guard::OPEN_ROUTES.contains(&path.as_str()),
                    "{path} is documented as open but is not an open route"
                );
            }
        }
    }
    assert!(guarded >= 10 && open >= 4, "{guarded} guarded, {open} open");
    // The open routes, documented or not, answer without a key.
    for route in ember_serve::http::guard::OPEN_ROUTES {
        let reply = get_as(&app, route, None).await;
        assert_eq!(reply.status, 200, "{route}");
    }
}

#[tokio::test]
async fn keys_guard_inference_and_model_routes_and_leave_probes_open() {
    let (app, _) = ready_app(&["--api-key", KEY, "--api-key", OTHER]).await;
    let v1 = read("tests/data/predict-zero.json");
    let bearer = format!("Bearer {KEY}");

    // No key: 401 problem details with a Bearer challenge.
    let r = predict_as(&app, "/v1/predict", &v1, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.content_type(), "application/problem+json");
    assert_eq!(r.json()["type"], "urn:ember-serve:problem:unauthorized");
    assert_eq!(
        r.headers["www-authenticate"],
        r#"Bearer realm="ember-serve""#
    );
    // A wrong key: 401 that says the token is invalid, and never echoes it.
    let r = predict_as(
        &app,
        "/v1/predict",
        &v1,
        Some("Bearer wrong-key-0000000000"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    assert!(!r.text().contains("wrong-key"));
    // V2 routes answer in V2's shape.
    let r = predict_as(&app, "/v2/models/digits-cnn/infer", &v2_body(), None).await;
    assert_eq!(r.status, 401);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("Authorization: Bearer")
    );
    assert!(r.headers.contains_key("www-authenticate"));
    for uri in [
        "/v1/models",
        "/v2",
        "/v2/models/digits-cnn",
        "/v2/models/digits-cnn/ready",
    ] {
        assert_eq!(get_as(&app, uri, None).await.status, 401, "{uri}");
    }

    // Either key lets the request through; the scheme name is case-insensitive.
    assert_eq!(
        predict_as(&app, "/v1/predict", &v1, Some(&bearer))
            .await
            .status,
        200
    );
    let other = format!("bearer {OTHER}");
    let r = predict_as(
        &app,
        "/v2/models/digits-cnn/infer",
        &v2_body(),
        Some(&other),
    )
    .await;
    assert_eq!(r.status, 200);

    // Probes, metrics and docs need no key.
    for uri in [
        "/health/live",
        "/health/ready",
        "/v2/health/live",
        "/v2/health/ready",
        "/metrics",
        "/api-docs/openapi.json",
        "/",
    ] {
        assert_eq!(get_as(&app, uri, None).await.status, 200, "{uri}");
    }
    // The document requires the scheme exactly where the server does.
    let doc = get_as(&app, "/api-docs/openapi.json", None).await.json();
    let paths = &doc["paths"];
    assert_eq!(
        paths["/v1/predict"]["post"]["security"][0]["bearer"],
        serde_json::json!([])
    );
    assert!(paths["/v1/predict"]["post"]["responses"]["401"].is_object());
    assert!(paths["/v2/models/{name}/infer"]["post"]["security"].is_array());
    assert!(paths["/v2/health/ready"]["get"]["security"].is_null());
    assert!(paths["/health/ready"]["get"]["security"].is_null());
    // 401s are counted like any answer.
    let metrics = get_as(&app, "/metrics", None).await.text();
    assert!(
        metrics.contains(
            r#"ember_http_requests_total{route="/v1/predict",method="POST",status="401"}"#
        )
    );
}

#[tokio::test]
async fn a_key_file_is_read_at_start_and_a_bad_one_refuses_to_start() {
    let dir = std::env::temp_dir().join(format!("ember-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keys");
    std::fs::write(&file, format!("# ops team\n{KEY}\n")).unwrap();
    let (app, _) = ready_app(&["--api-key-file", file.to_str().unwrap()]).await;
    let bearer = format!("Bearer {KEY}");
    assert_eq!(get_as(&app, "/v1/models", Some(&bearer)).await.status, 200);
    assert_eq!(get_as(&app, "/v1/models", None).await.status, 401);

    std::fs::write(&file, "# nothing yet\n").unwrap();
    let err = ember_serve::app::start(&args(&["--api-key-file", file.to_str().unwrap()]))
        .err()
        .expect("an empty key file must refuse to start");
    assert!(err.to_string().contains("no keys"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn grpc_inference_calls_need_the_key_and_liveness_does_not() {
    let a = args(&["--api-key", KEY]);
    let started = ember_serve::app::start(&a).unwrap();
    started.service.warm_up().await.unwrap();
    let app = |draining| {
        ember_serve::grpc::router(
            started.service.clone(),
            started.body_limit,
            started.grpc_keys(),
            draining,
        )
        .unwrap()
    };
    let (channel, _, _server) = common::serve_grpc(app, std::future::pending()).await;
    let mut client = GrpcInferenceServiceClient::new(channel);

    assert!(
        client
            .server_live(ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    let refused = client
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(refused.message().contains("Bearer"));
    assert!(
        client
            .server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let model = ModelReadyRequest {
        name: "digits-cnn".into(),
        version: String::new(),
    };
    let refused = client.model_ready(model).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    let mut req = tonic::Request::new(ServerMetadataRequest {});
    req.metadata_mut()
        .insert("authorization", format!("Bearer {KEY}").parse().unwrap());
    let meta = client.server_metadata(req).await.unwrap().into_inner();
    assert_eq!(meta.name, "ember-serve");
}

/// Send a CORS preflight for `origin`.
async fn preflight(app: &Router, origin: &str) -> Reply {
    let req = Request::options("/v1/predict")
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .body(Body::empty())
        .unwrap();
    send(app, req).await
}

#[tokio::test]
async fn cors_answers_allowed_origins_only_and_before_any_key_is_asked_for() {
    let (app, _) = ready_app(&[
        "--cors-allow-origin",
        "https://app.example.com",
        "--api-key",
        KEY,
    ])
    .await;
    let allowed = preflight(&app, "https://app.example.com").await;
    assert!(allowed.status.is_success(), "{}", allowed.status);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let headers = allowed.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for needed in [
        "authorization",
        "content-type",
        "content-encoding",
        "x-request-id",
    ] {
        assert!(headers.contains(needed), "{needed} not allowed: {headers}");
    }
    assert!(
        allowed.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let refused = preflight(&app, "https://evil.example.net").await;
    assert!(!refused.headers.contains_key("access-control-allow-origin"));

    // The actual request carries the header too, 401 included, so the page can read why.
    let req = Request::post("/v1/predict")
        .header("origin", "https://app.example.com")
        .header("content-type", "application/json")
        .body(Body::from(read("tests/data/predict-zero.json")))
        .unwrap();
    let r = send(&app, req).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    let exposed = r.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("x-request-id") && exposed.contains("www-authenticate"));
}

#[tokio::test]
async fn cors_is_off_by_default_and_star_allows_any_origin() {
    let (off, _) = ready_app(&[]).await;
    let r = preflight(&off, "https://app.example.com").await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));

    let (any, _) = ready_app(&["--cors-allow-origin", "*"]).await;
    let r = preflight(&any, "https://anywhere.example.org").await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
}
