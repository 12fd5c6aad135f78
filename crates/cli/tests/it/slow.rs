//! `serve` against slow and oversized clients: silent, slow-header and idle kept-alive
//! connections are closed after `--header-timeout`; an over-long URI or oversized headers
//! are answered in the ARM envelope.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use stackbill_test_support::TestDb;

use crate::Node;

fn serve(db: &TestDb) -> (Node, String) {
    let node = Node::start(db, &["--header-timeout", "1"]);
    let address = node.address.trim_start_matches("http://").to_owned();
    (node, address)
}

/// Reads until the server closes the connection; how long that took.
fn closed_after(stream: &mut TcpStream) -> Duration {
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

/// Sends one request and reads the head and body of its answer.
fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn slow_silent_and_idle_clients_are_disconnected() {
    let db = TestDb::new();
    let (_node, address) = serve(&db);
    let silent = || TcpStream::connect(&address).unwrap();

    let mut quiet = silent();
    assert!(
        closed_after(&mut quiet) < Duration::from_secs(5),
        "a silent client"
    );

    let mut slow = silent();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    assert!(
        closed_after(&mut slow) < Duration::from_secs(5),
        "a slow header"
    );

    let mut idle = silent();
    let answer = exchange(&mut idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        closed_after(&mut idle) < Duration::from_secs(5),
        "an idle kept-alive client"
    );
}

#[test]
fn oversized_requests_are_answered_in_the_arm_envelope() {
    let db = TestDb::new();
    let (_node, address) = serve(&db);
    let long = format!("/v1/meters?x={}", "a".repeat(10_000));
    let mut stream = TcpStream::connect(&address).unwrap();
    let answer = exchange(
        &mut stream,
        &format!("GET {long} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        answer.starts_with("HTTP/1.1 414"),
        "{}",
        &answer[..80.min(answer.len())]
    );
    assert!(answer.contains(r#""code":"RequestUriTooLong""#), "{answer}");

    let mut stream = TcpStream::connect(&address).unwrap();
    let big = "b".repeat(40_000);
    let answer = exchange(
        &mut stream,
        &format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    );
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..80.min(answer.len())]
    );
    assert!(
        answer.contains(r#""code":"RequestHeadersTooLarge""#),
        "{answer}"
    );
}
