//! The real binary: start-up to readiness, a SIGTERM that lets a slow in-flight request
//! finish while readiness already says 503, then exits 0, and its subcommands.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

struct Server {
    child: Child,
    base: String,
    /// Every line the server has written to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The server's stderr has closed and `log` holds all of it.
    log_closed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start the binary on a free port and wait until it logs its address.
fn start(extra: &[&str]) -> Server {
    start_with_env(extra, &[])
}

/// [`start`] with environment variables set; on the CPU unless `extra` names a device.
fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
    start_limited(extra, env, None)
}

/// [`start_with_env`], with the server's open-file limit lowered to `files` if given.
fn start_limited(extra: &[&str], env: &[(&str, &str)], files: Option<u64>) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ember-serve"));
    if let Some(files) = files {
        use std::os::unix::process::CommandExt;
        let limit = rustix::process::Rlimit {
            current: Some(files),
            maximum: Some(files),
        };
        // SAFETY: setrlimit is async-signal-safe and touches nothing the parent shares.
        unsafe {
            command.pre_exec(move || {
                rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = command
        .args(["--host", "127.0.0.1", "--port", "0", "--log-format", "json"])
        .args(if extra.contains(&"--weights") {
            vec![]
        } else {
            vec!["--weights".into(), common::repo_path("weights")]
        })
        .args(if extra.contains(&"--device") {
            &[][..]
        } else {
            &["--device", "cpu"][..]
        })
        .envs(env.iter().copied())
        // Tests run side by side: gRPC (default 8081) is off unless a test asks for it.
        .args(if extra.contains(&"--grpc-port") {
            &[][..]
        } else {
            &["--grpc-port", "0"][..]
        })
        .args(extra)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log_closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (lines, closed) = (log.clone(), log_closed.clone());
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && v["message"] == "listening"
            {
                let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
            }
            lines.lock().unwrap().push(line);
        }
        closed.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("server never logged its address");
    Server {
        child,
        base: format!("http://{addr}"),
        log,
        log_closed,
    }
}

fn sigterm(server: &Server) {
    signal(server, "-TERM");
}

/// Send the server `signal` (as `kill` names it: "-TERM", "-HUP").
fn signal(server: &Server, signal: &str) {
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// The server's exit status, within 15 s of a signal. Waits without blocking the runtime: a
/// client still connected must have its connection task run to answer the server's GOAWAY and
/// PING, as a live client's does.
async fn exit_status(server: &mut Server) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // Its log read to the end too: the thread reading it can lag the exit (under QEMU, far).
        if let Some(status) = server.child.try_wait().unwrap()
            && server.log_closed.load(std::sync::atomic::Ordering::SeqCst)
        {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "server did not exit (and close its stderr) after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{base}/health/ready")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never ready");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    use std::io::{Read, Write};
    let mut server = start(&["--shutdown-delay", "500ms"]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;

    // A slow client: headers and half the body now, the rest only after shutdown has begun
    // and the listener has closed. The request is in flight the whole time.
    let body = serde_json::json!({ "inputs": [common::digits(1)[0].0] }).to_string();
    let (head, tail) = body.split_at(body.len() / 2);
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{head}",
        body.len()
    )
    .unwrap();
    stream.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    sigterm(&server);
    // Readiness flips at once, while the listener is still open for the shutdown delay.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let ready = client
        .get(format!("{}/health/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    // After the delay the listener is gone: new connections are refused...
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "listener still open"
    );
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );

    // ...but the in-flight request still completes.
    stream.write_all(tail.as_bytes()).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""label":"0""#), "{reply}");

    let status = exit_status(&mut server).await;
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_request_stuck_past_the_shutdown_timeout_is_abandoned_and_the_exit_is_non_zero() {
    use std::io::Write;
    let mut server = start(&["--shutdown-timeout", "1s", "--client-timeout", "60s"]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    // Headers and the start of a body that never finishes: in flight until abandoned.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut stuck = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stuck,
        "POST /v1/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n{{\"inputs\""
    )
    .unwrap();
    stuck.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = Instant::now();
    sigterm(&server);
    let status = exit_status(&mut server).await;
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(1));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let log = server.log.lock().unwrap().join("\n");
    let abandoned = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("drain deadline"))
        });
    let abandoned = abandoned.unwrap_or_else(|| panic!("no abandonment logged:\n{log}"));
    assert_eq!(abandoned["abandoned"], 1, "{abandoned}");
    assert_eq!(abandoned["level"], "ERROR");
}

#[tokio::test]
async fn an_abandoning_shutdown_counts_and_names_each_listener() {
    use std::io::Write;
    let port = free_port().to_string();
    let mut server = start(&[
        "--grpc-port",
        &port,
        "--shutdown-timeout",
        "1s",
        "--client-timeout",
        "60s",
    ]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    // Unfinished bodies: one request stuck on the REST port, two on the gRPC port (which
    // speaks HTTP/1.1 too, through the same accept loop).
    let rest = server.base.trim_start_matches("http://").to_string();
    let grpc = format!("127.0.0.1:{port}");
    let stuck = |addr: &str, path: &str| {
        let mut socket = std::net::TcpStream::connect(addr).unwrap();
        write!(
            socket,
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000\r\n\r\n{{"
        )
        .unwrap();
        socket
    };
    let _held = [
        stuck(&rest, "/v1/predict"),
        stuck(&grpc, "/inference.GRPCInferenceService/ModelInfer"),
        stuck(&grpc, "/inference.GRPCInferenceService/ModelInfer"),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&server);
    assert_eq!(exit_status(&mut server).await.code(), Some(1));
    let log = server.log.lock().unwrap().join("\n");
    let last = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["level"] == "ERROR")
        .unwrap_or_else(|| panic!("no error logged:\n{log}"));
    let message = last["message"].as_str().unwrap_or_default();
    for part in [
        "http: 1 request(s) on 1 connection(s)",
        "grpc: 2 request(s) on 2 connection(s)",
    ] {
        assert!(message.contains(part), "{part} not in {message}");
    }
}

#[tokio::test]
async fn silent_http2_clients_on_both_ports_cost_new_clients_nothing_and_do_not_hold_shutdown() {
    use std::io::Write;
    let port = free_port().to_string();
    let mut server = start(&[
        "--grpc-port",
        &port,
        "--client-timeout",
        "2s",
        "--http2-keep-alive-interval",
        "1s",
        "--http2-keep-alive-timeout",
        "1s",
        "--shutdown-delay",
        "300ms",
    ]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    let rest = server.base.trim_start_matches("http://").to_string();
    let grpc = format!("127.0.0.1:{port}");
    // Silent clients: the preface (or part of it, or the preface and SETTINGS), then nothing;
    // none answers a PING.
    let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let settings = [&preface[..], b"\0\0\0\x04\0\0\0\0\0"].concat();
    let firsts: [&[u8]; 3] = [preface, &preface[..7], &settings];
    let hold = |silent: &mut Vec<std::net::TcpStream>, per_port: usize| {
        for addr in [&rest, &grpc] {
            for i in 0..per_port {
                let mut socket = std::net::TcpStream::connect(addr.as_str()).unwrap();
                let _ = socket.write_all(firsts[i % 3]);
                silent.push(socket);
            }
        }
    };
    let mut silent = Vec::new();
    hold(&mut silent, 200);
    // While they are connected, a fresh client on each port is served at once.
    let live = client
        .get(format!("{}/health/live", server.base))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .expect("REST did not answer a fresh client within 1 s");
    assert_eq!(live.status(), 200);
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    let mut grpc_client =
        ember_serve::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(
            channel,
        );
    let answer = grpc_client
        .server_live(ember_serve::grpc::pb::ServerLiveRequest {})
        .await
        .expect("gRPC did not answer a fresh client within 1 s");
    assert!(answer.into_inner().live);
    drop(grpc_client);
    // They are gone within the client timeout (2 s) or a ping and its timeout (1 s + 1 s).
    // The scrape's own connection is the one left.
    metrics_until(
        &client,
        &server.base,
        Duration::from_secs(6),
        "silent clients still held",
        |page| sample(page, "ember_connections_open") <= 1.0,
    )
    .await;
    // Silent ones connected at the signal do not hold the drain.
    hold(&mut silent, 3);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let signalled = Instant::now();
    sigterm(&server);
    assert_eq!(exit_status(&mut server).await.code(), Some(0));
    let took = signalled.elapsed();
    // Held, they would keep the exit waiting for the 30 s shutdown timeout; the bound leaves a
    // busy 2-core machine seconds of slack over the 300 ms delay and still tells the two apart.
    assert!(
        took < Duration::from_secs(10),
        "exit took {took:?} (delay 300 ms, shutdown timeout 30 s)"
    );
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_are_refused_on_both_ports_not_left_hanging() {
    // 1024 files: a budget of 768 connections for both listeners, one descriptor each.
    let port = free_port().to_string();
    let server = start_limited(&["--grpc-port", &port], &[], Some(1024));
    // Ready by the log, not by a request: a probe's connection closing later would free a slot
    // after the held ones filled the budget.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("warm-up passes succeeded"))
    {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A fresh connection per request: a pooled one would hold a slot of its own.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let rest = server.base.trim_start_matches("http://").to_string();
    let grpc = format!("127.0.0.1:{port}");
    // Held connections that send nothing (within the 30 s client timeout): 400 on the REST
    // port, the rest of the budget on the gRPC port. Two descriptors per connection and a
    // budget per listener once ran the process out of descriptors at about half of this.
    let mut held = Vec::new();
    for (addr, count) in [(&rest, 400), (&grpc, 368)] {
        for _ in 0..count {
            held.push(std::net::TcpStream::connect(addr.as_str()).unwrap());
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = client
        .get(format!("{}/health/live", server.base))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("a REST client over the cap was left hanging");
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["type"], "urn:ember-serve:problem:too-many-connections");
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let mut grpc_client =
        ember_serve::grpc::pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(
            channel,
        );
    let status = grpc_client
        .server_live(ember_serve::grpc::pb::ServerLiveRequest {})
        .await
        .expect_err("a gRPC client over the cap was served");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // Freed slots serve again, and accept never ran out of descriptors.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = client
            .get(format!("{}/health/live", server.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap();
        if live.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused after the held ones left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = server.log.lock().unwrap().join("\n");
    assert!(!log.contains("accepting a connection failed"), "{log}");
}

/// Whether `needle` is anywhere in the writable memory of process `pid` (heap, anonymous
/// mappings; not the stack, where argv and the environment live).
fn in_memory(pid: u32, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !fields[1].starts_with("rw") || fields.get(5).is_some_and(|n| n.starts_with("[s")) {
            continue;
        }
        let (start, end) = fields[0].split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut region = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut region).is_err() {
            continue;
        }
        if memchr::memmem::find(&region, needle).is_some() {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn api_keys_are_not_kept_in_memory_once_hashed() {
    let dir = common::ScratchDir::new("keys-in-memory");
    // Unique to this run, so no other copy of it can be in the process.
    let unique = |n: u32| {
        format!(
            "key{n}x{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        )
    };
    let (flag, file_key) = (unique(1), unique(2));
    let file = dir.join("keys");
    std::fs::write(&file, format!("# rotated weekly\n{file_key}\n")).unwrap();
    let server = start(&["--api-key", &flag, "--api-key-file", file.to_str().unwrap()]);
    wait_ready(&reqwest::Client::new(), &server.base).await;
    for key in [&flag, &file_key] {
        assert!(
            !in_memory(server.child.id(), key.as_bytes()),
            "{key} is still in the server's memory"
        );
    }
    // The scan itself works: the file's path, which the server keeps, is found.
    assert!(in_memory(
        server.child.id(),
        file.to_str().unwrap().as_bytes()
    ));
}

/// Scrape `/metrics` until `done` says the page shows what is awaited (`what`, in the
/// failure), for at most `within`; the page.
async fn metrics_until(
    client: &reqwest::Client,
    base: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let page = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if done(&page) {
            return page;
        }
        assert!(Instant::now() < deadline, "{what}:\n{page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// A sample's value in a Prometheus text page (0 when absent).
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && !l[name.len()..].starts_with('_'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn clients_that_hang_up_mid_request_leave_no_request_counted_in_flight() {
    use std::io::Write;
    let server = start(&["--max-batch", "64"]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    let addr = server.base.trim_start_matches("http://").to_string();
    let rows = common::rows(64);
    let body = serde_json::json!({ "inputs": rows }).to_string();
    let request = format!(
        "POST /v1/predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    // Whole requests whose clients hang up at once, while the queue is busy with the others:
    // the server drops the ones it has not answered yet, mid-await.
    let sockets: Vec<_> = (0..200)
        .map(|_| {
            let mut socket = std::net::TcpStream::connect(&addr).unwrap();
            socket.write_all(request.as_bytes()).unwrap();
            socket
        })
        .collect();
    drop(sockets);
    let page = metrics_until(
        &client,
        &server.base,
        Duration::from_secs(20),
        "requests unaccounted for",
        |page| {
            let answered = sample(page, "ember_http_requests_total{route=\"/v1/predict\"");
            answered + sample(page, "ember_http_requests_cancelled_total") >= 200.0
        },
    )
    .await;
    // The scrape itself is the one request in flight.
    assert_eq!(
        sample(&page, "ember_http_requests_in_flight"),
        1.0,
        "{page}"
    );
    let cancelled = sample(&page, "ember_http_requests_cancelled_total");
    assert!(cancelled > 0.0, "no hang-up was counted:\n{page}");
}

#[tokio::test]
async fn grpc_calls_whose_client_goes_away_are_counted_cancelled() {
    use ember_serve::grpc::pb;
    let port = free_port().to_string();
    let server = start(&["--grpc-port", &port, "--max-batch", "64"]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let pixels: Vec<f32> = common::rows(64)
        .into_iter()
        .flatten()
        .map(|v| v as f32)
        .collect();
    let request = pb::ModelInferRequest {
        model_name: "digits-cnn".into(),
        inputs: vec![pb::model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![64, 64],
            contents: Some(pb::InferTensorContents {
                fp32_contents: pixels,
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let calls: Vec<_> = (0..100)
        .map(|_| {
            let mut grpc =
                pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel.clone());
            let request = request.clone();
            tokio::spawn(async move { grpc.model_infer(request).await })
        })
        .collect();
    let count = |page: &str, code: &str| {
        sample(
            page,
            &format!(r#"ember_grpc_requests_total{{method="ModelInfer",code="{code}"}}"#),
        )
    };
    // Once the first call is answered the others are at the server, queued behind it.
    let within = Duration::from_secs(20);
    metrics_until(&client, &server.base, within, "no call answered", |page| {
        count(page, "OK") > 0.0
    })
    .await;
    // Every call dropped: the client resets its streams (RST_STREAM CANCEL).
    for call in &calls {
        call.abort();
    }
    drop(channel);
    // Calls aborted before they were sent never reach the server; the ones it had are answered
    // or, dropped mid-call, recorded as CANCELLED (once they were not recorded at all).
    metrics_until(&client, &server.base, within, "no cancelled call", |page| {
        count(page, "CANCELLED") > 0.0
    })
    .await;
}

#[tokio::test]
async fn otlp_endpoint_exports_the_request_spans_and_flushes_them_on_exit() {
    let (endpoint, received) = common::otlp::receiver().await;

    let mut server = start(&["--otlp-endpoint", &endpoint]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let reply = client
        .post(format!("{}/v1/predict", server.base))
        .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
        .header("content-type", "application/json")
        .body(common::read("tests/data/predict-zero.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    sigterm(&server);
    assert_eq!(exit_status(&mut server).await.code(), Some(0));

    let spans = received.lock().unwrap().clone();
    let names: Vec<_> = spans
        .iter()
        .filter(|s| hex::encode(&s.trace_id) == trace)
        .map(|s| s.name.as_str())
        .collect();
    for expected in ["POST /v1/predict", "queue wait", "forward pass"] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
}

/// A free loopback port (bound, read, released: another process could take it in between, which
/// this test would report as a failure to start, not as a wrong answer).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_binary_serves_grpc_beside_http_and_stops_both_on_sigterm() {
    use ember_serve::grpc::pb;
    let port = free_port().to_string();
    let mut server = start(&["--grpc-port", &port, "--shutdown-delay", "300ms"]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    // The default log filter keeps the inference layer's start-up lines (its own crate).
    let logged = server.log.lock().unwrap().join("\n");
    assert!(logged.contains("imported model loaded"), "{logged}");
    let url = format!("http://127.0.0.1:{port}");
    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = pb::grpc_inference_service_client::GrpcInferenceServiceClient::new(channel);
    assert!(
        grpc.server_ready(pb::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let pixels: Vec<f32> = common::digits(1)[0].0.iter().map(|&v| v as f32).collect();
    let reply = grpc
        .model_infer(pb::ModelInferRequest {
            model_name: "digits-cnn".into(),
            inputs: vec![pb::model_infer_request::InferInputTensor {
                name: "input".into(),
                datatype: "FP32".into(),
                shape: vec![1, 64],
                contents: Some(pb::InferTensorContents {
                    fp32_contents: pixels,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.raw_output_contents[1], 0i64.to_le_bytes(), "not a 0");

    sigterm(&server);
    let status = exit_status(&mut server).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "the gRPC port is still open"
    );
}

#[tokio::test]
async fn healthcheck_subcommand_probes_readiness() {
    let server = start(&[]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    let probe = |url: String| {
        Command::new(env!("CARGO_BIN_EXE_ember-serve"))
            .args(["healthcheck", "--url", &url])
            .output()
            .unwrap()
    };
    assert!(
        probe(format!("{}/health/ready", server.base))
            .status
            .success()
    );
    let missing = probe(format!("{}/no-such-route", server.base));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("404"));
    // Nothing listening: fails instead of hanging.
    assert!(
        !probe("http://127.0.0.1:9/health/ready".into())
            .status
            .success()
    );
}

#[test]
fn version_subcommand_names_the_build_target_and_the_machine() {
    let out = Command::new(env!("CARGO_BIN_EXE_ember-serve"))
        .arg("version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let report = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[0],
        format!("ember-serve {}", env!("CARGO_PKG_VERSION"))
    );
    // Natively, the kernel's `uname -m` is the architecture the binary was built for; the
    // release smoke test relies on this line under QEMU.
    let arch = std::env::consts::ARCH;
    assert!(
        lines.contains(&format!("machine: {arch}").as_str()),
        "{report}"
    );
    assert!(
        lines.contains(&format!("target: {arch}-{}", std::env::consts::OS).as_str()),
        "{report}"
    );
}

#[cfg(feature = "wgpu")]
#[tokio::test]
async fn auto_names_the_vulkan_driver_that_failed_to_load() {
    // What an NVIDIA node without libglvnd looks like to the loader: a driver manifest whose
    // library cannot be loaded. The fallback says which, and why, in the log and /v1/models.
    let dir = std::env::temp_dir().join(format!("ember-broken-icd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("nvidia_icd.json");
    std::fs::write(
        &manifest,
        r#"{"file_format_version": "1.0.0", "ICD": {"library_path": "libGLX_ember_gone.so.0"}}"#,
    )
    .unwrap();
    let runtime_dir = dir.to_str().unwrap();
    let server = start_with_env(
        &["--device", "auto"],
        &[
            ("VK_DRIVER_FILES", manifest.to_str().unwrap()),
            ("XDG_RUNTIME_DIR", runtime_dir),
        ],
    );
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    let models = get_json(&client, &format!("{}/v1/models", server.base)).await;
    let reason = models["models"][0]["device_fallback"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let logged = server.log.lock().unwrap().join("\n");
    if vulkan_loader_installed() {
        assert!(reason.contains("libGLX_ember_gone.so.0"), "{models}");
        assert!(
            reason.contains("cannot open shared object file"),
            "{reason}"
        );
        assert!(logged.contains("libGLX_ember_gone.so.0"), "{logged}");
    } else {
        // Without the loader no driver is ever tried: that is what the fallback must say.
        assert!(
            reason.contains("the Vulkan loader is not installed"),
            "{models}"
        );
        assert!(
            logged.contains("the Vulkan loader is not installed"),
            "{logged}"
        );
    }
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Whether the dynamic linker knows the Vulkan loader (Debian's libvulkan1), as the server's
/// dlopen will look for it.
#[cfg(feature = "wgpu")]
fn vulkan_loader_installed() -> bool {
    Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libvulkan.so.1 "))
        .unwrap_or(true)
}

/// A version directory put in the repository is loaded on SIGHUP (the policy here: the newest),
/// without a restart and without the API.
#[tokio::test]
async fn sighup_rescans_the_model_repository() {
    let root = common::repository("sighup", false);
    let server = start(&["--weights", root.to_str().unwrap()]);
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await;
    let version = async || {
        let entry = get_json(&client, &format!("{}/v1/models/breast-cancer", server.base)).await;
        entry["version"].as_str().unwrap().to_string()
    };
    assert_eq!(version().await, "1.0.0");
    common::add_version(&root, "1.1.0");
    signal(&server, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while version().await != "1.1.0" {
        assert!(Instant::now() < deadline, "1.1.0 not served after SIGHUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The line comes once the old version is drained and its threads joined, after the swap
    // that made 1.1.0 visible; under QEMU that can lag well behind.
    loop {
        let logged = server.log.lock().unwrap().join("\n");
        if logged.contains("SIGHUP: model repository re-scanned") {
            assert!(logged.contains("\"failed\":0"), "{logged}");
            break;
        }
        assert!(Instant::now() < deadline, "no re-scan logged: {logged}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines = [
        r#"ember_model_version_loaded{model="breast-cancer",version="1.0.0"} 0"#,
        r#"ember_model_version_loaded{model="breast-cancer",version="1.1.0"} 1"#,
        r#"ember_model_loads_total{model="breast-cancer",outcome="loaded"} 1"#,
    ];
    let within = Duration::from_secs(5);
    metrics_until(
        &client,
        &server.base,
        within,
        "the swap's metrics",
        |page| lines.iter().all(|line| page.contains(line)),
    )
    .await;
}
